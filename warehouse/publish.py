"""Publishing: the marts copied into a fresh snapshot file, swapped in by rename.

Dashboards read only `<published_dir>/dashboard.duckdb`, through short-lived read-only
connections, so they never hold a lock on the warehouse the sync is writing.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import duckdb

from common.files import DIR_MODE, FILE_MODE, private_dir, private_file
from common.holder import process_alive
from warehouse import models


def publish(
    con: duckdb.DuckDBPyConnection, published_dir: Path, *, load_id: str, as_of: datetime,
    file_mode: int = FILE_MODE, dir_mode: int = DIR_MODE,
) -> Path:
    """Copy the marts into a fresh file and swap it in by rename.

    Dashboards read only this snapshot through short-lived read-only connections, so
    they never hold a lock on the warehouse the sync is writing.
    """
    private_dir(published_dir, dir_mode)
    target = published_dir / "dashboard.duckdb"
    _remove_abandoned_snapshots(published_dir)
    tmp = published_dir / f".dashboard-{os.getpid()}.duckdb.tmp"
    tmp.unlink(missing_ok=True)
    con.execute(f"attach '{_sql_literal(tmp)}' as snapshot")
    try:
        con.execute("create schema snapshot.marts")
        for table in models.mart_tables(con):
            con.execute(
                f"create table snapshot.marts.{table} as select * from marts.{table}"
            )
        con.execute(
            "create table snapshot.marts.publication as "
            "select $load_id as load_id, $as_of::timestamptz as as_of, now() as published_at",
            {"load_id": load_id, "as_of": as_of},
        )
    finally:
        con.execute("detach snapshot")
    private_file(tmp, file_mode)  # before the rename: the live snapshot is never readable by others
    tmp.replace(target)
    return target


def _remove_abandoned_snapshots(published_dir: Path) -> None:
    """Delete half-written snapshots of writers that died (kill -9 during publish).

    Only the writer publishes, so a `.dashboard-<pid>.duckdb.tmp` whose process is gone will
    never be finished; the live snapshot is never touched.
    """
    for leftover in published_dir.glob(".dashboard-*.duckdb.tmp*"):
        pid_text = leftover.name.removeprefix(".dashboard-").split(".", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not process_alive(int(pid_text)):
            leftover.unlink(missing_ok=True)


def _sql_literal(path: Path) -> str:
    return str(path).replace("'", "''")
