"""Data quality: Great Expectations suites that gate what gets published.

What is validated: every *batch* waiting to be folded, i.e. one practice's units of one load in
one window stream (`meta.sync_window` rows sharing practice, stream and load id, not folded
yet, never validated). The checks that need other rows or tables (duplicates, references,
UK offsets, continuity) are computed in DuckDB as boolean or count columns
(`warehouse/sql/quality/*.sql`); GX validates those columns and the raw identifiers and
vocabularies, so every failure carries the name of an expectation. The suites are code
(`CHECKS`), written into the GX file context on each run with `add_or_update`.

Why pandas and not GX's SQL data source: pointed at DuckDB (duckdb_engine) every
expectation fails with an empty metric result, and regexes are not supported for that
dialect. Pulling the check frames from the writer's connection (`con.cursor()`; a second
connection to the same file is refused in-process) and validating them in pandas is fast, and
per-practice failures are read from GX's `unexpected_index_list` (indexed by practice, stream
and load). The frames are pulled a group of practices at a time (about `VALIDATE_GROUP_ROWS` staged
slots each), each group judged and recorded in its own transaction: a whole England night
(29 M slots) in one pandas frame needed over 20 GB. The check SQL filters staging by the
group's practice range as well as its units, so each group reads only its own row groups.

The gate: a batch failing a *critical* expectation is quarantined (`meta.quarantine`): its
units are never folded into `core.fct_slot_history` and its staging rows never feed core dims
or marts (the models anti-join `meta.quarantine` on practice and load id), but nothing is
deleted. *Warnings* (freshness, appointment rules) are recorded and shown, never gate.
A later passing batch of the same practice resolves the quarantine: `promoted` when it is a
re-observation of the same instant (a re-run once the source is fixed), `superseded` when it
is a later observation. Every batch's results land in `meta.quality_batch` and
`meta.quality_result` (published as `mart_data_quality_checks` / `mart_quarantined_batches`),
and GX Data Docs are built into `<data_dir>/quality/data_docs/`.

A batch that a crash left unvalidated is validated by the next load (or `slotsync validate`)
before that load's fold. One edge remains: when a later observation replaces a unit whose
earlier observation is still unfolded, the loader folds the earlier one first, in the
practice's transaction (warehouse/loader.py), without waiting for its validation; quarantined
units are skipped there too.

`import great_expectations` costs ~5 s, so it is imported only when a validation runs.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from warehouse.db import sql_text

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

CRITICAL = "critical"  # a failure quarantines the practice's batch
WARNING = "warning"  # recorded and shown, never gates

ODS_PATTERN = r"^[A-Z][0-9]{5}$"
# FHIR STU3 SlotStatus and AppointmentStatus value sets; GP Connect 1.2.7 delivery channels.
SLOT_STATUSES = ("free", "busy", "busy-unavailable", "busy-tentative", "entered-in-error")
APPOINTMENT_STATUSES = ("proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow",
                        "entered-in-error")
DELIVERY_CHANNELS = ("In-person", "Telephone", "Video")
MIN_SLOT_MINUTES = 1
MAX_SLOT_MINUTES = 120
FRESH_HOURS = 26  # as `slotsync status` and the dashboard's stale threshold

# The staged rows of the batches being validated, as temp tables the check frames read.
STAGED_ROWS = {
    "quality_slots": "staging.stg_gpconnect__slots",
    "quality_schedules": "staging.stg_gpconnect__schedules",
    "quality_locations": "staging.stg_gpconnect__locations",
}
# Each check frame: the SQL that computes it (warehouse/sql/quality/) and its GX suite.
FRAMES: dict[str, str] = {
    "batches": "quality/batch_checks.sql",
    "slots": "quality/slot_checks.sql",
    "schedules": "quality/schedule_checks.sql",
    "locations": "quality/location_checks.sql",
    "appointments": "quality/appointment_checks.sql",
}
BATCH_KEY = ("practice_ods", "stream", "load_id")
SUITE_PREFIX = "slotsync."
DOCS_KEEP_RESULTS = 30  # per suite, GX's own copy of results for Data Docs (meta.quality_* keep all)
# Staged slots whose check frames are pulled and validated together (whole practices; one
# larger practice is a group of its own): bounds memory whatever the estate's size. A frame
# costs ~170 MB and GX ~230 MB more per million rows.
VALIDATE_GROUP_ROWS = 300_000
DATA_DOCS_SITE = "slotsync"


@dataclass(frozen=True)
class Check:
    """One expectation of a suite, with a stable name and what a failure means."""

    name: str
    frame: str
    expectation: str  # GX expectation class in great_expectations.expectations
    column: str
    kwargs: Mapping[str, Any]
    meaning: str
    severity: str = CRITICAL


_TRUE = {"value_set": [True]}

CHECKS: tuple[Check, ...] = (
    # ---------------------------------------------------------------- batches (per practice)
    Check("practice_ods_format", "batches", "ExpectColumnValuesToMatchRegex", "practice_ods",
          {"regex": ODS_PATTERN}, "the practice ODS code is not a letter and five digits"),
    Check("practice_in_registry", "batches", "ExpectColumnValuesToBeInSet", "known_practice", _TRUE,
          "the practice is not in the registry the load used"),
    Check("slot_count_continuity", "batches", "ExpectColumnValuesToBeInSet", "continuity_ok", _TRUE,
          "the practice returned slots at its previous observation and none now, while at least 10 "
          "slots were still expected free in the window"),
    Check("batch_freshness", "batches", "ExpectColumnValuesToBeBetween", "hours_behind_latest",
          {"min_value": 0, "max_value": FRESH_HOURS},
          f"the batch was observed more than {FRESH_HOURS} h before the newest observation", WARNING),
    # ---------------------------------------------------------------- slots
    Check("slot_id_present", "slots", "ExpectColumnValueLengthsToBeBetween", "slot_id", {"min_value": 1},
          "slots without an id"),
    Check("slot_id_unique", "slots", "ExpectColumnValuesToBeBetween", "slot_id_occurrences",
          {"min_value": 1, "max_value": 1}, "the same slot id more than once in one response"),
    Check("slot_status_valid", "slots", "ExpectColumnValuesToBeInSet", "status",
          {"value_set": list(SLOT_STATUSES)}, "slot status outside the FHIR STU3 value set"),
    Check("slot_delivery_channel_valid", "slots", "ExpectColumnValuesToBeInSet", "delivery_channel",
          {"value_set": list(DELIVERY_CHANNELS)}, "delivery channel not In-person, Telephone or Video"),
    Check("slot_start_before_end", "slots", "ExpectColumnValuesToBeInSet", "start_before_end", _TRUE,
          "slots that end before (or when) they start"),
    Check("slot_length_plausible", "slots", "ExpectColumnValuesToBeBetween", "slot_minutes",
          {"min_value": MIN_SLOT_MINUTES, "max_value": MAX_SLOT_MINUTES},
          f"slots shorter than {MIN_SLOT_MINUTES} or longer than {MAX_SLOT_MINUTES} minutes"),
    Check("slot_inside_search_window", "slots", "ExpectColumnValuesToBeInSet", "inside_window", _TRUE,
          "slots outside the search window that returned them"),
    Check("slot_offset_matches_uk_time", "slots", "ExpectColumnValuesToBeInSet", "offset_matches_uk", _TRUE,
          "time offsets that contradict UK daylight saving (Europe/London) at that instant"),
    Check("slot_schedule_resolves", "slots", "ExpectColumnValuesToBeInSet", "schedule_found", _TRUE,
          "slots referencing a Schedule that is not in the response"),
    # ---------------------------------------------------------------- schedules, locations
    Check("schedule_id_present", "schedules", "ExpectColumnValueLengthsToBeBetween", "schedule_id",
          {"min_value": 1}, "schedules without an id"),
    Check("schedule_id_unique", "schedules", "ExpectColumnValuesToBeBetween", "schedule_id_occurrences",
          {"min_value": 1, "max_value": 1}, "the same schedule id more than once in one response"),
    Check("schedule_location_resolves", "schedules", "ExpectColumnValuesToBeInSet", "location_found", _TRUE,
          "schedules whose Location is missing from the response"),
    Check("location_id_present", "locations", "ExpectColumnValueLengthsToBeBetween", "location_id",
          {"min_value": 1}, "locations without an id"),
    # A warning: managingOrganization is optional in STU3 (0..1) and the practice is known from
    # the registry, so a missing link says nothing wrong about the slots themselves.
    Check("location_organisation_referenced", "locations", "ExpectColumnValuesToBeInSet",
          "organisation_referenced", _TRUE, "locations that name no managing Organization", WARNING),
    # ---------------------------------------------------------------- appointments (warnings)
    Check("appointment_status_valid", "appointments", "ExpectColumnValuesToBeInSet", "status",
          {"value_set": list(APPOINTMENT_STATUSES)}, "appointment status outside the FHIR STU3 value set",
          WARNING),
    Check("appointment_past_not_booked", "appointments", "ExpectColumnValuesToBeInSet", "past_not_booked",
          _TRUE, "appointments that ended before the observation but are still booked", WARNING),
    Check("appointment_one_live_per_slot", "appointments", "ExpectColumnValuesToBeBetween", "live_on_slot",
          {"min_value": 0, "max_value": 1}, "two or more live appointments on one slot", WARNING),
)
CHECKS_BY_NAME = {c.name: c for c in CHECKS}

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
    """What one validation did: the batches it judged and how long GX took."""

    batches: list[BatchOutcome] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # frame -> rows validated
    extract_s: float = 0.0
    validate_s: float = 0.0
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
) -> ValidationReport:
    """Validate every batch waiting to be folded, record the results, quarantine failures.

    Call it after loading and before `Warehouse.build_models` (whose fold skips quarantined
    batches). `data_dir` is where the GX project and Data Docs go (`<data_dir>/quality/`);
    None validates in an ephemeral context without Data Docs. Practices are validated in
    groups of about `group_rows` staged slots, each recorded in its own transaction (a crash
    between groups leaves the rest pending for the next run). Idempotent: a batch is validated once;
    running it again with nothing pending records nothing.
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
        context = _gx_context(data_dir)
        # One GX run name per validation: Data Docs list a night's groups together.
        run_name = validated_by or f"validate-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
        for group in groups:
            began = time.perf_counter()
            frames = _extract(cursor, group)
            report.extract_s += time.perf_counter() - began
            for name, frame in frames.items():
                report.rows[name] = report.rows.get(name, 0) + len(frame)
            began = time.perf_counter()
            unexpected = run_suites(frames, context=context, run_name=run_name)
            report.validate_s += time.perf_counter() - began
            batches = _judge(frames, unexpected)
            _record(cursor, batches, frames, validated_by=validated_by, now=now)
            report.batches.extend(batches)
            del frames, unexpected  # the next group's frames replace these
        if data_dir is not None:
            _prune_results(data_dir)
            context.build_data_docs(site_names=[DATA_DOCS_SITE])
            report.data_docs = str(data_docs_dir(data_dir) / "index.html")
    finally:
        for temp in ("quality_units", "quality_pending", *STAGED_ROWS):
            cursor.execute(f"drop table if exists {temp}")
        cursor.close()
    return report


