"""Page: NHS 111 slots vs quota, per practice and UK day, for ICB and sub-ICB leads.

Reads `mart_111_quota_daily` from the published snapshot only. Every figure is computed in
`dashboards.quota`; this module only lays the page out. The page shows slot capacity only
(slots offered against the quota), never booking counts, so nothing here is suppressed.
"""

from __future__ import annotations

import altair as alt
import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock
import streamlit as st
from streamlit.elements.lib.column_types import ColumnConfig

from dashboards import figures, quota, tables, ui

TITLE = "NHS 111 slots vs quota"
URL_PATH = "nhs111"
# colour-blind safe: blue / orange / red, and grey for practices not set up for 111 booking
STATUS_COLOURS = ("#2c7bb6", "#fdae61", "#d7191c", "#bababa")
MAX_DAYS_WITH_CELL_TEXT = 31
ROW_STEP_PX = 30

DEFINITION = (
    "**How compliance is measured.** A slot counts towards the NHS 111 quota only if it is "
    "*reserved* for NHS 111: returned to the 111 provider's GP Connect search but not to an "
    "unfiltered search. The quota is `max(1, floor(list_size / 3000))` slots per core day "
    "(Monday to Friday, UK calendar day), from the list size in force that day, so a past "
    "day keeps the quota it had; weekends have no quota. *Offered* counts every "
    "reserved slot seen for the day at any capture."
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
HELP_BELOW_PRACTICES = (
    "Practices set up for NHS 111 direct booking with at least one core day in the period on which "
    "they offered fewer reserved 111 slots than their quota. Practices not set up for 111 booking "
    "are counted apart, not as below quota."
)
HELP_OFFERED = (
    "Reserved NHS 111 slots offered on core days in the filters, against the sum of the daily quotas."
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
    "nhs111_visible_free": st.column_config.NumberColumn(
        "Free, visible to 111",
        help="Slots 111 could still book at the latest capture (reserved or open to anyone).",
    ),
    "sub_icb_code": "Sub-ICB",
    "pcn_code": "PCN",
    "clinical_system": "System",
    "list_size": st.column_config.NumberColumn("List size", format="localized"),
}
BELOW_COLUMNS: dict[str, ColumnConfig | str] = {
    "practice_ods": "ODS code",
    "practice_name": "Practice",
    "sub_icb_code": "Sub-ICB",
    "pcn_code": "PCN",
    "clinical_system": "System",
    "quota": st.column_config.NumberColumn("Quota / day"),
    "core_days": st.column_config.NumberColumn("Core days"),
    "core_days_below": st.column_config.NumberColumn("Core days below quota"),
    "worst_day": st.column_config.DateColumn("Worst day", format="ddd D MMM YYYY"),
    "worst_day_offered": st.column_config.NumberColumn("Offered on worst day"),
}
TREND_COLUMNS: dict[str, ColumnConfig | str] = {
    "slot_day": st.column_config.DateColumn("Day", format="ddd D MMM YYYY"),
    "practices": st.column_config.NumberColumn("Practices"),
    "practices_meeting": st.column_config.NumberColumn("Meeting quota"),
    "share_meeting": st.column_config.NumberColumn("% meeting quota", format="%.1f%%"),
    "offered": st.column_config.NumberColumn("Reserved offered"),
    "quota": st.column_config.NumberColumn("Quota"),
}


def load(ctx: ui.Context) -> pd.DataFrame | None:
    frame = ui.mart(ctx, "quota_daily")
    return None if frame is None else quota.prepare(frame)


def page() -> st.Page:
    """This view as a navigation page (the app lists it; other pages link to it)."""
    return st.Page(render, title=TITLE, url_path=URL_PATH, icon=":material/call:")


def render() -> None:
    ctx = ui.page_header(TITLE)
    if ctx is None:
        return
    daily = load(ctx)
    if daily is None:
        ui.not_available("NHS 111 quota compliance", "mart_111_quota_daily")
        return
    selected = ctx.select(daily)
    values = ui.figure_group(ctx, "nhs111_quota") or {}
    _kpi_row(values)
    st.markdown(DEFINITION)
    if selected.empty:
        st.info("No practice-days match the filters.")
        return
    _scorecard(ctx, values)
    _heatmap(selected)
    _below_quota_table(ctx, selected, ctx.stamp)
    _trend(selected, ctx.stamp)
    _daily_table(selected, ctx.stamp)


def _kpi_row(values: dict[str, figures.Value]) -> None:
    practices, offered, below, days_below = st.columns(4)
    practices.metric("Practices", ui.count(values.get("practices")), help=HELP_PRACTICES, border=True)
    if not values.get("core_days"):
        for column, label in (
            (offered, figures.LABELS["nhs111_offered_core_days"]),
            (below, figures.LABELS["practices_below_quota"]),
            (days_below, "Practice-days below quota"),
        ):
            ui.kpi(column, label, "–", HELP_OFFERED, caption="no core days in the period: no quota applies")
        return
    ui.kpi(
        offered,
        figures.LABELS["nhs111_offered_core_days"],
        ui.count(values["nhs111_offered_core_days"]),
        HELP_OFFERED,
        caption=f"against a quota of {ui.count(values['nhs111_quota'])} · "
        f"{ui.count(values['nhs111_shortfall_slots'])} slots short",
    )
    ui.kpi(
        below,
        figures.LABELS["practices_below_quota"],
        f"{ui.count(values['practices_below_quota'])} of {ui.count(values['practices'])}",
        HELP_BELOW_PRACTICES,
        caption=f"{ui.count(values['practices_not_set_up_for_111'])} not set up for 111 booking",
    )
    ui.kpi(days_below, "Practice-days below quota", ui.count(values["core_practice_days_below"]), HELP_BELOW)


SCORECARD_COLUMNS: dict[str, ColumnConfig | str] = {
    "practice": st.column_config.TextColumn("Practice", width="medium"),
    "pcn_code": st.column_config.TextColumn("PCN", width="small"),
    "set_up": st.column_config.TextColumn("111 booking", width="small"),
    "offered_core_days": st.column_config.NumberColumn("Offered (core days)", format="localized"),
    "quota": st.column_config.NumberColumn("Quota", format="localized"),
    "shortfall_slots": st.column_config.NumberColumn("Shortfall (slots)", format="localized"),
    "core_days_below": st.column_config.NumberColumn("Days below"),
    "verdict": st.column_config.TextColumn("Verdict", width="medium"),
}


def _scorecard(ctx: ui.Context, values: dict[str, figures.Value]) -> None:
    """Offered vs quota over the period per practice and per PCN (fig_nhs111_scorecard.sql)."""
    st.subheader("Quota scorecard for the period")
    if not values.get("core_days"):
        st.info("No core days in the selected range (Monday to Friday): no NHS 111 quota applies.")
        return
    card = ui.cached_scorecard(ctx.snapshot, ctx.version, ctx.scope)
    if card is None or card.empty:
        st.info("No practices match the filters.")
        return
    card = card.copy()
    card["practice"] = card["practice_name"].astype(str) + " (" + card["practice_ods"].astype(str) + ")"
    card["set_up"] = card["accepts_111_booking"].map({True: "Set up", False: "Not set up"})
    card["verdict"] = "Meets quota every core day"
    card.loc[card["core_days_below"] > 0, "verdict"] = "Below quota"
    card.loc[~card["accepts_111_booking"].astype(bool), "verdict"] = "Not set up for 111 booking"
    card["pcn_code"] = card["pcn_code"].fillna("")
    card = card.sort_values(["shortfall_slots", "practice_ods"], ascending=[False, True])
    by_pcn = (
        card.loc[card["accepts_111_booking"].astype(bool)]
        .groupby("pcn_code", dropna=False)
        .agg(
            practices=("practice_ods", "count"),
            practices_below=("core_days_below", lambda s: int((s > 0).sum())),
            offered_core_days=("offered_core_days", "sum"),
            quota=("quota", "sum"),
            shortfall_slots=("shortfall_slots", "sum"),
        )
        .reset_index()
    )
    # One above the other: side by side, the scorecard's nine columns did not fit 1,400 px.
    st.caption("Per practice, most slots short first. Weekends carry no quota.")
    tables.dataframe(card[list(SCORECARD_COLUMNS)], SCORECARD_COLUMNS, height=320)
    ui.csv_download(
        card[["practice_ods", "practice_name", "pcn_code", "accepts_111_booking", "offered_core_days",
              "quota", "shortfall_slots", "core_days_below", "verdict"]],
        label="Download quota scorecard (CSV)",
        file_name=f"nhs111_scorecard_{ctx.stamp}.csv",
        key="download_scorecard",
    )
    st.caption("Per PCN (practices set up for 111 booking).")
    tables.dataframe(
        by_pcn,
        column_config={
            "pcn_code": "PCN",
            "practices": st.column_config.NumberColumn("Practices"),
            "practices_below": st.column_config.NumberColumn("Below quota"),
            "offered_core_days": st.column_config.NumberColumn("Offered", format="localized"),
            "quota": st.column_config.NumberColumn("Quota", format="localized"),
            "shortfall_slots": st.column_config.NumberColumn("Shortfall", format="localized"),
        },
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
        x=alt.X("day_label:O", sort=days, title=None, axis=alt.Axis(labelAngle=label_angle, orient="top")),
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


def _below_quota_table(ctx: ui.Context, selected: pd.DataFrame, stamp: str) -> None:
    st.subheader("Practices below quota")
    if not ctx.has_core_day:
        st.info("No core days in the selected range: no quota applies.")
        return
    table = quota.practices_below_quota(selected)
    if table.empty:
        message = (
            "Every practice set up for 111 booking met its NHS 111 quota on every core day in the filters."
        )
        if ctx.stale:
            st.warning(f"{message} The snapshot is stale, so this says nothing about the days since.")
        else:
            st.success(message)
        return
    tables.dataframe(table, BELOW_COLUMNS, column_order=list(BELOW_COLUMNS))
    ui.csv_download(
        table,
        label="Download practices below quota (CSV)",
        file_name=f"nhs111_practices_below_quota_{stamp}.csv",
        key="download_below",
    )


def _trend(selected: pd.DataFrame, stamp: str) -> None:
    st.subheader("Trend: practices meeting quota, per core day")
    trend = quota.trend(selected)
    if trend.empty:
        st.info("No core days (Monday to Friday) in the selected range.")
        return
    share_chart = (
        alt.Chart(trend)
        .mark_line(point=alt.OverlayMarkDef(size=60), color=STATUS_COLOURS[0], strokeWidth=3)
        .encode(
            x=alt.X("slot_day:T", title=None, axis=alt.Axis(format="%a %d %b", tickCount="day")),
            y=alt.Y(
                "share_meeting:Q",
                title="Practices meeting quota",
                axis=alt.Axis(format=".0%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            tooltip=[
                alt.Tooltip("slot_day:T", title="Day", format="%a %d %b %Y"),
                alt.Tooltip("practices_meeting:Q", title="Meeting quota"),
                alt.Tooltip("practices:Q", title="Practices"),
                alt.Tooltip("share_meeting:Q", title="% meeting", format=".1%"),
                alt.Tooltip("offered:Q", title="Reserved offered"),
                alt.Tooltip("quota:Q", title="Quota"),
            ],
        )
        .properties(height=260, width="container")
    )
    st.altair_chart(share_chart, width="stretch")
    st.caption("Share of practices whose reserved NHS 111 slots met their quota on each weekday.")
    tables.dataframe(
        trend.assign(share_meeting=trend["share_meeting"] * 100),
        TREND_COLUMNS,
        column_order=list(TREND_COLUMNS),
    )
    ui.csv_download(
        trend.assign(slot_day=trend["slot_day"].dt.date),
        label="Download trend (CSV)",
        file_name=f"nhs111_trend_{stamp}.csv",
        key="download_trend",
    )


def _daily_table(selected: pd.DataFrame, stamp: str) -> None:
    st.subheader("Practice-days")
    table = selected[list(DAILY_COLUMNS)].assign(slot_day=selected["slot_day"].dt.date)
    tables.dataframe(table, DAILY_COLUMNS)
    ui.csv_download(
        table,
        label="Download practice-days (CSV)",
        file_name=f"nhs111_practice_days_{stamp}.csv",
        key="download_daily",
    )
