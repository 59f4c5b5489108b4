"""Page: booked vs offered slots by practice, hub, day of week and hour of day.

Reads `mart_slot_utilisation_daily` (practices) and `mart_hub_utilisation_hourly` (hubs).
Only finished days count (every slot of the day has started). Slots whose last check was
more than 2 hours before their start are shown as *unknown*, never as unused. Booked counts
are suppressed per `dashboards.utilisation.POLICY`.
"""

from __future__ import annotations

from dataclasses import replace

import altair as alt
import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock
import streamlit as st

from dashboards import figures, suppression, ui, utilisation

TITLE = "Slot utilisation"
URL_PATH = "utilisation"
INTRO = (
    "How many of the slots practices and hubs offered were booked. GP Connect shows free slots "
    "only, so a slot is **booked** when a booking organisation's log and the practice confirm it, "
    "or when it disappeared before its start; **unused** when it was still free at a check within "
    "2 hours of its start; **unknown** when the last check was earlier than that, so a late "
    "booking cannot be ruled out. Unknown slots are not counted as unused. Only finished days "
    "(every slot started) are counted."
)
KEY_AUDIENCE = "u_audience"
ALL_AUDIENCES = "All slots"
ROW_STEP_PX = 22

PRACTICE_COLUMNS = {
    "practice_ods": "ODS code",
    "practice_name": "Practice",
    "sub_icb_code": "Sub-ICB",
    "pcn_code": "PCN",
    "clinical_system": "System",
    "offered": "Offered",
    "booked": "Booked",
    "unused": "Unused",
    "unknown": "Unknown",
    "utilisation": "Utilisation",
    "utilisation_if_unknown_booked": "If unknown booked",
}
HUB_COLUMNS = {
    "practice_ods": "ODS code",
    "practice_name": "Hub",
    "sub_icb_code": "Sub-ICB",
    "offered": "Offered",
    "booked": "Booked",
    "unused": "Unused",
    "unknown": "Unknown",
    "utilisation": "Utilisation",
    "utilisation_if_unknown_booked": "If unknown booked",
}
COUNT_HELP = {
    "offered": "Distinct slots seen free at any capture.",
    "booked": "Confirmed by a booking organisation and the practice, or inferred (gone before its start).",
    "unused": "Still free at a check within 2 hours of its start.",
    "unknown": "Free at a last check more than 2 hours before its start: a late booking cannot be ruled out.",
    "utilisation": "Booked ÷ offered.",
    "utilisation_if_unknown_booked": "(Booked + unknown) ÷ offered: the highest the utilisation can be.",
}


def page() -> st.Page:
    """This view as a navigation page (the app lists it; other pages link to it)."""
    return st.Page(render, title=TITLE, url_path=URL_PATH, icon=":material/event_available:")


def render() -> None:
    ctx = ui.page_header(TITLE, INTRO)
    if ctx is None:
        return
    slot_rows = ui.mart(ctx, "slot_utilisation")
    hub_rows = ui.mart(ctx, "hub_hourly")
    practices = None
    if slot_rows is None:
        ui.not_available("Practice slot utilisation", "mart_slot_utilisation_daily")
    else:
        practices = _practice_slots(ctx, slot_rows)
    hubs = None
    if hub_rows is not None:
        hubs = ctx.select(utilisation.prepare_hubs(hub_rows))
    if practices is not None:
        everyone = st.session_state.get(KEY_AUDIENCE, ALL_AUDIENCES) in (None, ALL_AUDIENCES)
        _kpis(practices, ui.figure_numbers(ctx, "practice_utilisation") if everyone else None)
        ui.suppression_note()
        _by_practice(practices, ctx.stamp)
    st.header("By day of week")
    _by_weekday(practices, None if hubs is None else utilisation.finished(hubs), ctx.stamp)
    st.header("Extended-access hubs")
    if hubs is None:
        ui.not_available("Hub utilisation", "mart_hub_utilisation_hourly")
        return
    _hub_kpi(ctx)
    _hubs(ctx, utilisation.finished(hubs), ctx.stamp)


