"""Slot sync flows: pull free slots from every practice and load them, thinly orchestrated.

Shape of one run:
1. Open the load: record it in the ledger with its plan (`meta.load_plan`) and the registry
   in `core.dim_practice`; a re-run also reads which planned units are already complete.
2. `fetch_practices` (async tasks sharing one pooled HTTP client; one per practice, or a
   group of practices each when the estate is larger than `sync.max_tasks_per_leg`): each
   practice's differential searches for every window (of a re-run: not yet complete), landed
   as bytes on disk. No DuckDB here. Each landed practice goes to the pipelined writer
   (flows/landed_writer.py), which loads and validates batches of them while fetching goes on.
3. `load_and_publish` (the writer sequence, once fetching ended): loads the practices the
   pipelined writer did not (the last partial batch) and the bookings, validates what is
   still pending (`validate-batches`, flows/validate.py: a failing practice's batch is
   quarantined, not published), records every practice's outcome, folds, rebuilds the marts
   and publishes the dashboard snapshot.
Steps 1 and 3 and each pipelined batch hold the warehouse's writer lock (flows/run_context.py), so runs of
different deployments never write at once. A failing practice never fails the others: the run ends
Completed with its failures listed in the summary artifacts, unless more than
`max_failed_fraction` of its practices failed; then it ends Failed (`TooManyPracticesFailed`),
because that many failures mean something systemic (Spine, certificates, configuration).

`rerun_of` repairs an earlier run: same observation instant and windows, fetching only the
units the warehouse has no completed row for (a plain run at the same instant fetches
everything again). `backfill` observes an explicit range of UK days into its own window
stream and never moves the scheduled state (flows/operations.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from common.clock import Clock, SystemClock
from common.config import Settings, StorageSettings
from common.files import private_dir
from common.uktime import uk_midnight
from connectors.bookinglog import BookingLogClient
from connectors.gpconnect.client import GpConnectClient
from connectors.gpconnect.searches import UnitKey, planned_units, search_filters
from connectors.gpconnect.windows import SearchWindow
from connectors.registry import Practice, Registry, load_registry
from flows.alert_messages import FailedPractice, failed_run_report
from flows.bookings import BookingsResult, collect_bookings
from flows.drift import notify_new_episodes
from flows.landed_writer import LandedWriter
from flows.load_guard import ends_load_on_exit, guard_load
from flows.logs import context_fields, log_context
from flows.operations import (
    BACKFILL_STREAM,
    SCHEDULED_STREAM,
    LoadPlan,
    completed_units,
    find_load,
    record_plan,
    supplier_text,
)
from flows.run_context import FixedClock, flow_run_id, settings_for, writer_slot
from flows.secrets import patient_hash_key
from flows.task_groups import all_or_cancel, run_in_groups
from flows.validate import validate_batches, writer_places
from warehouse.db import connect, open_warehouse
from warehouse.ingest import Bookings, LoadInput, PracticeFailure, PracticeOutcome, Preloaded, ingest
from warehouse.landing import LandedResponse, landing_path, write_landing_file
from warehouse.loader import Warehouse, new_load_id

DEFAULT_MAX_FAILED_FRACTION = 0.2
MAX_BACKFILL_DAYS = 90


@dataclass
class SyncSummary:
    load_id: str
    flow_name: str
    as_of: datetime
    stream: str = SCHEDULED_STREAM
    flow_run_id: str | None = None
    skipped: list[str] = field(default_factory=list)  # re-runs: practices already complete
    outcomes: list[PracticeOutcome] = field(default_factory=list)
    bookings: BookingsResult = field(default_factory=BookingsResult)
    published: str | None = None
    # Seconds the writer spent in each step (load, validate, models, publish): where a night goes.
    writer_phases_s: dict[str, float] = field(default_factory=dict)

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
            "stream": self.stream,
            "flow_run_id": self.flow_run_id,
            "skipped_practices": len(self.skipped),
            "outcomes": [asdict(o) for o in self.outcomes],
            "booking_logs": {
                "organisations_ok": [x.booking_org_ods for x in self.bookings.exports],
                "entries": sum(len(x.entries) for x in self.bookings.exports),
                "failures": [str(f) for f in self.bookings.failures],
                "appointment_reads": dict(Counter(r.outcome for r in self.bookings.reads)),
            },
            "published": self.published,
            "writer_phases_s": self.writer_phases_s,
        }


class TooManyPracticesFailed(RuntimeError):
    """More practices failed than a run tolerates; the run ends Failed to alert on-call."""

    def __init__(self, summary: SyncSummary, max_failed_fraction: float) -> None:
        self.summary = summary
        # The message is the run's state message, which the failed-run alert carries to phones.
        super().__init__(failed_run_report(
            failed=[FailedPractice(o.practice_ods, o.error_class, o.next_step, supplier_text(o.message))
                    for o in summary.failed],
            total=len(summary.outcomes), threshold=max_failed_fraction,
            rerun_id=summary.flow_run_id or summary.load_id,
        ))


@task(name="fetch-practices", cache_policy=NO_CACHE, task_run_name="fetch-{label}")
async def fetch_practices(
    label: str,
    group: list[tuple[Practice, frozenset[UnitKey]]],
    windows: list[SearchWindow],
    client: GpConnectClient,
    landing_dir: Path,
    load_id: str,
    observed_at: datetime,
    storage: StorageSettings,
    in_flight: asyncio.Semaphore,
    landed: Callable[[PracticeOutcome], Awaitable[None]],
) -> list[PracticeOutcome]:
    """One task's share of the practices (flows/task_groups.py), each fetched and landed alone.

    A practice starts only when fewer than `http.overall_concurrency` are in flight, and keeps
    its place until the writer has taken its outcome (`landed` waits while the writer is a
    batch behind).
    """

    async def one(practice: Practice, complete: frozenset[UnitKey]) -> PracticeOutcome:
        async with in_flight:
            outcome = await fetch_practice(practice, windows, client, landing_dir, load_id,
                                           observed_at, complete, storage)
            await landed(outcome)
            return outcome

    # A raise (the writer failed, a disk full) cancels the group's other practices too.
    return await all_or_cancel([asyncio.ensure_future(one(practice, complete))
                                 for practice, complete in group])


async def fetch_practice(
    practice: Practice,
    windows: list[SearchWindow],
    client: GpConnectClient,
    landing_dir: Path,
    load_id: str,
    observed_at: datetime,
    complete: frozenset[UnitKey] = frozenset(),
    storage: StorageSettings | None = None,
) -> PracticeOutcome:
    """Run every (window, filter) search not in `complete` for one practice; land the bytes."""
    jobs = [
        (role, window, search_filter)
        for window in windows
        for role, search_filter in search_filters(practice)
        if (search_filter.key, window.start_utc, window.end_utc) not in complete
    ]
    # One budget for all of this practice's searches, retries included: a provider that
    # trickles or asks for a day's wait fails alone instead of holding the run.
    deadline = client.practice_deadline(practice)
    with log_context(practice_ods=practice.ods_code):
        results = await asyncio.gather(
            *(client.search_free_slots(practice, window, sf, deadline=deadline) for _, window, sf in jobs),
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
        # In a thread: the fsync must not stall the other practices' searches on this loop.
        modes = storage or StorageSettings()
        await asyncio.to_thread(
            write_landing_file, path, load_id=load_id, observed_at=observed_at, responses=landed,
            file_mode=modes.file_mode, dir_mode=modes.dir_mode,
        )
    failure = None if first_error is None else PracticeFailure.from_fetch(practice.ods_code, first_error)
    outcome = PracticeOutcome.fetched(
        practice.ods_code, responses=len(landed), landing_file=str(path) if landed else None,
        failure=failure,
    )
    if failure is not None:
        get_run_logger().warning("%s", outcome.message, extra=_failure_fields(outcome))
    return outcome


def _failure_fields(outcome: PracticeOutcome) -> dict[str, Any]:
    """Structured fields for a practice's failure line (see flows/logs.py)."""
    return {
        **context_fields(), "practice_ods": outcome.practice_ods,
        "interaction": outcome.interaction, "status": outcome.http_status,
    }


