"""Data health figures: capture freshness per practice and reconciliation findings, in pure pandas.

Freshness is judged against now (the injectable clock, `dashboards.figures.now`), by the rule
`slotsync status` applies and `dashboards/figures/sql/fig_freshness.sql` defines: a practice is
*stale* when its last successful nightly capture is more than 26 hours before now. A latest
sync that failed is shown as such even when the practice was never captured.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock

from dashboards.suppression import SECONDARY, Policy, suppress

STALE_AFTER = timedelta(hours=26)
STATUS_OK = "Up to date"
STATUS_STALE = "Stale (no capture for over 26 h)"
STATUS_FAILED = "Latest sync failed"
STATUS_NEVER = "Never captured"
STATUS_ORDER = (STATUS_FAILED, STATUS_NEVER, STATUS_STALE, STATUS_OK)
# Who fixes what, by status: the plain-words next step when the run left none.
OWNER = {
    STATUS_FAILED: "Pipeline operator: follow the next step, then `slotsync rerun`",
    STATUS_NEVER: "Pipeline operator with the practice's IT supplier: check the registry entry and access",
    STATUS_STALE: "Pipeline operator: check the nightly schedule runs (`slotsync status`)",
    STATUS_OK: "",
}

# Plain-English meaning of every reason code in mart_reconciliation_findings (its SQL header
# states the technical definition; tests check that every code there is explained here).
REASONS: dict[str, str] = {
    "DISAPPEARED_UNCONFIRMED": "A slot reserved for NHS 111 or a hub vanished before its start, but no "
    "booking organisation logged an appointment on it: it was either taken off the book or booked by "
    "someone who keeps no log.",
    "APPOINTMENT_UNKNOWN_SLOT": "The practice confirms an appointment on a slot our searches never "
    "returned, usually because it was booked before the first capture saw it.",
    "LIVE_APPOINTMENT_ON_FREE_SLOT": "The practice confirms a booking, yet the slot still showed as free "
    "in a later capture.",
    "DOUBLE_BOOKED_SLOT": "Two live appointments sit on the same slot.",
    "SLOT_REAPPEARED": "A slot disappeared and later showed as free again: a booking was cancelled.",
    "LOGGED_NOT_FOUND": "A booking organisation's log names an appointment the practice's system does "
    "not have.",
    "LOG_PRACTICE_STATUS_MISMATCH": "The booking organisation's log and the practice disagree on whether "
    "the appointment is booked or cancelled.",
    "NHS111_SLOT_NOT_VISIBLE_TO_111": "A slot whose type says NHS 111 was never returned to the NHS 111 "
    "provider's search, so 111 could not book it (check the practice's slot set-up).",
    "BELOW_111_QUOTA": "On a weekday the practice offered fewer slots reserved for NHS 111 than its quota.",
}
# Findings about appointments count bookings (patients); the last two are about slot set-up
# and capacity only.
CAPACITY_REASONS = frozenset({"NHS111_SLOT_NOT_VISIBLE_TO_111", "BELOW_111_QUOTA"})
PATIENT_REASONS = tuple(code for code in REASONS if code not in CAPACITY_REASONS)


def freshness(frame: pd.DataFrame, now: datetime, labels: dict[str, str]) -> pd.DataFrame:
    """One row per practice/hub: last nightly capture, its age now, a status."""
    out = frame.copy()
    column = "last_nightly_at" if "last_nightly_at" in out.columns else "last_observed_at"
    observed = pd.to_datetime(out[column], utc=True)
    age = (pd.Timestamp(now) - observed).dt.total_seconds() / 3600
    out["hours_behind"] = age.round(1)
    status = pd.Series(STATUS_OK, index=out.index, dtype="object")
    status[age > STALE_AFTER.total_seconds() / 3600] = STATUS_STALE
    status[observed.isna()] = STATUS_NEVER
    failed = out["latest_status"].astype("object").eq("failed").fillna(False).astype(bool)
    status[failed] = STATUS_FAILED
    out["status"] = status
    out["practice"] = out["practice_ods"].map(lambda ods: labels.get(str(ods), str(ods)))
    out["kind"] = out["kind"].map({"practice": "Practice", "hub": "Hub"}).fillna(out["kind"])
    order = {s: i for i, s in enumerate(STATUS_ORDER)}
    out["_order"] = out["status"].map(order)
    return (
        out.sort_values(["_order", "hours_behind", "practice_ods"], ascending=[True, False, True])
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """For display and CSV: a missing value is an empty cell or `–`, never a literal `None`."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_numeric_dtype(out[column]):
            out[column] = out[column].astype("object").where(out[column].notna(), "–")
        else:
            out[column] = out[column].astype("object").where(out[column].notna(), "")
            out[column] = out[column].map(lambda v: "" if str(v) in ("None", "nan", "NaT", "<NA>") else v)
    return out