def _practice_slots(ctx: ui.Context, slot_rows: pd.DataFrame) -> pd.DataFrame:
    rows = ctx.select(utilisation.prepare_slots(slot_rows))
    rows = rows.loc[rows["kind"] == "practice"]
    audiences = [ALL_AUDIENCES, *utilisation.AUDIENCE_LABELS.values()]
    picked = (
        st.segmented_control(
            "Slots offered to",
            audiences,
            default=ALL_AUDIENCES,
            key=KEY_AUDIENCE,
            help="Who a slot was first offered to: anyone (unrestricted), only the NHS 111 provider, "
            "or only hubs.",
        )
        or ALL_AUDIENCES
    )
    if picked != ALL_AUDIENCES:
        code = next(k for k, v in utilisation.AUDIENCE_LABELS.items() if v == picked)
        rows = rows.loc[rows["audience"] == code]
    unfinished = rows.loc[~rows["is_final"]].drop_duplicates(["practice_ods", "slot_day"])
    if len(unfinished):
        st.caption(
            f"{len(unfinished):,} practice-days in the period are not finished yet (some slots have not "
            "started) and are left out."
        )
    return utilisation.finished(rows)


def _kpis(rows: pd.DataFrame, values: figures.Numbers | None) -> None:
    """All audiences: the named figure (fig_practice_utilisation.sql); one audience: its subset."""
    totals = utilisation.totals(rows) if values is None else utilisation.figure_totals(values, "practice")
    shown = suppression.suppress_one(totals, utilisation.POLICY, conceal=utilisation.conceal_totals(rows))
    rate = ui.shown_rate(shown, totals)
    cols = st.columns(5)
    ui.kpi(
        cols[0], "Slots offered", shown["offered"], COUNT_HELP["offered"] + " GP practices, finished days."
    )
    ui.kpi(cols[1], "Booked", shown["booked"], COUNT_HELP["booked"])
    ui.kpi(cols[2], "Unused", shown["unused"], COUNT_HELP["unused"])
    ui.kpi(cols[3], "Unknown outcome", shown["unknown"], COUNT_HELP["unknown"])
    ui.kpi(
        cols[4],
        figures.LABELS["practice_utilisation"] if values is not None else "Utilisation",
        rate,
        "Between booked ÷ offered and (booked + unknown) ÷ offered: slots checked too early to tell "
        "may or may not have been booked.",
        caption=f"up to {shown['utilisation_if_unknown_booked']} if every unknown slot was booked",
    )


def _hub_kpi(ctx: ui.Context) -> None:
    values = ui.figure_numbers(ctx, "hub_utilisation")
    if values is None:
        return
    totals = utilisation.figure_totals(values, "hub")
    shown = suppression.suppress_one(totals, utilisation.POLICY)
    rate = ui.shown_rate(shown, totals)
    col, _ = st.columns([1, 3])
    ui.kpi(
        col,
        figures.LABELS["hub_utilisation"],
        rate,
        "Between booked ÷ offered and (booked + unknown) ÷ offered in the hubs' own books, finished days.",
        caption=f"{shown['unknown']} of {shown['offered']} hub slots last checked too early to tell",
    )


def _stacked_bars(
    long: pd.DataFrame, key: str, title: str, *, horizontal: bool, sort: list[str]
) -> alt.Chart:
    position = alt.X if horizontal else alt.Y
    category = alt.Y if horizontal else alt.X
    chart: alt.Chart = (
        alt.Chart(long.dropna(subset=["slots"]))
        .mark_bar()
        .encode(
            position(
                "slots:Q",
                stack="normalize" if horizontal else True,
                title="Share of slots offered" if horizontal else "Slots",
                axis=alt.Axis(format=".0%") if horizontal else alt.Axis(),
            ),
            category(f"{key}:N", sort=sort, title=None, axis=alt.Axis(labelLimit=320, labelAngle=0)),
            color=alt.Color(
                "verdict:N",
                scale=alt.Scale(
                    domain=list(utilisation.VERDICT_LABELS.values()), range=list(utilisation.VERDICT_COLOURS)
                ),
                legend=alt.Legend(title=None, orient="top", labelLimit=400),
            ),
            order=alt.Order("order:Q"),
            tooltip=[
                alt.Tooltip(f"{key}:N", title=title),
                alt.Tooltip("verdict:N", title="Outcome"),
                alt.Tooltip("slots:Q", title="Slots", format=","),
            ],
        )
    )
    return chart