@task(name="load-and-publish", cache_policy=NO_CACHE)
def load_and_publish(
    settings: Settings, summary: SyncSummary, started_at: datetime, clock: Clock,
    preloaded: Preloaded | None = None,
) -> SyncSummary:
    """The only warehouse writer: the writer sequence (warehouse/ingest.py) for this load.

    Data quality gates the fold: a failing (practice, load) batch is quarantined, kept and not
    published (`validate-batches`, flows/validate.py); the other practices go on.
    """
    logger = get_run_logger()
    con = open_warehouse(settings.resolved_warehouse_path,
                         memory_limit=settings.sync.writer_memory_limit,
                         file_mode=settings.storage.file_mode, dir_mode=settings.storage.dir_mode)
    try:
        report = ingest(
            con, writer_places(settings), now=clock.now,
            new_load=LoadInput(
                summary.load_id, summary.stream, summary.as_of, summary.outcomes,
                skipped=summary.skipped, preloaded=preloaded, bookings=_bookings(summary.bookings),
            ),
            validate=lambda c: validate_batches(c, settings.data_dir, validated_by=summary.load_id),
        )
    finally:
        con.close()
    for outcome in report.refused:
        logger.warning("%s", outcome.message, extra=_failure_fields(outcome))
    summary.outcomes = report.outcomes
    summary.published = str(report.published) if report.published else None
    summary.writer_phases_s.update(report.phases_s)
    return summary


