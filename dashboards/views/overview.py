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

from dashboards import health, overview, quota, releases, suppression, ui, utilisation
from dashboards.views import nhs111 as nhs111_view

TITLE = "Overview"
INTRO = (
    "Where NHS 111 slots fall short of the quota, how much GP capacity went unused, and whether "
    "the data behind it is complete. Hover over **?** for how each figure is worked out. Figures about "
    "what happened to slots (booked, unused, utilisation) use finished days only: days whose slots "
    "have all started."
)
TOP_BELOW = 10
NOT_YET = "not available yet"


def render() -> None:
    ctx = ui.page_header(TITLE, INTRO)
    if ctx is None:
        return
    quota_daily = nhs111_view.load(ctx)
    nhs111_rows = ui.mart(ctx, "nhs111_utilisation")
    slot_rows = ui.mart(ctx, "slot_utilisation")
    decisions = ui.mart(ctx, "releases")
    hub_rows = ui.mart(ctx, "hub_hourly")
    fresh_rows = ui.mart(ctx, "freshness")

    st.subheader("NHS 111")
    quota_rows = None if quota_daily is None else ctx.select(quota_daily)
    _nhs111_kpis(ctx, quota_rows, nhs111_rows)
    st.subheader("GP and hub capacity")
    _capacity_kpis(ctx, slot_rows, nhs111_rows, decisions, hub_rows)
    st.subheader("Can the data be trusted?")
    freshness_table = _data_kpis(ctx, fresh_rows)
    ui.suppression_note()

    if quota_rows is not None:
        _below_quota(quota_rows, ctx.stamp)
    if freshness_table is not None:
        _needs_attention(freshness_table, ctx.stamp)


def _nhs111_kpis(ctx: ui.Context, quota_rows: pd.DataFrame | None, nhs111_rows: pd.DataFrame | None) -> None:
    offered_col, below_col, util_col = st.columns(3)
    if quota_rows is None:
        ui.kpi(offered_col, "111 slots offered / quota", "–", overview.HELP["quota"], caption=NOT_YET)
        ui.kpi(below_col, "Practices below 111 quota", "–", overview.HELP["below"], caption=NOT_YET)
    else:
        kpis = quota.kpis(quota_rows)
        share = kpis.core_offered / kpis.core_quota if kpis.core_quota else None
        ui.kpi(
            offered_col,
            "111 slots offered / quota",
            f"{kpis.core_offered:,} / {kpis.core_quota:,}",
            overview.HELP["quota"],
            caption=f"{ui.percent(share, 0)} of quota on core days",
        )
        ui.kpi(
            below_col,
            "Practices below 111 quota",
            f"{kpis.practices_below:,} of {kpis.practices:,}",
            overview.HELP["below"],
            caption=f"{kpis.core_days_below:,} practice-days below quota out of {kpis.core_practice_days:,}",
        )
    if nhs111_rows is None:
        ui.kpi(util_col, "NHS 111 utilisation", "–", overview.HELP["nhs111"], caption=NOT_YET)
        return
    rows = utilisation.finished(utilisation.prepare_slots(ctx.select(nhs111_rows)))
    shown = suppression.suppress_one(overview.nhs111_totals(rows), overview.NHS111_POLICY)
    ui.kpi(
        util_col,
        "NHS 111 utilisation",
        shown["utilisation"],
        overview.HELP["nhs111"],
        caption=f"{shown['booked']} booked by 111 of {shown['offered']} reserved slots offered",
    )


def _capacity_kpis(
    ctx: ui.Context,
    slot_rows: pd.DataFrame | None,
    nhs111_rows: pd.DataFrame | None,
    decisions: pd.DataFrame | None,
    hub_rows: pd.DataFrame | None,
) -> None:
    util_col, unused_col, released_col, hub_col = st.columns(4)
    if slot_rows is None:
        ui.kpi(util_col, "Practice slot utilisation", "–", overview.HELP["practice_util"], caption=NOT_YET)
        ui.kpi(unused_col, "Practice slots unused", "–", overview.HELP["unused"], caption=NOT_YET)
    else:
        rows = utilisation.finished(utilisation.prepare_slots(ctx.select(slot_rows)))
        rows = rows.loc[rows["kind"] == "practice"]
        shown = suppression.suppress_one(
            utilisation.totals(rows), utilisation.POLICY, conceal=utilisation.conceal_totals(rows)
        )
        ui.kpi(
            util_col,
            "Practice slot utilisation",
            shown["utilisation"],
            overview.HELP["practice_util"],
            caption=f"up to {shown['utilisation_if_unknown_booked']} if every unknown slot was booked · "
            f"{shown['offered']} slots offered",
        )
        ui.kpi(
            unused_col,
            "Practice slots unused",
            shown["unused"],
            overview.HELP["unused"],
            caption=f"plus {shown['unknown']} with unknown outcome (checked too early to tell)",
        )
    _released_kpi(ctx, released_col, nhs111_rows, decisions)
    if hub_rows is None:
        ui.kpi(hub_col, "Hub utilisation", "–", overview.HELP["hub_util"], caption=NOT_YET)
    else:
        rows = utilisation.finished(utilisation.prepare_hubs(hub_rows))
        rows = ctx.select(rows)
        shown = suppression.suppress_one(
            utilisation.totals(rows), utilisation.POLICY, conceal=utilisation.conceal_totals(rows, hours=True)
        )
        ui.kpi(
            hub_col,
            "Hub utilisation",
            shown["utilisation"],
            overview.HELP["hub_util"],
            caption=f"{shown['booked']} booked of {shown['offered']} hub slots offered",
        )


