"""Slot sync flows: pull free slots from every practice and load them, thinly orchestrated.

Shape of one run:
1. `open_load`: record the load in the ledger and the registry in `core.dim_practice`.
2. `fetch_practice` (one async task per practice, sharing one pooled HTTP client): the
   differential searches for every window, landed as bytes on disk. No DuckDB here.
3. `load_and_publish` (the only writer): loads each landed file in its own transaction,
   records every practice's outcome, rebuilds the marts and publishes the dashboard snapshot.
A failing practice never fails the others; the run summary says what to do about it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context

from connectors.bookinglog import BookingLogClient
from connectors.clock import Clock, SystemClock
from connectors.config import Settings, get_settings
from connectors.gpconnect.client import GpConnectClient
from connectors.gpconnect.errors import GpConnectError
from connectors.gpconnect.spine import NO_FILTER, SearchFilter
from connectors.gpconnect.windows import SearchWindow, plan_windows
from connectors.registry import Practice, Registry, load_registry
from flows.bookings import BookingsResult, collect_bookings
from warehouse.db import open_warehouse
from warehouse.landing import LandedResponse, landing_path, write_landing_file
from warehouse.loader import PracticeDataError, Warehouse, new_load_id


class FixedClock:
    """A clock pinned to the run's as-of instant, so a replayed run is deterministic."""

    def __init__(self, instant: datetime) -> None:
        self._instant = instant

    def now(self) -> datetime:
        return self._instant


@dataclass
class PracticeOutcome:
    """What happened to one practice in one run (also the summary table row)."""

    practice_ods: str
    status: str  # ok | failed
    responses: int = 0
    slot_rows: int = 0
    interaction: str | None = None
    http_status: int | None = None
    error_class: str | None = None
    message: str | None = None
    next_step: str | None = None
    landing_file: str | None = None


@dataclass
class SyncSummary:
    load_id: str
    flow_name: str
    as_of: datetime
    outcomes: list[PracticeOutcome] = field(default_factory=list)
    bookings: BookingsResult = field(default_factory=BookingsResult)
    published: str | None = None

    @property
    def failed(self) -> list[PracticeOutcome]:
        return [o for o in self.outcomes if o.status != "ok"]

    @property
    def slot_rows(self) -> int:
        return sum(o.slot_rows for o in self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "load_id": self.load_id,
            "flow_name": self.flow_name,
            "as_of": self.as_of.isoformat(),
            "outcomes": [asdict(o) for o in self.outcomes],
            "booking_logs": {
                "organisations_ok": [x.booking_org_ods for x in self.bookings.exports],
                "entries": sum(len(x.entries) for x in self.bookings.exports),
                "failures": [str(f) for f in self.bookings.failures],
                "appointment_reads": dict(Counter(r.outcome for r in self.bookings.reads)),
            },
            "published": self.published,
        }


def search_filters(practice: Practice) -> list[tuple[str, SearchFilter]]:
    """The differential searches for a practice: (filter role, searchFilter)."""
    filters: list[tuple[str, SearchFilter]] = [("general", NO_FILTER)]
    if practice.accepts_111_booking and practice.nhs111_provider_ods:
        filters.append(("nhs111", SearchFilter("urgent-care", practice.nhs111_provider_ods)))
    filters.extend(("hub", SearchFilter("gp-practice", hub)) for hub in practice.booking_hubs)
    return filters


@task(name="fetch-practice", cache_policy=NO_CACHE, task_run_name="fetch-{practice.ods_code}")
async def fetch_practice(
    practice: Practice,
    windows: list[SearchWindow],
    client: GpConnectClient,
    landing_dir: Path,
    load_id: str,
    observed_at: datetime,
) -> PracticeOutcome:
    """Run every (window, filter) search for one practice and land the bytes."""
    jobs = [
        (role, window, search_filter)
        for window in windows
        for role, search_filter in search_filters(practice)
    ]
    results = await asyncio.gather(
        *(client.search_free_slots(practice, window, sf) for _, window, sf in jobs),
        return_exceptions=True,
    )
    landed: list[LandedResponse] = []
    first_error: BaseException | None = None
    for (role, _, _), result in zip(jobs, results, strict=True):
        if isinstance(result, BaseException):
            first_error = first_error or result
        else:
            landed.append(LandedResponse(result, role))
    path = landing_path(landing_dir, load_id, practice.ods_code)
    if landed:
        # Completed units are landed even when another search failed: nothing fetched is lost.
        write_landing_file(path, load_id=load_id, observed_at=observed_at, responses=landed)
    outcome = PracticeOutcome(
        practice.ods_code, "ok", responses=len(landed), landing_file=str(path) if landed else None
    )
    if first_error is not None:
        _describe_failure(outcome, first_error)
        get_run_logger().warning("%s", outcome.message)
    return outcome


def _describe_failure(outcome: PracticeOutcome, error: BaseException) -> None:
    outcome.status = "failed"
    if isinstance(error, GpConnectError):
        outcome.interaction = error.interaction
        outcome.http_status = error.status
        outcome.error_class = error.error_class
        outcome.next_step = error.next_step
        outcome.message = str(error)
    else:
        outcome.interaction = "search free slots"
        outcome.error_class = type(error).__name__
        outcome.next_step = "unexpected error: check the logs, then re-run the practice"
        outcome.message = f"practice {outcome.practice_ods}, search free slots: {error!r}"


