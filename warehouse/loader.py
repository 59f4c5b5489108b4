"""The single writer: moves landed responses into raw/staging, folds history, rebuilds marts.

Response bodies are never stored in DuckDB: the landing files are the raw archive
(warehouse/landing.py) and `raw.gpc_slot_search` holds one metadata row per response naming
its file and line. A batch of practices' landing files is parsed once, by DuckDB's typed
`read_json`, into an in-memory batch table; raw metadata and every staging model are derived
from it. The practices that pass the strict checks are then written in one transaction per
batch: their raw rows, the staging rows of each (practice, filter, window, observation) unit
(deleted and re-inserted, so re-running an observation is idempotent) and the
`meta.sync_window` rows that mark the units complete, so a crash leaves every practice either
fully written or untouched. (One transaction per batch, rather than per practice, lets DuckDB
write the bulk rows straight to the database file instead of through the WAL and again at the
checkpoint: it uses a quarter less CPU; see BENCHMARKS.md.) If a practice's data is unusable
nothing of it is staged, its raw metadata is still kept (in its own transaction) and the
practice is reported with a clear error; its landing file stays.

Complete observations are folded into `core.fct_slot_history` set-based, once per load
(`fold_slot_history`, run first by `build_models`), from what is committed; whatever a crash
left unfolded is folded by the next load.
"""

from __future__ import annotations

import itertools
import os
import queue
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from connectors.bookinglog import AppointmentRead, BookingLogExport
from connectors.http.errors import HttpError
from connectors.registry import Registry
from connectors.uktime import parse_fhir_datetime
from warehouse.db import sql_text
from warehouse.landing import landing_path, read_landing_metas, read_raw_body

# Order matters: later models read earlier ones.
VIEW_MODELS: tuple[tuple[str, str], ...] = (
    ("staging.stg_booking_log__appointments", "models/staging/stg_booking_log__appointments.sql"),
    ("staging.stg_gpconnect__appointment_reads", "models/staging/stg_gpconnect__appointment_reads.sql"),
)
TABLE_MODELS: tuple[tuple[str, str], ...] = (
    ("core.dim_schedule", "models/core/dim_schedule.sql"),
    ("core.dim_location", "models/core/dim_location.sql"),
    ("core.dim_practitioner", "models/core/dim_practitioner.sql"),
    ("core.fct_appointment", "models/core/fct_appointment.sql"),
    ("core.fct_release_decision", "models/core/fct_release_decision.sql"),
    ("core.int_slot_states", "models/intermediate/int_slot_states.sql"),
    ("marts.mart_111_quota_daily", "models/marts/mart_111_quota_daily.sql"),
    ("marts.mart_111_utilisation_daily", "models/marts/mart_111_utilisation_daily.sql"),
    ("marts.mart_slot_utilisation_daily", "models/marts/mart_slot_utilisation_daily.sql"),
    ("marts.mart_hub_utilisation_hourly", "models/marts/mart_hub_utilisation_hourly.sql"),
    ("marts.mart_releases_daily", "models/marts/mart_releases_daily.sql"),
    ("marts.mart_pipeline_freshness", "models/marts/mart_pipeline_freshness.sql"),
    ("marts.mart_reconciliation_findings", "models/marts/mart_reconciliation_findings.sql"),
    ("marts.mart_data_quality_checks", "models/marts/mart_data_quality_checks.sql"),
    ("marts.mart_quarantined_batches", "models/marts/mart_quarantined_batches.sql"),
)
# Staging models loaded from the landing files, each replaced per unit in the practice's
# transaction: (table, model file, batch table holding the batch's rows).
STAGING_MODELS: tuple[tuple[str, str, str], ...] = (
    ("staging.stg_gpconnect__slots", "models/staging/stg_gpconnect__slots.sql", "loader_stg_slots"),
    ("staging.stg_gpconnect__schedules", "models/staging/stg_gpconnect__schedules.sql",
     "loader_stg_schedules"),
    ("staging.stg_gpconnect__locations", "models/staging/stg_gpconnect__locations.sql",
     "loader_stg_locations"),
    ("staging.stg_gpconnect__practitioners", "models/staging/stg_gpconnect__practitioners.sql",
     "loader_stg_practitioners"),
)
# Landing files parsed together (DuckDB reads several files on all cores at once); each
# practice is still written in its own transaction. Bounds the batch's memory.
BATCH_BYTES = 192 * 1024 * 1024
# DuckDB's default maximum JSON object size; raised to the largest landing file of a batch.
MIN_OBJECT_BYTES = 16 * 1024 * 1024
# Connections the loader uses at once: the staging models of a batch are evaluated on two
# (the slots on one, the smaller models on the other; each reads the batch on one thread).
LOAD_THREADS = 2
# Slot history is folded in groups of practices, each group in its own transaction: at most
# this many practices a group (a whole region is one group), FOLD_THREADS groups at once.
FOLD_GROUP_PRACTICES = 250
FOLD_THREADS = 1
# The in-memory database holding a batch while it is loaded (attached for the load only).
_LOADER_DB = "slotsync_loader"
_RAW_COLUMNS = (
    "load_id, practice_ods, interaction, filter_role, filter_key, window_start, window_end, "
    "observed_at, fetched_at, http_status, trace_id, body_bytes, landing_file, landing_line"
)
_BATCH_TABLES = ("loader_files", "loader_landed", "loader_units",
                 *(temp for _, _, temp in STAGING_MODELS))
# What DuckDB raises for a landing file it cannot parse. UnicodeDecodeError: its message
# quoted a cut multi-byte character of the file and could not be decoded (duckdb 1.x/2.x).
_UNREADABLE = (duckdb.InvalidInputException, duckdb.ConversionException, UnicodeDecodeError)
_T = TypeVar("_T")
_R = TypeVar("_R")


class PracticeDataError(ValueError):
    """A practice's fetched data cannot be accepted into staging."""

    def __init__(self, practice_ods: str, problem: str, landing_file: Path | str | None = None) -> None:
        self.practice_ods = practice_ods
        self.problem = problem
        self.landing_file = str(landing_file) if landing_file is not None else None
        kept = f"kept as received in {landing_file}" if landing_file else "kept in its landing file"
        super().__init__(
            f"practice {practice_ods}, search free slots: {problem}. Next step: the raw "
            f"response is {kept} (raw.gpc_slot_search names the line); raise it with the "
            "supplier and re-run the practice once fixed"
        )