def _by_practice(rows: pd.DataFrame, stamp: str) -> None:
    st.header("By practice")
    table = utilisation.by_practice(rows)
    if table.empty:
        st.info("No finished practice-days match the filters.")
        return
    result = suppression.suppress(table, utilisation.POLICY)
    values = result.values.assign(
        label=table["practice_name"].astype(str) + " (" + table["practice_ods"].astype(str) + ")"
    )
    long = utilisation.verdicts_long(values, "label")
    order = values["label"].tolist()
    chart = _stacked_bars(long, "label", "Practice", horizontal=True, sort=order)
    st.altair_chart(chart.properties(width="container", height=alt.Step(ROW_STEP_PX)), width="stretch")
    hidden = int(result.hidden_rows.sum())
    note = f" {hidden} practice(s) have no bar: their counts are hidden (small numbers)." if hidden else ""
    st.caption(f"Share of each practice's offered slots by outcome, lowest utilisation first.{note}")
    ui.shared_table(
        result,
        PRACTICE_COLUMNS,
        helps=COUNT_HELP,
        label="Download utilisation by practice (CSV)",
        file_name=f"utilisation_by_practice_{stamp}.csv",
        key="download_util_practice",
    )


def _by_weekday(practices: pd.DataFrame | None, hubs: pd.DataFrame | None, stamp: str) -> None:
    parts, concealed = [], {}
    for label, rows in (("GP practices", practices), ("Hubs", hubs)):
        if rows is not None and not rows.empty:
            parts.append(utilisation.by_weekday(rows).assign(setting=label))
            # Weekday rows add up to the per-practice (per-hub) table's total.
            concealed[label] = utilisation.conceal_totals(rows, hours=label == "Hubs")
    if not parts:
        st.info("No finished days match the filters.")
        return
    table = pd.concat(parts, ignore_index=True)
    table = table.loc[table["offered"] > 0].reset_index(drop=True)
    policy = replace(utilisation.POLICY, totals_by=(("setting",),))
    result = suppression.suppress(table, policy)
    for label, columns_to_hide in concealed.items():
        result = suppression.conceal(result, result.values["setting"] == label, columns_to_hide)
    columns = st.columns(len(parts))
    for column, setting in zip(columns, [p["setting"].iloc[0] for p in parts], strict=True):
        values = result.values.loc[result.values["setting"] == setting]
        long = utilisation.verdicts_long(values, "weekday")
        present = [d for d in utilisation.WEEKDAYS if d in set(values["weekday"])]
        with column:
            st.subheader(setting)
            st.altair_chart(
                _stacked_bars(long, "weekday", "Day", horizontal=False, sort=present).properties(
                    height=280, width="container"
                ),
                width="stretch",
            )
    ui.shared_table(
        result,
        {
            "setting": "Setting",
            "weekday": "Day",
            **{k: v for k, v in PRACTICE_COLUMNS.items() if k in utilisation.COUNTS or "utilisation" in k},
        },
        helps=COUNT_HELP,
        label="Download utilisation by day of week (CSV)",
        file_name=f"utilisation_by_weekday_{stamp}.csv",
        key="download_util_weekday",
    )


def _hubs(ctx: ui.Context, hubs: pd.DataFrame, stamp: str) -> None:
    if hubs.empty:
        if ctx.filters.pcns:
            why = "hubs have no PCN: clear the PCN filter to see them"
        elif ctx.filters.practices:
            why = "the practices picked are not hubs: add a hub to the practice filter, or clear it"
        else:
            why = "no hub day in the period has finished yet"
        st.info(f"No finished hub days match the filters ({why}).")
        return
    st.caption("Slots in the hubs' own books. The hour of day is known for hub slots only.")
    table = utilisation.by_practice(hubs)
    result = suppression.suppress(table, utilisation.POLICY)
    ui.shared_table(
        result,
        HUB_COLUMNS,
        helps=COUNT_HELP,
        label="Download utilisation by hub (CSV)",
        file_name=f"utilisation_by_hub_{stamp}.csv",
        key="download_util_hub",
    )
    st.subheader("By hour of day (slot start, UK time)")
    hours = utilisation.by_hour(hubs)
    shown = suppression.suppress(hours, utilisation.POLICY)
    long = utilisation.verdicts_long(shown.values, "hour")
    if long["slots"].isna().all():
        st.info("Every hour's figures are hidden (small numbers): widen the period or the filters.")
    else:
        st.altair_chart(
            _stacked_bars(long, "hour", "Hour", horizontal=False, sort=hours["hour"].tolist()).properties(
                height=280, width="container"
            ),
            width="stretch",
        )
    ui.shared_table(
        shown,
        {
            "hour": "Hour",
            **{k: v for k, v in HUB_COLUMNS.items() if k in utilisation.COUNTS or "utilisation" in k},
        },
        helps=COUNT_HELP,
        label="Download hub utilisation by hour (CSV)",
        file_name=f"utilisation_hubs_by_hour_{stamp}.csv",
        key="download_util_hour",
    )
