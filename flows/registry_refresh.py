"""The monthly registry refresh: rebuild the practice registry from national reference data,
report what changed, and keep list sizes as of each day.

List sizes (and so NHS 111 quotas), endpoints, ASIDs and 111 status change month to month, and
practices open, close and merge. `registry_refresh` runs the same build as `slotsync registry
build` (connectors/referencedata/runner.py) over the registry the syncs use, so the next sync
reads the new file; the build's diff against last month's file becomes the run's markdown
artifact (`registry-refresh-report`); and the new list sizes are recorded in the warehouse's
list-size history (core.practice_list_size, V008) from the run's UK day, so quota figures for
past days keep the list size then in force.

The scope is the ICB (or sub-ICB location, or the practices) the registry already covers unless
given; a registry refreshed without a hub file would lose its hubs, so `hubs` should be set by
any ICB that has them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact

from common.uktime import uk_day
from connectors.referencedata import DEFAULT_ORD_URL, DEFAULT_SDS_URL
from connectors.referencedata.build import diff_markdown
from connectors.referencedata.runner import BuildOutcome, build_options, run_build
from connectors.registry import Registry, load_registry
from flows.run_context import flow_run_id, settings_for, writer_slot
from warehouse.db import open_warehouse
from warehouse.ledger import record_list_sizes

ARTIFACT_KEY = "registry-refresh-report"


class RefreshScopeUnknown(ValueError):
    """No scope was given and the registry does not name one ICB or sub-ICB location."""


def scope_of(registry: Registry) -> dict[str, Any]:
    """The build scope a registry covers: its one ICB, else its one sub-ICB location, else
    its practices by ODS code (hubs come from the hub file, not from ORD)."""
    practices = [p for p in registry.practices if p.kind == "practice"]
    icbs = {p.icb_code for p in practices}
    if len(icbs) == 1 and None not in icbs:
        return {"icb": icbs.pop()}
    sub_icbs = {p.sub_icb_code for p in practices}
    if len(sub_icbs) == 1 and None not in sub_icbs:
        return {"sub_icb": sub_icbs.pop()}
    if not practices:
        raise RefreshScopeUnknown("the registry has no practices: give icb, sub_icb or practices")
    return {"practices": tuple(sorted(p.ods_code for p in practices))}


def report_markdown(outcome: BuildOutcome, recorded: int, day: str) -> str:
    """The artifact: what was built, the diff against last month, and the sizes recorded."""
    report = outcome.result.report()
    lines = [
        f"Rebuilt the registry for {report['scope']}: {report['practices']} practices, "
        f"{report['hubs']} hubs, {len(outcome.result.findings)} finding(s).",
        "",
        f"List sizes recorded as in force from {day} (core.practice_list_size): "
        f"{recorded} practice(s) with a new list size.",
    ]
    if outcome.result.stale:
        lines += ["", "Stale sources (cached answers used):", *(f"- {s}" for s in outcome.result.stale)]
    if outcome.result.findings:
        lines += ["", "Findings:", *(f"- {f}" for f in outcome.result.findings)]
    changes = (
        diff_markdown(outcome.diff)
        if outcome.diff is not None
        else "# Registry changes\n\nFirst build: no previous registry to compare with.\n"
    )
    return changes + "\n" + "\n".join(lines) + "\n"


@flow(name="registry_refresh", log_prints=True)
async def registry_refresh(
    registry_path: str,
    icb: str | None = None,
    sub_icb: str | None = None,
    practices: list[str] | None = None,
    ord_url: str = DEFAULT_ORD_URL,
    sds_url: str = DEFAULT_SDS_URL,
    list_sizes: str | None = None,
    nhs111_csv: str | None = None,
    hubs: str | None = None,
    provider_mapping: str | None = None,
    cache_dir: str | None = None,
    warehouse_path: str | None = None,
    data_dir: str | None = None,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """Rebuild `registry_path` in place, publish the diff as an artifact and record list sizes.

    `as_of` is the instant the new sizes count from (its UK day; default now).
    """
    settings = settings_for(warehouse_path, data_dir)
    output = Path(registry_path)
    given: dict[str, Any] = {"icb": icb, "sub_icb": sub_icb, "practices": tuple(practices or ())}
    scope = given if any(given.values()) else scope_of(load_registry(output))
    options = build_options(
        output=output, ord_url=ord_url, sds_url=sds_url, list_sizes=list_sizes, nhs111_csv=nhs111_csv,
        hubs=Path(hubs) if hubs else None,
        provider_mapping=Path(provider_mapping) if provider_mapping else None,
        cache_dir=Path(cache_dir) if cache_dir else settings.data_dir / "reference-cache", **scope,
    )
    # The build is blocking HTTP (with back-off sleeps): keep it off the event loop.
    outcome = await asyncio.to_thread(run_build, options)
    day = uk_day(as_of or datetime.now(UTC))
    source_id = f"registry-refresh-{flow_run_id() or day.isoformat()}"
    async with writer_slot(settings):
        con = open_warehouse(settings.resolved_warehouse_path, memory_limit=settings.sync.writer_memory_limit)
        try:
            recorded = record_list_sizes(con, outcome.result.registry, source_id, day)
        finally:
            con.close()
    await acreate_markdown_artifact(
        markdown=report_markdown(outcome, recorded, day.isoformat()), key=ARTIFACT_KEY,
        description=f"Registry changes for {options.scope.describe()} ({day.isoformat()})",
    )
    get_run_logger().info("registry refreshed: %s", outcome.diff_path or "first build, no diff")
    diff = outcome.diff or {}
    return {
        "registry": str(output),
        "scope": options.scope.describe(),
        "day": day.isoformat(),
        "list_sizes_recorded": recorded,
        "opened": diff.get("opened", []),
        "closed": [c["ods_code"] for c in diff.get("closed", [])],
        "merged": [m["ods_code"] for m in diff.get("merged", [])],
        "changed": len(diff.get("changed", [])),
        "diff": str(outcome.diff_path) if outcome.diff_path else None,
    }