def _released_kpi(
    ctx: ui.Context, column: Any, nhs111_rows: pd.DataFrame | None, decisions: pd.DataFrame | None
) -> None:
    label = "Released 111 slots used"
    if decisions is not None and "released_then_booked" in decisions.columns:
        # The release flow's own record, when the warehouse publishes it.
        rows = ctx.select(releases.prepare(decisions))
        totals = releases.decision_totals(rows)
        given = int(totals.get("released") or 0) + int(totals.get("queued") or 0)
        figures = {
            "released": given,
            "released_then_booked": totals["released_then_booked"],
            "uptake": totals.get("uptake"),
        }
        source = overview.HELP["released_decisions"]
        conceal = releases.conceal_decisions(rows, ctx.catalogue.practices)
    elif nhs111_rows is not None:
        rows = utilisation.finished(utilisation.prepare_slots(ctx.select(nhs111_rows)))
        figures, source = releases.seen_totals(rows), overview.HELP["released"]
        conceal = releases.conceal_seen(rows)
    else:
        ui.kpi(column, label, "–", overview.HELP["released"], caption=NOT_YET)
        return
    shown = suppression.suppress_one(figures, releases.SEEN_POLICY, conceal=conceal)
    ui.kpi(
        column,
        label,
        f"{shown['released_then_booked']} of {shown['released']}",
        source,
        caption=f"uptake {shown['uptake']}",
    )


def _data_kpis(ctx: ui.Context, fresh_rows: pd.DataFrame | None) -> pd.DataFrame | None:
    fresh_col, failed_col, as_of_col = st.columns(3)
    as_of = ctx.publication.as_of.astimezone(ui.UK)
    ui.kpi(
        as_of_col,
        "Data captured",
        f"{as_of:%d %b, %H:%M}",
        "When the last completed load captured its data (UK time): every page shows this load.",
        caption=ui.format_uk(ctx.publication.as_of),
    )
    if fresh_rows is None:
        ui.kpi(fresh_col, "Practices up to date", "–", overview.HELP["fresh"], caption=NOT_YET)
        ui.kpi(failed_col, "Latest sync failed", "–", overview.HELP["failed"], caption=NOT_YET)
        return None
    table = health.freshness(ctx.select(fresh_rows, day_column=None), ctx.publication.as_of, ctx.labels)
    counts = health.status_counts(table)
    ui.kpi(
        fresh_col,
        "Practices up to date",
        f"{counts[health.STATUS_OK]:,} of {len(table):,}",
        overview.HELP["fresh"],
        caption=f"{counts[health.STATUS_STALE]:,} stale · {counts[health.STATUS_NEVER]:,} never captured",
    )
    ui.kpi(failed_col, "Latest sync failed", f"{counts[health.STATUS_FAILED]:,}", overview.HELP["failed"])
    return table


def _below_quota(quota_rows: pd.DataFrame, stamp: str) -> None:
    st.subheader("Practices furthest below their NHS 111 quota")
    table = quota.practices_below_quota(quota_rows)
    if table.empty:
        st.success("Every practice met its NHS 111 quota on every core day in the period.")
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
    st.page_link(_page("nhs111"), label="Open the NHS 111 page", icon=":material/arrow_forward:")


def _needs_attention(table: pd.DataFrame, stamp: str) -> None:
    st.subheader("Practices whose data needs a look")
    attention = table.loc[table["status"] != health.STATUS_OK]
    if attention.empty:
        st.success(
            "Every practice and hub was captured within 26 hours of this data, and no latest sync failed."
        )
        return
    columns = {
        "practice": "Practice or hub",
        "status": "Status",
        "hours_behind": "Hours behind",
        "latest_error_class": "Error",
        "latest_next_step": "Next step",
    }
    shown = attention[list(columns)].rename(columns=columns)
    st.dataframe(shown, hide_index=True)
    ui.csv_download(
        attention[list(columns)],
        label="Download practices needing a look (CSV)",
        file_name=f"overview_data_attention_{stamp}.csv",
        key="overview_attention",
    )
    st.page_link(_page("data-health"), label="Open the Data health page", icon=":material/arrow_forward:")


def _page(url_path: str) -> st.Page:
    from dashboards.app import pages

    return next(p for p in pages() if p.url_path == url_path)
