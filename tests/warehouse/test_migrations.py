"""Migrations: applied in order on open, and upgrading a file keeps its data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

import warehouse.db as db
from warehouse.db import Migration, connect, migrate, migrations, open_warehouse, schema_version
from warehouse.loader import Warehouse


def make_previous_version_file(path: Path) -> None:
    """A warehouse as the first release wrote it: only V001 applied, with data in it."""
    con = connect(path)
    first = migrations()[0]
    con.execute(first.sql)
    con.execute("insert into meta.schema_version values (?, ?, now())", [first.version, first.name])
    con.execute(
        "insert into meta.sync_window values ('J82001', 'slots', 'none', ?, ?, ?, 'old-load', 3, ?)",
        [
            datetime(2026, 3, 1, tzinfo=UTC),
            datetime(2026, 3, 15, tzinfo=UTC),
            datetime(2026, 3, 1, tzinfo=UTC),
            datetime(2026, 3, 1, tzinfo=UTC),
        ],
    )
    con.execute(
        "insert into core.dim_practice values ('J82001', 'Old Surgery', 'practice', 9000, "
        "'EMIS Web', true, 'RYE', [], '10K', 'U00001', 3, 'old-load')"
    )
    con.close()


def test_upgrading_a_previous_version_file_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    make_previous_version_file(path)
    con = open_warehouse(path)
    try:
        assert schema_version(con) == len(migrations())
        rows = con.execute("select version from meta.schema_version order by 1").fetchall()
        versions = [v for (v,) in rows]
        assert versions == list(range(1, len(migrations()) + 1))
        assert con.execute("select practice_name from core.dim_practice").fetchall() == [("Old Surgery",)]
        # V009: the old CCG code is the sub-ICB location code; ICB and region wait for a load.
        assert con.execute(
            "select sub_icb_code, icb_code, region_code, pcn_code from core.dim_practice"
        ).fetchall() == [("10K", None, None, "U00001")]
        assert con.execute("select rows_loaded from meta.sync_window").fetchall() == [(3,)]
        # Tables added by later migrations exist and are empty.
        assert con.execute("select count(*) from core.fct_slot_history").fetchall() == [(0,)]
        # ...except the list-size history, which starts from the registry the file had.
        assert con.execute(
            "select practice_ods, list_size, nhs111_daily_quota, load_id from core.practice_list_size"
        ).fetchall() == [("J82001", 9000, 3, "old-load")]
    finally:
        con.close()


def test_opening_again_applies_nothing(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    open_warehouse(path).close()
    con = connect(path)
    try:
        assert migrate(con) == []
    finally:
        con.close()


def test_a_failing_migration_leaves_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "wh.duckdb"
    make_previous_version_file(path)
    real = migrations()
    broken = Migration(real[1].version, real[1].name, real[1].sql + "\nselect broken syntax here;")
    monkeypatch.setattr(db, "migrations", lambda: [real[0], broken])
    con = connect(path)
    try:
        with pytest.raises(duckdb.Error):
            migrate(con)
        assert schema_version(con) == 1
        assert con.execute("select count(*) from core.dim_practice").fetchall() == [(1,)]
        tables = con.execute(
            "select count(*) from information_schema.tables where table_name = 'booking_log_fetch'"
        ).fetchall()
        assert tables == [(0,)], "the failed migration's tables were rolled back"
    finally:
        con.close()


def test_upgrading_moves_raw_bodies_out_and_keeps_their_metadata(tmp_path: Path) -> None:
    """A warehouse that stored bodies in raw.gpc_slot_search (before V006) keeps every row."""
    path = tmp_path / "v5.duckdb"
    con = connect(path)
    for migration in migrations()[:5]:
        con.execute(migration.sql)
        con.execute(
            "insert into meta.schema_version values (?, ?, now())", [migration.version, migration.name]
        )
    window_start = datetime(2026, 3, 1, tzinfo=UTC)
    body = b'{"resourceType":"Bundle","type":"searchset"}'
    con.execute(
        "insert into raw.gpc_slot_search values ('old-load', 'J82001', 'search_slots', 'general', "
        "'none', ?, ?, ?, ?, 200, 'trace-1', ?, ?)",
        [
            window_start,
            window_start + timedelta(days=14),
            window_start,
            window_start,
            len(body),
            body.decode(),
        ],
    )
    con.execute(
        "insert into meta.sync_window values ('J82001', 'slots', 'none', ?, ?, ?, 'old-load', 0, ?)",
        [window_start, window_start + timedelta(days=14), window_start, window_start],
    )
    con.close()
    # The load's landing file, as the previous landing format wrote it (no line numbers).
    landing = tmp_path / "landing" / "old-load" / "J82001.ndjson"
    landing.parent.mkdir(parents=True)
    meta = {
        "load_id": "old-load",
        "practice_ods": "J82001",
        "filter_key": "none",
        "window_start": window_start.isoformat(),
        "body_bytes": len(body),
    }
    landing.write_bytes(b'{"meta":' + json.dumps(meta).encode() + b',"bundle":' + body + b"}\n")

    con = open_warehouse(path)
    try:
        assert schema_version(con) == len(migrations())
        columns = [
            c
            for (c,) in con.execute(
                "select column_name from information_schema.columns "
                "where table_schema = 'raw' and table_name = 'gpc_slot_search' order by ordinal_position"
            ).fetchall()
        ]
        assert "body" not in columns and columns[-2:] == ["landing_file", "landing_line"]
        assert con.execute(
            "select load_id, practice_ods, trace_id, body_bytes, landing_file from raw.gpc_slot_search"
        ).fetchall() == [("old-load", "J82001", "trace-1", len(body), None)]
        # Observations loaded before V006 were folded in their own transaction.
        assert con.execute("select folded_at = completed_at from meta.sync_window").fetchall() == [(True,)]
        warehouse = Warehouse(con)
        with pytest.raises(LookupError, match="pass landing_dir"):
            warehouse.raw_body("old-load", "J82001", "none", window_start)
        assert (
            warehouse.raw_body("old-load", "J82001", "none", window_start, landing_dir=tmp_path / "landing")
            == body
        )
        assert warehouse.fold_slot_history() == 0
    finally:
        con.close()