@task(name="load-and-publish", cache_policy=NO_CACHE)
def load_and_publish(
    settings: Settings, summary: SyncSummary, started_at: datetime, clock: Clock
) -> SyncSummary:
    """The only warehouse writer: load landed files, record outcomes, rebuild, publish."""
    logger = get_run_logger()
    con = open_warehouse(settings.resolved_warehouse_path)
    try:
        warehouse = Warehouse(con)
        for outcome in summary.outcomes:
            if outcome.landing_file:
                try:
                    result = warehouse.load_practice_file(
                        Path(outcome.landing_file), load_id=summary.load_id,
                        practice_ods=outcome.practice_ods,
                    )
                    outcome.slot_rows = result.slot_rows
                except PracticeDataError as exc:
                    outcome.status = "failed"
                    outcome.interaction = "search free slots"
                    outcome.error_class = type(exc).__name__
                    outcome.message = str(exc)
                    outcome.next_step = "raise the bad payload with the supplier, then re-run"
                    logger.warning("%s", exc)
        warehouse.record_practice_runs(
            summary.load_id, [asdict(o) for o in summary.outcomes], finished_at=clock.now()
        )
        warehouse.load_bookings(
            summary.load_id, observed_at=summary.as_of, exports=summary.bookings.exports,
            fetch_failures=summary.bookings.failures, reads=summary.bookings.reads,
        )
        warehouse.build_models(summary.load_id)
        failed = len(summary.failed)
        warehouse.finish_load(
            summary.load_id, status="completed", completed_at=clock.now(),
            practices_ok=len(summary.outcomes) - failed, practices_failed=failed,
        )
        summary.published = str(
            warehouse.publish(settings.published_dir, load_id=summary.load_id, as_of=summary.as_of)
        )
    finally:
        con.close()
    return summary


async def run_slot_sync(
    flow_name: str,
    registry: Registry,
    settings: Settings,
    *,
    as_of: datetime | None,
    horizon_days: int,
    practices: list[str] | None = None,
) -> SyncSummary:
    """The body shared by the nightly and intraday flows."""
    clock: Clock = FixedClock(as_of) if as_of else SystemClock()
    observed_at = clock.now().astimezone(UTC).replace(microsecond=0)
    started_at = datetime.now(UTC)
    selected = [p for p in registry.practices if practices is None or p.ods_code in practices]
    unknown = sorted(set(practices or ()) - {p.ods_code for p in selected})
    if unknown:
        raise ValueError(f"practices not in the registry: {', '.join(unknown)}")
    load_id = new_load_id(flow_name, observed_at, uuid.uuid4().hex[:8])
    run_id = _flow_run_id()
    con = open_warehouse(settings.resolved_warehouse_path)
    try:
        warehouse = Warehouse(con)
        warehouse.begin_load(load_id, flow_name=flow_name, as_of=observed_at,
                             started_at=started_at, flow_run_id=run_id)
        warehouse.sync_registry(registry, load_id)
    finally:
        con.close()

    windows = plan_windows(observed_at, horizon_days, settings.sync.window_days)
    summary = SyncSummary(load_id=load_id, flow_name=flow_name, as_of=observed_at)
    secret = settings.patient_hash_key.get_secret_value()
    async with (
        GpConnectClient(settings.http, settings.consumer, clock=clock) as client,
        BookingLogClient(settings.http, hash_secret=secret, clock=clock) as log_client,
    ):
        slot_fetches = asyncio.gather(
            *(
                fetch_practice(p, windows, client, settings.landing_dir, load_id, observed_at)
                for p in selected
            )
        )
        bookings = collect_bookings(
            registry, client, log_client, hash_secret=secret, clock=clock, observed_at=observed_at,
            practices={p.ods_code for p in selected},
        )
        outcomes, summary.bookings = await asyncio.gather(slot_fetches, bookings)
        summary.outcomes = list(outcomes)
    return load_and_publish(settings, summary, started_at, clock)


def _flow_run_id() -> str | None:
    try:
        context = get_run_context()
    except RuntimeError:
        return None
    flow_run = getattr(context, "flow_run", None)
    return str(flow_run.id) if flow_run else None


def _settings_for(warehouse_path: str | None, data_dir: str | None) -> Settings:
    settings = get_settings()
    updates: dict[str, Any] = {}
    if data_dir:
        updates["data_dir"] = Path(data_dir)
    if warehouse_path:
        updates["warehouse_path"] = Path(warehouse_path)
    return settings.model_copy(update=updates) if updates else settings


@flow(name="nightly_sync", log_prints=True)
async def nightly_sync(
    registry_path: str,
    warehouse_path: str | None = None,
    data_dir: str | None = None,
    as_of: datetime | None = None,
    horizon_days: int | None = None,
    practices: list[str] | None = None,
) -> dict[str, Any]:
    """Capture the full horizon of free slots for every practice in the registry."""
    settings = _settings_for(warehouse_path, data_dir)
    registry = load_registry(Path(registry_path))
    summary = await run_slot_sync(
        "nightly_sync", registry, settings, as_of=as_of,
        horizon_days=horizon_days or settings.sync.horizon_days, practices=practices,
    )
    return summary.as_dict()


@flow(name="intraday_sync", log_prints=True)
async def intraday_sync(
    registry_path: str,
    warehouse_path: str | None = None,
    data_dir: str | None = None,
    as_of: datetime | None = None,
    practices: list[str] | None = None,
) -> dict[str, Any]:
    """Refresh the next few days only, for same-day decisions."""
    settings = _settings_for(warehouse_path, data_dir)
    registry = load_registry(Path(registry_path))
    summary = await run_slot_sync(
        "intraday_sync", registry, settings, as_of=as_of,
        horizon_days=settings.sync.intraday_horizon_days, practices=practices,
    )
    return summary.as_dict()
