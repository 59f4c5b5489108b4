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

from pathlib import Path
from typing import Any

import duckdb
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.run_context import settings_for, writer_slot
from warehouse.quality import (
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
    logger = get_run_logger()
    report = validate_pending(con, data_dir=data_dir, validated_by=validated_by)
    logger.info(
        "validated %d batch(es) (%s rows) in %.2f s (extract %.2f s); %d quarantined; Data Docs: %s",
        len(report.batches), ", ".join(f"{k} {v:,}" for k, v in report.rows.items()) or "no",
        report.validate_s, report.extract_s, len(report.quarantined), report.data_docs,
    )
    for batch in report.quarantined:
        logger.warning(
            "practice %s, load %s: quarantined by data-quality expectations (%s); not published",
            batch.practice_ods, batch.load_id, batch.detail(),
            extra={"practice_ods": batch.practice_ods, "load_id": batch.load_id},
        )
    return report


def run_validation(warehouse_path: Path, data_dir: Path) -> tuple[ValidationReport, list[QuarantinedBatch]]:
    """Validate what is pending; when anything was judged, rebuild the marts and publish them.

    The caller holds the writer (the `duckdb-writer` slot, or no sync running).
    """
    from connectors.config import get_settings
    from warehouse.db import open_warehouse
    from warehouse.loader import Warehouse

    con = open_warehouse(warehouse_path)
    try:
        report = validate_pending(con, data_dir=data_dir)
        if report.batches:
            warehouse = Warehouse(con)
            warehouse.build_models()
            latest = con.execute(
                "select load_id, as_of from meta.load_ledger where status = 'completed' "
                "order by as_of desc, completed_at desc limit 1"
            ).fetchall()
            if latest:
                settings = get_settings().model_copy(update={"data_dir": data_dir})
                warehouse.publish(settings.published_dir, load_id=str(latest[0][0]), as_of=latest[0][1])
        return report, open_quarantine(con)
    finally:
        con.close()


@flow(name="validate", log_prints=True)
async def validate(warehouse_path: str | None = None, data_dir: str | None = None) -> dict[str, Any]:
    """Validate pending batches, republish if any were judged; Failed while any is quarantined."""
    settings = settings_for(warehouse_path, data_dir)
    async with writer_slot():
        report, quarantined = run_validation(settings.resolved_warehouse_path, settings.data_dir)
    for line in summary_lines(quarantined, validated=len(report.batches)):
        print(line)
    if quarantined:
        raise BatchesQuarantined(quarantined)
    return {"validated": len(report.batches), "quarantined": 0, "data_docs": report.data_docs}