def _bookings(result: BookingsResult) -> Bookings:
    return Bookings(result.exports, result.failures, result.reads)


async def run_slot_sync(
    flow_name: str,
    registry: Registry,
    settings: Settings,
    *,
    as_of: datetime | None,
    horizon_days: int,
    practices: list[str] | None = None,
    rerun_of: str | None = None,
) -> SyncSummary:
    """The body shared by the nightly and intraday flows and their re-runs."""
    clock: Clock = FixedClock(as_of) if as_of else SystemClock()

    def scheduled_plan(observed_at: datetime) -> LoadPlan:
        return LoadPlan("scheduled", SCHEDULED_STREAM, observed_at, horizon_days,
                        settings.sync.window_days, tuple(practices) if practices else None)

    observed_at, plan = await _resolve_plan(
        flow_name, settings, clock, as_of=as_of, rerun_of=rerun_of, practices=practices,
        fresh_plan=scheduled_plan,
    )
    return await _sync(flow_name, registry, settings, clock=clock, observed_at=observed_at, plan=plan)


async def _resolve_plan(
    flow_name: str,
    settings: Settings,
    clock: Clock,
    *,
    as_of: datetime | None,
    rerun_of: str | None,
    practices: list[str] | None,
    fresh_plan: Callable[[datetime], LoadPlan],
) -> tuple[datetime, LoadPlan]:
    """The observation instant and plan: a fresh one, or the repaired run's own."""
    if rerun_of is None:
        observed_at = clock.now().astimezone(UTC).replace(microsecond=0)
        return observed_at, fresh_plan(observed_at)
    warehouse_path = settings.resolved_warehouse_path
    async with writer_slot(settings):
        con = open_warehouse(warehouse_path, memory_limit=settings.sync.writer_memory_limit,
                             file_mode=settings.storage.file_mode, dir_mode=settings.storage.dir_mode)
        try:
            original = find_load(con, rerun_of)
        finally:
            con.close()
    if original is None:
        raise ValueError(
            f"re-run of {rerun_of}: no load in {warehouse_path} was recorded by that flow run or "
            "load (it stopped before writing anything). Next step: start a fresh run instead"
        )
    if original.flow_name != flow_name:
        raise ValueError(
            f"re-run of load {original.load_id}: it is a {original.flow_name} load, not "
            f"{flow_name}. Next step: `slotsync rerun` its flow run, which picks the right flow"
        )
    if original.plan is None:
        raise ValueError(
            f"re-run of load {original.load_id}: it predates load plans (migration V004), so its "
            f"units cannot be re-planned. Next step: `slotsync sync --as-of "
            f"{original.as_of.isoformat()} --practice ...` for the practices that failed"
        )
    if as_of is not None and as_of.astimezone(UTC).replace(microsecond=0) != original.as_of:
        raise ValueError(
            f"re-run of load {original.load_id} must observe at its own instant "
            f"{original.as_of.isoformat()}, not {as_of.isoformat()}"
        )
    chosen = original.plan.practices
    if practices:
        outside = sorted(set(practices) - set(chosen or practices))
        if outside:
            raise ValueError(
                f"re-run of load {original.load_id}: practices {', '.join(outside)} were not part "
                "of it. Next step: sync them with a fresh run"
            )
        chosen = tuple(practices)
    return original.as_of, replace(
        original.plan, mode="rerun", practices=chosen, rerun_of=original.load_id
    )