def data_docs_dir(data_dir: Path) -> Path:
    """Where GX Data Docs are built: `<data_dir>/quality/data_docs/` (open its index.html)."""
    return data_dir / "quality" / "data_docs"


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


def _extract(cursor: duckdb.DuckDBPyConnection, practices: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The check frames of the pending batches of `practices` (units from `quality_pending`)."""
    cursor.execute(
        "create or replace temp table quality_units as "
        "select * from quality_pending where practice_ods in (select unnest($practices::varchar[]))",
        {"practices": list(practices)},
    )
    first, last = cursor.execute("select min(observed_at), max(observed_at) from quality_units").fetchall()[0]
    # Practices are consecutive in ODS order: the range lets DuckDB skip other row groups.
    bounds = {"first_observed": first, "last_observed": last,
              "first_practice": min(practices), "last_practice": max(practices)}
    # The batches' staged rows, read once and shared by the check frames that need them.
    staged_rows = sql_text("quality/int_batch_staged_rows.sql")
    for temp, staged in STAGED_ROWS.items():
        cursor.execute(
            f"create or replace temp table {temp} as {staged_rows.replace('{{ staged }}', staged)}",
            bounds,
        )
    frames: dict[str, pd.DataFrame] = {}
    for name, path in FRAMES.items():
        text = sql_text(path)
        params = {k: v for k, v in bounds.items() if f"${k}" in text}
        frames[name] = cursor.execute(text, params).df()
    return frames


def run_suites(
    frames: Mapping[str, pd.DataFrame], *, context: Any, run_name: str | None = None
) -> dict[str, pd.DataFrame]:
    """Run every frame's GX suite in `context`; expectation name -> its unexpected rows' batch keys.

    Frames without rows are not validated (nothing to fail). A file context keeps each result
    (under `run_name`) for Data Docs.
    """
    import pandas as pd
    from great_expectations.core.run_identifier import RunIdentifier

    unexpected: dict[str, pd.DataFrame] = {}
    for frame_name, frame in frames.items():
        if frame.empty:
            continue
        result = _validation_definition(context, frame_name).run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": list(BATCH_KEY)},
            # Each run its own instant: a group's result never overwrites another's.
            run_id=RunIdentifier(run_name=run_name, run_time=datetime.now(UTC)),
        )
        for outcome in result.results:
            config = outcome.expectation_config
            name = str((config.meta or {}).get("check"))
            rows = outcome.result.get("unexpected_index_list") or []
            if not outcome.success and not rows and "'raised_exception': True" in str(outcome.exception_info):
                raise RuntimeError(f"expectation {name} could not run: {outcome.exception_info}")
            unexpected[name] = pd.DataFrame(
                [{k: r[k] for k in BATCH_KEY} for r in rows], columns=list(BATCH_KEY)
            )
    return unexpected


def _prune_results(data_dir: Path, keep: int | None = None) -> None:
    """Keep only the newest validations' GX results per suite (and their pages), about `keep`.

    Data Docs re-render every stored result on each build, so an unbounded store would make
    every load slower than the last; the warehouse keeps the full history (meta.quality_*).
    Results sit in `validations/<suite prefix>/<suite>/<run name>/<run time>/`, one run name
    per validation and one run time per practice group. Whole validations are kept, newest
    first, while they total at most `keep` results; the newest is always kept whole.
    """
    keep = DOCS_KEEP_RESULTS if keep is None else keep
    store = data_dir / "quality" / "gx" / "uncommitted" / "validations"
    for root in (store, data_docs_dir(data_dir) / "validations"):
        for suite in root.glob("*/*"):
            runs = [(sorted(p.name for p in run.iterdir() if p.is_dir()), run)
                    for run in suite.iterdir() if run.is_dir()]
            runs.sort(key=lambda r: r[0][-1] if r[0] else "", reverse=True)  # newest result first
            kept = 0
            for times, run in runs:
                if kept and kept + len(times) > keep:
                    shutil.rmtree(run, ignore_errors=True)
                    continue
                kept += len(times)


def _gx_context(data_dir: Path | None) -> Any:
    """A GX context with the suites as defined here (file context under `<data_dir>/quality`)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no usage statistics, works offline
    # GX announces every temporary docs folder at INFO: noise in a nightly run's log.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context: Any
    if data_dir is None:
        context = gx.get_context(mode="ephemeral")
    else:
        root = data_dir / "quality"
        root.mkdir(parents=True, exist_ok=True)
        context = gx.get_context(mode="file", project_root_dir=str(root))
        site: Any = {
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(data_docs_dir(data_dir).resolve())},
        }
        sites = context.get_site_names()
        if "local_site" in sites:
            context.delete_data_docs_site("local_site")
        if DATA_DOCS_SITE in sites:
            context.update_data_docs_site(DATA_DOCS_SITE, site)
        else:
            context.add_data_docs_site(DATA_DOCS_SITE, site)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_or_update_pandas("slotsync")
    for frame_name in FRAMES:
        suite = gx.ExpectationSuite(name=SUITE_PREFIX + frame_name, expectations=_expectations(frame_name))
        context.suites.add_or_update(suite)
        asset = source.add_dataframe_asset(frame_name)
        batch = asset.add_batch_definition_whole_dataframe("whole")
        context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=SUITE_PREFIX + frame_name, data=batch,
                                    suite=context.suites.get(SUITE_PREFIX + frame_name))
        )
    return context


