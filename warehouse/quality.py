"""Data quality: Great Expectations suites that gate what gets published.

What is validated: every *batch* waiting to be folded, i.e. one practice's units of one load in
one window stream (`meta.sync_window` rows sharing practice, stream and load id, not folded
yet, never validated). The checks that need other rows or tables (duplicates, references,
UK offsets, continuity) are computed in DuckDB as boolean or count columns of check frames
(`warehouse/sql/quality/*_checks.sql`), which stay in DuckDB. There each expectation's rule
(compiled from the catalogue, `quality_suites.unexpected_sql`) is counted per batch
(int_check_counts.sql), and GX is given only the rows some expectation finds unexpected, at
most `SAMPLE_ROWS` per batch and expectation (int_check_failures.sql): GX judges them with the
same suites, so every failure carries the name of an expectation and Data Docs show every
validation with the failing values, while a night's millions of good rows never leave DuckDB.
A (batch, expectation) fails when GX finds its rows unexpected; its count is DuckDB's.
The suites are code (`CHECKS`), written into the GX file context with `add_or_update` when a
process first validates into a data folder (the context is then reused).

Why not GX's SQL data source: pointed at DuckDB (duckdb_engine) every expectation fails with
an empty metric result, and regexes are not supported for that dialect. The SQL runs on the
writer's connection (`con.cursor()`; a second connection to the same file is refused
in-process). Practices are validated a group at a time (about `VALIDATE_GROUP_ROWS` staged
slots each), each group judged and recorded in its own transaction, which bounds the temp
tables; the check SQL filters staging by the group's practice range as well as its units, so
each group reads only its own row groups.

The gate: a batch failing a *critical* expectation is quarantined (`meta.quarantine`): its
units are never folded into `core.fct_slot_history` and its staging rows never feed core dims
or marts (the models anti-join `meta.quarantine` on practice and load id), but nothing is
deleted. *Warnings* (freshness, appointment rules) are recorded and shown, never gate.
A later passing batch of the same practice resolves the quarantine: `promoted` when it is a
re-observation of the same instant (a re-run once the source is fixed), `superseded` when it
is a later observation. Every batch's results land in `meta.quality_batch` and
`meta.quality_result` (published as `mart_data_quality_checks` / `mart_quarantined_batches`),
and GX Data Docs are built into `<data_dir>/quality/data_docs/`. A pipelined night validates
each batch of practices as it lands (`validate_pending(..., practices=..., build_docs=False)`)
and builds Data Docs once at the end (`build_data_docs`).

A batch that a crash left unvalidated is validated by the next load (or `slotsync validate`)
before that load's fold. One edge remains: when a later observation replaces a unit whose
earlier observation is still unfolded, the loader folds the earlier one first, in the
practice's transaction (warehouse/load.py), without waiting for its validation; quarantined
units are skipped there too.

The checks, their GX suites and the runner are in warehouse/quality_suites.py.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from warehouse.db import sql_text, transaction
from warehouse.quality_suites import (
    BATCH_KEY,
    CHECKS,
    CHECKS_BY_NAME,
    CRITICAL,
    DATA_DOCS_SITE,
    FRAMES,
    WARNING,
    Check,
    data_docs_dir,
    gx_context,
    prune_results,
    run_suites,
    unexpected_sql,
)

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

# The staged rows of the batches being validated, as temp views the check frames read.
STAGED_ROWS = {
    "quality_slots": "staging.stg_gpconnect__slots",
    "quality_schedules": "staging.stg_gpconnect__schedules",
    "quality_locations": "staging.stg_gpconnect__locations",
}
# Each check frame per group, for the counts and the failing rows: a temp table, except the
# frames in CHECK_VIEWS. The slot frame (a row per staged slot) is a temp view: the counts
# evaluate it once, and only a group with failing slots evaluates it again, for the failing
# rows of its failing practices. A copy of every row cost 40% more (2 M synthetic staged
# slots: 0.82 s to copy and count, 0.58 s to count the view).
CHECK_TABLES = {name: f"quality_check_{name}" for name in FRAMES}
CHECK_VIEWS = frozenset({"slots"})
# Staged slots whose check frames are computed and judged together (whole practices; one
# larger practice is a group of its own): bounds the temp tables whatever the estate's size,
# while each group's five GX runs (~0.1 s each) stay a small share of its time.
VALIDATE_GROUP_ROWS = 2_000_000
# Unexpected rows per batch and expectation that GX is given (and Data Docs show); GX's own
# partial lists show 20.
SAMPLE_ROWS = 20


NEXT_STEP = (
    "raise the failed expectations with the practice's supplier (the raw responses are in the "
    "load's landing file; Data Docs show the failing values), then re-run the practice: "
    "`slotsync rerun <flow run or load id>` or the next scheduled sync promotes it once it "
    "passes. If the practice really has no free slots, its next observation is accepted."
)


@dataclass(frozen=True)
class BatchOutcome:
    """The verdict on one (practice, stream, load) batch."""

    practice_ods: str
    stream: str
    load_id: str
    observed_at: datetime
    slot_rows: int
    failed: tuple[str, ...]  # critical expectations that failed
    warnings: tuple[str, ...]
    counts: Mapping[str, int] = field(default_factory=dict)  # expectation -> unexpected rows

    @property
    def quarantined(self) -> bool:
        return bool(self.failed)

    def detail(self) -> str:
        return "; ".join(
            f"{name}: {self.counts.get(name, 0)} row(s), {CHECKS_BY_NAME[name].meaning}"
            for name in self.failed
        )


@dataclass
class ValidationReport:
    """What one validation did: the batches it judged and where the time went."""

    batches: list[BatchOutcome] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # frame -> rows checked
    extract_s: float = 0.0  # DuckDB: check frames, counts and failing rows
    validate_s: float = 0.0  # GX judging the failing rows
    data_docs: str | None = None

    @property
    def quarantined(self) -> list[BatchOutcome]:
        return [b for b in self.batches if b.quarantined]

    def for_load(self, load_id: str) -> dict[str, BatchOutcome]:
        """Practice -> its quarantined batch of `load_id`."""
        return {b.practice_ods: b for b in self.quarantined if b.load_id == load_id}


@dataclass(frozen=True)
class QuarantinedBatch:
    """An unresolved row of `meta.quarantine`, for the CLI and the flow's report."""

    practice_ods: str
    stream: str
    load_id: str
    observed_at: datetime
    failed_expectations: tuple[str, ...]
    detail: str
    next_step: str


