"""Page: can the data be trusted? Capture freshness per practice, data-quality results and
reconciliation findings.

Reads `mart_pipeline_freshness`, `mart_reconciliation_findings` (counted in SQL: no slot or
appointment reference is read) and any data-quality mart the warehouse publishes (checks,
quarantined batches); until one exists the page says so.
"""

from __future__ import annotations

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock
import streamlit as st

from dashboards import data, figures, health, suppression, tables, ui

TITLE = "Data health"
URL_PATH = "data-health"
INTRO = (
    "Whether every practice's slots were captured recently, which checks failed, and where the slot "
    "captures, the booking organisations' logs and the practices' own answers disagree."
)
FRESH_COLUMNS = {
    "practice": st.column_config.TextColumn("Practice or hub", width="medium"),
    "status": st.column_config.TextColumn("Status", width="medium"),
    "last_capture_uk": st.column_config.TextColumn(
        "Last nightly capture (UK)",
        help="When the practice's slots were last captured completely by the nightly sync (UK time).",
    ),
    "hours_behind": st.column_config.TextColumn(
        "Hours old", help="Hours between that capture and now.", width="small"
    ),
    "latest_error_class": st.column_config.TextColumn("Error", width="small"),
    "latest_next_step": st.column_config.TextColumn("What to do", width="large"),
    "owner": st.column_config.TextColumn("Who fixes it", width="medium"),
}
REASON_COLUMNS = {
    "reason_code": "Reason code",
    "meaning": "What it means",
    "findings": "Findings",
    "practices": "Practices",
}


def page() -> st.Page:
    """This view as a navigation page (the app lists it; other pages link to it)."""
    return st.Page(render, title=TITLE, url_path=URL_PATH, icon=":material/monitor_heart:")


def render() -> None:
    ctx = ui.page_header(TITLE, INTRO)
    if ctx is None:
        return
    st.header("Last successful capture per practice")
    fresh = ui.mart(ctx, "freshness")
    if fresh is None:
        ui.not_available("Capture freshness", "mart_pipeline_freshness")
    else:
        _freshness(ctx, fresh)
    st.header("NHS 111 booking configuration drift")
    _nhs111_drift(ctx)
    st.header("Data-quality checks and quarantined batches")
    _data_quality(ctx)
    st.header("Reconciliation findings")
    findings = ui.mart(ctx, "findings")
    if findings is None:
        ui.not_available("Reconciliation findings", "mart_reconciliation_findings")
        return
    _findings(ctx, ctx.select(findings, day_column="day"))


def _freshness(ctx: ui.Context, fresh: pd.DataFrame) -> None:
    table = health.freshness(ctx.select(fresh, day_column=None), ctx.now, ctx.labels)
    values = ui.figure_group(ctx, "freshness") or {}
    cols = st.columns(4)
    ui.kpi(
        cols[0],
        figures.LABELS["practices_fresh"],
        f"{ui.count(values.get('practices_fresh'))} of {ui.count(values.get('registry_practices'))}",
        "A successful nightly capture at most 26 hours before now (the rule `slotsync status` uses).",
    )
    ui.kpi(
        cols[1],
        "Stale",
        ui.count(values.get("practices_stale")),
        "No successful nightly capture in the last 26 hours (never captured included): its figures "
        "may be out of date.",
    )
    ui.kpi(
        cols[2],
        figures.LABELS["practices_failed"],
        ui.count(values.get("practices_failed")),
        "The most recent sync of the practice failed; its last good capture, if any, is still used.",
    )
    ui.kpi(
        cols[3],
        "Never captured",
        ui.count(values.get("practices_never_captured")),
        "In the registry but no complete nightly capture yet: it is missing from every figure.",
    )
    table["last_capture_uk"] = _uk_times(table)
    table["owner"] = table["status"].map(health.OWNER)
    _problems_first(table)
    st.subheader("Every practice and hub")
    shown = health.plain(table[list(FRESH_COLUMNS)])
    tables.dataframe(shown, FRESH_COLUMNS)
    ui.csv_download(
        shown,
        label="Download capture freshness (CSV)",
        file_name=f"data_health_freshness_{ctx.stamp}.csv",
        key="download_freshness",
    )


DRIFT_COLUMNS = {
    "practice": st.column_config.TextColumn("Practice", width="medium"),
    "kind": st.column_config.TextColumn("Finding", width="medium"),
    "since_uk": st.column_config.TextColumn("Since (UK)", help="The first nightly search that showed it."),
    "evidence": st.column_config.TextColumn("Evidence (what the searches returned)", width="large"),
    "likely_cause": st.column_config.TextColumn("Likely cause", width="large"),
    "who_fixes": st.column_config.TextColumn("Who fixes it", width="medium"),
}


