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
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import duckdb

from connectors.gpconnect.windows import SearchWindow, plan_windows
from dashboards.figures import STALE_AFTER
from warehouse.db import connect

SCHEDULED_FLOWS = ("nightly_sync", "intraday_sync")
FULL_HORIZON_FLOW = "nightly_sync"
SCHEDULED_STREAM = "slots"
BACKFILL_STREAM = "slots_backfill"
STREAMS = (SCHEDULED_STREAM, BACKFILL_STREAM)
# The dashboard's rule (dashboards/figures/sql/fig_freshness.sql): a nightly plus two hours' grace.
DEFAULT_STALE_AFTER = STALE_AFTER

PlanMode = Literal["scheduled", "rerun", "backfill"]
UnitKey = tuple[str, datetime, datetime]  # (filter_key, window start UTC, window end UTC)


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
        """No successful scheduled sync at all (not the same as an old one)."""
        return self.last_sync_at is None and self.last_nightly_at is None

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
        """
        insert or replace into meta.load_plan
            (load_id, mode, stream, plan_start, horizon_days, window_days, practices, rerun_of)
        values ($load_id, $mode, $stream, $start, $horizon_days, $window_days, $practices, $rerun_of)
        """,
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
        """
        select l.load_id, l.flow_name, l.flow_run_id, l.as_of, l.status,
               p.mode, p.stream, p.plan_start, p.horizon_days, p.window_days, p.practices, p.rerun_of
        from meta.load_ledger as l
        left join meta.load_plan as p using (load_id)
        where l.flow_run_id = $ref or l.load_id = $ref
        order by l.started_at desc
        limit 1
        """,
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
        """
        select w.practice_ods, w.filter_key, w.window_start, w.window_end
        from meta.sync_window as w
        -- A quarantined batch is fetched again: the re-run is how it gets promoted.
        anti join meta.quarantine as q
            on q.practice_ods = w.practice_ods and q.stream = w.stream and q.load_id = w.load_id
        where w.stream = $stream and w.observed_at = $observed_at
          and w.practice_ods in (select unnest($practices::varchar[]))
        """,
        {"stream": stream, "observed_at": observed_at, "practices": practices},
    ).fetchall()
    done: dict[str, set[UnitKey]] = defaultdict(set)
    for practice_ods, filter_key, window_start, window_end in rows:
        done[practice_ods].add((filter_key, window_start, window_end))
    return done


# ---------------------------------------------------------------------- status


def practice_status(
    con: duckdb.DuckDBPyConnection, *, now: datetime, stale_after: timedelta = DEFAULT_STALE_AFTER
) -> list[PracticeStatus]:
    """Every registry practice: last successful sync, freshness and any open failure.

    A success counts only while its observation is still in the `slots` window state, so a
    `windows reset` shows up here as an older (or missing) last sync. Re-runs keep their
    flow's name and the original instant, so a repaired practice reads as synced then.
    """
    rows = con.execute(
        """
        with

        runs as (
            select r.practice_ods, r.status, r.interaction, r.http_status, r.error_class,
                   r.message, r.next_step, l.load_id, l.flow_name, l.flow_run_id, l.as_of,
                   l.started_at
            from meta.practice_run as r
            join meta.load_ledger as l using (load_id)
            where l.flow_name in (select unnest($flows::varchar[]))
        ),

        successes as (
            select
                practice_ods,
                max(as_of) as last_sync_at,
                max(as_of) filter (where flow_name = $full_horizon_flow) as last_nightly_at
            from runs
            where status = 'ok' and exists (
                select 1 from meta.sync_window as w
                where w.stream = $stream and w.practice_ods = runs.practice_ods
                  and w.observed_at = runs.as_of
            )
            group by all
        ),

        latest as (
            select *
            from runs
            -- A re-run shares its original's as_of (and, replayed, its clock): the wall-clock
            -- start of the load breaks the tie.
            qualify row_number() over (
                partition by practice_ods order by as_of desc, started_at desc
            ) = 1
        )

        select
            p.practice_ods, p.practice_name, p.kind, s.last_sync_at, s.last_nightly_at,
            latest.status, latest.load_id, latest.flow_run_id, latest.as_of, latest.interaction,
            latest.http_status, latest.error_class, latest.message, latest.next_step
        from core.dim_practice as p
        left join successes as s using (practice_ods)
        left join latest using (practice_ods)
        order by p.practice_ods
        """,
        {"flows": list(SCHEDULED_FLOWS), "full_horizon_flow": FULL_HORIZON_FLOW,
         "stream": SCHEDULED_STREAM},
    ).fetchall()
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


# ---------------------------------------------------------------------- windows


def window_observations(
    con: duckdb.DuckDBPyConnection, practice_ods: str, *, limit: int = 20
) -> list[ObservationSummary]:
    """A practice's completed window units, one line per (stream, observation), newest first."""
    rows = con.execute(
        """
        select
            w.stream, w.observed_at,
            string_agg(distinct w.load_id, ', ' order by w.load_id) as load_ids,
            string_agg(distinct coalesce(l.flow_name, '?'), ', ') as flow_names,
            count(distinct (w.window_start, w.window_end)) as windows,
            count(distinct w.filter_key) as filters,
            count(*) as units,
            sum(w.rows_loaded) as rows_loaded,
            min(w.window_start) as covers_from,
            max(w.window_end) as covers_to
        from meta.sync_window as w
        left join meta.load_ledger as l using (load_id)
        where w.practice_ods = $practice_ods
        group by w.stream, w.observed_at
        order by w.observed_at desc, w.stream
        limit $limit
        """,
        {"practice_ods": practice_ods, "limit": limit},
    ).fetchall()
    return [ObservationSummary(*row) for row in rows]


def preview_reset(
    con: duckdb.DuckDBPyConnection, practice_ods: str, streams: tuple[str, ...]
) -> ResetPreview:
    units, observations, first, last = con.execute(
        """
        select count(*), count(distinct observed_at), min(observed_at), max(observed_at)
        from meta.sync_window
        where practice_ods = $practice_ods and stream in (select unnest($streams::varchar[]))
        """,
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
    con.execute("BEGIN TRANSACTION")
    try:
        deleted = con.execute(
            "delete from meta.sync_window where practice_ods = $practice_ods "
            "and stream in (select unnest($streams::varchar[]))",
            {"practice_ods": practice_ods, "streams": list(streams)},
        ).fetchall()[0][0]
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
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
    statuses: list[PracticeStatus], *, stale_after: timedelta, show_all: bool = False
) -> list[str]:
    """The lines `slotsync status` prints: a summary, then the practices to look at."""
    stale = sum(1 for s in statuses if s.stale and not s.never_synced)
    never = sum(1 for s in statuses if s.never_synced)
    failing = sum(1 for s in statuses if s.failure)
    lines = [
        f"{len(statuses)} practices: {len(statuses) - stale - never} fresh, {stale} stale, {never} never "
        f"synced, {failing} with an open failure (fresh = a successful nightly sync within "
        f"{format_age(stale_after)})"
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
        "select practice_ods, status, responses, slot_rows, message, next_step "
        "from meta.practice_run where load_id = $load_id order by practice_ods",
        {"load_id": load_id},
    ).fetchall()
    return [PracticeRunRow(*row) for row in rows]
