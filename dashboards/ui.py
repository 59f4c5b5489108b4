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
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock
import streamlit as st

from dashboards import data, disclosure, figures, filters, suppression, tables

UK = ZoneInfo("Europe/London")
CACHE_TTL_S = 60
STALE_AFTER = figures.STALE_AFTER  # the rule `slotsync status` applies
_CONTEXT_KEY = "_slotsync_context"
_PROBLEM_KEY = "_slotsync_problem"
_CUT_KEY = "_slotsync_cut"

KEY_PERIOD = "f_period"
KEY_REGION = "f_region"
KEY_ICB = "f_icb"
KEY_SUB_ICB = "f_sub_icb"
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
    now: datetime

    @property
    def version(self) -> str:
        return self.publication.version

    @property
    def scope(self) -> figures.Scope:
        return figures.scope_for_period(self.filters.first_day, self.filters.last_day, self.allowed)

    @property
    def age(self) -> timedelta:
        """How old the snapshot's data is, judged against now (the injectable clock)."""
        return self.now - self.publication.as_of

    @property
    def stale(self) -> bool:
        """The whole snapshot is older than a nightly plus grace: nothing on it is "all good"."""
        return self.age > STALE_AFTER

    @property
    def has_core_day(self) -> bool:
        return self.scope.has_core_day

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


@st.cache_data(ttl=CACHE_TTL_S, max_entries=64, show_spinner=False)
def cached_figures(
    snapshot: Path, version: str, group: str, scope: figures.Scope, at: datetime
) -> dict[str, figures.Value] | None:
    return figures.read_group(group, scope, snapshot=snapshot, at=at)


@st.cache_data(ttl=CACHE_TTL_S, max_entries=16, show_spinner=False)
def cached_scorecard(snapshot: Path, version: str, scope: figures.Scope) -> pd.DataFrame | None:
    return figures.scorecard(scope, snapshot=snapshot)


def figure_group(ctx: Context, group: str) -> dict[str, figures.Value] | None:
    """One group of named figures (`dashboards.figures`) for this page's period and filters."""
    scope = ctx.scope
    # Only freshness depends on now; the minute keeps the cache useful.
    at = ctx.now.replace(second=0, microsecond=0) if group == "freshness" else ctx.publication.as_of
    return cached_figures(ctx.snapshot, ctx.version, group, scope, at)


def figure_numbers(ctx: Context, group: str) -> figures.Numbers | None:
    values = figure_group(ctx, group)
    return None if values is None else figures.numbers(values)


def clear_caches() -> None:
    for cached in (
        cached_publication, cached_catalogue, cached_mart, cached_table, cached_figures, cached_scorecard
    ):
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
    st.session_state[_CUT_KEY] = {
        "data_as_of": publication.as_of.isoformat(),
        "period_from": chosen.first_day.isoformat(),
        "period_to": chosen.last_day.isoformat(),
        "filters": _filters_line(chosen),
        "disclosure_rule": disclosure.active_rule().name,
    }
    st.session_state[_CONTEXT_KEY] = Context(
        snapshot=snapshot,
        publication=publication,
        catalogue=catalogue,
        filters=chosen,
        allowed=filters.allowed_practices(catalogue.practices, chosen),
        labels=filters.labels(catalogue.practices),
        now=figures.now(),
    )


