"""The Great Expectations side of data quality: the checks, their suites and the runner.

`CHECKS` is the catalogue: one GX expectation per check, on a column of a check frame that
`warehouse/sql/quality/*.sql` computes. `unexpected_sql` compiles each expectation into the
SQL rule that is true for exactly the rows GX finds unexpected, so DuckDB counts them over a
whole night and GX is given only those rows to judge. `gx_context` writes the suites into a
GX context (a file context under `<data_dir>/quality`, with Data Docs, or an ephemeral one),
and `run_suites` runs them over frames and returns the unexpected rows' batch keys.
`warehouse/quality.py` decides what to validate and what a result means for a batch.

`import great_expectations` costs ~5 s, so it is imported only when a validation runs, or
when a pipelined night prepares the gate while its first practices are fetched (`gx_context`
from a thread: the writer's core is idle then, and its first validation finds the context made).
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

CRITICAL = "critical"  # a failure quarantines the practice's batch
WARNING = "warning"  # recorded and shown, never gates

ODS_PATTERN = r"^[A-Z][0-9]{5}$"
# FHIR `id` (STU3 datatypes): anything else in an id the warehouse keys on is a provider defect
# (quotes, path segments, newlines, markup), quarantined before it reaches core. \A..\Z, not
# ^..$: `$` would let a trailing newline through (GX tests each value with re.search).
FHIR_ID_PATTERN = r"\A[A-Za-z0-9\-\.]{1,64}\Z"
# FHIR STU3 SlotStatus and AppointmentStatus value sets; GP Connect 1.2.7 delivery channels.
SLOT_STATUSES = ("free", "busy", "busy-unavailable", "busy-tentative", "entered-in-error")
APPOINTMENT_STATUSES = ("proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow",
                        "entered-in-error")
DELIVERY_CHANNELS = ("In-person", "Telephone", "Video")
MIN_SLOT_MINUTES = 1
MAX_SLOT_MINUTES = 120
FRESH_HOURS = 26  # as `slotsync status` and the dashboard's stale threshold

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
DATA_DOCS_SITE = "slotsync"

# File contexts by project folder, and each context's GX result on an empty frame per suite.
_FILE_CONTEXTS: dict[Path, Any] = {}
_FILE_CONTEXTS_LOCK = threading.Lock()  # one context per folder, even when prepared from a thread
_EMPTY_RESULTS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


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
    Check("slot_id_format", "slots", "ExpectColumnValuesToMatchRegex", "slot_id",
          {"regex": FHIR_ID_PATTERN}, "slot ids that are not FHIR ids ([A-Za-z0-9-.], 1 to 64 characters)"),
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
    Check("schedule_id_format", "schedules", "ExpectColumnValuesToMatchRegex", "schedule_id",
          {"regex": FHIR_ID_PATTERN},
          "schedule ids that are not FHIR ids ([A-Za-z0-9-.], 1 to 64 characters)"),
    Check("schedule_id_unique", "schedules", "ExpectColumnValuesToBeBetween", "schedule_id_occurrences",
          {"min_value": 1, "max_value": 1}, "the same schedule id more than once in one response"),
    Check("schedule_location_resolves", "schedules", "ExpectColumnValuesToBeInSet", "location_found", _TRUE,
          "schedules whose Location is missing from the response"),
    Check("location_id_present", "locations", "ExpectColumnValueLengthsToBeBetween", "location_id",
          {"min_value": 1}, "locations without an id"),
    Check("location_id_format", "locations", "ExpectColumnValuesToMatchRegex", "location_id",
          {"regex": FHIR_ID_PATTERN},
          "location ids that are not FHIR ids ([A-Za-z0-9-.], 1 to 64 characters)"),
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


# ---------------------------------------------------------------------- the rules in SQL


def unexpected_sql(check: Check) -> str:
    """The SQL rule over the check frame that is true for exactly the rows GX finds unexpected.

    GX's column-map expectations skip null values (never unexpected), and so does every rule;
    a rule is never null. Regexes are GX's `re.search` written for RE2 (`_re2`).
    """
    column = f'"{check.column}"'
    kwargs = check.kwargs
    if check.expectation == "ExpectColumnValuesToMatchRegex":
        rule = f"not regexp_matches({column}, {_literal(_re2(kwargs['regex']))})"
    elif check.expectation == "ExpectColumnValuesToBeInSet":
        rule = f"{column} not in ({', '.join(_literal(v) for v in kwargs['value_set'])})"
    elif check.expectation in ("ExpectColumnValuesToBeBetween", "ExpectColumnValueLengthsToBeBetween"):
        value = column if check.expectation == "ExpectColumnValuesToBeBetween" else f"length({column})"
        bounds = [f"{value} {op} {_literal(kwargs[key])}"
                  for key, op in (("min_value", "<"), ("max_value", ">")) if kwargs.get(key) is not None]
        rule = " or ".join(bounds)
    else:
        raise ValueError(f"check {check.name}: no SQL rule for {check.expectation}")
    return f"({column} is not null and ({rule}))"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise ValueError(f"no SQL literal for {value!r}")


def _re2(pattern: str) -> str:
    """A Python `re.search` pattern as RE2 (DuckDB) reads it, or ValueError when unsure.

    `\\A`/`\\Z` are RE2's `^`/`$` (start and very end of the text); Python's own `$` also
    matches before a final newline, so a trailing `$` becomes `\\n?$`. Class escapes (`\\d`,
    `\\w`, `\\s`, `\\b`) mean Unicode in Python and ASCII in RE2: refused, spell the class out.
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escaped = pattern[i + 1:i + 2]
            if escaped in ("d", "D", "w", "W", "s", "S", "b", "B"):
                raise ValueError(f"regex {pattern!r}: spell \\{escaped} out as a class")
            out.append({"A": "^", "Z": "$"}.get(escaped, char + escaped))
            i += 2
            continue
        if char == "$":
            if i != len(pattern) - 1:
                raise ValueError(f"regex {pattern!r}: `$` only at the end")
            out.append("\\n?$")
        else:
            out.append(char)
        i += 1
    return "".join(out)


