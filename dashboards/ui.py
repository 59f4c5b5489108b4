"""Streamlit pieces every dashboard page shares: the snapshot header, caching and downloads.

Caching lives here and in the pages, not in `dashboards.data`, so data access stays usable
without a Streamlit runtime. `st.cache_data` is shared by all users, which is fine because
the snapshot holds aggregated marts only (no patient identifiers, nothing per user).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock
import streamlit as st

from dashboards import data

UK = ZoneInfo("Europe/London")
CACHE_TTL_S = 60


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def cached_publication(snapshot: Path) -> data.Publication:
    # The path is part of the cache key, so pointing the app at another data dir never
    # shows the previous one's publication.
    return data.read_publication(snapshot)


def format_uk(instant: datetime) -> str:
    """`Thu 5 Mar 2026, 23:30 GMT`: UK wall-clock time with GMT/BST spelled out."""
    local = instant.astimezone(UK)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M %Z}"


def snapshot_header(title: str, snapshot: Path) -> data.Publication | None:
    """Title, data as-of time and a refresh button; None (with a message) if there is no data."""
    st.title(title)
    refresh_help = f"Re-read the published snapshot now (otherwise at most every {CACHE_TTL_S} s)."
    if st.button("Refresh data", help=refresh_help):
        cached_publication.clear()
    try:
        publication = cached_publication(snapshot)
    except data.SnapshotMissingError as exc:
        st.info(f"**No data published yet.** {exc}", icon=":material/info:")
        return None
    except data.SnapshotBusyError as exc:
        st.warning(str(exc), icon=":material/hourglass_top:")
        return None
    st.caption(
        f"Data as of **{format_uk(publication.as_of)}** (UK time) · load `{publication.load_id}` · "
        f"published {format_uk(publication.published_at)}"
    )
    return publication


def csv_download(frame: pd.DataFrame, *, label: str, file_name: str, key: str) -> None:
    """A download button for exactly the rows shown; no rerun when clicked."""
    st.download_button(
        label,
        data=frame.to_csv(index=False).encode("utf-8"),
        file_name=file_name,
        mime="text/csv",
        key=key,
        on_click="ignore",
        icon=":material/download:",
    )
