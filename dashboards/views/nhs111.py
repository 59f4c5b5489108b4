"""Page: NHS 111 slots vs quota, per practice and UK day, for CCG/ICB leads.

Reads `mart_111_quota_daily` from the published snapshot only. Every figure is computed in
`dashboards.quota`; this module only lays the page out.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import altair as alt
import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock
import streamlit as st
from streamlit.elements.lib.column_types import ColumnConfig

from dashboards import data, quota, ui

TITLE = "NHS 111 slots vs quota"
STATUS_COLOURS = ("#2c7bb6", "#fdae61", "#d7191c")  # colour-blind safe: blue / orange / red
MAX_DAYS_WITH_CELL_TEXT = 31
ROW_STEP_PX = 34

DEFINITION = (
    "**How compliance is measured.** A slot counts towards the NHS 111 quota only if it is "
    "*reserved* for NHS 111: returned to the 111 provider's GP Connect search but not to an "
    "unfiltered search. The quota is `max(1, floor(list_size / 3000))` slots per core day "
    "(Monday to Friday, UK calendar day); weekends have no quota. *Offered* counts every "
    "reserved slot seen for the day; *free* counts those still free at the latest capture."
)
HELP_PRACTICES = (
    "Distinct GP practices (booking hubs excluded) with at least one captured day in the current filters."
)
HELP_BELOW = (
    "Number of (practice, core day) pairs in the current filters where the NHS 111 reserved "
    "slots offered were fewer than the practice's daily quota, max(1, floor(list size / 3000)). "
    "Core days are Monday to Friday."
)
HELP_SHARE = (
    "Core practice-days meeting quota (reserved slots offered ≥ quota) divided by all core "
    "practice-days in the current filters. Only slots reserved for NHS 111 count, not "
    "unrestricted slots the 111 provider could also see."
)

# Order matters: the compliance columns first, context (and horizontal scrolling) after.
DAILY_COLUMNS: dict[str, ColumnConfig | str] = {
    "practice_ods": "ODS code",
    "practice_name": "Practice",
    "slot_day": st.column_config.DateColumn("Day", format="ddd D MMM YYYY"),
    "is_core_day": st.column_config.CheckboxColumn("Core day"),
    "quota": st.column_config.NumberColumn("Quota"),
    "nhs111_reserved_offered": st.column_config.NumberColumn("111 reserved offered"),
    "meets_quota": st.column_config.CheckboxColumn("Meets quota"),
    "nhs111_reserved_free": st.column_config.NumberColumn("111 reserved free"),
    "nhs111_visible_free": st.column_config.NumberColumn("Free, visible to 111"),
    "ccg_code": "CCG",
    "pcn_code": "PCN",
    "clinical_system": "System",
    "list_size": st.column_config.NumberColumn("List size", format="localized"),
}
BELOW_COLUMNS: dict[str, ColumnConfig | str] = {
    "practice_ods": "ODS code",
    "practice_name": "Practice",
    "ccg_code": "CCG",
    "pcn_code": "PCN",
    "clinical_system": "System",
    "quota": st.column_config.NumberColumn("Quota / day"),
    "core_days": st.column_config.NumberColumn("Core days"),
    "core_days_below": st.column_config.NumberColumn("Core days below quota"),
    "worst_day": st.column_config.DateColumn("Worst day", format="ddd D MMM YYYY"),
    "worst_day_offered": st.column_config.NumberColumn("Offered on worst day"),
}


@st.cache_data(ttl=ui.CACHE_TTL_S, max_entries=4, show_spinner="Reading the published snapshot…")
def _quota_daily(snapshot: Path, version: str) -> pd.DataFrame:
    # Keyed on the publication version so a new snapshot is read as soon as its as-of time
    # is shown; `version` is only part of the cache key.
    del version
    return quota.prepare(data.read_quota_daily(snapshot))


def render() -> None:
    snapshot = data.snapshot_path()
    publication = ui.snapshot_header(TITLE, snapshot)
    if publication is None:
        return
    try:
        daily = _quota_daily(snapshot, publication.version)
    except (data.SnapshotMissingError, data.SnapshotBusyError) as exc:
        st.warning(str(exc))
        return
    if daily.empty:
        st.info("The published snapshot has no practice-days yet: no practice has a completed capture.")
        return
    selected = quota.apply_filters(daily, _sidebar_filters(daily))
    stamp = f"{publication.as_of:%Y%m%dT%H%MZ}"
    _kpi_row(quota.kpis(selected))
    st.markdown(DEFINITION)
    if selected.empty:
        st.info("No practice-days match the filters.")
        return
    _heatmap(selected)
    _below_quota_table(selected, stamp)
    _daily_table(selected, stamp)


def _sidebar_filters(daily: pd.DataFrame) -> quota.QuotaFilters:
    first: date = daily["slot_day"].min().date()
    last: date = daily["slot_day"].max().date()
    names = daily.drop_duplicates("practice_ods").set_index("practice_ods")["practice_label"].to_dict()
    with st.sidebar:
        st.header("Filters")
        picked = st.date_input(
            "Days", value=(first, last), min_value=first, max_value=last, format="DD/MM/YYYY",
            help="UK calendar days the slots start on.",
        )
        ccgs = st.multiselect("CCG", _options(daily, "ccg_code"), key="nhs111_ccg", placeholder="All CCGs")
        practices = st.multiselect(
            "Practice", sorted(names, key=lambda ods: names[ods]), format_func=lambda ods: names[ods],
            key="nhs111_practice", placeholder="All practices",
        )
        systems = st.multiselect(
            "Clinical system", _options(daily, "clinical_system"), key="nhs111_system",
            placeholder="All systems",
        )
    start, end = _date_range(picked, first, last)
    return quota.QuotaFilters(start, end, tuple(ccgs), tuple(practices), tuple(systems))


def _options(daily: pd.DataFrame, column: str) -> list[str]:
    return sorted(str(value) for value in daily[column].dropna().unique())


def _date_range(picked: object, first: date, last: date) -> tuple[date, date]:
    # While a range is half-picked the widget returns one date: show that single day.
    if isinstance(picked, tuple) and len(picked) == 2:
        return picked[0], picked[1]
    if isinstance(picked, tuple) and len(picked) == 1:
        return picked[0], picked[0]
    if isinstance(picked, date):
        return picked, picked
    return first, last


def _kpi_row(kpis: quota.QuotaKpis) -> None:
    share = kpis.share_meeting
    practices, below, meeting = st.columns(3)
    practices.metric("Practices", f"{kpis.practices:,}", help=HELP_PRACTICES, border=True)
    below.metric("Core practice-days below quota", f"{kpis.core_days_below:,}", help=HELP_BELOW, border=True)
    meeting.metric(
        "% practice-days meeting quota", "–" if share is None else f"{share:.1%}",
        help=HELP_SHARE, border=True,
    )


def _heatmap(selected: pd.DataFrame) -> None:
    st.subheader("Reserved NHS 111 slots offered vs quota, core days")
    cells = quota.heatmap_frame(selected)
    if cells.empty:
        st.info("No core days (Monday to Friday) in the selected range.")
        return
    days = cells.sort_values("slot_day")["day_label"].drop_duplicates().tolist()
    rows = quota.practice_order(cells)
    label_angle = 0 if len(days) <= 10 else -45
    base = alt.Chart(cells).encode(
        x=alt.X("day_label:O", sort=days, title=None, axis=alt.Axis(labelAngle=label_angle)),
        y=alt.Y("practice_label:N", sort=rows, title=None, axis=alt.Axis(labelLimit=320)),
    )
    rects = base.mark_rect(stroke="white", strokeWidth=1).encode(
        color=alt.Color(
            "status:N",
            scale=alt.Scale(domain=list(quota.STATUS_ORDER), range=list(STATUS_COLOURS)),
            legend=alt.Legend(title=None, orient="top"),
        ),
        tooltip=[
            alt.Tooltip("practice_label:N", title="Practice"),
            alt.Tooltip("day_label:N", title="Day"),
            alt.Tooltip("nhs111_reserved_offered:Q", title="111 reserved offered"),
            alt.Tooltip("quota:Q", title="Quota"),
            alt.Tooltip("ratio:Q", title="Offered / quota", format=".0%"),
            alt.Tooltip("status:N", title="Status"),
        ],
    )
    chart: alt.LayerChart | alt.Chart = rects
    if len(days) <= MAX_DAYS_WITH_CELL_TEXT:
        # "offered/quota" in each cell; dark text on the light orange, white elsewhere.
        text = base.mark_text(fontSize=12).encode(
            text="cell_text:N",
            color=alt.condition(
                alt.datum.status == quota.STATUS_BELOW, alt.value("black"), alt.value("white")
            ),
        )
        chart = rects + text
    # A fixed row step, not a pixel height: Streamlit 1.67 collapses an ordinal axis given
    # `properties(height=N)`.
    st.altair_chart(chart.properties(width="container", height=alt.Step(ROW_STEP_PX)), width="stretch")
    st.caption("Cells show reserved slots offered / daily quota. Rows with the most days below quota first.")


def _below_quota_table(selected: pd.DataFrame, stamp: str) -> None:
    st.subheader("Practices below quota")
    table = quota.practices_below_quota(selected)
    if table.empty:
        st.success("Every practice met its NHS 111 quota on every core day in the filters.")
        return
    st.dataframe(table, hide_index=True, column_config=BELOW_COLUMNS, column_order=list(BELOW_COLUMNS))
    ui.csv_download(
        table, label="Download practices below quota (CSV)",
        file_name=f"nhs111_practices_below_quota_{stamp}.csv", key="download_below",
    )


def _daily_table(selected: pd.DataFrame, stamp: str) -> None:
    st.subheader("Practice-days")
    table = selected[list(DAILY_COLUMNS)].assign(slot_day=selected["slot_day"].dt.date)
    st.dataframe(table, hide_index=True, column_config=DAILY_COLUMNS)
    ui.csv_download(
        table, label="Download practice-days (CSV)",
        file_name=f"nhs111_practice_days_{stamp}.csv", key="download_daily",
    )
