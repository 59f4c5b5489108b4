"""Loading: landed responses (the landing files) into raw metadata and staging.

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
practice is reported with a clear error; its landing file stays. Folding the units into slot
history is warehouse/fold.py's job.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from warehouse import fold
from warehouse.cursors import LOADER_DB, CursorPool
from warehouse.db import sql_text, transaction
from warehouse.landing import read_landing_metas
from warehouse.payload_shape import explain_unreadable

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
_RAW_COLUMNS = (
    "load_id, practice_ods, interaction, filter_role, filter_key, window_start, window_end, "
    "observed_at, fetched_at, http_status, trace_id, body_bytes, landing_file, landing_line"
)
_BATCH_TABLES = ("loader_files", "loader_landed", "loader_units",
                 *(temp for _, _, temp in STAGING_MODELS))
# What DuckDB raises for a landing file it cannot parse. UnicodeDecodeError: its message
# quoted a cut multi-byte character of the file and could not be decoded (duckdb 1.x/2.x).
_UNREADABLE = (duckdb.InvalidInputException, duckdb.ConversionException, UnicodeDecodeError)
_UTC = pa.timestamp("us", tz="UTC")


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



def load_practice_file(
    con: duckdb.DuckDBPyConnection, path: Path, *, load_id: str, practice_ods: str, stream: str = "slots"
) -> PracticeLoad:
    """Load one landing file as one transaction; raw metadata is kept even if refused.

    `stream` names the `meta.sync_window` state the units complete: `slots` for the
    scheduled syncs, another name (a backfill's) to keep that state untouched. Raises
    PracticeDataError when the practice's data is refused.
    """
    (result,) = load_practice_files(
        con, [LandingFile(practice_ods, path)], load_id=load_id, stream=stream
    )
    if isinstance(result, PracticeDataError):
        raise result
    return result

def load_practice_files(
    con: duckdb.DuckDBPyConnection, files: Sequence[LandingFile], *, load_id: str, stream: str = "slots",
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
    with CursorPool(con, threads or LOAD_THREADS) as session:
        # Practice order makes each batch a narrow range of practices, so row groups of
        # other batches are skipped by their min/max when looking for rows to replace.
        for batch in _batches(sorted(files, key=lambda f: f.practice_ods)):
            results.update(_load_batch(session, batch, load_id, stream))
    return [results[ods] for ods in practices]

# A batch lives in tables of an in-memory database attached for the load (`slotsync_loader`,
# never written to the warehouse or its WAL): `loader_files` (file -> practice),
# `loader_landed` (one typed row per response), one `loader_stg_*` table per staging model
# and `loader_units` (the batch's units with their slot counts). Every check, count and
# "is there anything to replace" question is asked once per batch, so a practice's
# transaction holds only the writes it needs, and costs the same whatever the warehouse
# already holds.

def _load_batch(
    session: CursorPool, batch: Sequence[LandingFile], load_id: str, stream: str
) -> dict[str, PracticeLoad | PracticeDataError]:
    con = session.main
    results: dict[str, PracticeLoad | PracticeDataError] = {}
    try:
        unreadable = _read_batch(con, batch)
        plans: dict[str, _PracticePlan] = {}
        problems: dict[str, str] = {}
        if len(unreadable) < len(batch):
            _derive_batch(session)
            problems = _batch_problems(con, load_id)
            plans = _plan_batch(con, load_id, stream)
        accepted: list[str] = []
        for landing in batch:
            ods = landing.practice_ods
            problem = unreadable.get(ods) or problems.get(ods)
            if problem is None and ods not in plans:
                problem = "the landing file holds no responses"
            if problem is None:
                accepted.append(ods)
                continue
            _keep_raw_only(con, landing, load_id, parsed=ods not in unreadable)
            results[ods] = PracticeDataError(ods, problem, landing.path)
        if accepted:
            loads = _write_practices(con, accepted, load_id, stream, plans)
            results.update((load.practice_ods, load) for load in loads)
    finally:
        for table in _BATCH_TABLES:
            con.execute(f"drop table if exists {LOADER_DB}.{table}")
    return results

def _read_batch(con: duckdb.DuckDBPyConnection, batch: Sequence[LandingFile]) -> dict[str, str]:
    """Parse the batch's files into `loader_landed`; returns practice -> why unreadable."""
    files = pa.table({
        "landing_file": pa.array([str(f.path) for f in batch], pa.string()),
        "practice_ods": pa.array([f.practice_ods for f in batch], pa.string()),
    })
    con.register("loader_file_rows", files)
    con.execute(f"create or replace table {LOADER_DB}.loader_files as select * from loader_file_rows")
    con.unregister("loader_file_rows")
    read = sql_text("load/read_landing_files.sql")
    # A line never exceeds its file: the largest file bounds every response body.
    largest = max((_file_size(f.path) for f in batch), default=0)
    params: dict[str, Any] = {"maximum_object_size": object_buffer_bytes(largest)}
    try:
        con.execute(
            f"create or replace table {LOADER_DB}.loader_landed as {read}",
            {**params, "paths": [str(f.path) for f in batch]},
        )
        return {}
    except _UNREADABLE as exc:
        if len(batch) == 1:
            return {batch[0].practice_ods: explain_unreadable(batch[0].path, exc)}
    # One file spoilt the batch: read them one by one to tell which.
    unreadable: dict[str, str] = {}
    created = False
    for landing in batch:
        verb = "insert into" if created else "create table"
        target = f"{LOADER_DB}.loader_landed" + ("" if created else " as")
        try:
            con.execute(f"{verb} {target} {read}", {**params, "paths": [str(landing.path)]})
            created = True
        except _UNREADABLE as exc:
            unreadable[landing.practice_ods] = explain_unreadable(landing.path, exc)
    return unreadable

def _derive_batch(session: CursorPool) -> None:
    """Evaluate every staging model over the batch, and list its units with slot counts."""

    def evaluate(con: duckdb.DuckDBPyConnection, models: tuple[tuple[str, str, str], ...]) -> None:
        for _, model, temp in models:
            con.execute(f"create or replace table {LOADER_DB}.{temp} as {sql_text(model)}")

    # Each model reads the batch on one thread (it is one row group): the slots on one
    # connection, the smaller models on another.
    session.run(evaluate, [STAGING_MODELS[:1], STAGING_MODELS[1:]])
    session.main.execute(
        f"create or replace table {LOADER_DB}.loader_units as {sql_text('load/int_batch_units.sql')}"
    )


def _batch_problems(con: duckdb.DuckDBPyConnection, load_id: str) -> dict[str, str]:
    """Strict where the data would be wrong: practice -> every problem found, in words."""
    rows = con.execute(sql_text("load/batch_problems.sql"), {"load_id": load_id}).fetchall()
    labels = ("slot(s) without an id (Slot.id)",
              "slot(s) without a schedule reference (Slot.schedule.reference)",
              "slot(s) with a missing or invalid start (Slot.start must be an instant as text)",
              "slot(s) with a missing or invalid end (Slot.end must be an instant as text)")
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
    con: duckdb.DuckDBPyConnection, load_id: str, stream: str
) -> dict[str, _PracticePlan]:
    """What each practice's transaction must do, asked once for the whole batch."""
    units = f"{LOADER_DB}.loader_units"
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
            f"select practice_ods, min(rowid), max(rowid), count(*) from {LOADER_DB}.{temp} "
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
        sql_text("load/int_units_to_refold.sql"), {"stream": stream}
    ).fetchall():
        plans[ods].replace.add("meta.sync_window")
        # A unit row keeps only its latest observation: an earlier one that a crash left
        # unfolded is folded first, in the practice's transaction, before it is replaced.
        plans[ods].fold_first = bool(unfolded)
    return plans

