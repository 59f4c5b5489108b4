"""Streamlit pieces every dashboard page shares: the shell (shared filters), caching, the page
header, KPIs and downloads.

Caching lives here, not in `dashboards.data`, so data access stays usable without a Streamlit
runtime. `st.cache_data` is shared by all users, which is fine because the snapshot holds
aggregated marts only (no patient identifiers, nothing per user). Every cached read is keyed
by the publication version, and checks in its own connection that the snapshot still is that
version, so a page shows one load only, even while a sync publishes a new one.

The sidebar filters are drawn by `shell()` from the entry point, before the page runs, so
their values persist from page to page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock
import streamlit as st

from dashboards import data, filters, suppression

UK = ZoneInfo("Europe/London")
CACHE_TTL_S = 60
STALE_AFTER = timedelta(hours=26)  # `slotsync status`'s default for a practice
_CONTEXT_KEY = "_slotsync_context"
_PROBLEM_KEY = "_slotsync_problem"

KEY_PERIOD = "f_period"
KEY_CCG = "f_ccg"
KEY_PCN = "f_pcn"
KEY_PRACTICE = "f_practice"
KEY_SYSTEM = "f_system"


@dataclass(frozen=True)
class Context:
    """Everything a page needs: which snapshot, which load, which filters."""

    snapshot: Path
    publication: data.Publication
    catalogue: data.Catalogue
    filters: filters.Filters
    allowed: set[str] | None
    labels: dict[str, str]

    @property
    def version(self) -> str:
        return self.publication.version

    @property
    def stamp(self) -> str:
        """For download file names: when the data was captured."""
        return f"{self.publication.as_of:%Y%m%dT%H%MZ}"

    @property
    def as_of_day(self) -> date:
        return self.publication.as_of.astimezone(UK).date()

    def select(
        self, frame: pd.DataFrame, *, ods_column: str = "practice_ods", day_column: str | None = "slot_day"
    ) -> pd.DataFrame:
        return filters.select(frame, self.filters, self.allowed, ods_column=ods_column, day_column=day_column)


# ---------------------------------------------------------------------------- cached reads


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def cached_publication(snapshot: Path) -> data.Publication:
    # The path is part of the cache key, so pointing the app at another data dir never
    # shows the previous one's publication.
    return data.read_publication(snapshot)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=4, show_spinner=False)
def cached_catalogue(snapshot: Path, version: str) -> data.Catalogue:
    return data.read_catalogue(snapshot, expect_version=version)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=32, show_spinner="Reading the published snapshot…")
def cached_mart(snapshot: Path, version: str, name: str) -> pd.DataFrame | None:
    return data.read_mart(name, snapshot, expect_version=version)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=16, show_spinner=False)
def cached_table(snapshot: Path, version: str, table: str) -> pd.DataFrame | None:
    return data.read_table(table, snapshot, expect_version=version)


def clear_caches() -> None:
    for cached in (cached_publication, cached_catalogue, cached_mart, cached_table):
        cached.clear()


def _reread() -> NoReturn:
    """A newer snapshot appeared mid-page: forget the old one and draw the page again."""
    clear_caches()
    st.rerun()


def mart(ctx: Context, name: str) -> pd.DataFrame | None:
    """A mart read for this page (None: the snapshot has no such mart yet)."""
    try:
        return cached_mart(ctx.snapshot, ctx.version, name)
    except data.SnapshotChangedError:
        _reread()
    except (data.SnapshotMissingError, data.SnapshotBusyError) as exc:
        st.warning(str(exc), icon=":material/hourglass_top:")
        st.stop()
        raise  # unreachable: st.stop() raises


def table(ctx: Context, name: str) -> pd.DataFrame | None:
    try:
        return cached_table(ctx.snapshot, ctx.version, name)
    except data.SnapshotChangedError:
        _reread()


# ---------------------------------------------------------------------------- shell


def shell() -> None:
    """Read which snapshot is published and draw the shared sidebar filters.

    Runs in the entry point before the page, every run. The page then gets the result from
    `page_header()`; when there is no snapshot it gets the reason instead.
    """
    st.session_state.pop(_CONTEXT_KEY, None)
    st.session_state.pop(_PROBLEM_KEY, None)
    snapshot = data.snapshot_path()
    try:
        publication = cached_publication(snapshot)
        catalogue = cached_catalogue(snapshot, publication.version)
    except data.SnapshotChangedError:
        _reread()
    except data.SnapshotMissingError as exc:
        st.session_state[_PROBLEM_KEY] = ("info", f"**No data published yet.** {exc}")
        return
    except data.SnapshotBusyError as exc:
        st.session_state[_PROBLEM_KEY] = ("warning", str(exc))
        return
    if catalogue.first_day is None or catalogue.last_day is None:
        st.session_state[_PROBLEM_KEY] = (
            "info",
            "The published snapshot has no practice-days yet: no practice has a completed capture.",
        )
        return
    as_of_day = publication.as_of.astimezone(UK).date()
    chosen = _sidebar(catalogue, as_of_day)
    st.session_state[_CONTEXT_KEY] = Context(
        snapshot=snapshot,
        publication=publication,
        catalogue=catalogue,
        filters=chosen,
        allowed=filters.allowed_practices(catalogue.practices, chosen),
        labels=filters.labels(catalogue.practices),
    )


def _sidebar(catalogue: data.Catalogue, as_of_day: date) -> filters.Filters:
    assert catalogue.first_day is not None and catalogue.last_day is not None
    first, last = catalogue.first_day, catalogue.last_day
    practices = catalogue.practices
    names = filters.labels(practices)
    _forget_out_of_range(first, last)
    with st.sidebar:
        st.header("Filters")
        picked = st.date_input(
            "Period",
            value=filters.default_period(first, last, as_of_day),
            min_value=first,
            max_value=last,
            format="DD/MM/YYYY",
            key=KEY_PERIOD,
            help=(
                "UK calendar days the slots start on. Starts as the last 7 days up to the day "
                f"the data was captured; the snapshot covers {first:%d %b} to {last:%d %b %Y} "
                "(later days are slots already offered for the weeks ahead)."
            ),
        )
        ccgs = _multiselect("CCG", filters.options(practices, "ccg_code"), KEY_CCG, "All CCGs")
        in_ccgs = practices if not ccgs else practices.loc[practices["ccg_code"].isin(ccgs)]
        pcns = _multiselect(
            "PCN",
            filters.options(in_ccgs, "pcn_code"),
            KEY_PCN,
            "All PCNs",
            help="Primary care networks. Extended-access hubs have no PCN, so picking one leaves hubs out.",
        )
        systems = _multiselect(
            "Clinical system", filters.options(practices, "clinical_system"), KEY_SYSTEM, "All systems"
        )
        narrowed = filters.allowed_practices(
            practices, filters.Filters(first, last, tuple(ccgs), tuple(pcns), (), tuple(systems))
        )
        candidates = [ods for ods in names if narrowed is None or ods in narrowed]
        chosen = _multiselect(
            "Practice or hub",
            sorted(candidates, key=lambda ods: names[ods]),
            KEY_PRACTICE,
            "All practices and hubs",
            format_func=lambda ods: names.get(ods, ods),
        )
    start, end = _date_range(picked, first, last)
    return filters.Filters(start, end, tuple(ccgs), tuple(pcns), tuple(chosen), tuple(systems))


def _multiselect(label: str, options: list[str], key: str, placeholder: str, **kwargs: Any) -> list[str]:
    # A choice that is no longer offered (another snapshot, a narrower CCG) is dropped first:
    # Streamlit refuses a widget state outside its options.
    if key in st.session_state:
        kept = [v for v in st.session_state[key] if v in options]
        if kept != st.session_state[key]:
            st.session_state[key] = kept
    return list(st.multiselect(label, options, key=key, placeholder=placeholder, **kwargs))


def _forget_out_of_range(first: date, last: date) -> None:
    picked = st.session_state.get(KEY_PERIOD)
    days = picked if isinstance(picked, tuple | list) else (picked,)
    if picked is not None and any(isinstance(d, date) and not first <= d <= last for d in days):
        del st.session_state[KEY_PERIOD]


def _date_range(picked: object, first: date, last: date) -> tuple[date, date]:
    # While a range is half-picked the widget returns one date: show that single day.
    if isinstance(picked, tuple) and len(picked) == 2:
        return picked[0], picked[1]
    if isinstance(picked, tuple) and len(picked) == 1:
        return picked[0], picked[0]
    if isinstance(picked, date):
        return picked, picked
    return first, last


# ---------------------------------------------------------------------------- page parts


def format_uk(instant: datetime) -> str:
    """`Thu 5 Mar 2026, 23:30 GMT`: UK wall-clock time with GMT/BST spelled out."""
    local = instant.astimezone(UK)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M %Z}"


def page_header(title: str, intro: str | None = None) -> Context | None:
    """Title, data as-of time and a refresh button; None (with a message) if there is no data."""
    st.title(title)
    refresh_help = f"Re-read the published snapshot now (otherwise at most every {CACHE_TTL_S} s)."
    st.button("Refresh data", help=refresh_help, on_click=clear_caches)
    problem = st.session_state.get(_PROBLEM_KEY)
    ctx: Context | None = st.session_state.get(_CONTEXT_KEY)
    if ctx is None:
        kind, message = problem or ("info", "**No data published yet.**")
        if kind == "warning":
            st.warning(message, icon=":material/hourglass_top:")
        else:
            st.info(message, icon=":material/info:")
        return None
    publication = ctx.publication
    age = datetime.now(UTC) - publication.as_of
    old = f" · :orange[**{age.days} days old**]" if age > STALE_AFTER else ""
    st.caption(
        f"Data as of **{format_uk(publication.as_of)}** (UK time){old} · load `{publication.load_id}` · "
        f"published {format_uk(publication.published_at)} · showing {ctx.filters.describe()}"
    )
    if intro:
        st.markdown(intro)
    return ctx


def not_available(what: str, table_name: str) -> None:
    st.info(
        f"**{what}: not available yet.** The published snapshot has no `{table_name}` table; it "
        "appears here once the warehouse publishes it.",
        icon=":material/schedule:",
    )


def kpi(column: Any, label: str, value: str, help_text: str, *, caption: str | None = None) -> None:
    column.metric(label, value, help=help_text, border=True)
    if caption:
        column.caption(caption)


def suppression_note() -> None:
    st.caption(f":material/shield: {suppression.NOTE}")


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


def percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.{digits}%}"


def shared_table(
    result: suppression.Suppressed,
    columns: dict[str, str],
    *,
    label: str,
    file_name: str,
    key: str,
    helps: dict[str, str] | None = None,
    height: int | None = None,
) -> None:
    """A suppressed table as shown (marks right-aligned like numbers) and its CSV download."""
    shown = result.display()[list(columns)]
    config: dict[str, Any] = {}
    for column, title in columns.items():
        help_text = (helps or {}).get(column)
        if column in result.marks.columns:
            config[column] = st.column_config.TextColumn(title, help=help_text, alignment="right")
        elif pd.api.types.is_datetime64_any_dtype(shown[column]):
            shown[column] = shown[column].dt.date
            config[column] = st.column_config.DateColumn(title, help=help_text, format="ddd D MMM YYYY")
        elif pd.api.types.is_numeric_dtype(shown[column]):
            config[column] = st.column_config.NumberColumn(title, help=help_text, format="localized")
        else:
            config[column] = st.column_config.TextColumn(title, help=help_text)
    kwargs: dict[str, Any] = {"height": height} if height else {}
    st.dataframe(shown, hide_index=True, column_config=config, **kwargs)
    export = result.export()[list(columns)]
    for column in export.columns:
        if pd.api.types.is_datetime64_any_dtype(export[column]):
            export[column] = export[column].dt.date
    csv_download(export, label=label, file_name=file_name, key=key)