def _filters_line(chosen: filters.Filters) -> str:
    parts = [
        f"{label} {', '.join(values)}"
        for label, values in (
            ("region", chosen.regions), ("ICB", chosen.icbs), ("sub-ICB location", chosen.sub_icbs),
            ("PCN", chosen.pcns), ("practice", chosen.practices),
            ("system", chosen.systems),
        )
        if values
    ]
    return "; ".join(parts) or "none (all practices and hubs)"


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
        # Each level narrows the next; region and ICB are offered only when the registry has them
        # (registries from before sub-ICB locations carry only the old CCG code).
        regions = _optional_multiselect(
            "NHS region", filters.options(practices, "region_code"), KEY_REGION, "All regions"
        )
        in_regions = _within(practices, "region_code", regions)
        icbs = _optional_multiselect(
            "ICB", filters.options(in_regions, "icb_code"), KEY_ICB, "All ICBs",
            help="Integrated care boards.",
        )
        in_icbs = _within(in_regions, "icb_code", icbs)
        sub_icbs = _multiselect(
            "Sub-ICB location",
            filters.options(in_icbs, "sub_icb_code"),
            KEY_SUB_ICB,
            "All sub-ICB locations",
            help="The former CCGs: since July 2022 their codes (10K, 10V...) identify sub-ICB locations.",
        )
        in_sub_icbs = _within(in_icbs, "sub_icb_code", sub_icbs)
        pcns = _multiselect(
            "PCN",
            filters.options(in_sub_icbs, "pcn_code"),
            KEY_PCN,
            "All PCNs",
            help="Primary care networks. Extended-access hubs have no PCN, so picking one leaves hubs out.",
        )
        systems = _multiselect(
            "Clinical system", filters.options(practices, "clinical_system"), KEY_SYSTEM, "All systems"
        )
        narrowed = filters.allowed_practices(
            practices,
            filters.Filters(
                first, last, tuple(sub_icbs), tuple(pcns), (), tuple(systems), tuple(icbs), tuple(regions)
            ),
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
    return filters.Filters(
        start, end, tuple(sub_icbs), tuple(pcns), tuple(chosen), tuple(systems),
        tuple(icbs), tuple(regions),
    )


def _within(practices: pd.DataFrame, column: str, chosen: list[str]) -> pd.DataFrame:
    return practices if not chosen else practices.loc[practices[column].isin(chosen)]


def _optional_multiselect(
    label: str, options: list[str], key: str, placeholder: str, **kwargs: Any
) -> list[str]:
    # No codes in the data: no widget, and any earlier choice is forgotten.
    if not options:
        st.session_state.pop(key, None)
        return []
    return _multiselect(label, options, key, placeholder, **kwargs)


def _multiselect(label: str, options: list[str], key: str, placeholder: str, **kwargs: Any) -> list[str]:
    # A choice that is no longer offered (another snapshot, a narrower ICB or sub-ICB location)
    # is dropped first: Streamlit refuses a widget state outside its options.
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
    clock = "simulated clock" if figures.clock_is_pinned() else "wall clock"
    st.caption(
        f"Data as of **{format_uk(publication.as_of)}** (UK time), {describe_age(ctx.age)} old at "
        f"{format_uk(ctx.now)} ({clock}) · load `{publication.load_id}` · "
        f"published {format_uk(publication.published_at)} · showing {ctx.filters.describe()} · "
        f"disclosure rule `{disclosure.active_rule().name}`"
    )
    if ctx.stale:
        st.error(
            f"**This data is stale: captured {describe_age(ctx.age)} ago** (more than "
            f"{int(STALE_AFTER.total_seconds() // 3600)} hours). The pipeline has not published since; "
            "every figure below describes that older capture, not today. Check `slotsync status` "
            "and the Data health page.",
            icon=":material/error:",
        )
    if not ctx.has_core_day:
        st.warning(
            "**No core days in the selected period** (Monday to Friday): no NHS 111 quota applies, "
            "so nothing here says whether practices met it.",
            icon=":material/event_busy:",
        )
    if intro:
        st.markdown(intro)
    return ctx


def describe_age(age: timedelta) -> str:
    """`3 days 4 hours`, `5 hours`, `12 minutes`: how old data is, in words."""
    minutes = max(0, int(age.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} day{'s' * (days != 1)} {hours} hour{'s' * (hours != 1)}"
    if hours:
        return f"{hours} hour{'s' * (hours != 1)} {minutes} min"
    return f"{minutes} min"


def count(value: figures.Value) -> str:
    """A count for a tile; a missing figure reads `–`, never `None`."""
    return "–" if value is None else f"{int(value):,}"  # type: ignore[arg-type]


def rate_with_bound(low: figures.Value, high: figures.Value) -> str:
    """`31.4% – 96.2%`: a rate whose outcomes are partly unknown, with its upper bound."""
    if low is None:
        return "–"
    if high is None or abs(float(high) - float(low)) < 0.0005:  # type: ignore[arg-type]
        return percent(float(low))  # type: ignore[arg-type]
    return f"{percent(float(low))} – {percent(float(high))}"  # type: ignore[arg-type]


def shown_rate(shown: dict[str, str], totals: dict[str, Any]) -> str:
    """The rate with its upper bound, unless suppression hides it."""
    if shown["utilisation"] in (suppression.PRIMARY, suppression.SECONDARY):
        return shown["utilisation"]
    return rate_with_bound(totals["utilisation"], totals["utilisation_if_unknown_booked"])


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
    st.caption(f":material/shield: {disclosure.active_rule().note}")


def csv_download(frame: pd.DataFrame, *, label: str, file_name: str, key: str) -> None:
    """A download button for exactly the rows shown; no rerun when clicked.

    Every row carries the data's as-of time, the period and the filters it was cut with (set by
    `shell`), so a CSV read on its own still says what it covers.
    """
    cut: dict[str, str] = st.session_state.get(_CUT_KEY, {})
    export = frame.copy()
    for position, (column, value) in enumerate(cut.items()):
        export.insert(position, column, value)
    st.download_button(
        label,
        data=export.to_csv(index=False).encode("utf-8"),
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
    tables.dataframe(shown, config, height=height)
    export = result.export()[list(columns)]
    for column in export.columns:
        if pd.api.types.is_datetime64_any_dtype(export[column]):
            export[column] = export[column].dt.date
    csv_download(export, label=label, file_name=file_name, key=key)
