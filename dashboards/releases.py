"""Released NHS 111 slots and their later uptake, in pure pandas.

Two sources, each optional:

* `mart_111_utilisation_daily` (always published): `released` = slots reserved for NHS 111
  later seen open to everyone (given back to the practice, by the release flow or by the
  practice itself); `released_then_booked` = those then booked. Counted over finished days
  only, since a slot released today may still be booked.
* `mart_releases_daily` (the release flow's decisions, when published): released through the
  supplier's API, queued on the practice's work-list, refused by the supplier (the slot was
  booked or changed since the live re-check: the booking wins), skipped, failed; and how many
  released slots were then booked. Columns differ between warehouse versions, so only those
  present are shown.
"""

from __future__ import annotations

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock

from dashboards.suppression import Policy, suppress, unprotected

SEEN_COUNTS = ("released", "released_then_booked")
SEEN_POLICY = Policy(
    protected=("released_then_booked",),
    rates=("uptake",),
    capacity=("released",),
    rate_terms=(("uptake", ("released_then_booked",), ("released",)),),
)

# Every column the decisions mart has had, with its label, in display order.
# Short headers so the by-practice table fits the page; DECISION_HELP says each in full.
DECISION_COLUMNS: dict[str, str] = {
    "released": "Released",
    "queued": "Queued",
    "refused": "Refused",
    "skipped": "Skipped",
    "failed_or_interrupted": "Failed",
    "released_then_booked": "Then booked",
    "released_unused": "Unused",
    "released_still_free": "Still free",
    "released_unknown": "Not known yet",
    "uptake": "Uptake (at least)",
}
DECISION_HELP: dict[str, str] = {
    "released": "Reserved NHS 111 slots given back to the practice through the supplier's API.",
    "queued": "Releases written to the practice's work-list (systems with no write API) for staff to do.",
    "refused": "The supplier refused the release because the slot was booked or changed since the "
    "live re-check: the booking wins.",
    "skipped": "Not released: the live re-check just before releasing showed the slot booked "
    "or already open.",
    "failed_or_interrupted": "The release call failed or was interrupted; the next run retries it.",
    "released_then_booked": "Released (or queued) slots that were then booked.",
    "released_unused": "Released slots still free at a check within 2 hours of their start.",
    "released_still_free": "Released slots that have not started yet and are still free.",
    "released_unknown": "Released (or queued) slots whose outcome is not known yet: not started, or "
    "last checked more than 2 hours before their start.",
    "uptake": "Then booked ÷ released (and queued): a lower bound while some outcomes are not known.",
}
# Refused and skipped releases say a slot was booked, so they are patient-derived counts.
DECISION_POLICY = Policy(
    protected=("released_then_booked",),
    outcomes=("released_unused", "released_still_free", "released_unknown"),
    rates=("uptake",),
    capacity=("released", "queued", "failed_or_interrupted"),
    independent=("refused", "skipped"),
    rate_terms=(("uptake", ("released_then_booked",), ("released", "queued")),),
)
KPI_LABELS = {
    "released": "Released",
    "queued": "Queued",
    "refused": "Refused",
    "skipped": "Skipped",
    "released_then_booked": "Then booked",
    "uptake": "Uptake",
}


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["slot_day"] = pd.to_datetime(out["slot_day"]).dt.normalize()
    if {"released", "released_then_booked", "released_unused"} <= set(out.columns):
        # The bucket fig_releases.sql defines: released (and queued) minus booked minus unused.
        given = out["released"] + (out["queued"] if "queued" in out.columns else 0)
        out["released_unknown"] = given - out["released_then_booked"] - out["released_unused"]
    if "is_final" in out.columns:
        out["is_final"] = out["is_final"].astype("boolean").fillna(False).astype(bool)
    return out


def _uptake(table: pd.DataFrame, given: pd.Series) -> pd.DataFrame:
    table["uptake"] = table["released_then_booked"] / given.where(given > 0)
    return table


def seen_totals(frame: pd.DataFrame) -> dict[str, float | int | None]:
    released, booked = int(frame["released"].sum()), int(frame["released_then_booked"].sum())
    return {
        "released": released,
        "released_then_booked": booked,
        "uptake": booked / released if released else None,
    }


def seen_by_practice(frame: pd.DataFrame) -> pd.DataFrame:
    keys = ["practice_ods", "practice_name", "sub_icb_code", "pcn_code", "clinical_system"]
    table = frame.groupby(keys, dropna=False)[list(SEEN_COUNTS)].sum().reset_index()
    table = table.loc[table["released"] > 0]
    table = _uptake(table, table["released"])
    return table.sort_values(["released", "practice_ods"], ascending=[False, True]).reset_index(drop=True)


def seen_by_day(frame: pd.DataFrame) -> pd.DataFrame:
    table = frame.groupby("slot_day")[list(SEEN_COUNTS)].sum().reset_index()
    return _uptake(table, table["released"])


def conceal_seen(frame: pd.DataFrame) -> frozenset[str]:
    """Totals that would give back a small count hidden in the per-practice or per-day tables."""
    if frame.empty:
        return frozenset()
    return unprotected(
        suppress(seen_by_practice(frame), SEEN_POLICY), suppress(seen_by_day(frame), SEEN_POLICY)
    )


def conceal_decisions(frame: pd.DataFrame, practices: pd.DataFrame) -> frozenset[str]:
    if frame.empty:
        return frozenset()
    return unprotected(
        suppress(decisions_by_day(frame), DECISION_POLICY),
        suppress(decisions_by_practice(frame, practices), DECISION_POLICY),
    )


def decision_columns(frame: pd.DataFrame) -> list[str]:
    """The decision columns this snapshot's mart has (uptake last)."""
    return [c for c in DECISION_COLUMNS if c in frame.columns]


def _given(table: pd.DataFrame) -> pd.Series:
    given = table["released"].astype("float64") if "released" in table.columns else 0.0
    if "queued" in table.columns:
        given = given + table["queued"]
    return given


def decision_totals(frame: pd.DataFrame) -> dict[str, float | int | None]:
    counts = [c for c in decision_columns(frame) if c != "uptake"]
    sums: dict[str, float | int | None] = {c: int(frame[c].sum()) for c in counts}
    if "released_then_booked" in sums:
        given = int(sums.get("released") or 0) + int(sums.get("queued") or 0)
        sums["uptake"] = int(sums["released_then_booked"] or 0) / given if given else None
    return sums


def decisions_by_practice(frame: pd.DataFrame, practices: pd.DataFrame) -> pd.DataFrame:
    """One row per practice over the period (per practice and day the counts are too small
    to show without hiding most of them)."""
    counts = [c for c in decision_columns(frame) if c != "uptake"]
    table = frame.groupby("practice_ods")[counts].sum().reset_index()
    attributes = practices[["practice_ods", "practice_name", "sub_icb_code", "pcn_code"]]
    table = table.merge(attributes, on="practice_ods", how="left")
    if "released_then_booked" in table.columns:
        table = _uptake(table, _given(table))
    first = ["practice_ods", "practice_name", "sub_icb_code", "pcn_code"]
    table = table[[*first, *[c for c in table.columns if c not in first]]]
    return table.sort_values(["practice_ods"]).reset_index(drop=True)


def decisions_by_day(frame: pd.DataFrame) -> pd.DataFrame:
    counts = [c for c in decision_columns(frame) if c != "uptake"]
    table = frame.groupby("slot_day")[counts].sum().reset_index()
    if "released_then_booked" in table.columns:
        table = _uptake(table, _given(table))
    return table
