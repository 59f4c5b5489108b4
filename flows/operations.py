"""Operator queries on the warehouse: load plans, completed units, practice status, windows.

The warehouse, not Prefect's cache, is the source of truth for what is done:
`meta.load_plan` says what a load set out to fetch, `meta.sync_window` which units
(practice, stream, filter, window, observation instant) completed, and `meta.practice_run`
how each practice went. A re-run therefore fetches exactly the planned units that have no
completed row for the original instant, and `slotsync status` reads the same tables.

Two window streams keep the incremental state apart from explicit backfills: the
scheduled syncs (and their re-runs) complete `slots` units; a backfill completes
`slots_backfill` units, so it never changes what status reports as the last sync nor what a
re-run of a scheduled load considers done. No Prefect import here: the status and windows
commands must start instantly.

The SQL is the warehouse's: one named query per file in `warehouse/sql/ledger/` (read with
`warehouse.db.sql_text`); this module binds their parameters and shapes the rows into records.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import duckdb

from common.holder import Holder, HolderState, holder_state
from connectors.gpconnect.searches import UnitKey
from connectors.gpconnect.windows import SearchWindow, plan_windows
from dashboards import figures
from dashboards.figures import STALE_AFTER
from warehouse.db import connect, sql_text, transaction

SCHEDULED_FLOWS = ("nightly_sync", "intraday_sync")
FULL_HORIZON_FLOW = "nightly_sync"
SCHEDULED_STREAM = "slots"
BACKFILL_STREAM = "slots_backfill"
STREAMS = (SCHEDULED_STREAM, BACKFILL_STREAM)
# The dashboard's rule (dashboards/figures/sql/fig_freshness.sql): a nightly plus two hours' grace.
DEFAULT_STALE_AFTER = STALE_AFTER

PlanMode = Literal["scheduled", "rerun", "backfill"]


# HttpError's text (connectors/http/errors.py): "..., <interaction>: HTTP 400 INVALID_RESOURCE: <the
# supplier's OperationOutcome diagnostics>. Next step: ...".
_SUPPLIER_TEXT = re.compile(r": HTTP \d{3}(?: (?P<code>[A-Z][A-Z0-9_]*))?: (?P<text>.*?)\. Next step:", re.S)


def supplier_text(message: str | None) -> str | None:
    """The supplier's own words in a failure message: Spine error code and diagnostics."""
    found = _SUPPLIER_TEXT.search(message or "")
    if found is None:
        return None
    code, text = found.group("code"), found.group("text").strip()
    return f"{code}: {text}" if code and text else (code or text or None)


class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be read right now; the message says why and what to do."""


@dataclass(frozen=True)
class LoadPlan:
    """What one load sets out to fetch: windows from `start` over `horizon_days`, which practices."""

    mode: PlanMode
    stream: str
    start: datetime
    horizon_days: int
    window_days: int
    practices: tuple[str, ...] | None = None  # None: every practice in the registry
    rerun_of: str | None = None

    def windows(self) -> list[SearchWindow]:
        return plan_windows(self.start, self.horizon_days, self.window_days)


@dataclass(frozen=True)
class LoadRecord:
    """A load as the ledger and its plan recorded it."""

    load_id: str
    flow_name: str
    flow_run_id: str | None
    as_of: datetime
    status: str
    plan: LoadPlan | None


@dataclass(frozen=True)
class OpenFailure:
    """The latest scheduled run of a practice failed and nothing has succeeded since."""

    load_id: str
    flow_run_id: str | None
    as_of: datetime
    interaction: str | None
    http_status: int | None
    error_class: str | None
    message: str | None
    next_step: str | None


@dataclass(frozen=True)
class PracticeStatus:
    """One practice's sync health, as `slotsync status` shows it."""

    practice_ods: str
    practice_name: str
    kind: str
    last_sync_at: datetime | None  # latest successful scheduled observation (nightly or intraday)
    last_nightly_at: datetime | None  # latest successful full-horizon observation
    age: timedelta | None  # now - last_nightly_at
    stale: bool
    failure: OpenFailure | None

    @property
    def needs_attention(self) -> bool:
        return self.stale or self.failure is not None

    @property
    def never_synced(self) -> bool:
        """No complete nightly capture at all (not the same as an old one): the dashboard's
        "never captured" (fig_freshness.sql), which freshness is judged on."""
        return self.last_nightly_at is None

    @property
    def state(self) -> str:
        """never_synced | stale | failed | stale_and_failed | ok (never_synced wins over stale)."""
        stale = self.stale and not self.never_synced
        labels = [label for label, on in (("never_synced", self.never_synced), ("stale", stale),
                                          ("failed", self.failure is not None)) if on]
        return "_and_".join(labels) or "ok"


