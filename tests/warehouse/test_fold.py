"""Folding complete observations into core.fct_slot_history: set-based, once per load, self-healing."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.gpconnect.client import SlotSearchResponse
from connectors.gpconnect.windows import SearchWindow
from tests.reliability import Result, record
from tests.warehouse.conftest import OBSERVED_AT, land
from warehouse import fold as loader
from warehouse.db import open_warehouse
from warehouse.integrity import table_hashes
from warehouse.landing import LandedResponse, landing_path, write_landing_file
from warehouse.loader import LandingFile, PracticeLoad, Warehouse

PRACTICE = "J82001"
# Named columns: V009 renamed ccg_code and appended icb_code and region_code.
DIM_PRACTICE_INSERT = (
    "insert into core.dim_practice (practice_ods, practice_name, kind, list_size, clinical_system, "
    "accepts_111_booking, nhs111_provider_ods, booking_hubs, sub_icb_code, pcn_code, "
    "nhs111_daily_quota, load_id) values "
)
GENERAL = ("general", "none")
NHS111 = ("nhs111", "urgent-care|NHS111")
DAY = datetime(2026, 4, 6, 9, 0, tzinfo=UTC)  # a Monday, inside the fixture window
LATER = OBSERVED_AT + timedelta(hours=8)


def bundle(*slot_ids: str) -> bytes:
    """A searchset with the given slots (10 minutes each from DAY) and their schedule."""
    entries = [
        {
            "resource": {
                "resourceType": "Slot",
                "id": slot_id,
                "schedule": {"reference": "Schedule/S1"},
                "status": "free",
                "start": (DAY + timedelta(minutes=10 * int(slot_id))).isoformat(),
                "end": (DAY + timedelta(minutes=10 * int(slot_id) + 10)).isoformat(),
            }
        }
        for slot_id in slot_ids
    ]
    entries.append(
        {"resource": {"resourceType": "Schedule", "id": "S1", "actor": [{"reference": "Location/L1"}]}}
    )
    return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries})


def add_practice(con: duckdb.DuckDBPyConnection, ods: str = PRACTICE) -> None:
    """A practice that needs two searches per window: no filter and its NHS 111 provider."""
    con.execute(
        DIM_PRACTICE_INSERT + "(?, 'Surgery', 'practice', 9000, 'EMIS Web', true, "
        "'NHS111', [], null, null, 3, 'test')",
        [ods],
    )


def load(
    warehouse: Warehouse,
    tmp_path: Path,
    load_id: str,
    observed_at: datetime,
    searches: list[tuple[tuple[str, str], bytes]],
) -> None:
    path = land(
        tmp_path / f"{load_id}.ndjson",
        PRACTICE,
        [(role, key, body) for (role, key), body in searches],
        load_id=load_id,
        observed_at=observed_at,
    )
    warehouse.load_practice_file(path, load_id=load_id, practice_ods=PRACTICE)


def history(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[object, ...]]:
    rows = con.execute(
        "select slot_id, first_seen_at, last_seen_at, last_checked_at, times_seen, first_audience, "
        "last_audience, ever_nhs111, disappeared_at, reappeared_count from core.fct_slot_history"
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


@pytest.fixture
def warehouse(con: duckdb.DuckDBPyConnection) -> Warehouse:
    add_practice(con)
    return Warehouse(con)


def test_loading_does_not_fold_until_asked(warehouse: Warehouse, tmp_path: Path) -> None:
    first = [(GENERAL, bundle("1", "2")), (NHS111, bundle("1", "2", "3"))]
    load(warehouse, tmp_path, "l1", OBSERVED_AT, first)
    assert history(warehouse.con) == {}
    assert warehouse.fold_slot_history() == 1
    folded = history(warehouse.con)
    assert set(folded) == {"1", "2", "3"}
    # Returned to the unfiltered search: general; only to the 111 provider's: reserved for 111.
    assert folded["1"][4] == "general" and folded["3"][4] == "nhs111" and folded["3"][6] is True
    assert folded["1"][:4] == (OBSERVED_AT, OBSERVED_AT, OBSERVED_AT, 1)
    pending = warehouse.con.execute("select count(*) from meta.sync_window where folded_at is null")
    assert pending.fetchall() == [(0,)]
    assert warehouse.fold_slot_history() == 0, "nothing left to fold"


def test_a_later_observation_marks_absent_slots_disappeared(warehouse: Warehouse, tmp_path: Path) -> None:
    first = [(GENERAL, bundle("1", "2")), (NHS111, bundle("1", "2", "3"))]
    load(warehouse, tmp_path, "l1", OBSERVED_AT, first)
    warehouse.fold_slot_history()
    load(warehouse, tmp_path, "l2", LATER, [(GENERAL, bundle("1")), (NHS111, bundle("1", "3"))])
    warehouse.fold_slot_history()
    folded = history(warehouse.con)
    assert folded["1"][1:4] == (LATER, LATER, 2) and folded["1"][7] is None
    assert folded["2"][1] == OBSERVED_AT and folded["2"][7] == LATER  # booked (or removed)
    assert folded["3"][1:4] == (LATER, LATER, 2) and folded["3"][5] == "nhs111"


def test_re_applying_an_older_observation_changes_nothing(warehouse: Warehouse, tmp_path: Path) -> None:
    first = [(GENERAL, bundle("1", "2")), (NHS111, bundle("1", "2"))]
    load(warehouse, tmp_path, "l1", OBSERVED_AT, first)
    warehouse.fold_slot_history()
    load(warehouse, tmp_path, "l2", LATER, [(GENERAL, bundle("1")), (NHS111, bundle("1"))])
    warehouse.fold_slot_history()
    before = table_hashes(warehouse.con, ("core",))
    load(warehouse, tmp_path, "l1-again", OBSERVED_AT, first)  # e.g. a late re-run of l1
    assert warehouse.fold_slot_history() == 1
    assert table_hashes(warehouse.con, ("core",)) == before


def test_an_observation_counts_only_when_every_filter_is_present(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    load(warehouse, tmp_path, "l1", OBSERVED_AT, [(GENERAL, bundle("1", "2"))])
    assert warehouse.fold_slot_history() == 0
    assert history(warehouse.con) == {}
    # A re-run at the same instant lands the missing search: now the observation is complete.
    load(warehouse, tmp_path, "l1-rerun", OBSERVED_AT, [(NHS111, bundle("1", "2", "3"))])
    assert warehouse.fold_slot_history() == 1
    assert set(history(warehouse.con)) == {"1", "2", "3"}


def test_an_unfolded_observation_is_folded_before_a_later_one_replaces_its_units(
    tmp_path: Path,
) -> None:
    """A load that died between its commits and the fold, then a later load of the same windows."""
    first = [(GENERAL, bundle("1", "2")), (NHS111, bundle("1", "2", "3"))]
    second = [(GENERAL, bundle("1")), (NHS111, bundle("1", "3"))]
    results = []
    for name, fold_between in (("clean", True), ("crashed", False)):
        con = open_warehouse(tmp_path / f"{name}.duckdb")
        try:
            add_practice(con)
            warehouse = Warehouse(con)
            load(warehouse, tmp_path / name, "l1", OBSERVED_AT, first)
            if fold_between:
                warehouse.fold_slot_history()
            load(warehouse, tmp_path / name, "l2", LATER, second)
            warehouse.fold_slot_history()
            results.append((history(con), table_hashes(con, ("core",))))
        finally:
            con.close()
    (clean, clean_hashes), (healed, healed_hashes) = results
    assert healed == clean and healed_hashes == clean_hashes
    assert clean["2"][7] == LATER, "the slot seen only by the first observation disappeared"


def test_practices_are_folded_together_per_window(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    for ods in ("J82001", "J82002", "J82003"):
        add_practice(con, ods)
    warehouse = Warehouse(con)
    files = []
    for ods in ("J82001", "J82002", "J82003"):
        files.append(
            LandingFile(
                ods,
                land(
                    tmp_path / f"{ods}.ndjson",
                    ods,
                    [
                        ("general", "none", bundle("1")),
                        ("nhs111", "urgent-care|NHS111", bundle("1", "2")),
                    ],
                ),
            )
        )
    results = warehouse.load_practice_files(files, load_id="test-load")
    assert [r.slot_rows for r in results if isinstance(r, PracticeLoad)] == [3, 3, 3]
    assert warehouse.fold_slot_history() == 3
    rows = con.execute(
        "select practice_ods, count(*) from core.fct_slot_history group by 1 order by 1"
    ).fetchall()
    assert rows == [("J82001", 2), ("J82002", 2), ("J82003", 2)]


def test_a_fold_of_named_practices_leaves_the_others_pending(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    # What a night that folds each validated batch while fetching goes on relies on.
    estate = ("J82001", "J82002", "J82003")
    for ods in estate:
        add_practice(con, ods)
    warehouse = Warehouse(con)
    searches = [("general", "none", bundle("1")), ("nhs111", "urgent-care|NHS111", bundle("1", "2"))]
    warehouse.load_practice_files(
        [LandingFile(ods, land(tmp_path / f"{ods}.ndjson", ods, searches)) for ods in estate],
        load_id="test-load",
    )
    assert warehouse.fold_slot_history(practices=["J82002", "J82009"]) == 1
    folded = "select distinct practice_ods from core.fct_slot_history order by 1"
    assert con.execute(folded).fetchall() == [("J82002",)]
    pending = con.execute(
        "select distinct practice_ods from meta.sync_window where folded_at is null order by 1"
    ).fetchall()
    assert pending == [("J82001",), ("J82003",)]
    assert warehouse.fold_slot_history(practices=["J82002"]) == 0, "already folded"
    assert warehouse.fold_slot_history() == 2
    assert con.execute(folded).fetchall() == [(ods,) for ods in estate]


# ---------------------------------------------------------------------------- the oracle

REFERENCE_SQL = (Path(__file__).parent / "reference" / "apply_slot_observation.sql").read_text()
MONDAY = datetime(2026, 4, 6, tzinfo=UTC)
WINDOWS = (
    SearchWindow(MONDAY, MONDAY + timedelta(days=7)),
    SearchWindow(MONDAY + timedelta(days=7), MONDAY + timedelta(days=14)),
)
# P1 needs no filter + NHS 111; P2 also its hub. Slots start every 3 hours from Monday 09:00.
SEARCHES = {
    "P00001": (("general", "none"), ("nhs111", "urgent-care:NHS111")),
    "P00002": (("general", "none"), ("nhs111", "urgent-care:NHS111"), ("hub", "gp-practice:Y00001")),
}


def slot_start(slot: int) -> datetime:
    return MONDAY + timedelta(hours=9 + 3 * slot)


def scenario_bundle(slots: list[tuple[str, int]]) -> bytes:
    entries = [
        {
            "resource": {
                "resourceType": "Slot",
                "id": slot_id,
                "schedule": {"reference": "Schedule/S1"},
                "status": "free",
                "start": slot_start(at).isoformat(),
                "end": (slot_start(at) + timedelta(minutes=15)).isoformat(),
            }
        }
        for slot_id, at in slots
    ]
    return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries})


def observe(rng: random.Random, observed_at: datetime, *, drop: str | None = None) -> dict[str, Path | None]:
    """One observation of both practices: which slots each search returns, chosen at random."""
    del observed_at
    chosen: dict[str, list[tuple[tuple[str, str], SearchWindow, list[tuple[str, int]]]]] = {}
    for ods, searches in SEARCHES.items():
        per_search = []
        for search in searches:
            if search[0] == drop:
                continue  # this search failed: the observation is incomplete
            for window in WINDOWS:
                slots = []
                for n in range(40):
                    at = n if rng.random() > 0.05 else rng.randrange(40)  # sometimes a slot moves
                    inside = window.start_utc <= slot_start(at) < window.end_utc
                    if inside and rng.random() < {"general": 0.6, "nhs111": 0.8, "hub": 0.5}[search[0]]:
                        slots.append((f"{ods}-{n}", at))
                per_search.append((search, window, slots))
        chosen[ods] = per_search
    return chosen  # type: ignore[return-value]


def land_observation(tmp_path: Path, load_id: str, observed_at: datetime, chosen: Any) -> list[LandingFile]:
    files = []
    for ods, per_search in chosen.items():
        responses = [
            LandedResponse(
                SlotSearchResponse(
                    practice_ods=ods,
                    filter_key=key,
                    window=window,
                    fetched_at=observed_at,
                    http_status=200,
                    trace_id=f"{ods}-{key}",
                    body=scenario_bundle(slots),
                ),
                role,
            )
            for (role, key), window, slots in per_search
        ]
        path = landing_path(tmp_path / "landing", load_id, ods)
        write_landing_file(path, load_id=load_id, observed_at=observed_at, responses=responses)
        files.append(LandingFile(ods, path))
    return files


def reference_fold(con: duckdb.DuckDBPyConnection, load_id: str) -> None:
    """What the loader did before V006: per practice, the load's complete observations in order."""
    units = con.execute(
        """
        select r.practice_ods, r.window_start, r.window_end, r.observed_at
        from raw.gpc_slot_search as r
        join core.dim_practice as p using (practice_ods)
        where r.load_id = $load_id
        group by all
        having count(distinct r.filter_key) >= 1 + any_value(len(p.booking_hubs))
               + any_value(case when p.accepts_111_booking then 1 else 0 end)
        order by r.practice_ods, r.observed_at, r.window_start
        """,
        {"load_id": load_id},
    ).fetchall()
    for ods, window_start, window_end, observed_at in units:
        con.execute(
            REFERENCE_SQL,
            {
                "practice_ods": ods,
                "window_start": window_start,
                "window_end": window_end,
                "observed_at": observed_at,
                "load_id": load_id,
            },
        )
        con.execute(
            "delete from core.fct_slot_history where practice_ods = $p "
            "and slot_id in (select slot_id from slot_history_update)",
            {"p": ods},
        )
        con.execute("insert into core.fct_slot_history select * from slot_history_update")
        con.execute("drop table slot_history_update")
    # The old loader folded in each practice's transaction: nothing is left for the new one.
    con.execute("update meta.sync_window set folded_at = completed_at where folded_at is null")