@ends_load_on_exit  # the load never outlives this run as `running` (flows/load_guard.py)
async def _sync(
    flow_name: str,
    registry: Registry,
    settings: Settings,
    *,
    clock: Clock,
    observed_at: datetime,
    plan: LoadPlan,
    with_bookings: bool = True,
) -> SyncSummary:
    """Open the load, fetch every planned unit not yet complete, load and publish."""
    started_at = datetime.now(UTC)
    wanted = plan.practices
    selected = [p for p in registry.practices if wanted is None or p.ods_code in wanted]
    unknown = sorted(set(wanted or ()) - {p.ods_code for p in selected})
    if unknown:
        raise ValueError(f"practices not in the registry: {', '.join(unknown)}")
    load_id = new_load_id(flow_name, observed_at, uuid.uuid4().hex[:8])
    guard_load(settings.resolved_warehouse_path, load_id)
    summary = SyncSummary(load_id=load_id, flow_name=flow_name, as_of=observed_at,
                          stream=plan.stream, flow_run_id=flow_run_id())
    windows = plan.windows()
    # Owner-only from the first run on (an existing data folder is tightened too).
    private_dir(settings.data_dir, settings.storage.dir_mode, tighten=True)
    async with writer_slot(settings):
        con = open_warehouse(settings.resolved_warehouse_path,
                             memory_limit=settings.sync.writer_memory_limit,
                             file_mode=settings.storage.file_mode, dir_mode=settings.storage.dir_mode)
        try:
            warehouse = Warehouse(con)
            warehouse.begin_load(load_id, flow_name=flow_name, as_of=observed_at,
                                 started_at=started_at, flow_run_id=summary.flow_run_id)
            record_plan(con, load_id, plan)
            warehouse.sync_registry(registry, load_id)
            done: dict[str, set[UnitKey]] = {}
            bookings_loaded = False
            if plan.rerun_of:
                # The warehouse decides what a re-run skips: units completed at this instant.
                # The original's bookings were loaded only if it got as far as completing.
                done = completed_units(con, stream=plan.stream, observed_at=observed_at,
                                       practices=[p.ods_code for p in selected])
                original = find_load(con, plan.rerun_of)
                bookings_loaded = original is not None and original.status == "completed"
        finally:
            con.close()
    todo = [
        (p, frozenset(done.get(p.ods_code, ())))
        for p in selected
        if not planned_units(p, windows) <= done.get(p.ods_code, set())
    ]
    fetched = {p.ods_code for p, _ in todo}
    summary.skipped = [p.ods_code for p in selected if p.ods_code not in fetched]
    booking_practices = fetched if bookings_loaded else {p.ods_code for p in selected}
    secret = (await patient_hash_key(settings)).get_secret_value()
    with log_context(load_id=load_id):
        async with (
            GpConnectClient(settings.http, settings.consumer, clock=clock) as client,
            BookingLogClient(settings.http, hash_secret=secret, clock=clock) as log_client,
        ):
            # Start a practice's task only when one of the practices in flight has landed: at
            # England scale, 7,550 tasks started at once spent minutes in Prefect before the
            # first request, and each holds its responses until its last search is back, so
            # memory grows with practices in flight. The HTTP limiter still bounds the calls.
            in_flight = asyncio.Semaphore(settings.http.overall_concurrency)
            # The writer loads and validates batches of landed practices while fetching goes on.
            leg = with_bookings and bool(booking_practices)
            async with LandedWriter(settings, load_id=load_id, stream=plan.stream, as_of=observed_at,
                                    with_bookings=leg, practices=len(todo)) as writer:

                async def fetch_group(label: str, group: list[tuple[Practice, frozenset[UnitKey]]],
                                      ) -> list[PracticeOutcome]:
                    return await fetch_practices(label, group, windows, client, settings.landing_dir,
                                                 load_id, observed_at, settings.storage, in_flight,
                                                 writer.landed)

                # At most `sync.max_tasks_per_leg` task runs (flows/task_groups.py).
                fetches = run_in_groups(todo, max_tasks=settings.sync.max_tasks_per_leg,
                                        items_in_flight=settings.http.overall_concurrency,
                                        code=lambda item: item[0].ods_code, run_group=fetch_group)
                legs: list[asyncio.Future[Any]] = [asyncio.ensure_future(fetches)]

                async def bookings_leg() -> BookingsResult:
                    result = await collect_bookings(
                        registry, client, log_client, hash_secret=secret, clock=clock,
                        observed_at=observed_at, practices=booking_practices,
                        concurrency=settings.http.overall_concurrency,
                        max_tasks=settings.sync.max_tasks_per_leg,
                    )
                    await writer.bookings_fetched(_bookings(result))  # validation starts then
                    return result

                if leg:
                    legs.append(asyncio.ensure_future(bookings_leg()))
                outcomes, *booked = await all_or_cancel(legs)
                if booked:
                    summary.bookings = booked[0]
            summary.outcomes = list(outcomes)
        async with writer_slot(settings):
            summary = load_and_publish(settings, summary, started_at, clock, writer.preloaded)
            if flow_name == "nightly_sync":
                tell_drift(settings, observed_at)
    if summary.published and settings.export_after_publish.to:
        from flows.export_postgres import export_after_publish

        export_after_publish(settings, get_run_logger())
    await _publish_artifacts(summary)
    return summary