# ---------------------------------------------------------------------- the gate


def validate_pending(
    con: duckdb.DuckDBPyConnection,
    *,
    data_dir: Path | None,
    validated_by: str | None = None,
    practices: Sequence[str] | None = None,
    now: datetime | None = None,
    group_rows: int = VALIDATE_GROUP_ROWS,
    build_docs: bool = True,
) -> ValidationReport:
    """Validate every batch waiting to be folded, record the results, quarantine failures.

    Call it after loading and before `models.build_models` (whose fold skips quarantined
    batches). `data_dir` is where the GX project and Data Docs go (`<data_dir>/quality/`);
    None validates in an ephemeral context without Data Docs. Practices are validated in
    groups of about `group_rows` staged slots, each recorded in its own transaction (a crash
    between groups leaves the rest pending for the next run). Idempotent: a batch is validated once;
    running it again with nothing pending records nothing. `build_docs=False` records the GX
    results but neither prunes them nor builds Data Docs: a night that validates each batch of
    practices as it lands calls `build_data_docs` once at the end.
    """
    report = ValidationReport()
    cursor = con.cursor()
    try:
        cursor.execute("SET TimeZone = 'UTC'")
        cursor.execute(
            f"create or replace temp table quality_pending as {sql_text('quality/pending_units.sql')}",
            {"practices": list(practices) if practices else None},
        )
        groups = _practice_groups(cursor, group_rows)
        if not groups:
            return report
        context = gx_context(data_dir)
        # One GX run name per validation: Data Docs list a night's groups together.
        run_name = validated_by or f"validate-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
        for group in groups:
            began = time.perf_counter()
            _check_tables(cursor, group)
            counts = _counts(cursor)
            failing = _failing_rows(cursor, counts)
            report.extract_s += time.perf_counter() - began
            for name, per_batch in counts.items():
                checked = sum(c["rows_checked"] for c in per_batch.values())
                report.rows[name] = report.rows.get(name, 0) + checked
            began = time.perf_counter()
            unexpected = run_suites(failing, context=context, run_name=run_name)
            report.validate_s += time.perf_counter() - began
            batches = _judge(_batches(cursor), counts, unexpected)
            _record(cursor, batches, counts, validated_by=validated_by, now=now)
            report.batches.extend(batches)
        if data_dir is not None and build_docs:
            report.data_docs = build_data_docs(data_dir)
    finally:
        for view in STAGED_ROWS:
            cursor.execute(f"drop view if exists {view}")
        for name in CHECK_VIEWS:
            cursor.execute(f"drop view if exists {CHECK_TABLES[name]}")
        for temp in ("quality_units", "quality_pending",
                     *(t for name, t in CHECK_TABLES.items() if name not in CHECK_VIEWS)):
            cursor.execute(f"drop table if exists {temp}")
        cursor.close()
    return report