def _write_practices(
    con: duckdb.DuckDBPyConnection, practices: Sequence[str], load_id: str, stream: str,
    plans: dict[str, _PracticePlan],
) -> list[PracticeLoad]:
    """One transaction for a few practices: raw metadata, staging units, completed units.

    Every practice's units are replaced with their ledger rows in the same transaction, so
    a crash leaves each practice either fully written or untouched. The practices are
    consecutive in the batch, so their rows are inserted with one statement per table.
    """
    with transaction(con):
        for ods in practices:
            _delete_replaced(con, ods, load_id, plans[ods])
        group = _GroupRows(practices, plans)
        _insert_raw(con, load_id, group)
        for table, _, temp in STAGING_MODELS:
            _insert_staging(con, table, temp, group)
        for ods in practices:
            if plans[ods].fold_first:
                fold.fold_pending(con, [ods])
        _mark_units_complete(con, practices, load_id, stream, plans)
    return [
        PracticeLoad(ods, plans[ods].counts.get("loader_landed", 0),
                     plans[ods].counts.get("loader_stg_slots", 0))
        for ods in practices
    ]

def _delete_replaced(
    con: duckdb.DuckDBPyConnection, practice_ods: str, load_id: str, plan: _PracticePlan
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
            using {LOADER_DB}.loader_units as u
            where s.practice_ods = $practice_ods
              and s.observed_at between $first_observed and $last_observed
              and u.practice_ods = $practice_ods
              and s.filter_key = u.filter_key and s.window_start = u.window_start
              and s.window_end = u.window_end and s.observed_at = u.observed_at
            """,
            {"practice_ods": practice_ods, "first_observed": plan.observed[0],
             "last_observed": plan.observed[1]},
        )

def _insert_raw(con: duckdb.DuckDBPyConnection, load_id: str, group: _GroupRows) -> None:
    where, extra = group.filter("loader_landed")
    con.execute(
        f"""
        insert into raw.gpc_slot_search ({_RAW_COLUMNS})
        select $load_id, practice_ods, interaction, filter_role, filter_key, window_start,
               window_end, observed_at, fetched_at, http_status, trace_id, body_bytes,
               landing_file, landing_line
        from {LOADER_DB}.loader_landed
        where {where}
        """,
        {"load_id": load_id, **extra},
    )

def _insert_staging(
    con: duckdb.DuckDBPyConnection, table: str, temp: str, group: _GroupRows
) -> None:
    if not group.has_rows(temp):
        return  # no rows of this kind for these practices
    where, extra = group.filter(temp)
    con.execute(f"insert into {table} by name select * from {LOADER_DB}.{temp} where {where}", extra)

def _mark_units_complete(
    con: duckdb.DuckDBPyConnection, practices: Sequence[str], load_id: str, stream: str,
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
        from {LOADER_DB}.loader_units
        where practice_ods in (select unnest($practices::varchar[]))
        """,
        {"practices": list(practices), "load_id": load_id, "stream": stream},
    )

def _keep_raw_only(
    con: duckdb.DuckDBPyConnection, landing: LandingFile, load_id: str, *, parsed: bool
) -> None:
    """Record a refused practice's raw metadata (its landing file is the archive)."""
    params = {"practice_ods": landing.practice_ods, "load_id": load_id}
    try:
        with transaction(con):
            if parsed:
                con.execute(
                    "delete from raw.gpc_slot_search where load_id = $load_id "
                    "and practice_ods = $practice_ods",
                    params,
                )
                _insert_raw(con, load_id, _GroupRows([landing.practice_ods], {}))
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
    except (duckdb.Error, OSError, ValueError, KeyError, TypeError):
        pass  # not even the metadata is readable: the landing file itself is kept as it is


def object_buffer_bytes(largest: int) -> int:
    """`read_json`'s maximum_object_size for input whose largest object is `largest` bytes.

    A margin above the largest, at least MIN_OBJECT_BYTES: DuckDB sizes its read buffers by
    it (far larger than the input costs time on every file) and reads a newline-delimited
    file on every core only when the file is larger than one buffer.
    """
    return max(MIN_OBJECT_BYTES, largest + 1024)


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
