"""NHS 111 quota compliance figures, computed from `mart_111_quota_daily` rows.

Pure pandas so every number on the page can be tested without Streamlit. Definitions (the
mart's): a practice's daily quota is `max(1, floor(list_size / 3000))` on each core day
(Monday to Friday, UK calendar); a slot counts only if it is *reserved* for NHS 111, that is
returned to the 111 provider's search but not to an unfiltered search.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock

STATUS_MEETS = "Meets quota"
STATUS_BELOW = "Below quota"
STATUS_NONE = "No reserved 111 slots"
STATUS_NOT_SET_UP = "Not set up for 111 booking"
STATUS_ORDER = (STATUS_MEETS, STATUS_BELOW, STATUS_NONE, STATUS_NOT_SET_UP)


@dataclass(frozen=True)
class QuotaKpis:
    practices: int
    core_practice_days: int
    core_days_below: int
    practices_below: int = 0
    core_offered: int = 0
    core_quota: int = 0

    @property
    def share_meeting(self) -> float | None:
        """Fraction of core practice-days meeting quota; None when there are none."""
        if not self.core_practice_days:
            return None
        return (self.core_practice_days - self.core_days_below) / self.core_practice_days


def prepare(daily: pd.DataFrame) -> pd.DataFrame:
    """Normalise mart types (pandas 3 gives `str`, nullable booleans) and add display labels."""
    out = daily.copy()
    out["slot_day"] = pd.to_datetime(out["slot_day"]).dt.normalize()
    out["is_core_day"] = out["is_core_day"].astype(bool)
    # meets_quota is NULL on weekends (no quota), so keep it nullable for display and derive a
    # plain flag for counting.
    out["meets_quota"] = out["meets_quota"].astype("boolean")
    # A practice not set up for 111 direct booking cannot offer 111 slots: marked as such, not
    # counted below quota (fig_nhs111_scorecard.sql's rule).
    accepts = (
        out["accepts_111_booking"].astype("boolean").fillna(True).astype(bool)
        if "accepts_111_booking" in out.columns
        else pd.Series(True, index=out.index)
    )
    out["accepts_111"] = accepts
    out["below_quota"] = (
        out["is_core_day"] & accepts & out["meets_quota"].eq(False).fillna(False).astype(bool)
    )
    out["practice_label"] = out["practice_name"].astype(str) + " (" + out["practice_ods"].astype(str) + ")"
    return out


def core_days(daily: pd.DataFrame) -> pd.DataFrame:
    return daily.loc[daily["is_core_day"]]


def kpis(daily: pd.DataFrame) -> QuotaKpis:
    core = core_days(daily)
    return QuotaKpis(
        practices=int(daily["practice_ods"].nunique()),
        core_practice_days=len(core),
        core_days_below=int(core["below_quota"].sum()),
        practices_below=int(core.loc[core["below_quota"], "practice_ods"].nunique()),
        core_offered=int(core["nhs111_reserved_offered"].sum()),
        core_quota=int(core["quota"].sum()),
    )


def heatmap_frame(daily: pd.DataFrame) -> pd.DataFrame:
    """Core practice-days with a status and offered/quota ratio for the heat map."""
    core = core_days(daily).copy()
    offered = core["nhs111_reserved_offered"]
    core["status"] = STATUS_MEETS
    core.loc[core["below_quota"], "status"] = STATUS_BELOW
    core.loc[core["below_quota"] & (offered == 0), "status"] = STATUS_NONE
    core.loc[~core["accepts_111"], "status"] = STATUS_NOT_SET_UP
    core["ratio"] = offered / core["quota"].where(core["quota"] > 0)
    core["day_label"] = core["slot_day"].dt.strftime("%a %d %b")
    core["cell_text"] = offered.astype(str) + "/" + core["quota"].astype(str)
    return core


def practices_below_quota(daily: pd.DataFrame) -> pd.DataFrame:
    """One row per practice with any core day below quota, worst first.

    The worst day is the core day with the fewest reserved slots offered (earliest on ties).
    """
    columns = ["practice_ods", "practice_name", "sub_icb_code", "pcn_code", "clinical_system", "quota"]
    core = core_days(daily)
    below = core.loc[core["below_quota"]]
    if below.empty:
        return pd.DataFrame(
            columns=[*columns, "core_days", "core_days_below", "worst_day", "worst_day_offered"]
        )
    counts = core.groupby("practice_ods").size().rename("core_days")
    below_counts = below.groupby("practice_ods").size().rename("core_days_below")
    worst = (
        below.sort_values(["nhs111_reserved_offered", "slot_day"])
        .drop_duplicates("practice_ods")
        .set_index("practice_ods")
    )
    table = (
        worst[[c for c in columns if c != "practice_ods"]]
        .join(counts)
        .join(below_counts)
        .assign(
            worst_day=worst["slot_day"].dt.date,
            worst_day_offered=worst["nhs111_reserved_offered"],
        )
        .reset_index()
    )
    return table.sort_values(
        ["core_days_below", "worst_day_offered", "practice_ods"], ascending=[False, True, True]
    ).reset_index(drop=True)


def trend(daily: pd.DataFrame) -> pd.DataFrame:
    """Per core day: practices meeting quota (count and share), reserved slots offered and quota."""
    core = core_days(daily)
    columns = ["slot_day", "practices", "practices_meeting", "share_meeting", "offered", "quota"]
    if core.empty:
        return pd.DataFrame(columns=columns)
    per_day = (
        core.assign(meeting=~core["below_quota"])
        .groupby("slot_day")
        .agg(
            practices=("practice_ods", "nunique"),
            practices_meeting=("meeting", "sum"),
            offered=("nhs111_reserved_offered", "sum"),
            quota=("quota", "sum"),
        )
    )
    per_day["share_meeting"] = per_day["practices_meeting"] / per_day["practices"]
    return per_day.reset_index()[columns]


def practice_order(daily: pd.DataFrame) -> list[str]:
    """Practice labels with the most core days below quota first, for the heat map's rows."""
    core = core_days(daily)
    below = core["below_quota"].groupby(core["practice_label"]).sum()
    ranked = below.reset_index(name="below").sort_values(["below", "practice_label"], ascending=[False, True])
    return [str(label) for label in ranked["practice_label"]]