def build_data_docs(data_dir: Path) -> str:
    """Prune GX's stored results and build Data Docs once; the path of their index.html."""
    prune_results(data_dir)
    gx_context(data_dir).build_data_docs(site_names=[DATA_DOCS_SITE])
    return str(data_docs_dir(data_dir) / "index.html")


def _practice_groups(cursor: duckdb.DuckDBPyConnection, group_rows: int) -> list[list[str]]:
    """Pending practices in ODS order, cut into runs of about `group_rows` staged slots."""
    groups: list[list[str]] = []
    rows_in_group = 0
    for practice, rows in cursor.execute(
        "select practice_ods, sum(rows_loaded) from quality_pending group by all order by practice_ods"
    ).fetchall():
        if not groups or (rows_in_group and rows_in_group + rows > group_rows):
            groups.append([])
            rows_in_group = 0
        groups[-1].append(practice)
        rows_in_group += int(rows)
    return groups


def _check_tables(cursor: duckdb.DuckDBPyConnection, practices: Sequence[str]) -> None:
    """The check frames of the pending batches of `practices` (`CHECK_TABLES`, `CHECK_VIEWS`)."""
    cursor.execute(
        "create or replace temp table quality_units as "
        "select * from quality_pending where practice_ods in (select unnest($practices::varchar[]))",
        {"practices": list(practices)},
    )
    first, last = cursor.execute("select min(observed_at), max(observed_at) from quality_units").fetchall()[0]
    # Practices are consecutive in ODS order: the range lets DuckDB skip other row groups.
    bounds = {"first_observed": first, "last_observed": last,
              "first_practice": min(practices), "last_practice": max(practices)}
    # The batches' staged rows as views the check frames share (a copy of a group's slots
    # cost more than the checks); the bounds are variables since a view takes no parameters.
    for name, value in bounds.items():
        cursor.execute(f"set variable quality_{name} = $value", {"value": value})
    cursor.execute("set variable quality_only_practices = null::varchar[]")
    staged_rows = sql_text("quality/int_batch_staged_rows.sql")
    for view, staged in STAGED_ROWS.items():
        cursor.execute(f"create or replace temp view {view} as {staged_rows.replace('{{ staged }}', staged)}")
    for name, path in FRAMES.items():
        text = sql_text(path)
        params = {k: v for k, v in bounds.items() if f"${k}" in text}
        kind = "view" if name in CHECK_VIEWS else "table"
        if kind == "view" and params:
            raise ValueError(f"check frame {name}: a view takes no parameters ({', '.join(params)})")
        cursor.execute(f"create or replace temp {kind} {CHECK_TABLES[name]} as {text}", params)


BatchKey = tuple[str, str, str]


def _frame_checks(frame: str) -> list[Check]:
    return [c for c in CHECKS if c.frame == frame]


def _counts(cursor: duckdb.DuckDBPyConnection) -> dict[str, dict[BatchKey, dict[str, int]]]:
    """Frame -> batch -> rows checked and each expectation's unexpected rows (DuckDB's count)."""
    template = sql_text("quality/int_check_counts.sql")
    counts: dict[str, dict[BatchKey, dict[str, int]]] = {}
    for frame, table in CHECK_TABLES.items():
        checks = _frame_checks(frame)
        columns = "".join(f',\n       count_if({unexpected_sql(c)}) as "{c.name}"' for c in checks)
        text = template.replace("{{ frame }}", table).replace("{{ counts }}", columns)
        names = ["rows_checked", *(c.name for c in checks)]
        counts[frame] = {
            (str(row[0]), str(row[1]), str(row[2])): dict(zip(names, map(int, row[3:]), strict=True))
            for row in cursor.execute(text).fetchall()
        }
    return counts


