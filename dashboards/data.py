"""Read-only access to the published marts snapshot, the only data the dashboards see.

The sync flow publishes `<data_dir>/published/dashboard.duckdb` by atomic rename. DuckDB lets a
file have one writer *or* many readers, and any open connection blocks the writer, so every
read here opens the snapshot read-only, runs one query, fetches a DataFrame and closes the
connection straight away. Nothing here touches the warehouse file or raw/staging/core.

This module has no Streamlit dependency so it can be used and tested anywhere; caching is
done by the pages (`st.cache_data`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock

from connectors.config import get_settings

SNAPSHOT_FILE = "dashboard.duckdb"
# Every read switches to the snapshot's `marts` schema so queries name tables unqualified.
_USE_MARTS = f"use {Path(SNAPSHOT_FILE).stem}.marts"
_OPEN_ATTEMPTS = 5
_FIRST_BACKOFF_S = 0.05

QUOTA_DAILY_SQL = "select * from mart_111_quota_daily order by practice_ods, slot_day"
PUBLICATION_SQL = "select load_id, as_of, published_at from publication"


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


def snapshot_path() -> Path:
    """`<data_dir>/published/dashboard.duckdb`; `SLOTSYNC_DATA_DIR` sets data_dir."""
    return get_settings().published_dir / SNAPSHOT_FILE


def read_frame(
    sql: str, params: Mapping[str, object] | None = None, *, path: Path | None = None
) -> pd.DataFrame:
    """Run one parameterised query on the snapshot (schema `marts`) and return its rows.

    Timestamps come back in UTC; convert to Europe/London only for display.
    """
    target = path or snapshot_path()
    con = _open_read_only(target)
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(_USE_MARTS)
        return con.execute(sql, dict(params or {})).df()
    finally:
        # Closing at once is the point: an open handle would block the next publish.
        con.close()


def read_publication(path: Path | None = None) -> Publication:
    row = read_frame(PUBLICATION_SQL, path=path).iloc[0]
    return Publication(
        load_id=str(row["load_id"]),
        as_of=pd.Timestamp(row["as_of"]).to_pydatetime(),
        published_at=pd.Timestamp(row["published_at"]).to_pydatetime(),
    )


def read_quota_daily(path: Path | None = None) -> pd.DataFrame:
    """`mart_111_quota_daily`: one row per practice per UK day (see its SQL header)."""
    return read_frame(QUOTA_DAILY_SQL, path=path)


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
