"""Data-quality gate on crafted landing payloads: each bad batch quarantined with its expectation named."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import duckdb
import orjson
import pytest

from common.uktime import format_uk
from tests.warehouse.conftest import OBSERVED_AT, land
from warehouse.loader import LandingFile, Warehouse
from warehouse.quality import open_quarantine, summary_lines, validate_pending

DAY = datetime(2026, 4, 6, 8, 0, tzinfo=UTC)  # a Monday in BST, inside the fixture window
# Named columns: V009 renamed ccg_code and appended icb_code and region_code.
DIM_PRACTICE_INSERT = (
    "insert into core.dim_practice (practice_ods, practice_name, kind, list_size, clinical_system, "
    "accepts_111_booking, nhs111_provider_ods, booking_hubs, sub_icb_code, pcn_code, "
    "nhs111_daily_quota, load_id) values "
)
GOOD, BAD = "J82001", "J82002"


def slot(slot_id: str, begins: datetime, minutes: int = 10, **changes: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Slot",
        "id": slot_id,
        "schedule": {"reference": "Schedule/S1"},
        "status": "free",
        "start": format_uk(begins),
        "end": format_uk(begins + timedelta(minutes=minutes)),
        "extension": [
            {
                "url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-DeliveryChannel-2",
                "valueCode": "In-person",
            }
        ],
    }
    resource.update(changes)
    return {"resource": resource}


def bundle(
    slots: list[dict[str, Any]], *, schedule: bool = True, location: bool = True,
    schedule_id: str = "S1", location_id: str = "L1",
) -> bytes:
    entries = list(slots)
    if schedule:
        entries.append({"resource": {
            "resourceType": "Schedule", "id": schedule_id, "actor": [{"reference": f"Location/{location_id}"}]
        }})
    if location:
        entries.append(
            {
                "resource": {
                    "resourceType": "Location",
                    "id": location_id,
                    "name": "Main surgery",
                    "managingOrganization": {"reference": "Organization/O1"},
                }
            }
        )
    return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries})


def clean_slots() -> list[dict[str, Any]]:
    return [slot(str(i), DAY + timedelta(minutes=10 * i)) for i in range(3)]


def add_practices(con: duckdb.DuckDBPyConnection, *ods_codes: str) -> None:
    """Practices needing one search per window (no NHS 111, no hubs)."""
    for ods in ods_codes:
        con.execute(
            DIM_PRACTICE_INSERT + "(?, 'Surgery', 'practice', 9000, 'EMIS Web', false, "
            "null, [], '10V', null, 3, 'test')",
            [ods],
        )


def load(
    con: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    load_id: str,
    bodies: dict[str, bytes],
    observed_at: datetime = OBSERVED_AT,
) -> None:
    files = [
        LandingFile(
            ods,
            land(
                tmp_path / load_id / f"{ods}.ndjson",
                ods,
                [("general", "none", body)],
                load_id=load_id,
                observed_at=observed_at,
            ),
        )
        for ods, body in bodies.items()
    ]
    results = Warehouse(con).load_practice_files(files, load_id=load_id)
    assert all(not isinstance(r, Exception) for r in results), results


def failed(con: duckdb.DuckDBPyConnection, ods: str) -> list[str]:
    rows = con.execute(
        "select failed_expectations from meta.quality_batch where practice_ods = ? "
        "order by observed_at desc, validated_at desc limit 1",
        [ods],
    ).fetchall()
    return list(rows[0][0])


BAD_BATCHES: dict[str, tuple[Callable[[], bytes], str]] = {
    "end before start": (
        lambda: bundle([*clean_slots(), slot("9", DAY + timedelta(hours=2), minutes=-10)]),
        "slot_start_before_end",
    ),
    "four-hour slot": (lambda: bundle([slot("9", DAY, minutes=240)]), "slot_length_plausible"),
    "unknown status": (lambda: bundle([slot("9", DAY, status="booked")]), "slot_status_valid"),
    "unknown channel": (
        lambda: bundle(
            [
                slot(
                    "9",
                    DAY,
                    extension=[
                        {
                            "url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-DeliveryChannel-2",
                            "valueCode": "Carrier pigeon",
                        }
                    ],
                )
            ]
        ),
        "slot_delivery_channel_valid",
    ),
    "duplicate slot id": (lambda: bundle([*clean_slots(), clean_slots()[0]]), "slot_id_unique"),
    "schedule not in bundle": (
        lambda: bundle([slot("9", DAY, schedule={"reference": "Schedule/S404"})]),
        "slot_schedule_resolves",
    ),
    "location not in bundle": (lambda: bundle(clean_slots(), location=False), "schedule_location_resolves"),
    "offset contradicts UK DST": (
        # 09:00 BST written as 08:00+00:00: the same instant, but the UK was on +01:00 then.
        lambda: bundle(
            [slot("9", DAY, start=DAY.isoformat(), end=(DAY + timedelta(minutes=10)).isoformat())]
        ),
        "slot_offset_matches_uk_time",
    ),
    # FHIR ids are [A-Za-z0-9-.]{1,64}; anything else is a provider defect (#18).
    "slot id with SQL in it": (lambda: bundle([slot("9'); DROP TABLE x; --", DAY)]), "slot_id_format"),
    "slot id with a path": (lambda: bundle([slot("../../etc", DAY)]), "slot_id_format"),
    "slot id with a newline": (lambda: bundle([slot("abc\n", DAY)]), "slot_id_format"),
    "slot id with markup": (lambda: bundle([slot("<script>", DAY)]), "slot_id_format"),
    "slot id of 65 characters": (lambda: bundle([slot("a" * 65, DAY)]), "slot_id_format"),
    "schedule id with a quote": (
        lambda: bundle([slot("9", DAY, schedule={"reference": "Schedule/S'1"})], schedule_id="S'1"),
        "schedule_id_format",
    ),
    "location id with a space": (lambda: bundle(clean_slots(), location_id="L 1"), "location_id_format"),
    "outside the search window": (
        lambda: bundle([slot("9", datetime(2027, 1, 4, 9, 0, tzinfo=UTC))]),
        "slot_inside_search_window",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_BATCHES))
def test_a_bad_batch_is_quarantined_with_its_expectation_while_a_clean_one_is_folded(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, case: str
) -> None:
    make_bad, expectation = BAD_BATCHES[case]
    add_practices(con, GOOD, BAD)
    load(con, tmp_path, "load-1", {GOOD: bundle(clean_slots()), BAD: make_bad()})
    report = validate_pending(con, data_dir=None, validated_by="load-1")
    Warehouse(con).build_models("load-1")

    assert [b.practice_ods for b in report.quarantined] == [BAD]
    assert expectation in failed(con, BAD), failed(con, BAD)
    assert failed(con, GOOD) == []
    history = dict(
        con.execute("select practice_ods, count(*) from core.fct_slot_history group by all").fetchall()
    )
    assert history == {GOOD: 3}, "the quarantined batch is not folded; the clean one is"
    assert (
        con.execute(
            "select count(*) from staging.stg_gpconnect__slots where practice_ods = ?", [BAD]
        ).fetchall()[0][0]
        > 0
    ), "its staging rows stay (nothing lost)"
    assert con.execute("select distinct practice_ods from core.dim_schedule").fetchall() == [(GOOD,)]
    shown = con.execute(
        "select practice_ods, failed_expectations from marts.mart_quarantined_batches"
    ).fetchall()
    assert len(shown) == 1 and shown[0][0] == BAD and expectation in shown[0][1]
    checks = con.execute(
        "select passed from marts.mart_data_quality_checks where practice_ods = ? and expectation = ?",
        [BAD, expectation],
    ).fetchall()
    assert checks == [(False,)]
    (open_batch,) = open_quarantine(con)
    text = "\n".join(summary_lines([open_batch]))
    assert f"QUARANTINED {BAD} load load-1" in text and expectation in text and "next step" in text


def test_a_re_run_after_the_source_is_fixed_promotes_the_batch(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    add_practices(con, GOOD, BAD)
    load(con, tmp_path, "load-1", {GOOD: bundle(clean_slots()), BAD: bundle([slot("9", DAY, minutes=240)])})
    validate_pending(con, data_dir=None)
    Warehouse(con).build_models("load-1")
    assert len(open_quarantine(con)) == 1

    # The same instant fetched again once fixed (what `slotsync rerun` does).
    load(con, tmp_path, "load-2", {BAD: bundle(clean_slots())})
    report = validate_pending(con, data_dir=None)
    Warehouse(con).build_models("load-2")

    assert [(b.practice_ods, b.quarantined) for b in report.batches] == [(BAD, False)]
    assert open_quarantine(con) == []
    assert con.execute("select resolution, resolved_by_load_id from meta.quarantine").fetchall() == [
        ("promoted", "load-2")
    ]
    history = dict(
        con.execute("select practice_ods, count(*) from core.fct_slot_history group by all").fetchall()
    )
    assert history == {GOOD: 3, BAD: 3}
    assert con.execute("select count(*) from marts.mart_quarantined_batches").fetchall() == [(0,)]


def test_a_later_passing_observation_supersedes_and_old_rows_stay_out(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    add_practices(con, BAD)
    load(con, tmp_path, "load-1", {BAD: bundle([slot("7", DAY, status="nonsense")])})
    validate_pending(con, data_dir=None)
    later = OBSERVED_AT + timedelta(hours=8)
    load(con, tmp_path, "load-2", {BAD: bundle(clean_slots())}, observed_at=later)
    validate_pending(con, data_dir=None)
    Warehouse(con).build_models("load-2")

    assert con.execute("select resolution from meta.quarantine").fetchall() == [("superseded",)]
    slots = {r[0] for r in con.execute("select slot_id from core.fct_slot_history").fetchall()}
    assert slots == {"0", "1", "2"}, "the quarantined observation never reaches history"


def test_a_practice_that_stops_returning_slots_is_flagged_once(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    add_practices(con, GOOD)
    con.execute(
        "insert into meta.load_ledger (load_id, flow_name, as_of, started_at, status) "
        "select unnest(['load-1', 'load-2', 'load-3']), 'nightly_sync', now(), now(), 'completed'"
    )
    # Twelve slots still ahead: an empty answer contradicts them (a few could just be booked out).
    twelve = [slot(str(i), DAY + timedelta(minutes=10 * i)) for i in range(12)]
    for i, body in enumerate([bundle(twelve), bundle([]), bundle([])], start=1):
        load(con, tmp_path, f"load-{i}", {GOOD: body}, observed_at=OBSERVED_AT + timedelta(days=i))
        validate_pending(con, data_dir=None)
        Warehouse(con).build_models(f"load-{i}")
        if i == 2:
            assert failed(con, GOOD) == ["slot_count_continuity"]
    # An empty diary seen twice in a row is accepted as real.
    assert failed(con, GOOD) == []
    assert con.execute("select resolution from meta.quarantine").fetchall() == [("superseded",)]


def test_an_empty_answer_after_the_last_few_slots_is_accepted(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # Late on a Friday an intraday run sees the evening and Saturday: three slots left, booked out.
    add_practices(con, GOOD)
    con.execute(
        "insert into meta.load_ledger (load_id, flow_name, as_of, started_at, status) "
        "select unnest(['load-1', 'load-2']), 'intraday_sync', now(), now(), 'completed'"
    )
    for i, body in enumerate([bundle(clean_slots()), bundle([])], start=1):
        load(con, tmp_path, f"load-{i}", {GOOD: body}, observed_at=OBSERVED_AT + timedelta(hours=i))
        validate_pending(con, data_dir=None)
        Warehouse(con).build_models(f"load-{i}")
    assert failed(con, GOOD) == []
    assert open_quarantine(con) == []


def test_validation_records_nothing_when_nothing_is_pending(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    add_practices(con, GOOD)
    load(con, tmp_path, "load-1", {GOOD: bundle(clean_slots())})
    first = validate_pending(con, data_dir=tmp_path / "data")
    again = validate_pending(con, data_dir=tmp_path / "data")
    assert len(first.batches) == 1 and again.batches == []
    assert (tmp_path / "data" / "quality" / "data_docs" / "index.html").exists()


def test_the_benchmark_measures_validation_per_million_rows() -> None:
    from warehouse.quality_suites import measure_validation_s_per_million_rows

    figure = measure_validation_s_per_million_rows(20_000, repetitions=1)
    assert figure > 0


def test_practices_validated_in_groups_are_judged_as_in_one(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # Groups of at most 4 staged slots: 3 groups (GOOD+BAD, then one clean practice each).
    others = [f"J8201{i}" for i in range(2)]
    add_practices(con, GOOD, BAD, *others)
    load(
        con,
        tmp_path,
        "load-1",
        {
            GOOD: bundle(clean_slots()),
            BAD: bundle([slot("9", DAY, minutes=240)]),
            **{ods: bundle(clean_slots()) for ods in others},
        },
    )
    report = validate_pending(con, data_dir=tmp_path / "data", validated_by="load-1", group_rows=4)
    Warehouse(con).build_models("load-1")

    assert sorted(b.practice_ods for b in report.batches) == sorted([GOOD, BAD, *others])
    assert [b.practice_ods for b in report.quarantined] == [BAD]
    assert report.rows["slots"] == 3 * 3 + 1
    assert con.execute("select count(*) from meta.quality_batch").fetchall() == [(4,)]
    history = dict(
        con.execute("select practice_ods, count(*) from core.fct_slot_history group by all").fetchall()
    )
    assert history == {ods: 3 for ods in [GOOD, *others]}
    # Three groups, one GX result each per suite, all under the load's run name.
    store = tmp_path / "data" / "quality" / "gx" / "uncommitted" / "validations"
    runs = store / "slotsync" / "slots" / "load-1"
    assert len([p for p in runs.iterdir() if p.is_dir()]) == 3


def _results(suite: Path, run_name: str, *stamps: str) -> None:
    for stamp in stamps:
        (suite / run_name / stamp).mkdir(parents=True)
        (suite / run_name / stamp / "slotsync-slots.json").write_text("{}")


def test_gx_keeps_the_newest_whole_validations_per_suite(tmp_path: Path) -> None:
    from warehouse.quality_suites import prune_results as _prune_results

    suite = tmp_path / "quality" / "gx" / "uncommitted" / "validations" / "slotsync" / "slots"
    _results(suite, "load-1", "20260101T000000Z", "20260101T000001Z")
    _results(suite, "load-2", "20260102T000000Z", "20260102T000001Z")
    _results(suite, "load-3", "20260103T000000Z", "20260103T000001Z", "20260103T000002Z")
    _prune_results(tmp_path, keep=5)
    assert sorted(p.name for p in suite.iterdir()) == ["load-2", "load-3"]
    _prune_results(tmp_path, keep=2)
    assert sorted(p.name for p in suite.iterdir()) == ["load-3"], "the newest is kept whole"
    assert len(list((suite / "load-3").iterdir())) == 3


def test_a_folder_gets_one_gx_context_when_two_threads_ask_at_once(tmp_path: Path) -> None:
    # A pipelined night makes the context in a thread as it starts while its first
    # validation may already ask for it: both must get the one context, made once.
    from concurrent.futures import ThreadPoolExecutor

    import warehouse.quality_suites as suites

    made: list[Path | None] = []
    real = suites._new_context

    def counted(data_dir: Path | None) -> object:
        made.append(data_dir)
        return real(data_dir)

    with mock.patch.object(suites, "_new_context", counted), ThreadPoolExecutor(2) as pool:
        first, second = pool.map(suites.gx_context, [tmp_path, tmp_path])
    assert first is second
    assert made == [tmp_path]
