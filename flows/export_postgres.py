"""`slotsync export --to postgresql://...`: the exported marts as a PostgreSQL schema for BI tools.

Why PostgreSQL: Power BI, Tableau and plain SQL clients all read it, and its DDL is
transactional, so a load is replaced in one transaction: readers see the previous load or the
new one, never half of each. Each table and column carries the data dictionary as a comment
(`comment on`), so a BI tool's field list explains itself; `slotsync_export` holds the
export's identity (load, period, filters, disclosure rule) as key/value rows.

psycopg 3 is the driver; the rows are the ones the file exports write (`flows.export`), so the
database gets exactly the suppressed figures a Parquet or CSV reader gets.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock

from common.config import Settings
from dashboards.disclosure import rule_named
from flows.export import Cut, Exported, ExportError, collect, dictionary, write_files

METADATA_TABLE = "slotsync_export"
URL_PREFIXES = ("postgresql://", "postgres://", "postgresql+psycopg://")
SCHEMA_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def is_postgres_url(target: str) -> bool:
    return target.startswith(URL_PREFIXES)


def write_postgres(exported: Exported, url: str, schema: str) -> list[str]:
    """Replace the schema's exported tables with this load, in one transaction; the table names."""
    import psycopg
    from psycopg import sql

    if not SCHEMA_PATTERN.match(schema):
        raise ExportError(f"--schema must be a plain lower-case SQL name, got {schema!r}")
    docs = {doc.table: doc for doc in dictionary(list(exported.tables), exported.tables)}
    meta = exported.metadata()
    try:
        conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1))
    except psycopg.Error as exc:
        raise ExportError(f"cannot connect to PostgreSQL: {str(exc).strip().splitlines()[0]}") from None
    with conn, conn.transaction():
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        # Two exports to one schema at once would interleave their drops: take turns.
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", [schema])
        for table, frame in exported.tables.items():
            name = sql.Identifier(schema, table)
            types = {column: _sql_type(frame[column], column) for column in frame.columns}
            conn.execute(sql.SQL("drop table if exists {}").format(name))
            conn.execute(
                sql.SQL("create table {} ({})").format(
                    name,
                    sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in types.items()
                    ),
                )
            )
            with (
                conn.cursor() as cursor,
                cursor.copy(
                    sql.SQL("copy {} ({}) from stdin").format(
                        name, sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
                    )
                ) as copy,
            ):
                for row in frame.itertuples(index=False):
                    copy.write_row([_value(v, types[c]) for v, c in zip(row, frame.columns, strict=True)])
            doc = docs[table]
            comment = (
                f"Grain: {doc.grain}. Load {meta['load_id']}, period {meta['period_from']} to "
                f"{meta['period_to']}, filters {meta['filters']}, disclosure rule {meta['disclosure_rule']}."
            )
            conn.execute(sql.SQL("comment on table {} is {}").format(name, sql.Literal(comment)))
            for column in doc.columns:
                conn.execute(
                    sql.SQL("comment on column {} is {}").format(
                        sql.Identifier(schema, table, column.name),
                        sql.Literal(f"{column.meaning} ({column.unit})"),
                    )
                )
        metadata = sql.Identifier(schema, METADATA_TABLE)
        conn.execute(sql.SQL("drop table if exists {}").format(metadata))
        conn.execute(sql.SQL("create table {} (key text primary key, value text not null)").format(metadata))
        with conn.cursor() as cursor:
            cursor.executemany(
                sql.SQL("insert into {} (key, value) values (%s, %s)").format(metadata),
                [*meta.items(), ("tables", ", ".join(exported.tables))],
            )
    conn.close()
    return list(exported.tables)


def _sql_type(series: pd.Series, column: str) -> str:
    if column in ("slot_day", "day"):
        return "date"
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "bigint"
    if pd.api.types.is_float_dtype(series):
        return "double precision"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "timestamptz"
    sample = next(
        (v for v in series if v is not None and not (pd.api.types.is_scalar(v) and pd.isna(v))), None
    )
    if isinstance(sample, bool):
        return "boolean"
    return "text"


def _value(value: Any, sql_type: str) -> Any:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if sql_type == "date" and not isinstance(value, date):
        return pd.Timestamp(value).date()
    if hasattr(value, "item"):
        return value.item()
    if sql_type == "text":
        return str(value)
    return value


def export_after_publish(settings: Settings, logger: logging.Logger | logging.LoggerAdapter[Any]) -> bool:
    """The optional export after a publish (`export_after_publish` settings): the whole snapshot
    under the rule in force. A failed export is logged and never fails the sync that published."""
    target = settings.export_after_publish.to
    if not target:
        return False
    try:
        exported = collect(settings.data_dir, Cut(), rule_named(settings.disclosure_rule))
        if is_postgres_url(target):
            write_postgres(exported, target, settings.export_after_publish.schema_name)
        else:
            write_files(exported, Path(target), settings.export_after_publish.format)
    except (ExportError, OSError) as exc:
        logger.warning("export after publish failed (the sync itself succeeded): %s", exc)
        return False
    logger.info("exported load %s after publish", exported.load_id)
    return True
