"""The set-based gate judges as GX over every row did: same failed expectations, warnings, counts.

The reference is what the gate did before #22: pull every row of every check frame into pandas
and let GX validate them all (COMPLETE result format, unexpected rows indexed by batch). The
gate now counts each expectation's unexpected rows in DuckDB (rules compiled from the
catalogue) and gives GX only a sample of the failing rows; both must reach the same verdict.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import duckdb
import pandas as pd  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import warehouse.quality as quality
from tests.warehouse.test_quality import BAD_BATCHES, GOOD, add_practices, bundle, clean_slots, load
from warehouse.db import sql_text
from warehouse.quality_suites import BATCH_KEY, CHECKS, CRITICAL, WARNING, gx_context, run_suites

Verdict = dict[tuple[str, str, str], tuple[tuple[str, ...], tuple[str, ...], dict[str, int]]]


@pytest.fixture(scope="module")
def context() -> Any:
    return gx_context(None)


def reference_verdicts(cursor: duckdb.DuckDBPyConnection, context: Any) -> Verdict:
    """The gate before #22: GX over every row of the check tables (`quality.CHECK_TABLES`)."""
    frames = {name: cursor.execute(f"select * from {table}").df()
              for name, table in quality.CHECK_TABLES.items()}
    unexpected = run_suites(frames, context=context)
    counts: dict[tuple[str, str, str], dict[str, int]] = {}
    for name, rows in unexpected.items():
        for key, n in rows.groupby(list(BATCH_KEY)).size().items() if not rows.empty else []:
            counts.setdefault(tuple(str(k) for k in key), {})[name] = int(n)  # type: ignore[arg-type]
    verdicts: Verdict = {}
    for row in frames["batches"].itertuples(index=False):
        key = (str(row.practice_ods), str(row.stream), str(row.load_id))
        found = counts.get(key, {})
        verdicts[key] = (
            tuple(c.name for c in CHECKS if c.severity == CRITICAL and found.get(c.name)),
            tuple(c.name for c in CHECKS if c.severity == WARNING and found.get(c.name)),
            found,
        )
    return verdicts


def gate_verdicts(cursor: duckdb.DuckDBPyConnection, context: Any) -> Verdict:
    """The gate as it runs now, on the same check tables."""
    counts = quality._counts(cursor)
    unexpected = run_suites(quality._failing_rows(cursor, counts), context=context)
    return {
        (b.practice_ods, b.stream, b.load_id): (b.failed, b.warnings, dict(b.counts))
        for b in quality._judge(quality._batches(cursor), counts, unexpected)
    }


def test_every_kind_of_defect_gets_the_verdict_gx_gave_over_every_row(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, context: Any
) -> None:
    # One practice per defect of the gate's own tests, a clean one, all in one load.
    cases = sorted(BAD_BATCHES)
    practices = {f"J83{i:03d}": BAD_BATCHES[case][0]() for i, case in enumerate(cases)}
    add_practices(con, GOOD, *practices)
    load(con, tmp_path, "load-1", {GOOD: bundle(clean_slots()), **practices})

    cursor = con.cursor()
    cursor.execute("SET TimeZone = 'UTC'")
    cursor.execute(f"create temp table quality_pending as {sql_text('quality/pending_units.sql')}",
                   {"practices": None})
    quality._check_tables(cursor, sorted([GOOD, *practices]))
    expected = reference_verdicts(cursor, context)
    cursor.close()

    report = quality.validate_pending(con, data_dir=None, validated_by="load-1")
    judged = {(b.practice_ods, b.stream, b.load_id): (b.failed, b.warnings, dict(b.counts))
              for b in report.batches}
    assert judged == expected
    for (ods, _, _), (failed, _, _) in expected.items():
        if ods != GOOD:
            assert BAD_BATCHES[cases[int(ods[3:])]][1] in failed, "the reference sees each defect"
    assert expected[(GOOD, "slots", "load-1")][:2] == ((), ())
    # What is recorded per expectation is the reference's count and success too.
    recorded = con.execute(
        "select practice_ods, expectation, success, unexpected_count from meta.quality_result"
    ).fetchall()
    assert len(recorded) == len(expected) * len(CHECKS)
    for ods, name, success, count in recorded:
        found = expected[(ods, "slots", "load-1")][2].get(name, 0)
        assert (success, count) == (found == 0, found), (ods, name)


# ---------------------------------------------------------------------- generated check frames

KEYS = (("J82001", "slots", "load-1"), ("J82002", "slots", "load-1"), ("J82003\n", "slots", "load-2"),
        ("j8200", "nhs111", "load-2"))