def tell_drift(settings: Settings, observed_at: datetime) -> None:
    """Notify NHS 111 drift episodes this nightly opened; a failure here never fails the sync."""
    logger = get_run_logger()
    try:
        con = connect(settings.resolved_warehouse_path, read_only=True)
        try:
            told = notify_new_episodes(con, observed_at)
        finally:
            con.close()
    except Exception as exc:  # the sync's data is safe; say so and carry on
        logger.warning("NHS 111 drift check failed, no drift alert sent this night: %r", exc)
        return
    # Info, not a warning: the finding is the data's news (Data health, status, the alert
    # automations act on the event), not a fault of this run; a demo run stays free of warnings.
    for finding in told:
        logger.info("NHS 111 configuration drift at %s (%s) since %s: event emitted for the alerts",
                    finding.practice_ods, finding.kind, finding.since.isoformat())


def _finish(summary: SyncSummary, max_failed_fraction: float) -> dict[str, Any]:
    """The run's result, or TooManyPracticesFailed (run state Failed) past the threshold."""
    if summary.outcomes and len(summary.failed) / len(summary.outcomes) > max_failed_fraction:
        raise TooManyPracticesFailed(summary, max_failed_fraction)
    return summary.as_dict()


async def _publish_artifacts(summary: SyncSummary) -> None:
    """The run's summary for operators: a table of practice outcomes and a markdown report."""
    prefix = summary.flow_name.replace("_", "-")
    rows = [
        {"practice": o.practice_ods, "status": o.status, "responses": o.responses,
         "slot_rows": o.slot_rows, "interaction": o.interaction or "",
         "http_status": o.http_status or "", "error": o.error_class or "",
         "next_step": o.next_step or ""}
        for o in summary.outcomes
    ]
    await acreate_table_artifact(
        table=rows, key=f"{prefix}-practices",
        description=f"Practice outcomes of load {summary.load_id}",
    )
    await acreate_markdown_artifact(
        markdown=summary_markdown(summary), key=f"{prefix}-report",
        description=f"Summary of load {summary.load_id}",
    )


def summary_markdown(summary: SyncSummary) -> str:
    """A short report: counts, each failure with its next step, and the re-run command."""
    failed = summary.failed
    lines = [
        f"# {summary.flow_name} load `{summary.load_id}`",
        "",
        f"Observed at {summary.as_of.isoformat()} (window stream `{summary.stream}`).",
        "",
        f"**{len(summary.outcomes) - len(failed)} of {len(summary.outcomes)} practices ok**, "
        f"{len(failed)} failed, {len(summary.skipped)} skipped as already complete, "
        f"{summary.slot_rows:,} slot rows.",
    ]
    if failed:
        lines += ["", "| practice | interaction | HTTP | error | next step |", "|---|---|---|---|---|"]
        lines += [
            f"| {o.practice_ods} | {o.interaction or ''} | {o.http_status or ''} | "
            f"{o.error_class or ''} | {_cell(o.next_step)} |"
            for o in failed
        ]
        lines += ["", *(f"- {_cell(o.message)}" for o in failed)]
        lines += ["", f"Re-run only what failed: `slotsync rerun {summary.flow_run_id or summary.load_id}`"]
    if summary.bookings.failures:
        lines += ["", "Booking-log exports that failed:",
                  *(f"- {_cell(str(f))}" for f in summary.bookings.failures)]
    return "\n".join(lines) + "\n"


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