@pytest.mark.parametrize("group_practices", [1, 250])
def test_the_set_based_fold_equals_the_per_observation_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group_practices: int
) -> None:
    """Random observations (appearing, disappearing, reappearing, moving slots, audiences that
    change, slots that start, an incomplete observation, an older one loaded late, a load whose
    fold never ran before the next load replaced its units) give the same slot history as the
    pre-V006 algorithm applied one observation at a time."""
    # One practice per fold transaction, or both together: the same history either way.
    monkeypatch.setattr(loader, "FOLD_GROUP_PRACTICES", group_practices)
    rng = random.Random(20261126)
    reference, candidate = (open_warehouse(tmp_path / f"{name}.duckdb") for name in ("ref", "new"))
    try:
        for con in (reference, candidate):
            for ods, hubs in (("P00001", []), ("P00002", ["Y00001"])):
                con.execute(
                    DIM_PRACTICE_INSERT + "(?, 'Surgery', 'practice', 9000, "
                    "'EMIS Web', true, 'NHS111', ?, null, null, 3, 't')",
                    [ods, hubs],
                )
        instants = [MONDAY - timedelta(days=1) + timedelta(hours=5 * i) for i in range(12)]
        plan = [(at, None) for at in instants]
        plan[4] = (instants[4], "hub")  # P2's hub search failed: incomplete for P2
        plan.append((instants[2], None))  # an older observation, loaded late
        for i, (at, drop) in enumerate(plan):
            chosen = observe(rng, at, drop=drop)
            load_id = f"load-{i:02d}"
            for con in (reference, candidate):
                warehouse = Warehouse(con)
                files = land_observation(
                    tmp_path / con.execute("select current_database()").fetchall()[0][0], load_id, at, chosen
                )
                results = warehouse.load_practice_files(files, load_id=load_id)
                assert all(isinstance(r, PracticeLoad) for r in results)
            reference_fold(reference, load_id)
            if i == 6:
                continue  # the candidate "crashes" before its fold: load 7 must heal it
            Warehouse(candidate).fold_slot_history()
            expected = table_hashes(reference, ("core",))["core.fct_slot_history"]
            assert table_hashes(candidate, ("core",))["core.fct_slot_history"] == expected, load_id
        summary = candidate.execute(
            "select count(*), count(disappeared_at), sum(reappeared_count), "
            "count(audience_changed_at), max(times_seen) from core.fct_slot_history"
        ).fetchall()[0]
        assert summary[1] > 0 and summary[2] > 0 and summary[3] > 0, summary  # all paths exercised
    finally:
        reference.close()
        candidate.close()


