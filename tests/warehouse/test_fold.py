"""Folding complete observations into core.fct_slot_history: set-based, once per load, self-healing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import orjson
import pytest

from tests.warehouse.conftest import OBSERVED_AT, land
from warehouse.db import open_warehouse
from warehouse.integrity import table_hashes
from warehouse.loader import LandingFile, PracticeLoad, Warehouse

PRACTICE = "J82001"
GENERAL = ("general", "none")
NHS111 = ("nhs111", "urgent-care|NHS111")
DAY = datetime(2026, 4, 6, 9, 0, tzinfo=UTC)  # a Monday, inside the fixture window
LATER = OBSERVED_AT + timedelta(hours=8)


def bundle(*slot_ids: str) -> bytes:
    """A searchset with the given slots (10 minutes each from DAY) and their schedule."""
    entries = [
        {"resource": {
            "resourceType": "Slot", "id": slot_id, "schedule": {"reference": "Schedule/S1"},
            "status": "free", "start": (DAY + timedelta(minutes=10 * int(slot_id))).isoformat(),
            "end": (DAY + timedelta(minutes=10 * int(slot_id) + 10)).isoformat(),
        }}
        for slot_id in slot_ids
    ]
    entries.append({"resource": {"resourceType": "Schedule", "id": "S1",
                                 "actor": [{"reference": "Location/L1"}]}})
    return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries})


def add_practice(con: duckdb.DuckDBPyConnection, ods: str = PRACTICE) -> None:
    """A practice that needs two searches per window: no filter and its NHS 111 provider."""
    con.execute(
        "insert into core.dim_practice values (?, 'Surgery', 'practice', 9000, 'EMIS Web', true, "
        "'NHS111', [], null, null, 3, 'test')",
        [ods],
    )


def load(
    warehouse: Warehouse, tmp_path: Path, load_id: str, observed_at: datetime,
    searches: list[tuple[tuple[str, str], bytes]],
) -> None:
    path = land(tmp_path / f"{load_id}.ndjson", PRACTICE,
                [(role, key, body) for (role, key), body in searches],
                load_id=load_id, observed_at=observed_at)
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
        files.append(LandingFile(ods, land(tmp_path / f"{ods}.ndjson", ods, [
            ("general", "none", bundle("1")), ("nhs111", "urgent-care|NHS111", bundle("1", "2")),
        ])))
    results = warehouse.load_practice_files(files, load_id="test-load")
    assert [r.slot_rows for r in results if isinstance(r, PracticeLoad)] == [3, 3, 3]
    assert warehouse.fold_slot_history() == 3
    rows = con.execute(
        "select practice_ods, count(*) from core.fct_slot_history group by 1 order by 1"
    ).fetchall()
    assert rows == [("J82001", 2), ("J82002", 2), ("J82003", 2)]