@flow(name="nightly_sync", log_prints=True)
async def nightly_sync(
    registry_path: str,
    warehouse_path: str | None = None,
    data_dir: str | None = None,
    as_of: datetime | None = None,
    horizon_days: int | None = None,
    practices: list[str] | None = None,
    rerun_of: str | None = None,
    max_failed_fraction: float = DEFAULT_MAX_FAILED_FRACTION,
) -> dict[str, Any]:
    """Capture the full horizon of free slots for every practice in the registry.

    `rerun_of` (a flow-run id or load id) repairs that nightly run instead: its instant, its
    windows, only its units that are not complete. The run fails if more than
    `max_failed_fraction` of its practices fail.
    """
    settings = settings_for(warehouse_path, data_dir)
    registry = load_registry(Path(registry_path))
    summary = await run_slot_sync(
        "nightly_sync", registry, settings, as_of=as_of,
        horizon_days=horizon_days or settings.sync.horizon_days, practices=practices,
        rerun_of=rerun_of,
    )
    return _finish(summary, max_failed_fraction)


@flow(name="intraday_sync", log_prints=True)
async def intraday_sync(
    registry_path: str,
    warehouse_path: str | None = None,
    data_dir: str | None = None,
    as_of: datetime | None = None,
    practices: list[str] | None = None,
    rerun_of: str | None = None,
    max_failed_fraction: float = DEFAULT_MAX_FAILED_FRACTION,
) -> dict[str, Any]:
    """Refresh the next few days only, for same-day decisions (`rerun_of` as nightly_sync)."""
    settings = settings_for(warehouse_path, data_dir)
    registry = load_registry(Path(registry_path))
    summary = await run_slot_sync(
        "intraday_sync", registry, settings, as_of=as_of,
        horizon_days=settings.sync.intraday_horizon_days, practices=practices, rerun_of=rerun_of,
    )
    return _finish(summary, max_failed_fraction)


@flow(name="backfill", log_prints=True)
async def backfill(
    registry_path: str,
    first_day: date,
    last_day: date,
    warehouse_path: str | None = None,
    data_dir: str | None = None,
    as_of: datetime | None = None,
    practices: list[str] | None = None,
    rerun_of: str | None = None,
    max_failed_fraction: float = DEFAULT_MAX_FAILED_FRACTION,
) -> dict[str, Any]:
    """Observe the UK days `first_day`..`last_day` (inclusive) as of `as_of` (default now).

    Stateless with respect to the scheduled syncs: units complete in the `slots_backfill`
    window stream and the ledger names the flow `backfill`, so `slotsync status`, re-runs of
    scheduled loads and the nightly state ignore it; the slot data itself is loaded like any
    other observation. No bookings leg. One run observes one instant; run it once per instant.
    """
    days = (last_day - first_day).days + 1
    if not 1 <= days <= MAX_BACKFILL_DAYS:
        raise ValueError(
            f"backfill {first_day}..{last_day}: the range must be 1 to {MAX_BACKFILL_DAYS} days "
            "with first_day <= last_day"
        )
    settings = settings_for(warehouse_path, data_dir)
    registry = load_registry(Path(registry_path))
    clock: Clock = FixedClock(as_of) if as_of else SystemClock()

    def backfill_plan(observed_at: datetime) -> LoadPlan:
        return LoadPlan("backfill", BACKFILL_STREAM, uk_midnight(first_day).astimezone(UTC), days,
                        settings.sync.window_days, tuple(practices) if practices else None)

    observed_at, plan = await _resolve_plan(
        "backfill", settings, clock, as_of=as_of, rerun_of=rerun_of, practices=practices,
        fresh_plan=backfill_plan,
    )
    summary = await _sync("backfill", registry, settings, clock=clock, observed_at=observed_at,
                          plan=plan, with_bookings=False)
    return _finish(summary, max_failed_fraction)