def _validation_definition(context: Any, frame_name: str) -> Any:
    return context.validation_definitions.get(SUITE_PREFIX + frame_name)


def _expectations(frame_name: str) -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        getattr(gxe, c.expectation)(
            column=c.column, **c.kwargs, meta={"check": c.name, "severity": c.severity, "meaning": c.meaning}
        )
        for c in CHECKS if c.frame == frame_name
    ]


def _judge(frames: Mapping[str, pd.DataFrame], unexpected: Mapping[str, pd.DataFrame]) -> list[BatchOutcome]:
    """One outcome per batch: its failed critical expectations and warnings, with counts."""
    batches = frames["batches"]
    counts: dict[tuple[str, str, str], dict[str, int]] = {}
    for name, rows in unexpected.items():
        if rows.empty:
            continue
        for key, n in rows.groupby(list(BATCH_KEY)).size().items():
            practice, stream, load = (str(k) for k in key)  # type: ignore[union-attr]
            counts.setdefault((practice, stream, load), {})[name] = int(n)
    outcomes = []
    for row in batches.itertuples(index=False):
        key = (str(row.practice_ods), str(row.stream), str(row.load_id))
        found = counts.get(key, {})
        failed = tuple(c.name for c in CHECKS if c.severity == CRITICAL and found.get(c.name))
        warned = tuple(c.name for c in CHECKS if c.severity == WARNING and found.get(c.name))
        outcomes.append(BatchOutcome(key[0], key[1], key[2], _instant(row.observed_at), int(row.slot_rows),
                                     failed, warned, found))
    return outcomes


