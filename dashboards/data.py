"""Read-only access to the published marts snapshot, the only data the dashboards see.

The sync flow publishes `<data_dir>/published/dashboard.duckdb` by atomic rename. DuckDB lets a
file have one writer *or* many readers, and any open connection blocks the writer, so every
read here opens the snapshot read-only, runs its queries, fetches DataFrames and closes the
connection straight away. Nothing here touches the warehouse file or raw/staging/core.

Marts are read through named queries (`MARTS`). A mart the snapshot does not hold (a newer
dashboard on an older warehouse, or a mart still being built) reads as `None`, so a page can
say "not available yet" instead of failing. Every read can check, in the same connection, that
the snapshot is still the publication the page started with (`expect_version`): a page never
mixes two loads even if a sync publishes while it renders.

This module has no Streamlit dependency so it can be used and tested anywhere; caching is
done by the pages (`st.cache_data`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock

from common.config import get_settings

SNAPSHOT_FILE = "dashboard.duckdb"
CATALOG = Path(SNAPSHOT_FILE).stem
# Every read switches to the snapshot's `marts` schema so queries name tables unqualified.
_USE_MARTS = f"use {CATALOG}.marts"
_OPEN_ATTEMPTS = 5
_FIRST_BACKOFF_S = 0.05

QUOTA_DAILY_SQL = "select * from mart_111_quota_daily order by practice_ods, slot_day"
PUBLICATION_SQL = "select load_id, as_of, published_at from publication"
TABLES_SQL = (
    "select table_name from information_schema.tables "
    f"where table_catalog = '{CATALOG}' and table_schema = 'marts' order by table_name"
)

# Column names that could hold or point at a patient. No mart has any (marts are aggregates),
# but tables read generically (data-quality results) are filtered through this as well.
IDENTIFIER_COLUMN = re.compile(
    r"patient|nhs_?number|appointment_id|(^|_)dob($|_)|birth|postcode|address", re.I
)


@dataclass(frozen=True)
class MartQuery:
    """One read of one mart: `table` must exist for `sql` to run."""

    table: str
    sql: str


# Each page names the reads it needs. Findings are counted in SQL, so slot and appointment
# references never leave the snapshot.
MARTS: dict[str, MartQuery] = {
    "quota_daily": MartQuery("mart_111_quota_daily", QUOTA_DAILY_SQL),
    "nhs111_utilisation": MartQuery(
        "mart_111_utilisation_daily",
        "select * from mart_111_utilisation_daily order by practice_ods, slot_day",
    ),
    "slot_utilisation": MartQuery(
        "mart_slot_utilisation_daily",
        "select * from mart_slot_utilisation_daily order by practice_ods, slot_day, audience",
    ),
    "hub_hourly": MartQuery(
        "mart_hub_utilisation_hourly",
        "select * from mart_hub_utilisation_hourly order by hub_ods, slot_day, slot_hour",
    ),
    "releases": MartQuery(
        "mart_releases_daily", "select * from mart_releases_daily order by practice_ods, slot_day"
    ),
    "freshness": MartQuery(
        "mart_pipeline_freshness", "select * from mart_pipeline_freshness order by practice_ods"
    ),
    "findings": MartQuery(
        "mart_reconciliation_findings",
        "select practice_ods, reason_code, day, count(*) as findings "
        "from mart_reconciliation_findings group by all order by practice_ods, reason_code, day",
    ),
    "nhs111_drift": MartQuery(
        "mart_nhs111_drift_findings",
        "select practice_ods, kind, since, latest_observed_at, evidence, likely_cause, who_fixes "
        "from mart_nhs111_drift_findings order by since, practice_ods",
    ),
}

# Where the practice/hub attributes used by the filters come from, best first; each source is
# read only if its table exists, and the first non-null value per attribute wins. A source
# names the expressions that differ from the attribute's own column; any other attribute is
# that column when the mart has it, else null (hubs have no PCN, freshness has no geography).
@dataclass(frozen=True)
class DimensionSource:
    """One mart read for the filter attributes: `expressions` override same-named columns."""

    table: str
    expressions: Mapping[str, str]


_DIMENSION_SOURCES: tuple[DimensionSource, ...] = (
    DimensionSource("mart_slot_utilisation_daily", {}),
    DimensionSource("mart_111_quota_daily", {"kind": "'practice'"}),
    DimensionSource(
        "mart_hub_utilisation_hourly",
        {"practice_ods": "hub_ods", "practice_name": "hub_name", "kind": "'hub'",
         "clinical_system": "null", "pcn_code": "null"},
    ),
    DimensionSource("mart_pipeline_freshness", {}),
)
_DAY_SOURCES: tuple[tuple[str, str], ...] = (
    ("mart_111_quota_daily", "slot_day"),
    ("mart_slot_utilisation_daily", "slot_day"),
    ("mart_hub_utilisation_hourly", "slot_day"),
)
DIMENSION_COLUMNS = [
    "practice_ods", "practice_name", "kind", "clinical_system",
    "sub_icb_code", "icb_code", "region_code", "pcn_code",
]
# Snapshots published before sub-ICB locations replaced CCGs (July 2022) name the same codes
# ccg_code; they are read under the current name so an older snapshot still filters.
LEGACY_COLUMNS = {"ccg_code": "sub_icb_code"}


class SnapshotMissingError(FileNotFoundError):
    """No snapshot has been published yet."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"No published data at {path}. Run `slotsync demo` (synthetic practices) or "
            "`slotsync sync` (real practices) first; it publishes this snapshot."
        )


