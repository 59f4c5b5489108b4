"""Page: the estate at a glance for the chosen period and filters.

Which practices are below their NHS 111 quota, how much capacity went unused, how released
slots and hubs were used, and whether the data can be trusted. Every KPI carries its
definition on hover (`dashboards.overview.HELP`); the figures come from the other pages'
pure functions, so the same number is the same everywhere.
"""

from __future__ import annotations

from typing import Any

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock
import streamlit as st

from dashboards import figures, health, overview, quota, suppression, ui, utilisation
from dashboards.views import health as health_view
from dashboards.views import nhs111 as nhs111_view

TITLE = "Overview"
URL_PATH = "overview"
INTRO = (
    "Where NHS 111 slots fall short of the quota, how much GP capacity went unused, and whether "
    "the data behind it is complete. Hover over **?** for how each figure is worked out. Figures about "
    "what happened to slots (booked, unused, utilisation) use finished days only: days whose slots "
    "have all started."
)
TOP_BELOW = 10
NOT_YET = "not available yet"
NO_CORE_DAYS = "no core days in the period: no quota applies"
NO_CORE_DAYS_LONG = (
    "No core days (Monday to Friday) in the selected period: no NHS 111 quota applies, so there is "
    "nothing to say about meeting it. Pick a period with a weekday."
)
STALE_NO_VERDICT = (
    "No practice is below quota in this snapshot, but the snapshot is stale: it says nothing about "
    "the days since it was captured."
)


def page() -> st.Page:
    """This view as a navigation page (the app lists it; other pages link to it)."""
    return st.Page(render, title=TITLE, url_path=URL_PATH, icon=":material/dashboard:", default=True)


def render() -> None:
    ctx = ui.page_header(TITLE, INTRO)
    if ctx is None:
        return
    quota_daily = nhs111_view.load(ctx)
    nhs111_rows = ui.mart(ctx, "nhs111_utilisation")
    slot_rows = ui.mart(ctx, "slot_utilisation")
    hub_rows = ui.mart(ctx, "hub_hourly")
    fresh_rows = ui.mart(ctx, "freshness")

    st.subheader("NHS 111")
    quota_rows = None if quota_daily is None else ctx.select(quota_daily)
    _nhs111_kpis(ctx, nhs111_rows)
    st.subheader("GP and hub capacity")
    _capacity_kpis(ctx, slot_rows, hub_rows)
    st.subheader("Can the data be trusted?")
    freshness_table = _data_kpis(ctx, fresh_rows)
    ui.suppression_note()

    if quota_rows is not None:
        _below_quota(ctx, quota_rows, ctx.stamp)
    if freshness_table is not None:
        _needs_attention(ctx, freshness_table, ctx.stamp)


def _nhs111_kpis(ctx: ui.Context, nhs111_rows: pd.DataFrame | None) -> None:
    offered_col, below_col, util_col = st.columns(3)
    quota_figures = ui.figure_group(ctx, "nhs111_quota")
    offered_label = figures.LABELS["nhs111_offered_core_days"]
    below_label = figures.LABELS["practices_below_quota"]
    if quota_figures is None:
        ui.kpi(offered_col, offered_label, "–", overview.HELP["quota"], caption=NOT_YET)
        ui.kpi(below_col, below_label, "–", overview.HELP["below"], caption=NOT_YET)
    elif not quota_figures["core_days"]:
        ui.kpi(offered_col, offered_label, "–", overview.HELP["quota"], caption=NO_CORE_DAYS)
        ui.kpi(below_col, below_label, "–", overview.HELP["below"], caption=NO_CORE_DAYS)
    else:
        ui.kpi(
            offered_col,
            offered_label,
            ui.count(quota_figures["nhs111_offered_core_days"]),
            overview.HELP["quota"],
            caption=f"against a quota of {ui.count(quota_figures['nhs111_quota'])} · "
            f"{ui.count(quota_figures['nhs111_shortfall_slots'])} slots short",
        )
        ui.kpi(
            below_col,
            below_label,
            f"{ui.count(quota_figures['practices_below_quota'])} of {ui.count(quota_figures['practices'])}",
            overview.HELP["below"],
            caption=f"{ui.count(quota_figures['core_practice_days_below'])} practice-days below quota · "
            f"{ui.count(quota_figures['practices_not_set_up_for_111'])} not set up for 111 booking",
        )
    values = ui.figure_numbers(ctx, "nhs111_utilisation")
    label = figures.LABELS["nhs111_utilisation"]
    if values is None or nhs111_rows is None:
        ui.kpi(util_col, label, "–", overview.HELP["nhs111"], caption=NOT_YET)
        return
    shown = suppression.suppress_one(
        {
            "offered": values["nhs111_offered_finished_days"],
            "booked": values["nhs111_booked"],
            "unused": values["nhs111_unused"],
            "unknown": values["nhs111_unknown"],
            "utilisation": values["nhs111_utilisation"],
        },
        overview.NHS111_POLICY,
    )
    value = (
        shown["utilisation"]
        if shown["utilisation"] in (suppression.PRIMARY, suppression.SECONDARY)
        else ui.rate_with_bound(values["nhs111_utilisation"], values["nhs111_utilisation_upper"])
    )
    ui.kpi(
        util_col,
        label,
        value,
        overview.HELP["nhs111"],
        caption=f"{shown['booked']} booked by 111 of {shown['offered']} reserved 111 slots on finished days",
    )