@dataclass(frozen=True)
class ObservationSummary:
    """The completed window units of one practice at one observation instant."""

    stream: str
    observed_at: datetime
    load_ids: str
    flow_names: str
    windows: int
    filters: int
    units: int
    rows_loaded: int
    covers_from: datetime
    covers_to: datetime


@dataclass(frozen=True)
class ResetPreview:
    """What `windows reset` would delete, so the operator can confirm it."""

    practice_ods: str
    streams: tuple[str, ...]
    units: int
    observations: int
    first_observed_at: datetime | None
    last_observed_at: datetime | None


# ---------------------------------------------------------------------- connections


def open_for_reading(path: Path) -> duckdb.DuckDBPyConnection:
    """A short-lived read-only connection; it briefly blocks the writer, so close it soon."""
    if not path.exists():
        raise WarehouseUnavailable(
            f"no warehouse at {path}. Next step: pass --warehouse (or set SLOTSYNC_WAREHOUSE_PATH "
            "/ SLOTSYNC_DATA_DIR) to the file the syncs write"
        )
    try:
        return connect(path, read_only=True)
    except duckdb.IOException as exc:
        raise WarehouseUnavailable(
            f"the warehouse {path} stayed locked by a writer for 30 s (a sync is loading). "
            "Next step: try again in a minute"
        ) from exc


# ---------------------------------------------------------------------- plans and units


def record_plan(con: duckdb.DuckDBPyConnection, load_id: str, plan: LoadPlan) -> None:
    con.execute(
        sql_text("ledger/record_load_plan.sql"),
        {
            "load_id": load_id, "mode": plan.mode, "stream": plan.stream, "start": plan.start,
            "horizon_days": plan.horizon_days, "window_days": plan.window_days,
            "practices": list(plan.practices) if plan.practices is not None else None,
            "rerun_of": plan.rerun_of,
        },
    )


def find_load(con: duckdb.DuckDBPyConnection, reference: str) -> LoadRecord | None:
    """The latest load recorded for a Prefect flow-run id or a load id, with its plan."""
    rows = con.execute(
        sql_text("ledger/find_load.sql"),
        {"ref": reference},
    ).fetchall()
    if not rows:
        return None
    (load_id, flow_name, flow_run_id, as_of, status,
     mode, stream, start, horizon_days, window_days, practices, rerun_of) = rows[0]
    plan = None
    if mode is not None:
        plan = LoadPlan(
            mode=mode, stream=stream, start=start, horizon_days=horizon_days,
            window_days=window_days, practices=tuple(practices) if practices is not None else None,
            rerun_of=rerun_of,
        )
    return LoadRecord(load_id, flow_name, flow_run_id, as_of, status, plan)


def completed_units(
    con: duckdb.DuckDBPyConnection, *, stream: str, observed_at: datetime, practices: list[str]
) -> dict[str, set[UnitKey]]:
    """Units of `practices` already complete for this stream and observation instant."""
    rows = con.execute(
        sql_text("ledger/completed_units.sql"),
        {"stream": stream, "observed_at": observed_at, "practices": practices},
    ).fetchall()
    done: dict[str, set[UnitKey]] = defaultdict(set)
    for practice_ods, filter_key, window_start, window_end in rows:
        done[practice_ods].add((filter_key, window_start, window_end))
    return done


# ---------------------------------------------------------------------- status


def bind_freshness_mart(con: duckdb.DuckDBPyConnection) -> None:
    """Bind `mart_pipeline_freshness` on this connection to the mart's own SQL, live over the
    ledger (a temporary view), so status sees a failure the moment its load records it, even
    before the next model build, by the very definition the dashboard publishes."""
    con.execute(
        "create or replace temp view mart_pipeline_freshness as "
        + sql_text("models/marts/mart_pipeline_freshness.sql")
    )


def practice_status(
    con: duckdb.DuckDBPyConnection, *, now: datetime, stale_after: timedelta = DEFAULT_STALE_AFTER
) -> list[PracticeStatus]:
    """Every registry practice: last successful capture, freshness and any open failure.

    One definition with the dashboard: the pipeline-freshness mart's SQL (a success counts
    only while its observation is still in the `slots` window state and not quarantined, so a
    `windows reset` shows up as an older or missing capture; a re-run that repaired a
    practice is its latest run) and fig_freshness.sql's stale rule (`freshness_counts`).
    """
    bind_freshness_mart(con)
    rows = con.execute(sql_text("ledger/practice_status.sql")).fetchall()
    statuses: list[PracticeStatus] = []
    for (ods, name, kind, last_sync_at, last_nightly_at, latest_status, load_id, flow_run_id,
         failed_as_of, interaction, http_status, error_class, message, next_step) in rows:
        failure = None
        if latest_status == "failed":
            failure = OpenFailure(load_id, flow_run_id, failed_as_of, interaction, http_status,
                                  error_class, message, next_step)
        age = now - last_nightly_at if last_nightly_at is not None else None
        statuses.append(PracticeStatus(
            practice_ods=ods, practice_name=name, kind=kind, last_sync_at=last_sync_at,
            last_nightly_at=last_nightly_at, age=age, stale=age is None or age > stale_after,
            failure=failure,
        ))
    return statuses