def _instant(value: Any) -> datetime:
    import pandas as pd

    stamp = pd.Timestamp(value)
    instant: datetime = (stamp if stamp.tzinfo else stamp.tz_localize("UTC")).to_pydatetime()
    return instant


def _record(
    cursor: duckdb.DuckDBPyConnection, batches: Sequence[BatchOutcome], frames: Mapping[str, pd.DataFrame],
    *, validated_by: str | None, now: datetime | None,
) -> None:
    """One group's results, batches, new quarantines and resolved ones, in one transaction."""
    rows_per_batch = {
        name: frame.groupby(list(BATCH_KEY)).size().to_dict() if not frame.empty else {}
        for name, frame in frames.items()
    }
    results = [
        (b.load_id, b.practice_ods, b.stream, b.observed_at, c.frame, c.name, _snake(c.expectation),
         c.severity, not b.counts.get(c.name), int(rows_per_batch[c.frame].get(
             (b.practice_ods, b.stream, b.load_id), 0)), int(b.counts.get(c.name, 0)))
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
    cursor.execute("BEGIN TRANSACTION")
    try:
        cursor.register("quality_result_rows", result_table)
        cursor.register("quality_batch_rows", batch_table)
        cursor.execute(
            "insert or replace into meta.quality_result by name "
            "select *, coalesce($now::timestamptz, now()) as validated_at from quality_result_rows",
            clock,
        )
        cursor.execute(
            "insert or replace into meta.quality_batch by name "
            "select * exclude (detail), coalesce($now::timestamptz, now()) as validated_at "
            "from quality_batch_rows",
            clock,
        )
        cursor.execute(
            """
            insert or replace into meta.quarantine by name
            select load_id, practice_ods, stream, observed_at, failed_expectations, detail,
                   $next_step as next_step, coalesce($now::timestamptz, now()) as quarantined_at,
                   null as resolved_at, null as resolved_by_load_id, null as resolution
            from quality_batch_rows
            where outcome = 'quarantined'
            """,
            {**clock, "next_step": NEXT_STEP},
        )
        # A passing batch resolves every open quarantine of the practice it re-observes or follows.
        cursor.execute(
            """
            update meta.quarantine as q
            set resolved_at = coalesce($now::timestamptz, now()),
                resolved_by_load_id = b.load_id,
                resolution = case when b.observed_at = q.observed_at then 'promoted' else 'superseded' end
            from (
                select practice_ods, stream, arg_max(load_id, observed_at) as load_id,
                       max(observed_at) as observed_at
                from quality_batch_rows
                where outcome = 'passed'
                group by all
            ) as b
            where q.practice_ods = b.practice_ods and q.stream = b.stream
              and q.resolved_at is null and q.observed_at <= b.observed_at
            """,
            clock,
        )
        cursor.execute("COMMIT")
    except Exception:
        cursor.execute("ROLLBACK")
        raise
    finally:
        cursor.unregister("quality_result_rows")
        cursor.unregister("quality_batch_rows")


def _snake(class_name: str) -> str:
    return "".join(f"_{ch.lower()}" if ch.isupper() else ch for ch in class_name).lstrip("_")


# ---------------------------------------------------------------------- reading back


def open_quarantine(con: duckdb.DuckDBPyConnection) -> list[QuarantinedBatch]:
    """Every unresolved quarantined batch, oldest observation first."""
    rows = con.execute(
        "select practice_ods, stream, load_id, observed_at, failed_expectations, detail, next_step "
        "from meta.quarantine where resolved_at is null order by observed_at, practice_ods, load_id"
    ).fetchall()
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


# ---------------------------------------------------------------------- benchmark


def measure_validation_s_per_million_rows(rows: int = 1_000_000, *, repetitions: int = 3) -> float:
    """Seconds GX takes to validate the slot suite over `rows` synthetic slots, per million rows.

    The frame has the columns and dtypes `slot_checks.sql` produces (pandas 3 `str` text,
    booleans, floats); a few rows break rules so the COMPLETE result format has failures to
    index. Median of `repetitions` runs, ephemeral context (no Data Docs), warm-up excluded.
    """
    import numpy as np
    import pandas as pd

    index = np.arange(rows)
    frame = pd.DataFrame({
        "practice_ods": pd.Series(np.char.add("J", (82000 + index % 6300).astype(str)), dtype="str"),
        "stream": pd.Series(["slots"] * rows, dtype="str"),
        "load_id": pd.Series(["bench-load"] * rows, dtype="str"),
        "slot_id": pd.Series(index.astype(str), dtype="str"),
        "status": pd.Series(["free"] * rows, dtype="str"),
        "delivery_channel": pd.Series(["In-person"] * rows, dtype="str"),
        "slot_minutes": np.full(rows, 10.0),
        "start_before_end": np.ones(rows, dtype=bool),
        "inside_window": np.ones(rows, dtype=bool),
        "offset_matches_uk": np.ones(rows, dtype=bool),
        "slot_id_occurrences": np.ones(rows, dtype=np.int64),
        "schedule_found": np.ones(rows, dtype=bool),
    })
    frame.loc[::100_000, "slot_minutes"] = 0.0
    frame.loc[::250_000, "offset_matches_uk"] = False
    context = _gx_context(None)
    run_suites({"slots": frame.head(1000)}, context=context)  # warm-up: imports and caches
    timings = []
    for _ in range(max(1, repetitions)):
        began = time.perf_counter()
        run_suites({"slots": frame}, context=context)
        timings.append(time.perf_counter() - began)
    return float(np.median(timings)) * 1_000_000 / rows


@functools.cache
def validation_s_per_million_rows() -> float:
    """The benchmark's figure (`slotsync bench`), measured once per process."""
    return round(measure_validation_s_per_million_rows(), 3)
