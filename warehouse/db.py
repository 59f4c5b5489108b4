"""Opening the DuckDB warehouse and applying its migrations.

DuckDB allows one writing process per file, and any other open connection (even read-only)
blocks it, so opens are retried briefly with backoff on lock conflicts. Migrations are
versioned `.sql` files in `warehouse/sql/migrations/` (`V001__name.sql`), applied in order
on open, each in its own transaction together with its row in `meta.schema_version`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from common.files import DIR_MODE, FILE_MODE, private_dir, private_file

_MIGRATION_NAME = re.compile(r"^V(\d{3})__([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def sql_text(relative: str) -> str:
    """The text of a packaged SQL file, e.g. `models/marts/mart_111_quota_daily.sql`."""
    return resources.files("warehouse").joinpath("sql", relative).read_text(encoding="utf-8")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One explicit transaction: committed when the block ends, rolled back if it raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def migrations() -> list[Migration]:
    folder = resources.files("warehouse").joinpath("sql", "migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration versions must be contiguous from 1, found {versions}")
    return found


@retry(
    retry=retry_if_exception_type(duckdb.IOException),
    wait=wait_exponential_jitter(initial=0.05, max=2.0),
    stop=stop_after_delay(30),
    reraise=True,
)
def connect(path: Path | str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file (UTC session), retrying while another process holds the lock."""
    if not read_only:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    return con


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = 'meta' and table_name = 'schema_version'"
    ).fetchall()[0][0]
    if not exists:
        return 0
    return int(con.execute("select coalesce(max(version), 0) from meta.schema_version").fetchall()[0][0])


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply pending migrations; returns the versions applied."""
    current = schema_version(con)
    applied: list[int] = []
    for migration in migrations():
        if migration.version <= current:
            continue
        with transaction(con):
            con.execute(migration.sql)
            con.execute(
                "insert into meta.schema_version (version, name, applied_at) values (?, ?, now())",
                [migration.version, migration.name],
            )
        applied.append(migration.version)
    return applied


# The writer's memory limit unless the caller passes one (SyncSettings.writer_memory_limit).
WRITER_MEMORY_LIMIT = "1GB"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(bytes|B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$")
_UNIT_BYTES = {"bytes": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def size_bytes(text: str) -> int:
    """Bytes of a DuckDB memory size as written in settings or shown by DuckDB ('953.6 MiB')."""
    found = _SIZE.match(text)
    if found is None:
        raise ValueError(f"not a memory size: {text!r} (e.g. 512MB, 1GB, 953.6 MiB)")
    return int(float(found.group(1)) * _UNIT_BYTES[found.group(2)])


@contextmanager
def memory_capped(con: duckdb.DuckDBPyConnection, limit: str | None) -> Iterator[None]:
    """Run with DuckDB's memory limit lowered to `limit` (never raised), restored after."""
    before = str(con.execute("select current_setting('memory_limit')").fetchall()[0][0])
    if limit is None or size_bytes(limit) >= size_bytes(before):
        yield
        return
    con.execute("SET memory_limit = ?", [limit])
    try:
        yield
    finally:
        con.execute("SET memory_limit = ?", [before])


def open_warehouse(
    path: Path | str, *, memory_limit: str = WRITER_MEMORY_LIMIT,
    file_mode: int = FILE_MODE, dir_mode: int = DIR_MODE,
) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) and migrate the warehouse for writing.

    The memory limit makes DuckDB spill to `<file>.tmp` instead of growing with the night:
    without it a night of England held ~4.8 GiB (DuckDB's default is 80% of RAM).
    """
    private_dir(Path(path).parent, dir_mode)  # only folders it creates: the parent may be shared
    con = connect(path)
    private_file(Path(path), file_mode)
    con.execute("SET memory_limit = ?", [memory_limit])
    migrate(con)
    return con
