"""Loading landed slot searches: typed rows, leniency, strictness, idempotency."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from tests.warehouse.conftest import OBSERVED_AT, fixture_bytes, land
from warehouse.loader import PracticeDataError, Warehouse


def staged(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.execute(
        "select slot_id, schedule_id, start_at, end_at, start_text, delivery_channel, slot_type, "
        "version_id, filter_role from staging.stg_gpconnect__slots order by slot_id"
    ).fetchall()


def test_emis_bundle_flattens_to_typed_rows(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = land(tmp_path / "J82001.ndjson", "J82001",
                [("general", "none", fixture_bytes("emis_three_slots.json"))])
    result = Warehouse(con).load_practice_file(path, load_id="test-load", practice_ods="J82001")
    assert result.slot_rows == 3 and result.responses == 1
    rows = staged(con)
    assert [r[0] for r in rows] == ["104233", "104234", "104240"]
    first, bst, autumn = rows
    assert first[1] == "5012"
    assert first[2] == datetime(2026, 3, 27, 9, 0, tzinfo=UTC)
    assert first[4] == "2026-03-27T09:00:00+00:00"  # original text kept
    # BST offset converted to UTC; the unknown extension before the channel is ignored.
    assert bst[2] == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    assert bst[5] == "Telephone" and bst[6] == "NHS 111 Appointment"
    # 01:30 BST on the autumn fall-back day is the first of the two 01:30s: 00:30 UTC.
    assert autumn[2] == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert first[7] == "1774512000000"


def test_systmone_shapes_parse_leniently(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = land(tmp_path / "J82002.ndjson", "J82002",
                [("general", "none", fixture_bytes("tpp_unsorted_arrays.json"))])
    Warehouse(con).load_practice_file(path, load_id="test-load", practice_ods="J82002")
    rows = staged(con)
    assert [r[0] for r in rows] == ["SL7f3a9c1d", "SL7f3a9c2e"]
    # Optional elements missing: no channel, no slot type, no versionId; still a valid slot.
    assert rows[0][5] is None and rows[0][6] is None and rows[0][7] is None
    assert rows[1][1] == "S1c0ffee"


def test_empty_bundle_is_a_valid_observation(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = land(tmp_path / "J82003.ndjson", "J82003", [("general", "none", fixture_bytes("empty.json"))])
    result = Warehouse(con).load_practice_file(path, load_id="test-load", practice_ods="J82003")
    assert result.slot_rows == 0
    windows = con.execute("select practice_ods, rows_loaded from meta.sync_window").fetchall()
    assert windows == [("J82003", 0)]


def test_missing_start_is_refused_but_raw_is_kept(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = land(tmp_path / "J82004.ndjson", "J82004",
                [("general", "none", fixture_bytes("slot_without_start.json"))])
    with pytest.raises(PracticeDataError) as excinfo:
        Warehouse(con).load_practice_file(path, load_id="test-load", practice_ods="J82004")
    message = str(excinfo.value)
    assert "J82004" in message and "missing or invalid start" in message and "Next step" in message
    assert staged(con) == []
    assert con.execute("select count(*) from meta.sync_window").fetchall()[0][0] == 0
    assert con.execute("select count(*) from raw.gpc_slot_search").fetchall()[0][0] == 1


def test_reloading_the_same_observation_is_idempotent(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    body = fixture_bytes("emis_three_slots.json")
    warehouse = Warehouse(con)
    path = land(tmp_path / "a.ndjson", "J82001", [("general", "none", body)], load_id="load-a")
    warehouse.load_practice_file(path, load_id="load-a", practice_ods="J82001")
    first = staged(con)
    path = land(tmp_path / "b.ndjson", "J82001", [("general", "none", body)], load_id="load-b")
    warehouse.load_practice_file(path, load_id="load-b", practice_ods="J82001")
    assert staged(con) == first
    assert con.execute("select load_id from meta.sync_window").fetchall() == [("load-b",)]


def test_a_later_observation_is_kept_beside_the_earlier_one(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    body = fixture_bytes("emis_three_slots.json")
    warehouse = Warehouse(con)
    later = OBSERVED_AT.replace(hour=10)
    for load_id, observed in (("l1", OBSERVED_AT), ("l2", later)):
        path = land(tmp_path / f"{load_id}.ndjson", "J82001", [("general", "none", body)],
                    load_id=load_id, observed_at=observed)
        warehouse.load_practice_file(path, load_id=load_id, practice_ods="J82001")
    counts = con.execute(
        "select observed_at, count(*) from staging.stg_gpconnect__slots group by 1 order by 1"
    ).fetchall()
    assert [c[1] for c in counts] == [3, 3]