def freshness_counts(
    con: duckdb.DuckDBPyConnection, *, now: datetime, stale_after: timedelta = DEFAULT_STALE_AFTER
) -> dict[str, int]:
    """The dashboard's freshness figures (dashboards/figures/sql/fig_freshness.sql) at `now`:
    registry_practices, practices_fresh, practices_stale, practices_never_captured and
    practices_failed, for every practice in the registry."""
    bind_freshness_mart(con)
    cursor = con.execute(
        figures.sql(figures.GROUPS["freshness"].sql_file),
        {"all_ods": True, "ods": [], "now": now, "stale_after_s": stale_after.total_seconds()},
    )
    names = [d[0] for d in cursor.description or ()]
    row = cursor.fetchone() or ()
    return {n: int(v) for n, v in zip(names, row, strict=True) if isinstance(v, int)}


@dataclass(frozen=True)
class RunningLoad:
    """A load the ledger calls running, and what became of the process holding it."""

    load_id: str
    flow_name: str
    flow_run_id: str | None
    started_at: datetime
    holder: Holder | None  # None: begun before the ledger recorded holders (V010)
    state: HolderState | None  # None: no holder to check

    @property
    def left_running(self) -> bool:
        """Its holder is gone (dead, or its pid reused): nothing will ever end this load."""
        return self.state == "gone"

    def line(self) -> str:
        """One line for `slotsync status`."""
        since = f"since {_minute(self.started_at)} UTC"
        holder = self.holder
        if holder is None or self.state is None:
            return (f"load {self.load_id} ({self.flow_name}) running {since}; its process was not "
                    "recorded (begun before migration V010), cannot check")
        if self.state == "elsewhere":
            return (f"load {self.load_id} ({self.flow_name}) running {since} on host {holder.host}, "
                    f"cannot check (process {holder.pid})")
        if self.state == "alive":
            return (f"load {self.load_id} ({self.flow_name}) running {since}, process {holder.pid} "
                    "is alive")
        return (f"LOAD LEFT RUNNING {self.load_id} ({self.flow_name}) {since}: its process "
                f"{holder.pid} on {holder.host} is gone. Next step: slotsync rerun "
                f"{self.flow_run_id or self.load_id}")


def running_loads(con: duckdb.DuckDBPyConnection, *, host: str | None = None) -> list[RunningLoad]:
    """Every load marked running, with whether its holder process lives (on this `host`)."""
    recorded = con.execute(
        "select count(*) from information_schema.columns where table_schema = 'meta' "
        "and table_name = 'load_ledger' and column_name = 'holder_pid'"
    ).fetchall()[0][0]
    query = sql_text("ledger/running_loads.sql")
    if not recorded:  # read-only before the first writer applied V010: no holders yet
        query = query.replace("holder_pid, holder_host, holder_started",
                              "null, null, null")
    loads = []
    for load_id, flow_name, flow_run_id, started_at, pid, holder_host, started in (
        con.execute(query).fetchall()
    ):
        holder = Holder(int(pid), holder_host, started) if pid is not None and holder_host else None
        state = holder_state(holder, host=host) if holder is not None else None
        loads.append(RunningLoad(load_id, flow_name, flow_run_id, started_at, holder, state))
    return loads


# ---------------------------------------------------------------------- windows


def window_observations(
    con: duckdb.DuckDBPyConnection, practice_ods: str, *, limit: int = 20
) -> list[ObservationSummary]:
    """A practice's completed window units, one line per (stream, observation), newest first."""
    rows = con.execute(
        sql_text("ledger/window_observations.sql"),
        {"practice_ods": practice_ods, "limit": limit},
    ).fetchall()
    return [ObservationSummary(*row) for row in rows]


def preview_reset(
    con: duckdb.DuckDBPyConnection, practice_ods: str, streams: tuple[str, ...]
) -> ResetPreview:
    units, observations, first, last = con.execute(
        sql_text("ledger/preview_reset.sql"),
        {"practice_ods": practice_ods, "streams": list(streams)},
    ).fetchall()[0]
    return ResetPreview(practice_ods, streams, int(units), int(observations), first, last)