IDS = ["1", "abc-1.2", "", "a" * 64, "a" * 65, "x y", "abc\n", "ab'c", "é", "١٢٣", "<b>", None]
BOOLS = [True, False, None]
VALUES: dict[str, list[Any]] = {
    "slot_id": IDS, "schedule_id": IDS, "location_id": IDS,
    "slot_status": ["free", "busy", "entered-in-error", "booked", "Free", "", None],
    "appointment_status": ["booked", "fulfilled", "noshow", "free", "", None],
    "delivery_channel": ["In-person", "Telephone", "Video", "Carrier pigeon", "", None],
    "slot_minutes": [0.0, 0.5, 1.0, 10.0, 120.0, 120.5, -5.0, None],
    "occurrences": [0, 1, 2, 3, None],
    "hours_behind_latest": [-1.0, 0.0, 26.0, 26.01, 100.0, None],
    "live_on_slot": [-1, 0, 1, 2, None],
}
# Frame -> column -> the values it is drawn from (columns not listed keep a constant).
DRAWN: dict[str, dict[str, list[Any]]] = {
    "batches": {"continuity_ok": BOOLS, "known_practice": BOOLS,
                "hours_behind_latest": VALUES["hours_behind_latest"]},
    "slots": {"slot_id": IDS, "status": VALUES["slot_status"], "delivery_channel": VALUES["delivery_channel"],
              "slot_minutes": VALUES["slot_minutes"], "start_before_end": BOOLS, "inside_window": BOOLS,
              "offset_matches_uk": BOOLS, "slot_id_occurrences": VALUES["occurrences"],
              "schedule_found": BOOLS},
    "schedules": {"schedule_id": IDS, "schedule_id_occurrences": VALUES["occurrences"],
                  "location_found": BOOLS},
    "locations": {"location_id": IDS, "organisation_referenced": BOOLS},
    "appointments": {"status": VALUES["appointment_status"], "past_not_booked": BOOLS,
                     "live_on_slot": VALUES["live_on_slot"]},
}


@st.composite
def frames(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    drawn: dict[str, list[dict[str, Any]]] = {"batches": [
        {"practice_ods": k[0], "stream": k[1], "load_id": k[2],
         "observed_at": datetime(2026, 4, 6, tzinfo=UTC), "slot_rows": 1,
         **{c: draw(st.sampled_from(v)) for c, v in DRAWN["batches"].items()}}
        for k in KEYS
    ]}
    for frame, columns in DRAWN.items():
        if frame != "batches":
            drawn[frame] = draw(st.lists(st.builds(
                lambda key, values: {"practice_ods": key[0], "stream": key[1], "load_id": key[2], **values},
                st.sampled_from(KEYS),
                st.fixed_dictionaries({c: st.sampled_from(v) for c, v in columns.items()}),
            ), max_size=12))
    return drawn


@pytest.fixture
def check_tables(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """The check tables, empty, with the columns the check SQL gives them."""
    cursor = con.cursor()
    cursor.execute("SET TimeZone = 'UTC'")
    cursor.execute(f"create temp table quality_pending as {sql_text('quality/pending_units.sql')}",
                   {"practices": None})
    quality._check_tables(cursor, ["J82001"])  # nothing pending: empty tables
    for name in quality.CHECK_VIEWS:  # a view the gate reads: a table of its columns to fill
        view = quality.CHECK_TABLES[name]
        cursor.execute(f"create temp table {view}_filled as select * from {view} limit 0")
        cursor.execute(f"drop view {view}")
        cursor.execute(f"alter table {view}_filled rename to {view}")
    yield cursor
    cursor.close()


def fill(cursor: duckdb.DuckDBPyConnection, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    for frame, table in quality.CHECK_TABLES.items():
        cursor.execute(f"delete from {table}")
        for row in rows[frame]:
            names = list(row)
            cursor.execute(f"insert into {table} ({', '.join(names)}) values ({', '.join('?' * len(names))})",
                           [row[n] for n in names])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=frames())
def test_generated_defects_get_the_verdict_gx_gave_over_every_row(
    check_tables: duckdb.DuckDBPyConnection, context: Any, rows: dict[str, list[dict[str, Any]]]
) -> None:
    fill(check_tables, rows)
    # A sample of 2 rows per batch and expectation: GX judges a sample, DuckDB counts them all.
    with mock.patch.object(quality, "SAMPLE_ROWS", 2):
        assert gate_verdicts(check_tables, context) == reference_verdicts(check_tables, context)


def test_gx_is_given_only_a_sample_of_the_failing_rows(check_tables: duckdb.DuckDBPyConnection) -> None:
    good = {"slot_id": "1", "status": "free", "delivery_channel": "Video", "slot_minutes": 10.0,
            "start_before_end": True, "inside_window": True, "offset_matches_uk": True,
            "slot_id_occurrences": 1, "schedule_found": True}
    key = dict(zip(BATCH_KEY, KEYS[0], strict=True))
    rows: dict[str, list[dict[str, Any]]] = {frame: [] for frame in quality.CHECK_TABLES}
    rows["batches"] = [{**key, "observed_at": datetime(2026, 4, 6, tzinfo=UTC), "slot_rows": 60,
                        "continuity_ok": True, "known_practice": True, "hours_behind_latest": 0.0}]
    rows["slots"] = [{**key, **good}] * 30 + [{**key, **good, "status": "booked"}] * 30
    fill(check_tables, rows)
    counts = quality._counts(check_tables)
    failing = quality._failing_rows(check_tables, counts)
    assert counts["slots"][KEYS[0]]["rows_checked"] == 60
    assert counts["slots"][KEYS[0]]["slot_status_valid"] == 30
    assert len(failing["slots"]) == quality.SAMPLE_ROWS
    assert set(failing["slots"]["status"]) == {"booked"}
    assert all(isinstance(f, pd.DataFrame) and f.empty for n, f in failing.items() if n != "slots")