def status_counts(table: pd.DataFrame) -> dict[str, int]:
    counts = table["status"].value_counts()
    return {status: int(counts.get(status, 0)) for status in STATUS_ORDER}


def findings_by_reason(findings: pd.DataFrame) -> pd.DataFrame:
    """Reason code, its meaning, the number of findings and of practices concerned."""
    columns = ["reason_code", "meaning", "findings", "practices"]
    if findings.empty:
        return pd.DataFrame(columns=columns)
    table = (
        findings.groupby("reason_code")
        .agg(findings=("findings", "sum"), practices=("practice_ods", "nunique"))
        .reset_index()
    )
    table["meaning"] = table["reason_code"].map(lambda code: REASONS.get(str(code), "(no explanation yet)"))
    return table.sort_values(["findings", "reason_code"], ascending=[False, True])[columns].reset_index(
        drop=True
    )


# A reason-level count of patient findings is hidden when 1-4; the number of practices it
# concerns would bound it, so it goes with it.
REASON_POLICY = Policy(protected=("findings",), outcomes=("practices",), totals_by=())


def reasons_shown(by_reason: pd.DataFrame, unprotected: frozenset[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The by-reason table as displayed and as exported, suppressed.

    Patient findings follow `REASON_POLICY`; a reason whose per-practice column could not be
    protected (`unprotected`) has its count hidden here, since it is that column's total.
    """
    patient = by_reason.loc[~by_reason["reason_code"].isin(CAPACITY_REASONS)].reset_index(drop=True)
    capacity = by_reason.loc[by_reason["reason_code"].isin(CAPACITY_REASONS)].reset_index(drop=True)
    result = suppress(patient, REASON_POLICY)
    shown, exported = result.display(), result.export()
    for frame in (shown, exported):
        conceal = frame["reason_code"].isin(unprotected) & ~frame["findings"].isin(
            [result.rule.primary, 0, "0"]
        )
        frame.loc[conceal, ["findings", "practices"]] = SECONDARY
    plain = capacity.assign(
        findings=capacity["findings"].map("{:,}".format), practices=capacity["practices"].map("{:,}".format)
    )
    return (pd.concat([shown, plain], ignore_index=True), pd.concat([exported, capacity], ignore_index=True))


def findings_by_practice(findings: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """One row per practice, one column per reason code, plus the practice's total."""
    if findings.empty:
        return pd.DataFrame(columns=["practice_ods", "practice"])
    wide = findings.pivot_table(
        index="practice_ods", columns="reason_code", values="findings", aggfunc="sum", fill_value=0
    )
    codes = [c for c in REASONS if c in wide.columns] + sorted(c for c in wide.columns if c not in REASONS)
    wide = wide[codes].astype("int64").reset_index()
    wide.insert(1, "practice", wide["practice_ods"].map(lambda ods: labels.get(str(ods), str(ods))))
    return wide.sort_values("practice").reset_index(drop=True)


def practice_policy(codes: list[str]) -> Policy:
    """Each kind of patient finding is protected per practice on its own (the by-reason table
    shows each column's total); quota and set-up findings are shown as they are."""
    return Policy(protected=(), independent=tuple(c for c in codes if c not in CAPACITY_REASONS))