def test_booking_inference_follows_any_sequence_of_observations(tmp_path: Path) -> None:
    """Property: for any sequence of complete observations of a few slots, each slot's history
    says when it was first and last seen, how often, when it disappeared (booked or removed)
    if it is gone, and how often it came back (freed by a cancellation); re-applying every
    observation again changes nothing."""
    examples = {"n": 0, "disappeared": 0, "reappeared": 0}
    slots = ["1", "2", "3", "4"]

    @settings(max_examples=20, deadline=None)
    @given(st.lists(st.sets(st.sampled_from(slots)), min_size=1, max_size=5))
    def check(observations: list[set[str]]) -> None:
        examples["n"] += 1
        directory = tmp_path / f"example-{examples['n']}"
        directory.mkdir()
        con = open_warehouse(directory / "wh.duckdb")
        try:
            add_practice(con)
            warehouse = Warehouse(con)
            instants = [OBSERVED_AT + timedelta(hours=3 * i) for i in range(len(observations))]
            for replay in range(2):
                for i, (at, present) in enumerate(zip(instants, observations, strict=True)):
                    body = bundle(*sorted(present))
                    load(warehouse, directory, f"l{i}-{replay}", at, [(GENERAL, body), (NHS111, body)])
                    warehouse.fold_slot_history()
                if replay == 0:
                    first_pass = table_hashes(con, ("core",))["core.fct_slot_history"]
            assert table_hashes(con, ("core",))["core.fct_slot_history"] == first_pass
            folded = history(con)
        finally:
            con.close()
        for slot in slots:
            seen = [at for at, present in zip(instants, observations, strict=True) if slot in present]
            if not seen:
                assert slot not in folded
                continue
            first_seen, last_seen, last_checked, times_seen, *_, disappeared, reappeared = folded[slot]
            assert (first_seen, last_seen, times_seen) == (seen[0], seen[-1], len(seen))
            assert last_checked == instants[-1]
            pattern = [
                slot in present
                for present in observations[observations.index(next(p for p in observations if slot in p)) :]
            ]
            comebacks = sum(1 for a, b in itertools.pairwise(pattern) if not a and b)
            assert reappeared == comebacks
            if pattern[-1]:
                assert disappeared is None
            else:
                gone = instants[len(instants) - pattern[::-1].index(True)]  # the first after the last seen
                assert disappeared == gone, (slot, observations)
                examples["disappeared"] += 1
            examples["reappeared"] += comebacks > 0

    check()
    assert examples["disappeared"] > 0 and examples["reappeared"] > 0
    record(
        Result(
            "property",
            "booking inference (disappeared / reappeared / times seen)",
            examples["n"],
            examples["n"],
            None,
            None,
            f"{examples['disappeared']} slots inferred booked, {examples['reappeared']} freed again; "
            "replaying every observation changes nothing",
            "tests/warehouse/test_fold.py::test_booking_inference_follows_any_sequence_of_observations",
            not_measured="a property of the fold: no run to lose rows from",
        )
    )
