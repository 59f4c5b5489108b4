"""Content hashes of the warehouse, for proving that re-runs change nothing.

A hash covers every table of the given schemas, order-independently (sum of row hashes
plus row count per table), leaving out bookkeeping columns that legitimately differ
between two runs that saw the same data: load ids and wall-clock completion times.
"""

from __future__ import annotations

import hashlib

import duckdb

VOLATILE_COLUMNS = frozenset(
    {"load_id", "latest_load_id", "known_load_id", "completed_at", "last_completed_at",
     "published_at", "finished_at"}
)


def table_hashes(
    con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...] = ("core", "marts")
) -> dict[str, str]:
    """`schema.table` -> "rows:sum-of-row-hashes" for every base table in `schemas`."""
    tables = con.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_type = 'BASE TABLE' and table_schema in (select unnest(?)) "
        "order by table_schema, table_name",
        [list(schemas)],
    ).fetchall()
    hashes: dict[str, str] = {}
    for schema, table in tables:
        columns = _hashed_columns(con, schema, table)
        row_hash = "hash(" + ", ".join(f'"{c}"' for c in columns) + ")" if columns else "0"
        count, total = con.execute(
            f'select count(*), coalesce(sum({row_hash}), 0)::varchar from "{schema}"."{table}"'
        ).fetchall()[0]
        hashes[f"{schema}.{table}"] = f"{count}:{total}"
    return hashes


def content_hash(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...] = ("core", "marts")) -> str:
    """One digest over `table_hashes`: equal digests mean equal content."""
    digest = hashlib.sha256()
    for name, value in sorted(table_hashes(con, schemas).items()):
        digest.update(f"{name}={value}\n".encode())
    return digest.hexdigest()


def practice_table_hashes(
    con: duckdb.DuckDBPyConnection,
    practices: list[str],
    schemas: tuple[str, ...] = ("staging", "core", "marts"),
) -> dict[str, str]:
    """Like `table_hashes`, restricted to the rows of `practices` (tables with `practice_ods`).

    Proves that a fault at one practice left every other practice's content exactly as a
    clean run wrote it.
    """
    tables = con.execute(
        "select t.table_schema, t.table_name from information_schema.tables as t "
        "join information_schema.columns as c using (table_schema, table_name) "
        "where t.table_type = 'BASE TABLE' and t.table_schema in (select unnest(?)) "
        "and c.column_name = 'practice_ods' order by 1, 2",
        [list(schemas)],
    ).fetchall()
    hashes: dict[str, str] = {}
    for schema, table in tables:
        columns = _hashed_columns(con, schema, table)
        row_hash = "hash(" + ", ".join(f'"{c}"' for c in columns) + ")"
        count, total = con.execute(
            f'select count(*), coalesce(sum({row_hash}), 0)::varchar from "{schema}"."{table}" '
            "where practice_ods in (select unnest(?))",
            [practices],
        ).fetchall()[0]
        hashes[f"{schema}.{table}"] = f"{count}:{total}"
    return hashes


def _hashed_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str]:
    """A table's columns in order, without the volatile ones (load ids, wall-clock times)."""
    return [
        name for (name,) in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, table],
        ).fetchall()
        if name not in VOLATILE_COLUMNS
    ]