def _failing_rows(
    cursor: duckdb.DuckDBPyConnection, counts: Mapping[str, Mapping[BatchKey, Mapping[str, int]]]
) -> dict[str, pd.DataFrame]:
    """Frame -> the rows GX judges: those of batches with unexpected rows, `SAMPLE_ROWS` per rule."""
    template = sql_text("quality/int_check_failures.sql")
    frames: dict[str, pd.DataFrame] = {}
    for frame, table in CHECK_TABLES.items():
        checks = _frame_checks(frame)
        rules = [unexpected_sql(c) for c in checks]
        practices = sorted({key[0] for key, found in counts[frame].items()
                            if any(found[c.name] for c in checks)})
        # Only the practices with failures: the rules are evaluated on their rows alone. With
        # none (most groups, most frames) the query is planned empty instead of scanning the
        # frame (~0.3 s per million rows), but still run so the frame keeps its columns.
        unexpected = (
            "practice_ods in (select unnest($practices::varchar[])) and ("
            + " or ".join(rules) + ")"
        ) if practices else "false"
        sampled = " or ".join(
            f"({rule} and row_number() over (partition by practice_ods, stream, load_id, {rule})"
            " <= $sample_rows)" for rule in rules
        )
        text = (template.replace("{{ frame }}", table).replace("{{ unexpected }}", unexpected)
                .replace("{{ sampled }}", sampled))
        params: dict[str, Any] = {"sample_rows": SAMPLE_ROWS}
        if practices:
            params["practices"] = practices
        narrow = frame in CHECK_VIEWS and bool(practices)
        if narrow:  # the view is evaluated again: over the failing practices' staged rows only
            cursor.execute("set variable quality_only_practices = $p::varchar[]", {"p": practices})
        try:
            frames[frame] = cursor.execute(text, params).df()
        finally:
            if narrow:
                cursor.execute("set variable quality_only_practices = null::varchar[]")
    return frames


def _batches(cursor: duckdb.DuckDBPyConnection) -> list[tuple[BatchKey, datetime, int]]:
    """The group's batches in order: key, observation instant and staged slots."""
    rows = cursor.execute(
        f"select practice_ods, stream, load_id, observed_at, slot_rows from {CHECK_TABLES['batches']} "
        "order by practice_ods, stream, load_id"
    ).fetchall()
    return [((str(r[0]), str(r[1]), str(r[2])), _instant(r[3]), int(r[4])) for r in rows]


def _judge(
    batches: Sequence[tuple[BatchKey, datetime, int]],
    counts: Mapping[str, Mapping[BatchKey, Mapping[str, int]]],
    unexpected: Mapping[str, pd.DataFrame],
) -> list[BatchOutcome]:
    """One outcome per batch: the expectations GX failed on its rows, with DuckDB's counts."""
    judged: dict[BatchKey, dict[str, int]] = {}
    for name, rows in unexpected.items():
        if rows.empty:
            continue
        for key, n in rows.groupby(list(BATCH_KEY)).size().items():
            practice, stream, load = (str(k) for k in key)  # type: ignore[union-attr]
            judged.setdefault((practice, stream, load), {})[name] = int(n)
    outcomes = []
    for key, observed_at, slot_rows in batches:
        gx_found = judged.get(key, {})
        # GX is the judge; DuckDB counted every unexpected row, GX saw a sample of them.
        found = {
            c.name: max(gx_found[c.name], counts[c.frame].get(key, {}).get(c.name, 0))
            for c in CHECKS if gx_found.get(c.name)
        }
        failed = tuple(c.name for c in CHECKS if c.severity == CRITICAL and found.get(c.name))
        warned = tuple(c.name for c in CHECKS if c.severity == WARNING and found.get(c.name))
        outcomes.append(BatchOutcome(key[0], key[1], key[2], observed_at, slot_rows, failed, warned, found))
    return outcomes


def _instant(value: Any) -> datetime:
    import pandas as pd

    stamp = pd.Timestamp(value)
    instant: datetime = (stamp if stamp.tzinfo else stamp.tz_localize("UTC")).to_pydatetime()
    return instant