def _capacity_kpis(ctx: ui.Context, slot_rows: pd.DataFrame | None, hub_rows: pd.DataFrame | None) -> None:
    util_col, unused_col, released_col, hub_col = st.columns(4)
    practice = ui.figure_numbers(ctx, "practice_utilisation")
    util_label = figures.LABELS["practice_utilisation"]
    unused_label = figures.LABELS["practice_unused"]
    if practice is None or slot_rows is None:
        ui.kpi(util_col, util_label, "–", overview.HELP["practice_util"], caption=NOT_YET)
        ui.kpi(unused_col, unused_label, "–", overview.HELP["unused"], caption=NOT_YET)
    else:
        rows = utilisation.finished(utilisation.prepare_slots(ctx.select(slot_rows)))
        rows = rows.loc[rows["kind"] == "practice"]
        shown = _utilisation_shown(practice, "practice", conceal=utilisation.conceal_totals(rows))
        ui.kpi(
            util_col,
            util_label,
            _bounded(shown, practice, "practice"),
            overview.HELP["practice_util"],
            caption=f"between the two: {shown['unknown']} slots were last checked too early to tell · "
            f"{shown['offered']} slots offered",
        )
        ui.kpi(
            unused_col,
            unused_label,
            shown["unused"],
            overview.HELP["unused"],
            caption=f"plus {shown['unknown']} with unknown outcome (checked too early to tell)",
        )
    _released_kpi(ctx, released_col)
    hub = ui.figure_numbers(ctx, "hub_utilisation")
    hub_label = figures.LABELS["hub_utilisation"]
    if hub is None or hub_rows is None:
        ui.kpi(hub_col, hub_label, "–", overview.HELP["hub_util"], caption=NOT_YET)
        return
    rows = ctx.select(utilisation.finished(utilisation.prepare_hubs(hub_rows)))
    shown = _utilisation_shown(hub, "hub", conceal=utilisation.conceal_totals(rows, hours=True))
    ui.kpi(
        hub_col,
        hub_label,
        _bounded(shown, hub, "hub"),
        overview.HELP["hub_util"],
        caption=f"{shown['booked']} booked, {shown['unknown']} unknown, "
        f"of {shown['offered']} hub slots offered",
    )


def _utilisation_shown(
    values: figures.Numbers, prefix: str, *, conceal: frozenset[str]
) -> dict[str, str]:
    return suppression.suppress_one(
        utilisation.figure_totals(values, prefix), utilisation.POLICY, conceal=conceal
    )


def _bounded(shown: dict[str, str], values: figures.Numbers, prefix: str) -> str:
    return ui.shown_rate(shown, utilisation.figure_totals(values, prefix))


def _released_kpi(ctx: ui.Context, column: Any) -> None:
    label = figures.LABELS["released"]
    values = ui.figure_group(ctx, "releases")
    if values is None:
        ui.kpi(column, label, "–", overview.HELP["released_decisions"], caption=NOT_YET)
        return
    ui.kpi(
        column,
        label,
        ui.count(values["released"]),
        overview.HELP["released_decisions"],
        caption=f"then booked {ui.count(values['released_then_booked'])} · unused "
        f"{ui.count(values['released_unused'])} · not known yet {ui.count(values['released_unknown'])}",
    )


