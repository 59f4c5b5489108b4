"""Raw responses live in the landing files: metadata rows, exact bytes back, refusals, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.warehouse.conftest import OBSERVED_AT, WINDOW, fixture_bytes, land
from warehouse.landing import landing_path
from warehouse.loader import LandingFile, PracticeDataError, PracticeLoad, Warehouse


def raw_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.execute(
        "select practice_ods, filter_role, filter_key, http_status, trace_id, body_bytes, "
        "landing_file, landing_line from raw.gpc_slot_search order by practice_ods, landing_line"
    ).fetchall()


def test_raw_keeps_metadata_only_and_names_the_landing_line(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    columns = {
        c
        for (c,) in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'raw' and table_name = 'gpc_slot_search'"
        ).fetchall()
    }
    assert "body" not in columns and {"landing_file", "landing_line"} <= columns
    emis, empty = fixture_bytes("emis_three_slots.json"), fixture_bytes("empty.json")
    path = land(
        tmp_path / "J82001.ndjson",
        "J82001",
        [("general", "none", emis), ("nhs111", "urgent-care|NHS111", empty)],
    )
    Warehouse(con).load_practice_file(path, load_id="test-load", practice_ods="J82001")
    assert raw_rows(con) == [
        ("J82001", "general", "none", 200, "trace-0", len(emis), str(path), 1),
        ("J82001", "nhs111", "urgent-care|NHS111", 200, "trace-1", len(empty), str(path), 2),
    ]


def test_raw_body_gives_back_the_exact_bytes_received(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    # A pretty-printed body with CRLF and LF line ends: one landing line, the same bytes back.
    pretty = fixture_bytes("emis_three_slots.json").replace(b"\n", b"\r\n", 3)
    compact = fixture_bytes("tpp_unsorted_arrays.json")
    assert b"\r\n" in pretty and b"\n" in compact
    path = land(
        tmp_path / "J82001.ndjson",
        "J82001",
        [("general", "none", pretty), ("nhs111", "urgent-care|NHS111", compact)],
    )
    assert len(path.read_bytes().splitlines()) == 2
    warehouse = Warehouse(con)
    warehouse.load_practice_file(path, load_id="test-load", practice_ods="J82001")
    start = WINDOW.start_utc
    assert warehouse.raw_body("test-load", "J82001", "none", start) == pretty
    assert warehouse.raw_body("test-load", "J82001", "urgent-care|NHS111", start) == compact
    # The archive can be relocated (or found for rows that predate recorded paths).
    moved = landing_path(tmp_path / "moved", "test-load", "J82001")
    moved.parent.mkdir(parents=True)
    path.rename(moved)
    with pytest.raises(FileNotFoundError, match="raw_retention_days"):
        warehouse.raw_body("test-load", "J82001", "none", start)
    assert warehouse.raw_body("test-load", "J82001", "none", start, landing_dir=tmp_path / "moved") == pretty
    with pytest.raises(LookupError, match="no slot-search response"):
        warehouse.raw_body("test-load", "J82001", "gp-practice|Y00001", start)


def test_unparseable_body_is_refused_alone_and_keeps_its_raw_metadata(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    good = land(
        tmp_path / "J82001.ndjson", "J82001", [("general", "none", fixture_bytes("emis_three_slots.json"))]
    )
    cut = fixture_bytes("emis_three_slots.json")[:500]  # cut mid-bundle: not JSON
    bad = land(
        tmp_path / "J82002.ndjson",
        "J82002",
        [("general", "none", cut), ("nhs111", "urgent-care|NHS111", fixture_bytes("empty.json"))],
    )
    warehouse = Warehouse(con)
    results = warehouse.load_practice_files(
        [LandingFile("J82001", good), LandingFile("J82002", bad)], load_id="test-load"
    )
    loaded, refused = results
    assert isinstance(loaded, PracticeLoad) and loaded.slot_rows == 3
    assert isinstance(refused, PracticeDataError)
    message = str(refused)
    assert "J82002" in message and "search free slots" in message and "not valid FHIR JSON" in message
    assert str(bad) in message and "Next step" in message
    staged = con.execute("select distinct practice_ods from staging.stg_gpconnect__slots").fetchall()
    assert staged == [("J82001",)]
    assert con.execute("select distinct practice_ods from meta.sync_window").fetchall() == [("J82001",)]
    # The refused practice's responses are still on record, with their landing lines.
    rows = [r for r in raw_rows(con) if r[0] == "J82002"]
    empty = len(fixture_bytes("empty.json"))
    assert [(r[1], r[5], r[7]) for r in rows] == [("general", len(cut), 1), ("nhs111", empty, 2)]
    assert bad.exists()
    assert warehouse.raw_body("test-load", "J82002", "none", WINDOW.start_utc) == cut


def test_a_response_that_is_not_a_bundle_is_refused(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    outcome = fixture_bytes("../errors/ssp_asid.json")
    path = land(tmp_path / "J82001.ndjson", "J82001", [("general", "none", outcome)])
    with pytest.raises(PracticeDataError, match="not a FHIR Bundle"):
        Warehouse(con).load_practice_file(path, load_id="test-load", practice_ods="J82001")
    assert con.execute("select count(*) from raw.gpc_slot_search").fetchall() == [(1,)]


def test_a_landing_file_of_another_practice_is_refused(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = land(
        tmp_path / "J82001.ndjson", "J82001", [("general", "none", fixture_bytes("emis_three_slots.json"))]
    )
    with pytest.raises(PracticeDataError, match="another load or practice"):
        Warehouse(con).load_practice_file(path, load_id="test-load", practice_ods="J82009")
    assert con.execute("select count(*) from staging.stg_gpconnect__slots").fetchall() == [(0,)]


def ledger(con: duckdb.DuckDBPyConnection, load_id: str, as_of: datetime, status: str) -> None:
    con.execute(
        "insert into meta.load_ledger (load_id, flow_name, as_of, started_at, status) "
        "values (?, 'nightly_sync', ?, ?, ?)",
        [load_id, as_of, as_of, status],
    )


def test_pruning_deletes_only_old_completed_loads(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    now = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
    old = now - timedelta(days=40)
    landing_dir = tmp_path / "landing"
    loads = {
        "old-completed": (old, "completed"),
        "old-running": (old, "running"),  # crashed, never repaired
        "old-repaired": (old, "running"),  # crashed, then its re-run completed
        "old-rerun": (old, "completed"),
        "recent-completed": (now - timedelta(days=3), "completed"),
    }
    for load_id, (as_of, status) in loads.items():
        ledger(con, load_id, as_of, status)
        land(
            landing_path(landing_dir, load_id, "J82001"),
            "J82001",
            [("general", "none", fixture_bytes("empty.json"))],
            load_id=load_id,
        )
    (landing_dir / "not-a-load").mkdir()
    con.execute(
        "insert into meta.load_plan values ('old-rerun', 'rerun', 'slots', ?, 28, 14, null, 'old-repaired')",
        [old],
    )
    pruned = Warehouse(con).prune_landing(landing_dir, retention_days=35, now=now)
    assert sorted(p.name for p in pruned) == ["old-completed", "old-repaired", "old-rerun"]
    assert sorted(p.name for p in landing_dir.iterdir()) == ["not-a-load", "old-running", "recent-completed"]
    assert Warehouse(con).prune_landing(tmp_path / "nowhere", retention_days=35, now=now) == []


def test_retention_setting_defaults_to_35_days() -> None:
    from common.config import Settings

    assert Settings().sync.raw_retention_days == 35
    assert OBSERVED_AT.tzinfo is UTC


def test_an_empty_landing_file_is_refused(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = tmp_path / "J82001.ndjson"
    path.write_bytes(b"")
    with pytest.raises(PracticeDataError, match="holds no responses"):
        Warehouse(con).load_practice_file(path, load_id="test-load", practice_ods="J82001")