def _record(
    cursor: duckdb.DuckDBPyConnection, batches: Sequence[BatchOutcome],
    counts: Mapping[str, Mapping[BatchKey, Mapping[str, int]]],
    *, validated_by: str | None, now: datetime | None,
) -> None:
    """One group's results, batches, new quarantines and resolved ones, in one transaction."""
    results = [
        (b.load_id, b.practice_ods, b.stream, b.observed_at, c.frame, c.name, _snake(c.expectation),
         c.severity, not b.counts.get(c.name), int(counts[c.frame].get(
             (b.practice_ods, b.stream, b.load_id), {}).get("rows_checked", 0)), int(b.counts.get(c.name, 0)))
        for b in batches for c in CHECKS
    ]
    utc = pa.timestamp("us", tz="UTC")
    result_table = pa.table({
        name: pa.array([r[i] for r in results], kind) for i, (name, kind) in enumerate((
            ("load_id", pa.string()), ("practice_ods", pa.string()), ("stream", pa.string()),
            ("observed_at", utc), ("suite", pa.string()), ("expectation", pa.string()),
            ("expectation_type", pa.string()), ("severity", pa.string()), ("success", pa.bool_()),
            ("rows_checked", pa.int32()), ("unexpected_count", pa.int32()),
        ))
    })
    batch_table = pa.table({
        "load_id": pa.array([b.load_id for b in batches], pa.string()),
        "practice_ods": pa.array([b.practice_ods for b in batches], pa.string()),
        "stream": pa.array([b.stream for b in batches], pa.string()),
        "observed_at": pa.array([b.observed_at for b in batches], utc),
        "validated_by": pa.array([validated_by] * len(batches), pa.string()),
        "slot_rows": pa.array([b.slot_rows for b in batches], pa.int32()),
        "outcome": pa.array(["quarantined" if b.quarantined else "passed" for b in batches], pa.string()),
        "failed_expectations": pa.array([list(b.failed) for b in batches], pa.list_(pa.string())),
        "warnings": pa.array([list(b.warnings) for b in batches], pa.list_(pa.string())),
        "detail": pa.array([b.detail() for b in batches], pa.string()),
    })
    clock = {"now": now}
    cursor.register("quality_result_rows", result_table)
    cursor.register("quality_batch_rows", batch_table)
    try:
        with transaction(cursor):
            cursor.execute(sql_text("quality/record_quality_results.sql"), clock)
            cursor.execute(sql_text("quality/record_quality_batches.sql"), clock)
            cursor.execute(sql_text("quality/quarantine_failed_batches.sql"),
                           {**clock, "next_step": NEXT_STEP})
            cursor.execute(sql_text("quality/resolve_quarantine.sql"), clock)
    finally:
        cursor.unregister("quality_result_rows")
        cursor.unregister("quality_batch_rows")


@functools.cache
def _snake(class_name: str) -> str:
    return "".join(f"_{ch.lower()}" if ch.isupper() else ch for ch in class_name).lstrip("_")


# ---------------------------------------------------------------------- reading back


def open_quarantine(con: duckdb.DuckDBPyConnection) -> list[QuarantinedBatch]:
    """Every unresolved quarantined batch, oldest observation first."""
    rows = con.execute(sql_text("quality/open_quarantine.sql")).fetchall()
    return [QuarantinedBatch(r[0], r[1], r[2], r[3], tuple(r[4]), r[5], r[6]) for r in rows]


def summary_lines(quarantined: Sequence[QuarantinedBatch], *, validated: int | None = None) -> list[str]:
    """A readable summary: one block per quarantined batch with what failed and what to do."""
    lines = []
    if validated is not None:
        lines.append(f"validated {validated} batch(es); {len(quarantined)} quarantined batch(es) open")
    elif not quarantined:
        lines.append("no quarantined batches: everything validated was published")
    for q in quarantined:
        lines += [
            f"QUARANTINED {q.practice_ods} load {q.load_id} (stream {q.stream}, observed "
            f"{q.observed_at.isoformat()})",
            *(f"  - {part}" for part in q.detail.split("; ")),
            f"  next step: {q.next_step}",
        ]
    return lines