class SnapshotBusyError(RuntimeError):
    """The snapshot stayed locked by another process through every retry."""


class SnapshotChangedError(RuntimeError):
    """A newer snapshot was published since the page read its publication: read again."""


@dataclass(frozen=True)
class Publication:
    """Which load a snapshot holds: `as_of` is when its data was captured (aware, UTC)."""

    load_id: str
    as_of: datetime
    published_at: datetime

    @property
    def version(self) -> str:
        """Changes with every publish, even a re-publish of the same load: a cache key."""
        return f"{self.load_id}@{self.published_at.isoformat()}"


@dataclass(frozen=True)
class Catalogue:
    """What a snapshot holds: its marts, the practices and hubs in it, and its day range."""

    tables: tuple[str, ...]
    practices: pd.DataFrame
    first_day: date | None
    last_day: date | None

    def has(self, table: str) -> bool:
        return table in self.tables


def snapshot_path() -> Path:
    """`<data_dir>/published/dashboard.duckdb`; `SLOTSYNC_DATA_DIR` sets data_dir."""
    return get_settings().published_dir / SNAPSHOT_FILE


def read_frame(
    sql: str, params: Mapping[str, object] | None = None, *, path: Path | None = None
) -> pd.DataFrame:
    """Run one parameterised query on the snapshot (schema `marts`) and return its rows.

    Timestamps come back in UTC; convert to Europe/London only for display.
    """
    con = _connect(path or snapshot_path())
    try:
        return con.execute(sql, dict(params or {})).df()
    finally:
        # Closing at once is the point: an open handle would block the next publish.
        con.close()


def read_publication(path: Path | None = None) -> Publication:
    con = _connect(path or snapshot_path())
    try:
        return _publication(con)
    finally:
        con.close()


def read_quota_daily(path: Path | None = None) -> pd.DataFrame:
    """`mart_111_quota_daily`: one row per practice per UK day (see its SQL header)."""
    return read_frame(QUOTA_DAILY_SQL, path=path)


def read_mart(
    name: str, path: Path | None = None, *, expect_version: str | None = None
) -> pd.DataFrame | None:
    """The rows of the named read in `MARTS`, or None when the snapshot has no such mart."""
    query = MARTS[name]
    con = _connect(path or snapshot_path())
    try:
        _check_version(con, expect_version)
        if query.table not in _tables(con):
            return None
        return _current_names(_without_identifiers(con.execute(query.sql).df()))
    finally:
        con.close()


def read_catalogue(path: Path | None = None, *, expect_version: str | None = None) -> Catalogue:
    """Marts present, one row per practice/hub with its filter attributes, and the day range."""
    con = _connect(path or snapshot_path())
    try:
        _check_version(con, expect_version)
        tables = _tables(con)
        parts = [con.execute(_dimension_sql(con, q)).df() for q in _DIMENSION_SOURCES if q.table in tables]
        days = [
            f"select min({column}) as first_day, max({column}) as last_day from {table}"
            for table, column in _DAY_SOURCES
            if table in tables
        ]
        bounds = (
            con.execute(f"select min(first_day), max(last_day) from ({' union all '.join(days)})").fetchall()[
                0
            ]
            if days
            else (None, None)
        )
    finally:
        con.close()
    return Catalogue(
        tables=tuple(sorted(tables)),
        practices=_dimension(parts),
        first_day=_as_date(bounds[0]),
        last_day=_as_date(bounds[1]),
    )