def reset_windows(
    con: duckdb.DuckDBPyConnection, practice_ods: str, streams: tuple[str, ...]
) -> int:
    """Delete a practice's window state for `streams` in one transaction; returns rows deleted.

    Raw and staging rows stay (for forensics); without their window rows the marts stop
    using those observations at the next model build, and a re-run fetches them again.
    """
    with transaction(con):
        deleted = con.execute(
            sql_text("ledger/reset_windows.sql"),
            {"practice_ods": practice_ods, "streams": list(streams)},
        ).fetchall()[0][0]
    return int(deleted)


# ---------------------------------------------------------------------- reports


def format_age(age: timedelta | None) -> str:
    if age is None:
        return "never"
    minutes = int(age.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    return f"{days}d {hours:02d}h" if days else f"{hours}h {minutes:02d}m"


def status_report(
    statuses: list[PracticeStatus], counts: dict[str, int], *, stale_after: timedelta,
    show_all: bool = False,
) -> list[str]:
    """The lines `slotsync status` prints: the summary (`counts`, the dashboard's freshness
    figures from `freshness_counts`), then the practices to look at. "Stale" here leaves out the
    practices never synced, which the dashboard's stale count includes."""
    never = counts["practices_never_captured"]
    lines = [
        f"{counts['registry_practices']} practices: {counts['practices_fresh']} fresh, "
        f"{counts['practices_stale'] - never} stale, {never} never synced, "
        f"{counts['practices_failed']} with an open failure (fresh = a successful nightly sync "
        f"within {format_age(stale_after)})"
    ]
    shown = statuses if show_all else [s for s in statuses if s.needs_attention]
    if not shown:
        return lines
    lines.append(f"{'practice':<9} {'last nightly (UTC)':<18} {'age':<8} {'last sync (UTC)':<18} state")
    for s in shown:
        state = s.state.replace("_and_", ", ").replace("_", " ").upper() if s.state != "ok" else "ok"
        lines.append(
            f"{s.practice_ods:<9} {_minute(s.last_nightly_at):<18} {format_age(s.age):<8} "
            f"{_minute(s.last_sync_at):<18} {state}"
        )
        if s.failure:
            f = s.failure
            status = f"HTTP {f.http_status}" if f.http_status is not None else "no HTTP response"
            lines.append(
                f"  failed at {_minute(f.as_of)} in load {f.load_id}: {f.interaction or 'sync'}, "
                f"{status}, {f.error_class or 'error'}"
            )
            said = supplier_text(f.message)
            if said:
                lines.append(f"  supplier said: {said}")
            lines.append(f"  next step: {f.next_step or 'see the run logs'}")
            lines.append(f"  re-run only what failed: slotsync rerun {f.flow_run_id or f.load_id}")
    return lines


def status_json(s: PracticeStatus, *, now: datetime) -> dict[str, object]:
    """One practice for `slotsync status --json`: ISO-8601 instants and ages in seconds."""

    def iso(instant: datetime | None) -> str | None:
        return instant.isoformat() if instant else None

    failure = None
    if s.failure:
        f = s.failure
        failure = {
            "load_id": f.load_id, "flow_run_id": f.flow_run_id, "failed_at": iso(f.as_of),
            "interaction": f.interaction, "http_status": f.http_status, "error_class": f.error_class,
            "supplier_text": supplier_text(f.message), "message": f.message, "next_step": f.next_step,
            "rerun_command": f"slotsync rerun {f.flow_run_id or f.load_id}",
        }
    return {
        "practice_ods": s.practice_ods, "practice_name": s.practice_name, "kind": s.kind,
        "state": s.state, "needs_attention": s.needs_attention, "never_synced": s.never_synced,
        "stale": s.stale and not s.never_synced, "checked_at": now.isoformat(),
        "last_sync_at": iso(s.last_sync_at), "last_nightly_at": iso(s.last_nightly_at),
        "last_sync_age_s": round((now - s.last_sync_at).total_seconds()) if s.last_sync_at else None,
        "last_nightly_age_s": round(s.age.total_seconds()) if s.age is not None else None,
        "failure": failure,
    }


def _minute(instant: datetime | None) -> str:
    return instant.strftime("%Y-%m-%d %H:%M") if instant else "never"


@dataclass(frozen=True)
class PracticeRunRow:
    """One practice's outcome in one load (meta.practice_run)."""

    practice_ods: str
    status: str
    responses: int
    slot_rows: int
    message: str | None
    next_step: str | None


def practice_runs(con: duckdb.DuckDBPyConnection, load_id: str) -> list[PracticeRunRow]:
    rows = con.execute(
        sql_text("ledger/practice_runs.sql"),
        {"load_id": load_id},
    ).fetchall()
    return [PracticeRunRow(*row) for row in rows]
