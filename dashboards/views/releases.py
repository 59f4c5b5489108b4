"""Page: NHS 111 slots given back to practices, their later uptake, and release decisions.

Reads `mart_111_utilisation_daily` (releases seen in the captures) and, when the warehouse
publishes it, `mart_releases_daily` (the release flow's decisions: released, queued, refused,
skipped). Counts of booked and refused slots are suppressed (`dashboards.releases`).
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock
import streamlit as st

from dashboards import releases, suppression, ui, utilisation

TITLE = "Released NHS 111 slots"
INTRO = (
    "A slot reserved for NHS 111 that 111 has not booked can be given back to the practice shortly "
    "before it starts (2 hours by default), so another patient can use it. This page shows how many "
    "were given back, how many of those were then booked, and what happened to each release the "
    "release flow attempted."
)
SEEN_COLUMNS = {
    "practice_ods": "ODS code",
    "practice_name": "Practice",
    "ccg_code": "CCG",
    "pcn_code": "PCN",
    "released": "Released",
    "released_then_booked": "Then booked",
    "uptake": "Uptake",
}
SEEN_HELP = {
    "released": "Reserved NHS 111 slots later seen open to everyone before their start.",
    "released_then_booked": "Released slots that were then booked (confirmed or inferred).",
    "uptake": "Then booked ÷ released.",
}
COLOURS = {
    "released": "#2c7bb6",
    "released_then_booked": "#1a9641",
    "queued": "#abd9e9",
    "refused": "#d7191c",
    "skipped": "#fdae61",
    "failed_or_interrupted": "#7b3294",
}


def render() -> None:
    ctx = ui.page_header(TITLE, INTRO)
    if ctx is None:
        return
    ui.suppression_note()
    st.header("Given back, as seen in the captures")
    seen = ui.mart(ctx, "nhs111_utilisation")
    if seen is None:
        ui.not_available("Released slots", "mart_111_utilisation_daily")
    else:
        _seen(utilisation.finished(utilisation.prepare_slots(ctx.select(seen))), ctx.stamp)
    st.header("Release decisions")
    decisions = ui.mart(ctx, "releases")
    if decisions is None:
        ui.not_available("Release decisions", "mart_releases_daily")
        return
    _decisions(ctx, ctx.select(releases.prepare(decisions)))


def _seen(rows: pd.DataFrame, stamp: str) -> None:
    st.caption(
        "Finished days only: a slot released today may still be booked. A capture sees a release only if "
        "it runs between the release and the slot's start, so this can be lower than the release flow's "
        "own count below."
    )
    shown = suppression.suppress_one(
        releases.seen_totals(rows), releases.SEEN_POLICY, conceal=releases.conceal_seen(rows)
    )
    cols = st.columns(3)
    ui.kpi(cols[0], "Slots given back", shown["released"], SEEN_HELP["released"])
    ui.kpi(cols[1], "Then booked", shown["released_then_booked"], SEEN_HELP["released_then_booked"])
    ui.kpi(cols[2], "Uptake", shown["uptake"], SEEN_HELP["uptake"])
    table = releases.seen_by_practice(rows)
    if table.empty:
        st.info("No reserved NHS 111 slot was given back on the finished days in the filters.")
        return
    per_day = suppression.suppress(releases.seen_by_day(rows), releases.SEEN_POLICY)
    _day_chart(
        per_day.values,
        ["released", "released_then_booked"],
        {"released": "Given back", "released_then_booked": "Then booked"},
        grouped=True,
    )
    ui.shared_table(
        per_day,
        {
            "slot_day": "Day",
            "released": "Given back",
            "released_then_booked": "Then booked",
            "uptake": "Uptake",
        },
        helps=SEEN_HELP,
        label="Download releases by day (CSV)",
        file_name=f"releases_seen_by_day_{stamp}.csv",
        key="download_seen_day",
    )
    st.subheader("By practice")
    ui.shared_table(
        suppression.suppress(table, releases.SEEN_POLICY),
        SEEN_COLUMNS,
        helps=SEEN_HELP,
        label="Download releases by practice (CSV)",
        file_name=f"releases_seen_by_practice_{stamp}.csv",
        key="download_seen_practice",
    )


def _decisions(ctx: ui.Context, rows: pd.DataFrame) -> None:
    st.caption("Every release the release flow decided on (dry runs excluded), by the day of the slot.")
    if rows.empty:
        st.info("No release decisions in the period for the practices shown.")
        return
    columns = releases.decision_columns(rows)
    shown = suppression.suppress_one(
        releases.decision_totals(rows),
        releases.DECISION_POLICY,
        conceal=releases.conceal_decisions(rows, ctx.catalogue.practices),
    )
    kpi_columns = [
        c
        for c in ("released", "queued", "refused", "skipped", "released_then_booked", "uptake")
        if c in shown
    ]
    for column, name in zip(st.columns(len(kpi_columns)), kpi_columns, strict=True):
        ui.kpi(column, releases.KPI_LABELS[name], shown[name], releases.DECISION_HELP[name])
    per_day = suppression.suppress(releases.decisions_by_day(rows), releases.DECISION_POLICY)
    outcomes = [
        c for c in ("released", "queued", "refused", "skipped", "failed_or_interrupted") if c in columns
    ]
    _day_chart(per_day.values, outcomes, releases.DECISION_COLUMNS, grouped=False)
    ui.shared_table(
        per_day,
        {"slot_day": "Day", **{c: releases.DECISION_COLUMNS[c] for c in columns}},
        helps=releases.DECISION_HELP,
        label="Download release decisions by day (CSV)",
        file_name=f"release_decisions_by_day_{ctx.stamp}.csv",
        key="download_decisions_day",
    )
    st.subheader("By practice")
    result = suppression.suppress(
        releases.decisions_by_practice(rows, ctx.catalogue.practices), releases.DECISION_POLICY
    )
    labels = {
        "practice_ods": "ODS code",
        "practice_name": "Practice",
        "ccg_code": "CCG",
        **{c: releases.DECISION_COLUMNS[c] for c in columns},
    }
    ui.shared_table(
        result,
        labels,
        helps=releases.DECISION_HELP,
        label="Download release decisions by practice (CSV)",
        file_name=f"release_decisions_by_practice_{ctx.stamp}.csv",
        key="download_decisions",
    )


def _day_chart(
    values: pd.DataFrame, measures: Sequence[str], labels: dict[str, str], *, grouped: bool
) -> None:
    long = values[["slot_day", *measures]].melt(id_vars="slot_day", var_name="measure", value_name="slots")
    long["slots"] = pd.to_numeric(long["slots"], errors="coerce")
    long["label"] = long["measure"].map(labels)
    domain = [labels[m] for m in measures]
    bars = (
        alt.Chart(long.dropna(subset=["slots"]))
        .mark_bar()
        .encode(
            x=alt.X("yearmonthdate(slot_day):O", title=None, axis=alt.Axis(format="%a %d %b", labelAngle=0)),
            y=alt.Y("slots:Q", title="Slots", stack=None if grouped else True),
            color=alt.Color(
                "label:N",
                scale=alt.Scale(domain=domain, range=[COLOURS[m] for m in measures]),
                legend=alt.Legend(title=None, orient="top"),
            ),
            tooltip=[
                alt.Tooltip("slot_day:T", title="Day", format="%a %d %b %Y"),
                alt.Tooltip("label:N", title="What"),
                alt.Tooltip("slots:Q", title="Slots", format=","),
            ],
        )
    )
    if grouped:
        bars = bars.encode(xOffset=alt.XOffset("label:N", sort=domain))
    st.altair_chart(bars.properties(height=260, width="container"), width="stretch")