def _nhs111_drift(ctx: ui.Context) -> None:
    """Practices whose 111 slot set-up no longer matches what 111 can book (one row per episode)."""
    drift = ui.mart(ctx, "nhs111_drift")
    if drift is None:
        ui.not_available("NHS 111 configuration drift", "mart_nhs111_drift_findings")
        return
    drift = ctx.select(drift, day_column=None)
    if drift.empty:
        st.success("No practice's NHS 111 slot set-up has drifted: every practice that takes 111 "
                   "bookings offered reserved 111 slots at its last nightly search.")
        return
    table = drift.assign(
        practice=drift["practice_ods"].map(lambda code: ctx.labels.get(code, code)),
        kind=drift["kind"].str.replace("_", " ").str.capitalize(),
        since_uk=drift["since"].map(lambda v: ui.format_uk(pd.Timestamp(v).to_pydatetime())),
    )
    st.markdown(f"**{len(table)} practice(s)** may fail NHS 111 bookings until their set-up is fixed "
                "(found from the nightly searches, before a 111 call fails).")
    tables.dataframe(table[list(DRIFT_COLUMNS)], DRIFT_COLUMNS)


def _uk_times(table: pd.DataFrame) -> pd.Series:
    column = "last_nightly_at" if "last_nightly_at" in table.columns else "last_observed_at"
    return table[column].map(lambda v: "" if pd.isna(v) else ui.format_uk(pd.Timestamp(v).to_pydatetime()))


def _problems_first(table: pd.DataFrame) -> None:
    """Failed checks in plain words, worst first, each with who fixes it."""
    problems = table.loc[table["status"] != health.STATUS_OK]
    if problems.empty:
        return
    st.subheader("What needs fixing")
    lines = []
    for row in problems.head(12).itertuples(index=False):
        when = f"last nightly capture {row.last_capture_uk}" if row.last_capture_uk else "never captured"
        error = f"; error: {row.latest_error_class}" if isinstance(row.latest_error_class, str) else ""
        step = row.latest_next_step if isinstance(row.latest_next_step, str) else ""
        todo = f" What to do: {step}." if step else ""
        lines.append(f"- **{row.practice}**: {row.status.lower()} ({when}{error}).{todo} *{row.owner}.*")
    more = len(problems) - 12
    if more > 0:
        lines.append(f"- … and {more} more in the table below.")
    st.markdown("\n".join(lines))


def _data_quality(ctx: ui.Context) -> None:
    quality_tables = data.data_quality_tables(ctx.catalogue.tables)
    if not quality_tables:
        st.info(
            "**Data-quality results: not available yet.** The warehouse does not publish its checks or "
            "quarantined batches to the dashboard yet. Until it does, practices whose latest sync "
            "failed because of unusable data appear above with the error and what to do.",
            icon=":material/schedule:",
        )
        return
    for name in quality_tables:
        frame = ui.table(ctx, name)
        if frame is None:
            continue
        title = name.removeprefix("mart_").replace("_", " ").capitalize()
        st.subheader(title)
        if "practice_ods" in frame.columns:
            frame = ctx.select(frame, day_column=None)
        if frame.empty:
            st.success("Nothing recorded for the practices shown.")
            continue
        tables.dataframe(frame)
        ui.csv_download(
            frame,
            label=f"Download {title.lower()} (CSV)",
            file_name=f"data_health_{name}_{ctx.stamp}.csv",
            key=f"download_dq_{name}",
        )


def _findings(ctx: ui.Context, findings: pd.DataFrame) -> None:
    st.markdown(
        "Each finding is something the sources do not agree on, as of the latest load, for slots on days in "
        "the period. Counts about appointments are patient data and are suppressed; quota and slot set-up "
        "findings are not."
    )
    if findings.empty:
        st.success("No reconciliation findings in the period for the practices shown.")
        return
    wide = health.findings_by_practice(findings, ctx.labels)
    codes = [c for c in wide.columns if c not in ("practice_ods", "practice")]
    per_practice = suppression.suppress(wide, health.practice_policy(codes))
    shown, exported = health.reasons_shown(health.findings_by_reason(findings), per_practice.unprotected)
    st.subheader("By reason")
    # A static table so the explanations wrap and can be read in full.
    st.table(shown[list(REASON_COLUMNS)].rename(columns=REASON_COLUMNS).set_index("Reason code"))
    ui.csv_download(
        exported[list(REASON_COLUMNS)],
        label="Download findings by reason (CSV)",
        file_name=f"data_health_findings_by_reason_{ctx.stamp}.csv",
        key="download_findings_reason",
    )
    st.subheader("By practice")
    ui.shared_table(
        per_practice,
        {"practice": "Practice", **{c: c for c in codes}},
        helps={c: health.REASONS.get(c, "") for c in codes},
        label="Download findings by practice (CSV)",
        file_name=f"data_health_findings_by_practice_{ctx.stamp}.csv",
        key="download_findings_practice",
    )