def _data_kpis(ctx: ui.Context, fresh_rows: pd.DataFrame | None) -> pd.DataFrame | None:
    fresh_col, failed_col, as_of_col = st.columns(3)
    as_of = ctx.publication.as_of.astimezone(ui.UK)
    ui.kpi(
        as_of_col,
        "Data captured",
        f"{as_of:%d %b, %H:%M}",
        "When the last completed load captured its data (UK time): every page shows this load.",
        caption=f"{ui.describe_age(ctx.age)} ago",
    )
    values = ui.figure_group(ctx, "freshness")
    fresh_label, failed_label = figures.LABELS["practices_fresh"], figures.LABELS["practices_failed"]
    if fresh_rows is None or values is None:
        ui.kpi(fresh_col, fresh_label, "–", overview.HELP["fresh"], caption=NOT_YET)
        ui.kpi(failed_col, failed_label, "–", overview.HELP["failed"], caption=NOT_YET)
        return None
    ui.kpi(
        fresh_col,
        fresh_label,
        f"{ui.count(values['practices_fresh'])} of {ui.count(values['registry_practices'])}",
        overview.HELP["fresh"],
        caption=f"{ui.count(values['practices_stale'])} stale, of which "
        f"{ui.count(values['practices_never_captured'])} never captured",
    )
    ui.kpi(failed_col, failed_label, ui.count(values["practices_failed"]), overview.HELP["failed"])
    return health.freshness(ctx.select(fresh_rows, day_column=None), ctx.now, ctx.labels)


def _below_quota(ctx: ui.Context, quota_rows: pd.DataFrame, stamp: str) -> None:
    st.subheader("Practices furthest below their NHS 111 quota")
    if not ctx.has_core_day:
        st.info(NO_CORE_DAYS_LONG, icon=":material/event_busy:")
        return
    table = quota.practices_below_quota(quota_rows)
    if table.empty:
        if ctx.stale:
            st.warning(STALE_NO_VERDICT, icon=":material/error:")
        else:
            st.success(
                "Every practice set up for NHS 111 booking met its quota on every core day in the period."
            )
        return
    top = table.head(TOP_BELOW)
    # The compact columns fit the page; the NHS 111 page and the download have them all.
    compact = [
        c for c in nhs111_view.BELOW_COLUMNS if c not in ("practice_ods", "pcn_code", "clinical_system")
    ]
    st.dataframe(top, hide_index=True, column_config=nhs111_view.BELOW_COLUMNS, column_order=compact)
    more = f" ({len(table) - TOP_BELOW} more on the NHS 111 page)" if len(table) > TOP_BELOW else ""
    st.caption(f"The {len(top)} practices with the most core days below quota{more}.")
    ui.csv_download(
        table,
        label="Download practices below quota (CSV)",
        file_name=f"overview_practices_below_quota_{stamp}.csv",
        key="overview_below",
    )
    st.page_link(nhs111_view.page(), label="Open the NHS 111 page", icon=":material/arrow_forward:")


def _needs_attention(ctx: ui.Context, table: pd.DataFrame, stamp: str) -> None:
    st.subheader("Practices whose data needs a look")
    attention = table.loc[table["status"] != health.STATUS_OK]
    if attention.empty:
        st.success(
            "Every practice and hub had a successful nightly capture within 26 hours of now, and no "
            "latest sync failed."
        )
        return
    columns = {
        "practice": "Practice or hub",
        "status": "Status",
        "hours_behind": "Hours behind",
        "latest_error_class": "Error",
        "latest_next_step": "Next step",
    }
    shown = health.plain(attention[list(columns)]).rename(columns=columns)
    st.dataframe(shown, hide_index=True)
    ui.csv_download(
        attention[list(columns)],
        label="Download practices needing a look (CSV)",
        file_name=f"overview_data_attention_{stamp}.csv",
        key="overview_attention",
    )
    st.page_link(health_view.page(), label="Open the Data health page", icon=":material/arrow_forward:")