@dataclass(frozen=True)
class PracticeLoad:
    practice_ods: str
    responses: int
    slot_rows: int


@dataclass(frozen=True)
class LandingFile:
    """One practice's landing file of a load."""

    practice_ods: str
    path: Path


@dataclass
class _PracticePlan:
    """What one practice's transaction must do, found once per batch."""

    observed: tuple[datetime, datetime]  # first and last observed_at of its units
    rows: dict[str, tuple[int, int] | None] = field(default_factory=dict)  # temp -> rowid range
    counts: dict[str, int] = field(default_factory=dict)  # temp -> rows of the practice
    replace: set[str] = field(default_factory=set)  # tables already holding rows to replace
    fold_first: bool = False


class Warehouse:
    """Write operations on an open warehouse connection (the only writer)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    # ------------------------------------------------------------------ ledger

    def begin_load(
        self, load_id: str, *, flow_name: str, as_of: datetime, started_at: datetime,
        flow_run_id: str | None = None,
    ) -> None:
        self.con.execute(
            """
            insert into meta.load_ledger (load_id, flow_name, flow_run_id, as_of, started_at, status)
            values ($load_id, $flow_name, $flow_run_id, $as_of, $started_at, 'running')
            on conflict (load_id) do update set status = 'running', started_at = excluded.started_at
            """,
            {"load_id": load_id, "flow_name": flow_name, "flow_run_id": flow_run_id,
             "as_of": as_of, "started_at": started_at},
        )

    def finish_load(
        self, load_id: str, *, status: str, completed_at: datetime, practices_ok: int,
        practices_failed: int, detail: str | None = None,
    ) -> None:
        self.con.execute(
            """
            update meta.load_ledger
            set status = $status, completed_at = $completed_at, practices_ok = $ok,
                practices_failed = $failed, detail = $detail
            where load_id = $load_id
            """,
            {"status": status, "completed_at": completed_at, "ok": practices_ok,
             "failed": practices_failed, "detail": detail, "load_id": load_id},
        )

    def record_practice_runs(
        self, load_id: str, outcomes: Sequence[Mapping[str, Any]], *, finished_at: datetime
    ) -> None:
        """Record every practice's outcome for a load in one transaction (one commit)."""
        columns = ("interaction", "http_status", "error_class", "message", "next_step")
        table = pa.table(
            {
                "load_id": pa.array([load_id] * len(outcomes), pa.string()),
                "practice_ods": pa.array([o["practice_ods"] for o in outcomes], pa.string()),
                "status": pa.array([o["status"] for o in outcomes], pa.string()),
                **{
                    name: pa.array([o.get(name) for o in outcomes],
                                   pa.int32() if name == "http_status" else pa.string())
                    for name in columns
                },
                "responses": pa.array([o.get("responses", 0) for o in outcomes], pa.int32()),
                "slot_rows": pa.array([o.get("slot_rows", 0) for o in outcomes], pa.int32()),
                "finished_at": pa.array([finished_at] * len(outcomes), pa.timestamp("us", tz="UTC")),
            }
        )
        self._replace_rows("meta.practice_run", table, "practice_run_rows")

    def _replace_rows(self, target: str, table: pa.Table, view: str) -> None:
        """Insert-or-replace an Arrow table into a keyed table in one transaction."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.register(view, table)
            self.con.execute(f"insert or replace into {target} by name select * from {view}")
            self.con.unregister(view)
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    def sync_registry(self, registry: Registry, load_id: str) -> None:
        """Replace core.dim_practice with the registry used by this load."""
        rows = [
            (p.ods_code, p.name, p.kind, p.list_size, p.clinical_system, p.accepts_111_booking,
             p.nhs111_provider_ods, list(p.booking_hubs), p.ccg_code, p.pcn_code,
             p.nhs111_quota if p.kind == "practice" else 0, load_id)
            for p in registry.practices
        ]
        table = pa.table(
            {name: [row[i] for row in rows] for i, name in enumerate(
                ["practice_ods", "practice_name", "kind", "list_size", "clinical_system",
                 "accepts_111_booking", "nhs111_provider_ods", "booking_hubs", "ccg_code",
                 "pcn_code", "nhs111_daily_quota", "load_id"])}
        )
        organisations = pa.table(
            {
                "ods_code": [o.ods_code for o in registry.booking_organisations],
                "name": [o.name for o in registry.booking_organisations],
                "kind": [o.kind for o in registry.booking_organisations],
                "booking_log_format": [o.booking_log_format for o in registry.booking_organisations],
                "load_id": [load_id] * len(registry.booking_organisations),
            },
            schema=pa.schema([(name, pa.string()) for name in
                              ("ods_code", "name", "kind", "booking_log_format", "load_id")]),
        )
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute("delete from core.dim_practice")
            self.con.register("registry_rows", table)
            self.con.execute("insert into core.dim_practice select * from registry_rows")
            self.con.unregister("registry_rows")
            self.con.execute("delete from core.dim_booking_organisation")
            self.con.register("organisation_rows", organisations)
            self.con.execute("insert into core.dim_booking_organisation select * from organisation_rows")
            self.con.unregister("organisation_rows")
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ loading

    def load_practice_file(
        self, path: Path, *, load_id: str, practice_ods: str, stream: str = "slots"
    ) -> PracticeLoad:
        """Load one landing file as one transaction; raw metadata is kept even if refused.

        `stream` names the `meta.sync_window` state the units complete: `slots` for the
        scheduled syncs, another name (a backfill's) to keep that state untouched. Raises
        PracticeDataError when the practice's data is refused.
        """
        (result,) = self.load_practice_files(
            [LandingFile(practice_ods, path)], load_id=load_id, stream=stream
        )
        if isinstance(result, PracticeDataError):
            raise result
        return result

    def load_practice_files(
        self, files: Sequence[LandingFile], *, load_id: str, stream: str = "slots",
        threads: int | None = None,
    ) -> list[PracticeLoad | PracticeDataError]:
        """Load a load's landing files, one transaction per batch; one result per file.

        Files are parsed in batches (up to BATCH_BYTES), so DuckDB reads several at once on
        every core; a refused practice gets its PracticeDataError in the list and never stops
        the others. The accepted practices of a batch are written in one transaction; the
        staging models are evaluated on `threads` connections of this database. Any other
        error stops the load: batches already committed stay, as after a crash, and a re-run
        repairs it. Slot history is not touched here: `fold_slot_history` does that.
        """
        practices = [f.practice_ods for f in files]
        if len(set(practices)) != len(practices):
            raise ValueError("each practice may have only one landing file per load")
        results: dict[str, PracticeLoad | PracticeDataError] = {}
        with _LoaderSession(self.con, threads or LOAD_THREADS) as session:
            # Practice order makes each batch a narrow range of practices, so row groups of
            # other batches are skipped by their min/max when looking for rows to replace.
            for batch in _batches(sorted(files, key=lambda f: f.practice_ods)):
                results.update(self._load_batch(session, batch, load_id, stream))
        return [results[ods] for ods in practices]

    # A batch lives in tables of an in-memory database attached for the load (`slotsync_loader`,
    # never written to the warehouse or its WAL): `loader_files` (file -> practice),
    # `loader_landed` (one typed row per response), one `loader_stg_*` table per staging model
    # and `loader_units` (the batch's units with their slot counts). Every check, count and
    # "is there anything to replace" question is asked once per batch, so a practice's
    # transaction holds only the writes it needs, and costs the same whatever the warehouse
    # already holds.

    def _load_batch(
        self, session: _LoaderSession, batch: Sequence[LandingFile], load_id: str, stream: str
    ) -> dict[str, PracticeLoad | PracticeDataError]:
        con = session.main
        results: dict[str, PracticeLoad | PracticeDataError] = {}
        try:
            unreadable = self._read_batch(con, batch)
            plans: dict[str, _PracticePlan] = {}
            problems: dict[str, str] = {}
            if len(unreadable) < len(batch):
                self._derive_batch(session)
                problems = self._batch_problems(con, load_id)
                plans = self._plan_batch(con, load_id, stream)
            accepted: list[str] = []
            for landing in batch:
                ods = landing.practice_ods
                problem = unreadable.get(ods) or problems.get(ods)
                if problem is None and ods not in plans:
                    problem = "the landing file holds no responses"
                if problem is None:
                    accepted.append(ods)
                    continue
                self._keep_raw_only(con, landing, load_id, parsed=ods not in unreadable)
                results[ods] = PracticeDataError(ods, problem, landing.path)
            if accepted:
                loads = self._write_practices(con, accepted, load_id, stream, plans)
                results.update((load.practice_ods, load) for load in loads)
        finally:
            for table in _BATCH_TABLES:
                con.execute(f"drop table if exists {_LOADER_DB}.{table}")
        return results

    def _read_batch(self, con: duckdb.DuckDBPyConnection, batch: Sequence[LandingFile]) -> dict[str, str]:
        """Parse the batch's files into `loader_landed`; returns practice -> why unreadable."""
        files = pa.table({
            "landing_file": pa.array([str(f.path) for f in batch], pa.string()),
            "practice_ods": pa.array([f.practice_ods for f in batch], pa.string()),
        })
        con.register("loader_file_rows", files)
        con.execute(f"create or replace table {_LOADER_DB}.loader_files as select * from loader_file_rows")
        con.unregister("loader_file_rows")
        read = sql_text("load/read_landing_files.sql")
        # A line never exceeds its file: the largest file bounds every response body.
        largest = max((_file_size(f.path) for f in batch), default=0)
        params: dict[str, Any] = {"maximum_object_size": max(MIN_OBJECT_BYTES, largest + 1024)}
        try:
            con.execute(
                f"create or replace table {_LOADER_DB}.loader_landed as {read}",
                {**params, "paths": [str(f.path) for f in batch]},
            )
            return {}
        except _UNREADABLE as exc:
            if len(batch) == 1:
                return {batch[0].practice_ods: _unreadable(exc)}
        # One file spoilt the batch: read them one by one to tell which.
        unreadable: dict[str, str] = {}
        created = False
        for landing in batch:
            verb = "insert into" if created else "create table"
            target = f"{_LOADER_DB}.loader_landed" + ("" if created else " as")
            try:
                con.execute(f"{verb} {target} {read}", {**params, "paths": [str(landing.path)]})
                created = True
            except _UNREADABLE as exc:
                unreadable[landing.practice_ods] = _unreadable(exc)
        return unreadable

    def _derive_batch(self, session: _LoaderSession) -> None:
        """Evaluate every staging model over the batch, and list its units with slot counts."""

        def evaluate(con: duckdb.DuckDBPyConnection, models: tuple[tuple[str, str, str], ...]) -> None:
            for _, model, temp in models:
                con.execute(f"create or replace table {_LOADER_DB}.{temp} as {sql_text(model)}")

        # Each model reads the batch on one thread (it is one row group): the slots on one
        # connection, the smaller models on another.
        session.run(evaluate, [STAGING_MODELS[:1], STAGING_MODELS[1:]])
        session.main.execute(
            f"""
            create or replace table {_LOADER_DB}.loader_units as
            with units as (
                select distinct practice_ods, filter_key, window_start, window_end, observed_at
                from {_LOADER_DB}.loader_landed
            ),
            counts as (
                select practice_ods, filter_key, window_start, window_end, observed_at,
                       count(*) as rows_loaded
                from {_LOADER_DB}.loader_stg_slots
                group by all
            )
            select u.*, coalesce(c.rows_loaded, 0) as rows_loaded
            from units as u
            left join counts as c using (practice_ods, filter_key, window_start, window_end, observed_at)
            """
        )

    def _batch_problems(self, con: duckdb.DuckDBPyConnection, load_id: str) -> dict[str, str]:
        """Strict where the data would be wrong: practice -> every problem found, in words."""
        rows = con.execute(
            f"""
            with

            landed as (
                select
                    practice_ods,
                    count(*) filter (
                        where load_id is distinct from $load_id
                           or named_practice_ods is distinct from practice_ods
                           or filter_key is null or filter_role is null or window_start is null
                           or window_end is null or observed_at is null
                           -- the rest raw.gpc_slot_search requires (a damaged landing file)
                           or interaction is null or fetched_at is null or http_status is null
                           or trace_id is null or body_bytes is null
                    ) as foreign_lines,
                    count(*) filter (where bundle_type is distinct from 'Bundle') as not_bundle
                from {_LOADER_DB}.loader_landed
                group by all
            ),

            slots as (
                select
                    practice_ods,
                    count(*) filter (where slot_id is null or slot_id = '') as missing_id,
                    count(*) filter (where schedule_id is null) as missing_schedule,
                    count(*) filter (where start_at is null) as bad_start,
                    count(*) filter (where end_at is null) as bad_end
                from {_LOADER_DB}.loader_stg_slots
                group by all
            )

            select practice_ods, foreign_lines, not_bundle,
                   coalesce(missing_id, 0), coalesce(missing_schedule, 0),
                   coalesce(bad_start, 0), coalesce(bad_end, 0)
            from landed
            left join slots using (practice_ods)
            where foreign_lines + not_bundle + coalesce(missing_id, 0) + coalesce(missing_schedule, 0)
                  + coalesce(bad_start, 0) + coalesce(bad_end, 0) > 0
            """,
            {"load_id": load_id},
        ).fetchall()
        labels = ("slot(s) without an id", "slot(s) without a schedule reference",
                  "slot(s) with a missing or invalid start", "slot(s) with a missing or invalid end")
        problems: dict[str, str] = {}
        for ods, foreign, not_bundle, *slot_counts in rows:
            if foreign:
                problems[ods] = "landing file names another load or practice, or its metadata is incomplete"
                continue
            found = [f"{not_bundle} response(s) that are not a FHIR Bundle"] if not_bundle else []
            found += [f"{n} {label}" for n, label in zip(slot_counts, labels, strict=True) if n]
            problems[ods] = "; ".join(found)
        return problems

    def _plan_batch(
        self, con: duckdb.DuckDBPyConnection, load_id: str, stream: str
    ) -> dict[str, _PracticePlan]:
        """What each practice's transaction must do, asked once for the whole batch."""
        units = f"{_LOADER_DB}.loader_units"
        scope = con.execute(
            "select min(practice_ods), max(practice_ods), min(observed_at), max(observed_at) "
            f"from {units}"
        ).fetchall()[0]
        bounds = {"first_practice": scope[0], "last_practice": scope[1],
                  "first_observed": scope[2], "last_observed": scope[3]}
        plans = {
            ods: _PracticePlan(observed=(first, last)) for ods, first, last in con.execute(
                f"select practice_ods, min(observed_at), max(observed_at) from {units} group by all"
            ).fetchall()
        }
        # Where each practice's rows sit in the batch tables: a rowid range when contiguous
        # (they are: files are read in order), so a transaction reads only its own rows.
        for temp in ("loader_landed", *(temp for _, _, temp in STAGING_MODELS)):
            for ods, first, last, count in con.execute(
                f"select practice_ods, min(rowid), max(rowid), count(*) from {_LOADER_DB}.{temp} "
                "group by all"
            ).fetchall():
                if ods in plans:
                    plans[ods].rows[temp] = (int(first), int(last)) if last - first + 1 == count else None
                    plans[ods].counts[temp] = int(count)
        # Units already staged (a re-run at the same instant) are replaced; new ones inserted.
        for table, _, _ in STAGING_MODELS:
            for (ods,) in con.execute(
                f"""
                select distinct s.practice_ods
                from {table} as s
                semi join {units} as u
                  on s.practice_ods = u.practice_ods and s.filter_key = u.filter_key
                 and s.window_start = u.window_start and s.window_end = u.window_end
                 and s.observed_at = u.observed_at
                where s.practice_ods between $first_practice and $last_practice
                  and s.observed_at between $first_observed and $last_observed
                """,
                bounds,
            ).fetchall():
                plans[ods].replace.add(table)
        for (ods,) in con.execute(
            "select distinct practice_ods from raw.gpc_slot_search where load_id = $load_id "
            "and practice_ods between $first_practice and $last_practice",
            {"load_id": load_id, "first_practice": bounds["first_practice"],
             "last_practice": bounds["last_practice"]},
        ).fetchall():
            if ods in plans:
                plans[ods].replace.add("raw.gpc_slot_search")
        for ods, unfolded in con.execute(
            f"""
            select u.practice_ods, bool_or(w.folded_at is null and w.observed_at <> u.observed_at)
            from {units} as u
            join meta.sync_window as w
              on w.practice_ods = u.practice_ods and w.stream = $stream and w.filter_key = u.filter_key
             and w.window_start = u.window_start and w.window_end = u.window_end
            group by all
            """,
            {"stream": stream},
        ).fetchall():
            plans[ods].replace.add("meta.sync_window")
            # A unit row keeps only its latest observation: an earlier one that a crash left
            # unfolded is folded first, in the practice's transaction, before it is replaced.
            plans[ods].fold_first = bool(unfolded)
        return plans

    def _write_practices(
        self, con: duckdb.DuckDBPyConnection, practices: Sequence[str], load_id: str, stream: str,
        plans: dict[str, _PracticePlan],
    ) -> list[PracticeLoad]:
        """One transaction for a few practices: raw metadata, staging units, completed units.

        Every practice's units are replaced with their ledger rows in the same transaction, so
        a crash leaves each practice either fully written or untouched. The practices are
        consecutive in the batch, so their rows are inserted with one statement per table.
        """
        con.execute("BEGIN TRANSACTION")
        try:
            for ods in practices:
                self._delete_replaced(con, ods, load_id, plans[ods])
            group = _GroupRows(practices, plans)
            self._insert_raw(con, load_id, group)
            for table, _, temp in STAGING_MODELS:
                self._insert_staging(con, table, temp, group)
            for ods in practices:
                if plans[ods].fold_first:
                    self._fold_pending(con, [ods])
            self._mark_units_complete(con, practices, load_id, stream, plans)
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        return [
            PracticeLoad(ods, plans[ods].counts.get("loader_landed", 0),
                         plans[ods].counts.get("loader_stg_slots", 0))
            for ods in practices
        ]

    def _delete_replaced(
        self, con: duckdb.DuckDBPyConnection, practice_ods: str, load_id: str, plan: _PracticePlan
    ) -> None:
        """A re-run of the same units (or the same load) replaces what they wrote before."""
        if "raw.gpc_slot_search" in plan.replace:
            con.execute(
                "delete from raw.gpc_slot_search where load_id = $load_id "
                "and practice_ods = $practice_ods",
                {"load_id": load_id, "practice_ods": practice_ods},
            )
        for table, _, _ in STAGING_MODELS:
            if table not in plan.replace:
                continue
            # The constant practice and observed_at bounds let DuckDB skip row groups by their
            # min/max, so the delete does not scan the whole history.
            con.execute(
                f"""
                delete from {table} as s
                using {_LOADER_DB}.loader_units as u
                where s.practice_ods = $practice_ods
                  and s.observed_at between $first_observed and $last_observed
                  and u.practice_ods = $practice_ods
                  and s.filter_key = u.filter_key and s.window_start = u.window_start
                  and s.window_end = u.window_end and s.observed_at = u.observed_at
                """,
                {"practice_ods": practice_ods, "first_observed": plan.observed[0],
                 "last_observed": plan.observed[1]},
            )

    def _insert_raw(self, con: duckdb.DuckDBPyConnection, load_id: str, group: _GroupRows) -> None:
        where, extra = group.filter("loader_landed")
        con.execute(
            f"""
            insert into raw.gpc_slot_search ({_RAW_COLUMNS})
            select $load_id, practice_ods, interaction, filter_role, filter_key, window_start,
                   window_end, observed_at, fetched_at, http_status, trace_id, body_bytes,
                   landing_file, landing_line
            from {_LOADER_DB}.loader_landed
            where {where}
            """,
            {"load_id": load_id, **extra},
        )

    def _insert_staging(
        self, con: duckdb.DuckDBPyConnection, table: str, temp: str, group: _GroupRows
    ) -> None:
        if not group.has_rows(temp):
            return  # no rows of this kind for these practices
        where, extra = group.filter(temp)
        con.execute(f"insert into {table} by name select * from {_LOADER_DB}.{temp} where {where}", extra)

    def _mark_units_complete(
        self, con: duckdb.DuckDBPyConnection, practices: Sequence[str], load_id: str, stream: str,
        plans: dict[str, _PracticePlan],
    ) -> None:
        """The units are complete and wait for the fold (folded_at null)."""
        replacing = any("meta.sync_window" in plans[ods].replace for ods in practices)
        verb = "insert or replace" if replacing else "insert"
        con.execute(
            f"""
            {verb} into meta.sync_window
                (practice_ods, stream, filter_key, window_start, window_end, observed_at, load_id,
                 rows_loaded, completed_at, folded_at)
            select practice_ods, $stream, filter_key, window_start, window_end, observed_at,
                   $load_id, rows_loaded, now(), null
            from {_LOADER_DB}.loader_units
            where practice_ods in (select unnest($practices::varchar[]))
            """,
            {"practices": list(practices), "load_id": load_id, "stream": stream},
        )

    def _keep_raw_only(
        self, con: duckdb.DuckDBPyConnection, landing: LandingFile, load_id: str, *, parsed: bool
    ) -> None:
        """Record a refused practice's raw metadata (its landing file is the archive)."""
        params = {"practice_ods": landing.practice_ods, "load_id": load_id}
        con.execute("BEGIN TRANSACTION")
        try:
            if parsed:
                con.execute(
                    "delete from raw.gpc_slot_search where load_id = $load_id "
                    "and practice_ods = $practice_ods",
                    params,
                )
                self._insert_raw(con, load_id, _GroupRows([landing.practice_ods], {}))
            else:
                # DuckDB could not parse the file: read each line's meta without the body.
                metas = _raw_rows_from_metas(landing, load_id)
                con.execute(
                    "delete from raw.gpc_slot_search where load_id = $load_id "
                    "and practice_ods = $practice_ods",
                    params,
                )
                con.register("loader_raw_rows", metas)
                con.execute(
                    f"insert into raw.gpc_slot_search ({_RAW_COLUMNS}) "
                    f"select {_RAW_COLUMNS} from loader_raw_rows"
                )
                con.unregister("loader_raw_rows")
            con.execute("COMMIT")
        except (duckdb.Error, OSError, ValueError, KeyError, TypeError):
            # Not even the metadata is readable: the landing file itself is kept as it is.
            con.execute("ROLLBACK")

    # ------------------------------------------------------------------ slot history

    def fold_slot_history(self, threads: int | None = None) -> int:
        """Fold every complete, not yet folded observation into core.fct_slot_history.

        Set-based: one round per (observed_at, window) over all the practices that completed
        it, rounds in observation order. An observation is complete when every searchFilter
        the practice needs (core.dim_practice) has a `meta.sync_window` unit at that instant;
        otherwise the audience of its slots cannot be told and it waits for a re-run.
        Practices' histories are independent, so they are folded in groups of at most
        FOLD_GROUP_PRACTICES consecutive practices, each group in one transaction (which
        bounds a fold's working set whatever the estate's size), `threads` groups at once;
        a group that fails leaves its observations pending for the next fold. Returns the
        number of (practice, window, observed_at) observations folded.
        """
        practices = [ods for (ods,) in self.con.execute(
            "select distinct practice_ods from meta.sync_window where folded_at is null order by 1"
        ).fetchall()]
        if not practices:
            return 0
        groups = [practices[i:i + FOLD_GROUP_PRACTICES]
                  for i in range(0, len(practices), FOLD_GROUP_PRACTICES)]
        threads = min(threads or FOLD_THREADS, len(groups))
        if threads == 1:
            return sum(self._fold_group(self.con, group) for group in groups)
        with _LoaderSession(self.con, threads, attach=False) as session:
            return sum(session.run(self._fold_group, groups))

    def _fold_group(self, con: duckdb.DuckDBPyConnection, practices: list[str]) -> int:
        con.execute("BEGIN TRANSACTION")
        try:
            folded = self._fold_pending(con, practices)
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        return folded

    def _fold_pending(self, con: duckdb.DuckDBPyConnection, practices: list[str]) -> int:
        """Fold the pending complete observations of `practices` in the caller's transaction."""
        con.execute(
            """
            create or replace temp table fold_pending as
            with

            needed as (
                select practice_ods,
                       1 + (case when accepts_111_booking then 1 else 0 end) + len(booking_hubs) as filters
                from core.dim_practice
            ),

            observations as (
                -- Units of a quarantined batch (warehouse/quality.py) are never folded: without
                -- them the observation is incomplete until a passing batch replaces them.
                select w.practice_ods, w.window_start, w.window_end, w.observed_at,
                       count(distinct w.filter_key) as filters, max(w.load_id) as load_id
                from meta.sync_window as w
                anti join meta.quarantine as q
                    on q.practice_ods = w.practice_ods and q.stream = w.stream and q.load_id = w.load_id
                where w.practice_ods in (select unnest($practices::varchar[]))
                group by all
                having bool_or(w.folded_at is null)
            )

            select o.practice_ods, o.window_start, o.window_end, o.observed_at, o.load_id
            from observations as o
            join needed as n using (practice_ods)
            where o.filters >= n.filters
            """,
            {"practices": practices},
        )
        try:
            rounds = con.execute(
                "select observed_at, window_start, window_end, count(*) from fold_pending "
                "group by all order by observed_at, window_start, window_end"
            ).fetchall()
            for observed_at, window_start, window_end, _ in rounds:
                con.execute(
                    "create or replace temp table fold_round as select practice_ods, load_id "
                    "from fold_pending where observed_at = $observed_at "
                    "and window_start = $window_start and window_end = $window_end",
                    {"observed_at": observed_at, "window_start": window_start, "window_end": window_end},
                )
                self._fold_round(con, observed_at=observed_at, window_start=window_start,
                                 window_end=window_end)
            con.execute(
                """
                update meta.sync_window as w
                set folded_at = now()
                from fold_pending as p
                where w.practice_ods = p.practice_ods and w.window_start = p.window_start
                  and w.window_end = p.window_end and w.observed_at = p.observed_at
                  and w.folded_at is null
                """
            )
        finally:
            con.execute("drop table if exists fold_round")
            con.execute("drop table if exists fold_pending")
        return sum(int(n) for *_, n in rounds)

    def _fold_round(
        self, con: duckdb.DuckDBPyConnection, *, observed_at: datetime, window_start: datetime,
        window_end: datetime,
    ) -> None:
        """Apply one (observed_at, window) to every practice in `fold_round`, set-based."""
        con.execute(sql_text("load/fold_slot_observations.sql"), {
            "observed_at": observed_at, "window_start": window_start, "window_end": window_end,
        })
        con.execute(
            """
            delete from core.fct_slot_history as h
            using slot_history_update as u
            where h.practice_ods = u.practice_ods and h.slot_id = u.slot_id
            """
        )
        con.execute("insert into core.fct_slot_history select * from slot_history_update")
        con.execute("drop table slot_history_update")

    # ------------------------------------------------------------------ raw archive

    def raw_body(
        self, load_id: str, practice_ods: str, filter_key: str, window_start: datetime,
        *, landing_dir: Path | None = None,
    ) -> bytes:
        """The exact bytes of one slot-search response, read back from its landing file.

        For forensics (what did the supplier send?). `landing_dir` relocates the archive
        (`<landing_dir>/<load_id>/<ODS>.ndjson`), e.g. after moving the data folder, and is
        needed for responses loaded before the landing file was recorded (migration V006).
        Raises LookupError when no such response was loaded and FileNotFoundError when its
        landing file is gone (pruned after `sync.raw_retention_days`).
        """
        rows = self.con.execute(
            "select landing_file, landing_line from raw.gpc_slot_search "
            "where load_id = $load_id and practice_ods = $practice_ods "
            "and filter_key = $filter_key and window_start = $window_start",
            {"load_id": load_id, "practice_ods": practice_ods, "filter_key": filter_key,
             "window_start": window_start},
        ).fetchall()
        if not rows:
            raise LookupError(
                f"no slot-search response of practice {practice_ods}, filter {filter_key}, window "
                f"from {window_start.isoformat()} in load {load_id} (raw.gpc_slot_search)"
            )
        recorded, line = rows[0]
        if landing_dir is not None:
            path = landing_path(landing_dir, load_id, practice_ods)
        elif recorded is not None:
            path = Path(recorded)
        else:
            raise LookupError(
                f"load {load_id} was loaded before landing files were recorded: pass landing_dir "
                "(the data folder's `landing`)"
            )
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: the landing file of load {load_id} is gone (pruned after "
                "sync.raw_retention_days, or moved: pass landing_dir)"
            )
        return read_raw_body(path, line=line, filter_key=filter_key, window_start=window_start)

    def prune_landing(self, landing_dir: Path, *, retention_days: int, now: datetime) -> list[Path]:
        """Delete the landing folders of loads observed more than `retention_days` before `now`.

        Only loads that completed, or whose re-run completed, are pruned; a folder of a load
        that is still running, failed without repair or is unknown to the ledger is kept.
        Their `raw.gpc_slot_search` rows stay (metadata only). Returns the folders deleted.
        """
        if not landing_dir.is_dir():
            return []
        folders = {p.name: p for p in landing_dir.iterdir() if p.is_dir()}
        if not folders:
            return []
        rows = self.con.execute(
            """
            select l.load_id
            from meta.load_ledger as l
            where l.load_id in (select unnest($load_ids::varchar[]))
              and l.as_of < $cutoff
              and (
                  l.status = 'completed'
                  or exists (
                      select 1
                      from meta.load_plan as p
                      join meta.load_ledger as r on r.load_id = p.load_id
                      where p.rerun_of = l.load_id and r.status = 'completed'
                  )
              )
            """,
            {"load_ids": sorted(folders), "cutoff": now - timedelta(days=retention_days)},
        ).fetchall()
        pruned: list[Path] = []
        for (load_id,) in rows:
            try:
                shutil.rmtree(folders[load_id])
            except OSError:
                continue  # tried again after the next load; never fails a load that completed
            pruned.append(folders[load_id])
        return pruned

    # ------------------------------------------------------------------ bookings

    def load_bookings(
        self,
        load_id: str,
        *,
        observed_at: datetime,
        exports: Sequence[BookingLogExport],
        fetch_failures: Sequence[HttpError],
        reads: Sequence[AppointmentRead],
    ) -> None:
        """Store booking-log exports, fetch outcomes and appointment reads in one transaction.

        Re-running a load replaces that load's rows, so it is idempotent.
        """
        entries = [(export, entry) for export in exports for entry in export.entries]
        entry_table = pa.table(
            {
                "load_id": pa.array([load_id] * len(entries), pa.string()),
                "booking_org_ods": pa.array([x.booking_org_ods for x, _ in entries], pa.string()),
                "observed_at": pa.array([observed_at] * len(entries), _UTC),
                "fetched_at": pa.array([x.fetched_at for x, _ in entries], _UTC),
                "appointment_id": pa.array([e.appointment_id for _, e in entries], pa.string()),
                "practice_ods": pa.array([e.practice_ods for _, e in entries], pa.string()),
                "slot_ids": pa.array([list(e.slot_ids) for _, e in entries], pa.list_(pa.string())),
                "start_text": pa.array([e.start for _, e in entries], pa.string()),
                "end_text": pa.array([e.end for _, e in entries], pa.string()),
                "start_at": pa.array([e.start_utc for _, e in entries], _UTC),
                "end_at": pa.array([e.end_utc for _, e in entries], _UTC),
                "booked_at": pa.array([e.booked_at for _, e in entries], _UTC),
                "cancelled_at": pa.array([e.cancelled_at for _, e in entries], _UTC),
                "status": pa.array([e.status for _, e in entries], pa.string()),
                "patient_key": pa.array([e.patient_key for _, e in entries], pa.string()),
            }
        )
        read_table = pa.table(
            {
                "load_id": pa.array([load_id] * len(reads), pa.string()),
                "practice_ods": pa.array([r.practice_ods for r in reads], pa.string()),
                "appointment_id": pa.array([r.appointment_id for r in reads], pa.string()),
                "observed_at": pa.array([observed_at] * len(reads), _UTC),
                "fetched_at": pa.array([r.fetched_at for r in reads], _UTC),
                "outcome": pa.array([r.outcome for r in reads], pa.string()),
                "http_status": pa.array([r.http_status for r in reads], pa.int32()),
                "status": pa.array([r.status for r in reads], pa.string()),
                "version_id": pa.array([r.version_id for r in reads], pa.string()),
                "start_text": pa.array([r.start for r in reads], pa.string()),
                "end_text": pa.array([r.end for r in reads], pa.string()),
                "start_at": pa.array([_utc_or_none(r.start) for r in reads], _UTC),
                "end_at": pa.array([_utc_or_none(r.end) for r in reads], _UTC),
                "slot_ids": pa.array([list(r.slot_ids) for r in reads], pa.list_(pa.string())),
                "booking_org_ods": pa.array([r.booking_org_ods for r in reads], pa.string()),
                "patient_key": pa.array([r.patient_key for r in reads], pa.string()),
                "created_text": pa.array([r.created for r in reads], pa.string()),
                "error": pa.array([r.error for r in reads], pa.string()),
            }
        )
        fetches = [
            (x.booking_org_ods, "ok", x.fetched_at, x.http_status, x.body_bytes, len(x.entries), None, None)
            for x in exports
        ] + [
            (f.practice_ods, "failed", None, f.status, None, 0, str(f), f.next_step)
            for f in fetch_failures
        ]
        fetch_table = pa.table(
            {
                "load_id": pa.array([load_id] * len(fetches), pa.string()),
                "booking_org_ods": pa.array([f[0] for f in fetches], pa.string()),
                "status": pa.array([f[1] for f in fetches], pa.string()),
                "fetched_at": pa.array([f[2] for f in fetches], _UTC),
                "http_status": pa.array([f[3] for f in fetches], pa.int32()),
                "body_bytes": pa.array([f[4] for f in fetches], pa.int64()),
                "entries": pa.array([f[5] for f in fetches], pa.int32()),
                "message": pa.array([f[6] for f in fetches], pa.string()),
                "next_step": pa.array([f[7] for f in fetches], pa.string()),
            }
        )
        self.con.execute("BEGIN TRANSACTION")
        try:
            for table in ("raw.booking_log_entry", "raw.gpc_appointment_read", "meta.booking_log_fetch"):
                self.con.execute(f"delete from {table} where load_id = ?", [load_id])
            for name, arrow in (("raw.booking_log_entry", entry_table),
                                ("raw.gpc_appointment_read", read_table),
                                ("meta.booking_log_fetch", fetch_table)):
                self.con.register("incoming_rows", arrow)
                self.con.execute(f"insert into {name} by name select * from incoming_rows")
                self.con.unregister("incoming_rows")
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ models

    def build_models(self, load_id: str | None = None) -> None:
        """Fold pending observations into slot history, then (re)build views and tables.

        The fold (`fold_slot_history`) commits on its own first, so history never waits for
        a model build that fails. The models are rebuilt in one transaction with the load's
        reconciliation summary.
        """
        self.fold_slot_history()
        self.con.execute("BEGIN TRANSACTION")
        try:
            for name, path in VIEW_MODELS:
                self.con.execute(f"create or replace view {name} as {sql_text(path)}")
            for name, path in TABLE_MODELS:
                self.con.execute(f"create or replace table {name} as {sql_text(path)}")
            if load_id is not None:
                self.con.execute(
                    """
                    insert or replace into meta.reconciliation_summary
                    select $load_id, practice_ods, reason_code, count(*)
                    from marts.mart_reconciliation_findings
                    group by all
                    """,
                    {"load_id": load_id},
                )
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    def mart_tables(self) -> list[str]:
        rows = self.con.execute(
            "select table_name from information_schema.tables "
            "where table_schema = 'marts' and table_type = 'BASE TABLE' order by table_name"
        ).fetchall()
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ publishing

    def publish(self, published_dir: Path, *, load_id: str, as_of: datetime) -> Path:
        """Copy the marts into a fresh file and swap it in by rename.

        Dashboards read only this snapshot through short-lived read-only connections, so
        they never hold a lock on the warehouse the sync is writing.
        """
        published_dir.mkdir(parents=True, exist_ok=True)
        target = published_dir / "dashboard.duckdb"
        _remove_abandoned_snapshots(published_dir)
        tmp = published_dir / f".dashboard-{os.getpid()}.duckdb.tmp"
        tmp.unlink(missing_ok=True)
        self.con.execute(f"attach '{_sql_literal(tmp)}' as snapshot")
        try:
            self.con.execute("create schema snapshot.marts")
            for table in self.mart_tables():
                self.con.execute(
                    f"create table snapshot.marts.{table} as select * from marts.{table}"
                )
            self.con.execute(
                "create table snapshot.marts.publication as "
                "select $load_id as load_id, $as_of::timestamptz as as_of, now() as published_at",
                {"load_id": load_id, "as_of": as_of},
            )
        finally:
            self.con.execute("detach snapshot")
        tmp.replace(target)
        return target


def _remove_abandoned_snapshots(published_dir: Path) -> None:
    """Delete half-written snapshots of writers that died (kill -9 during publish).

    Only the writer publishes, so a `.dashboard-<pid>.duckdb.tmp` whose process is gone will
    never be finished; the live snapshot is never touched.
    """
    for leftover in published_dir.glob(".dashboard-*.duckdb.tmp*"):
        pid_text = leftover.name.removeprefix(".dashboard-").split(".", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _process_alive(int(pid_text)):
            leftover.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


_UTC = pa.timestamp("us", tz="UTC")


class _LoaderSession:
    """The connections and batch database of one `load_practice_files` call.

    Attaches an in-memory database for the batch tables and opens `threads` cursors on the
    warehouse (connections of the same DuckDB instance), each set to UTC and able to name
    the batch tables unqualified (the staging models read `loader_landed`). `run` spreads
    independent work over the cursors and stops handing out work at the first error.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, threads: int, *, attach: bool = True) -> None:
        self._con = con
        self._threads = max(1, threads)
        self._attach = attach
        self._cursors: list[duckdb.DuckDBPyConnection] = []

    def __enter__(self) -> _LoaderSession:
        catalog = str(self._con.execute("select current_database()").fetchall()[0][0])
        quoted = '"' + catalog.replace('"', '""') + '"'
        self._search_path = f"{quoted}.main,{_LOADER_DB}.main".replace("'", "''")
        if self._attach:
            self._con.execute(f"attach if not exists ':memory:' as {_LOADER_DB}")
        try:
            self._cursors = [self._cursor() for _ in range(self._threads)]
        except BaseException:
            self.__exit__()
            raise
        return self

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = self._con.cursor()
        cursor.execute("SET TimeZone = 'UTC'")
        if self._attach:
            cursor.execute(f"SET search_path = '{self._search_path}'")
        return cursor

    @property
    def main(self) -> duckdb.DuckDBPyConnection:
        return self._cursors[0]

    def run(self, work: Callable[[duckdb.DuckDBPyConnection, _T], _R], items: Sequence[_T]) -> list[_R]:
        """`work(cursor, item)` for every item, up to `threads` at once; results in item order."""
        if self._threads == 1 or len(items) <= 1:
            return [work(self.main, item) for item in items]
        free: queue.SimpleQueue[duckdb.DuckDBPyConnection] = queue.SimpleQueue()
        for cursor in self._cursors:
            free.put(cursor)
        failed = threading.Event()

        def one(item: _T) -> _R:
            if failed.is_set():
                raise _Skipped
            cursor = free.get()
            try:
                return work(cursor, item)
            except BaseException:
                failed.set()
                raise
            finally:
                free.put(cursor)

        with ThreadPoolExecutor(len(self._cursors), thread_name_prefix="slotsync-loader") as pool:
            futures = [pool.submit(one, item) for item in items]
            wait(futures)
        errors = [f.exception() for f in futures if f.exception() is not None]
        first = next((e for e in errors if not isinstance(e, _Skipped)), None)
        if first is not None:
            raise first
        return [f.result() for f in futures]

    def __exit__(self, *exc_info: object) -> None:
        for cursor in self._cursors:
            cursor.close()
        self._cursors = []
        if self._attach:
            self._con.execute(f"detach database if exists {_LOADER_DB}")


class _Skipped(Exception):
    """Work not started because other work of the same run had failed."""


def _utc_or_none(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_fhir_datetime(text)
    except ValueError:
        return None


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # reading it will say what is wrong


def _batches(files: Sequence[LandingFile]) -> list[list[LandingFile]]:
    """Consecutive runs of files of at most BATCH_BYTES together (at least one file each)."""
    batches: list[list[LandingFile]] = []
    size = 0
    for landing in files:
        file_size = _file_size(landing.path)
        if not batches or size + file_size > BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(landing)
        size += file_size
    return batches


class _GroupRows:
    """Which rows of a batch table belong to a group of consecutive practices."""

    def __init__(self, practices: Sequence[str], plans: dict[str, _PracticePlan]) -> None:
        self.practices = list(practices)
        self._plans = plans

    def has_rows(self, temp: str) -> bool:
        return any(temp in self._plans[ods].rows for ods in self.practices if ods in self._plans)

    def filter(self, temp: str) -> tuple[str, dict[str, Any]]:
        """One rowid range when the practices' rows are known and adjacent; else by practice."""
        spans = [self._plans[ods].rows[temp] for ods in self.practices
                 if ods in self._plans and temp in self._plans[ods].rows]
        known = [span for span in spans if span is not None]
        adjacent = all(later[0] == earlier[1] + 1 for earlier, later in itertools.pairwise(known))
        if known and len(known) == len(spans) and adjacent \
                and all(ods in self._plans for ods in self.practices):
            return "rowid between $first_row and $last_row", {"first_row": known[0][0],
                                                               "last_row": known[-1][1]}
        return "practice_ods in (select unnest($practices::varchar[]))", {"practices": self.practices}


def _unreadable(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"response is not valid FHIR JSON of the expected shape ({text[:400]})"


def _raw_rows_from_metas(landing: LandingFile, load_id: str) -> pa.Table:
    """raw.gpc_slot_search rows from the landing lines' meta objects (bodies unparsed)."""
    metas = read_landing_metas(landing.path)

    def column(name: str) -> list[Any]:
        return [m.get(name) for m in metas]

    def instants(name: str) -> list[datetime | None]:
        return [datetime.fromisoformat(v) if isinstance(v, str) else None for v in column(name)]

    return pa.table({
        "load_id": pa.array([load_id] * len(metas), pa.string()),
        "practice_ods": pa.array([landing.practice_ods] * len(metas), pa.string()),
        "interaction": pa.array(column("interaction"), pa.string()),
        "filter_role": pa.array(column("filter_role"), pa.string()),
        "filter_key": pa.array(column("filter_key"), pa.string()),
        "window_start": pa.array(instants("window_start"), _UTC),
        "window_end": pa.array(instants("window_end"), _UTC),
        "observed_at": pa.array(instants("observed_at"), _UTC),
        "fetched_at": pa.array(instants("fetched_at"), _UTC),
        "http_status": pa.array(column("http_status"), pa.int32()),
        "trace_id": pa.array(column("trace_id"), pa.string()),
        "body_bytes": pa.array(column("body_bytes"), pa.int64()),
        "landing_file": pa.array([str(landing.path)] * len(metas), pa.string()),
        "landing_line": pa.array(column("line"), pa.int32()),
    })


def _sql_literal(path: Path) -> str:
    return str(path).replace("'", "''")


def new_load_id(flow_name: str, as_of: datetime, suffix: str) -> str:
    return f"{flow_name}-{as_of.strftime('%Y%m%dT%H%M%SZ')}-{suffix}"

