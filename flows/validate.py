"""Data-quality validation as a Prefect task of every sync, and as a flow of its own.

`validate_batches` runs inside the sync's writer step, between loading the landed files and
folding/publishing: every batch waiting to be folded is validated (warehouse/quality.py), a
failing (practice, load) batch is quarantined and never published, and the other practices
publish normally. The `validate` flow (deployed as `validate/after-sync`, and behind
`slotsync validate`) validates whatever is still pending (e.g. a load that died before its
validation), republishes when it judged anything, and ends Failed while any batch stays
quarantined, so an automation can alert on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from common.config import Settings, get_settings
from flows.alert_messages import quarantine_message
from flows.run_context import flow_run_id, settings_for, writer_slot
from warehouse.db import open_warehouse
from warehouse.ingest import Places, ingest
from warehouse.quality import (
    BatchOutcome,
    QuarantinedBatch,
    ValidationReport,
    open_quarantine,
    summary_lines,
    validate_pending,
)


class BatchesQuarantined(RuntimeError):
    """Some batches are held back by data-quality expectations (the run ends Failed)."""

    def __init__(self, quarantined: list[QuarantinedBatch]) -> None:
        self.quarantined = quarantined
        super().__init__("\n".join(summary_lines(quarantined)))


@task(name="validate-batches", cache_policy=NO_CACHE)
def validate_batches(
    con: duckdb.DuckDBPyConnection, data_dir: Path, *, validated_by: str | None = None
) -> ValidationReport:
    """Validate every pending batch on the writer's connection; quarantine the failures."""
    return judge_pending(con, data_dir, validated_by=validated_by)


def judge_pending(
    con: duckdb.DuckDBPyConnection, data_dir: Path, *, validated_by: str | None = None,
    practices: Sequence[str] | None = None, build_docs: bool = True,
) -> ValidationReport:
    """Validate the pending batches (of `practices`), log and alert each quarantine.

    The pipelined night calls it per batch of landed practices with `build_docs=False`, and
    the final `validate_batches` builds Data Docs once over all of them.
    """
    logger = get_run_logger()
    report = validate_pending(con, data_dir=data_dir, validated_by=validated_by, practices=practices,
                              build_docs=build_docs)
    logger.info(
        "validated %d batch(es) (%s rows): checks in DuckDB %.2f s, GX %.2f s; %d quarantined; "
        "Data Docs: %s",
        len(report.batches), ", ".join(f"{k} {v:,}" for k, v in report.rows.items()) or "no",
        report.extract_s, report.validate_s, len(report.quarantined),
        report.data_docs or ("built at the end" if not build_docs else None),
    )
    for batch in report.quarantined:
        logger.warning(
            "practice %s, load %s: quarantined by data-quality expectations (%s); not published",
            batch.practice_ods, batch.load_id, batch.detail(),
            extra={"practice_ods": batch.practice_ods, "load_id": batch.load_id},
        )
        tell_quarantine(batch)
    return report


def tell_quarantine(batch: BatchOutcome) -> None:
    """One `slotsync.batch.quarantined` event per batch; the alert automation relays it."""
    from flows.alerts import QUARANTINE_EVENT, emit_alert

    run_id = flow_run_id()
    subject, body = quarantine_message(
        practice_ods=batch.practice_ods, load_id=batch.load_id, failed_expectations=batch.failed,
        detail=batch.detail(), run_url=None if run_id is None else f"flow run {run_id}",
    )
    emit_alert(QUARANTINE_EVENT, f"slotsync.batch.{batch.practice_ods}.{batch.load_id}", subject, body)


def writer_places(settings: Settings) -> Places:
    """Where the writer sequence reads and writes besides the warehouse, from settings."""
    return Places(settings.data_dir, settings.published_dir, settings.landing_dir,
                  settings.sync.raw_retention_days, settings.storage.file_mode, settings.storage.dir_mode,
                  models_memory_limit=settings.sync.models_memory_limit)


def run_validation(warehouse_path: Path, data_dir: Path) -> tuple[ValidationReport, list[QuarantinedBatch]]:
    """Validate what is pending; when anything was judged, rebuild the marts and republish.

    The writer sequence without a new load (warehouse/ingest.py). The caller holds the writer
    (the writer lock, or no sync running).
    """
    settings = get_settings().model_copy(update={"data_dir": data_dir})
    con = open_warehouse(warehouse_path, file_mode=settings.storage.file_mode,
                         dir_mode=settings.storage.dir_mode)
    try:
        report = ingest(con, writer_places(settings), now=lambda: datetime.now(UTC))
        return report.validation, open_quarantine(con)
    finally:
        con.close()


@flow(name="validate", log_prints=True)
async def validate(warehouse_path: str | None = None, data_dir: str | None = None) -> dict[str, Any]:
    """Validate pending batches, republish if any were judged; Failed while any is quarantined."""
    settings = settings_for(warehouse_path, data_dir)
    async with writer_slot(settings):
        report, quarantined = run_validation(settings.resolved_warehouse_path, settings.data_dir)
    for line in summary_lines(quarantined, validated=len(report.batches)):
        print(line)
    if quarantined:
        raise BatchesQuarantined(quarantined)
    return {"validated": len(report.batches), "quarantined": 0, "data_docs": report.data_docs}