def data_docs_dir(data_dir: Path) -> Path:
    """Where GX Data Docs are built: `<data_dir>/quality/data_docs/` (open its index.html)."""
    return data_dir / "quality" / "data_docs"


def run_suites(
    frames: Mapping[str, pd.DataFrame], *, context: Any, run_name: str | None = None
) -> dict[str, pd.DataFrame]:
    """Run every frame's GX suite in `context`; expectation name -> its unexpected rows' batch keys.

    Frames without rows are validated too (every suite passes), so Data Docs show every
    validation. A file context keeps each result (under `run_name`) for Data Docs.
    """
    import pandas as pd
    from great_expectations.core.run_identifier import RunIdentifier

    unexpected: dict[str, pd.DataFrame] = {}
    for frame_name, frame in frames.items():
        # Each run its own instant: a group's result never overwrites another's.
        run_id = RunIdentifier(run_name=run_name, run_time=datetime.now(UTC))
        result = _stored_empty_result(context, frame_name, run_id) if frame.empty else None
        if result is None:
            result = _validation_definition(context, frame_name).run(
                batch_parameters={"dataframe": frame},
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": list(BATCH_KEY)},
                run_id=run_id,
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
        if frame.empty and result.success:
            _EMPTY_RESULTS.setdefault(context, {}).setdefault(frame_name, result)
    return unexpected


def _stored_empty_result(context: Any, frame_name: str, run_id: Any) -> Any:
    """GX's result on a frame without rows, stored again under `run_id`; None before GX's first.

    A suite over no rows has one outcome (every expectation passes over 0 elements) and GX
    spends ~0.1 s building its metric graph to say so: most groups of a night have no failing
    rows in most frames, so the first such result per context and suite is kept and each later
    one is a copy under its own run (and load time), stored as GX stores its own.
    """
    template = _EMPTY_RESULTS.get(context, {}).get(frame_name)
    if template is None:
        return None
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    result = copy.deepcopy(template)
    result.meta["run_id"] = run_id
    result.meta["validation_time"] = run_id.run_time
    result.meta.setdefault("batch_markers", {})["ge_load_time"] = f"{run_id.run_time:%Y%m%dT%H%M%S.%fZ}"
    suite = ExpectationSuiteIdentifier(name=SUITE_PREFIX + frame_name)
    batch_id = result.results[0].expectation_config.kwargs["batch_id"] if result.results else frame_name
    context.validation_results_store.store_validation_results(
        suite_validation_result=result,
        suite_validation_result_identifier=ValidationResultIdentifier(
            expectation_suite_identifier=suite, run_id=run_id, batch_identifier=batch_id),
        expectation_suite_identifier=suite,
    )
    return result


def prune_results(data_dir: Path, keep: int | None = None) -> None:
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


def gx_context(data_dir: Path | None) -> Any:
    """A GX context with the suites as defined here (file context under `<data_dir>/quality`).

    A file context is made once per project folder and process (~0.4 s: config, five suites
    and validation definitions written), then reused while its project file exists: a
    pipelined night validates each batch of practices as it lands, tens of times. A caller
    that asks while another thread makes the folder's context waits for that one.
    """
    if data_dir is None:
        return _new_context(None)
    root = (data_dir / "quality").resolve()
    with _FILE_CONTEXTS_LOCK:
        context = _FILE_CONTEXTS.get(root)
        if context is None or not (root / "gx" / "great_expectations.yml").exists():
            context = _FILE_CONTEXTS[root] = _new_context(data_dir)
        return context


def _new_context(data_dir: Path | None) -> Any:
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


# ---------------------------------------------------------------------- benchmark


def measure_validation_s_per_million_rows(rows: int = 1_000_000, *, repetitions: int = 3) -> float:
    """Seconds GX alone takes to validate the slot suite over `rows` synthetic slots, per million.

    Not the gate's cost (GX is given only failing rows; `slotsync bench` times the gate itself,
    lab/bench_gate.py): what judging every row in GX would cost, for comparison.

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
    context = gx_context(None)
    run_suites({"slots": frame.head(1000)}, context=context)  # warm-up: imports and caches
    timings = []
    for _ in range(max(1, repetitions)):
        began = time.perf_counter()
        run_suites({"slots": frame}, context=context)
        timings.append(time.perf_counter() - began)
    return float(np.median(timings)) * 1_000_000 / rows
