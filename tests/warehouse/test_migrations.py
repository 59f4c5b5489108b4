"""Migrations: applied in order on open, and upgrading a file keeps its data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

import warehouse.db as db
from warehouse.db import Migration, connect, migrate, migrations, open_warehouse, schema_version


def make_previous_version_file(path: Path) -> None:
    """A warehouse as the first release wrote it: only V001 applied, with data in it."""
    con = connect(path)
    first = migrations()[0]
    con.execute(first.sql)
    con.execute("insert into meta.schema_version values (?, ?, now())", [first.version, first.name])
    con.execute(
        "insert into meta.sync_window values ('J82001', 'slots', 'none', ?, ?, ?, 'old-load', 3, ?)",
        [datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC),
         datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)],
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
        assert con.execute("select rows_loaded from meta.sync_window").fetchall() == [(3,)]
        # Tables added by later migrations exist and are empty.
        assert con.execute("select count(*) from core.fct_slot_history").fetchall() == [(0,)]
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