def data_quality_tables(tables: tuple[str, ...]) -> list[str]:
    """Marts holding data-quality results (checks, quarantined batches), whatever their name."""
    pattern = re.compile(r"quality|quarantin|expectation|(^|_)dq(_|$)|check", re.I)
    return [t for t in tables if pattern.search(t)]


def read_table(
    table: str, path: Path | None = None, *, expect_version: str | None = None, limit: int = 5000
) -> pd.DataFrame | None:
    """Any mart, read generically (used for marts this dashboard does not know yet)."""
    con = _connect(path or snapshot_path())
    try:
        _check_version(con, expect_version)
        if table not in _tables(con):
            return None
        quoted = '"' + table.replace('"', '""') + '"'
        return _current_names(
            _without_identifiers(con.execute(f"select * from {quoted} limit {int(limit)}").df())
        )
    finally:
        con.close()


# ---------------------------------------------------------------------------- internals


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    con = _open_read_only(path)
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(_USE_MARTS)
    except BaseException:
        con.close()
        raise
    return con


def _publication(con: duckdb.DuckDBPyConnection) -> Publication:
    load_id, as_of, published_at = con.execute(PUBLICATION_SQL).fetchall()[0]
    return Publication(
        load_id=str(load_id),
        as_of=pd.Timestamp(as_of).to_pydatetime(),
        published_at=pd.Timestamp(published_at).to_pydatetime(),
    )


def _check_version(con: duckdb.DuckDBPyConnection, expected: str | None) -> None:
    if expected is not None and _publication(con).version != expected:
        raise SnapshotChangedError("a newer snapshot was published while the page was reading")


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {str(row[0]) for row in con.execute(TABLES_SQL).fetchall()}


def _without_identifiers(frame: pd.DataFrame) -> pd.DataFrame:
    dropped = [c for c in frame.columns if IDENTIFIER_COLUMN.search(str(c))]
    return frame.drop(columns=dropped) if dropped else frame


def _current_names(frame: pd.DataFrame) -> pd.DataFrame:
    renames = {
        old: new for old, new in LEGACY_COLUMNS.items() if old in frame.columns and new not in frame.columns
    }
    return frame.rename(columns=renames) if renames else frame


def _dimension_sql(con: duckdb.DuckDBPyConnection, source: DimensionSource) -> str:
    """The distinct filter attributes of one mart, whatever release published it."""
    present = {
        str(row[0])
        for row in con.execute(
            "select column_name from information_schema.columns "
            f"where table_catalog = '{CATALOG}' and table_schema = 'marts' and table_name = ?",
            [source.table],
        ).fetchall()
    }
    legacy = {new: old for old, new in LEGACY_COLUMNS.items()}
    selected = []
    for column in DIMENSION_COLUMNS:
        if column in source.expressions:
            expression = source.expressions[column]
        elif column in present:
            expression = column
        elif legacy.get(column) in present:
            expression = legacy[column]
        else:
            expression = "null"
        selected.append(f"{expression} as {column}")
    return f"select distinct {', '.join(selected)} from {source.table}"


def _dimension(parts: list[pd.DataFrame]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in DIMENSION_COLUMNS})
    stacked = pd.concat([p[DIMENSION_COLUMNS].astype("object") for p in parts], ignore_index=True)
    # groupby.first takes the first non-null value of each column, in source order.
    merged = stacked.groupby("practice_ods", sort=True).first().reset_index()
    merged["kind"] = merged["kind"].fillna("practice")
    return merged[DIMENSION_COLUMNS]


def _as_date(value: object) -> date | None:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    parsed: date = pd.Timestamp(str(value)).date()
    return parsed


def _open_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """Open read-only, retrying briefly while another process holds a conflicting lock."""
    for attempt in range(_OPEN_ATTEMPTS):
        if not path.exists():
            raise SnapshotMissingError(path)
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.IOException as exc:
            if attempt == _OPEN_ATTEMPTS - 1:
                raise SnapshotBusyError(
                    f"The published snapshot {path} is locked by another process ({exc}). "
                    "Try again in a moment."
                ) from exc
            time.sleep(_FIRST_BACKOFF_S * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover
