"""Page: NHS 111 slots given back to practices, their later uptake, and release decisions.

One definition of "released" (`dashboards/figures/sql/fig_releases.sql`): the slots the release
flow gave back (through the supplier's API or the practice's work-list), each in exactly one
bucket: then booked, unused, or outcome not known yet. Counts of booked and refused slots in the
tables are suppressed (`dashboards.releases`).
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock
import streamlit as st

from dashboards import figures, releases, suppression, ui

TITLE = "Released NHS 111 slots"
URL_PATH = "releases"
INTRO = (
    "A slot reserved for NHS 111 that 111 has not booked can be given back to the practice shortly "
    "before it starts (2 hours by default), so another patient can use it. This page shows how many "
    "were given back and what became of each: **then booked**, **unused** (still free within 2 hours "
    "of its start) or **not known yet** (the slot has not started, or was last checked too early to "
    "tell). Uptake is therefore a range. How much waste releasing avoids is not observed here: the "
    "demo estimates it on the sandbox, and that estimate rests on the sandbox's assumed chance that "
    "a released slot is booked again (`REBOOK_AFTER_RELEASE_CHANCE`), not on measured behaviour."
)
BUCKET_HELP = {
    "released": "Reserved NHS 111 slots the release flow gave back to the practice (through the "
    "supplier's API, or queued on the practice's work-list), for slots on days in the period.",
    "released_then_booked": "Released slots that were then booked (confirmed or inferred from the captures).",
    "released_unused": "Released slots still free at a check within 2 hours of their start.",
    "released_unknown": "Released slots whose outcome is not known yet: not started, or last checked "
    "more than 2 hours before their start.",
    "release_uptake": "Then booked ÷ released, and up to (released − unused) ÷ released if every "
    "slot whose outcome is not known was booked.",
}
COLOURS = {
    "released": "#2c7bb6",
    "released_then_booked": "#1a9641",
    "queued": "#abd9e9",
    "refused": "#d7191c",
    "skipped": "#fdae61",
    "failed_or_interrupted": "#7b3294",
}


def page() -> st.Page:
    """This view as a navigation page (the app lists it; other pages link to it)."""
    return st.Page(render, title=TITLE, url_path=URL_PATH, icon=":material/lock_open:")


def render() -> None:
    ctx = ui.page_header(TITLE, INTRO)
    if ctx is None:
        return
    ui.suppression_note()
    decisions = ui.mart(ctx, "releases")
    values = ui.figure_group(ctx, "releases")
    if decisions is None or values is None:
        ui.not_available("Released slots", "mart_releases_daily")
        return
    _buckets(values)
    st.header("Release decisions")
    _decisions(ctx, ctx.select(releases.prepare(decisions)))


def _buckets(values: dict[str, figures.Value]) -> None:
    cols = st.columns(5)
    for column, name in zip(
        cols[:4], ("released", "released_then_booked", "released_unused", "released_unknown"), strict=True
    ):
        ui.kpi(column, figures.LABELS[name], ui.count(values[name]), BUCKET_HELP[name])
    ui.kpi(
        cols[4],
        figures.LABELS["release_uptake"],
        ui.rate_with_bound(values["release_uptake"], values["release_uptake_upper"]),
        BUCKET_HELP["release_uptake"],
        caption="lower bound: then booked ÷ released; upper: if every unknown was booked",
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
    # Released, then booked and uptake are the buckets above (one definition); these are the
    # decisions that did not give a slot back.
    kpi_columns = [c for c in ("queued", "refused", "skipped") if c in shown]
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
        "sub_icb_code": "Sub-ICB",
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
