"""Slot utilisation figures (booked vs offered) from `mart_slot_utilisation_daily` (practices)
and `mart_hub_utilisation_hourly` (extended-access hubs), in pure pandas.

Definitions are the marts': `offered` = distinct slots seen free at any observation;
`booked` = confirmed by a booking organisation's log and the practice, or inferred (gone
before its start, not freed again); `unused` = still free at a check within 2 hours of its
start; `unknown` = free at a last check earlier than that, so a late booking cannot be ruled
out: it is neither counted as used nor as unused. Utilisation is booked / offered over days
whose slots have all started (`is_final`); if every unknown slot had in fact been booked it
would be (booked + unknown) / offered, so the true figure lies between the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock

from dashboards.suppression import Policy, suppress, unprotected

VERDICTS = ("booked", "unused", "unknown")
VERDICT_LABELS = {
    "booked": "Booked",
    "unused": "Unused",
    "unknown": "Unknown (last check > 2 h before start)",
}
VERDICT_COLOURS = ("#2c7bb6", "#fdae61", "#bababa")  # blue / orange / grey: colour-blind safe
AUDIENCE_LABELS = {
    "general": "Open to anyone",
    "nhs111": "Reserved for NHS 111",
    "hub": "Reserved for hubs",
}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
COUNTS = ("offered", "booked", "unused", "unknown")

# Booked counts are about patients; unused and unknown complete the same slots (offered =
# booked + unused + unknown on finished days), so they are hidden with a hidden booked count.
POLICY = Policy(
    protected=("booked",),
    outcomes=("unused", "unknown"),
    rates=("utilisation", "utilisation_if_unknown_booked"),
    capacity=("offered",),
    rate_terms=(
        ("utilisation", ("booked",), ("offered",)),
        ("utilisation_if_unknown_booked", ("booked", "unknown"), ("offered",)),
    ),
)


def prepare_slots(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["slot_day"] = pd.to_datetime(out["slot_day"]).dt.normalize()
    out["is_final"] = out["is_final"].astype("boolean").fillna(False).astype(bool)
    return out


def prepare_hubs(frame: pd.DataFrame) -> pd.DataFrame:
    out = prepare_slots(frame)
    return out.rename(columns={"hub_ods": "practice_ods", "hub_name": "practice_name"})


def finished(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose slots have all started: the only ones whose outcome is settled."""
    return frame.loc[frame["is_final"]]


def totals(frame: pd.DataFrame) -> dict[str, float | int | None]:
    sums = {c: int(frame[c].sum()) for c in COUNTS}
    return {**sums, **_rates(sums["offered"], sums["booked"], sums["unknown"])}


def figure_totals(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """A named utilisation figure (`practice_*`, `hub_*`) under the keys `totals` and POLICY use."""
    return {
        "offered": values[f"{prefix}_offered"],
        "booked": values[f"{prefix}_booked"],
        "unused": values[f"{prefix}_unused"],
        "unknown": values[f"{prefix}_unknown"],
        "utilisation": values[f"{prefix}_utilisation"],
        "utilisation_if_unknown_booked": values[f"{prefix}_utilisation_upper"],
    }


def _rates(offered: float, booked: float, unknown: float) -> dict[str, float | None]:
    if not offered:
        return {"utilisation": None, "utilisation_if_unknown_booked": None}
    return {"utilisation": booked / offered, "utilisation_if_unknown_booked": (booked + unknown) / offered}


def _with_rates(table: pd.DataFrame) -> pd.DataFrame:
    offered = table["offered"].where(table["offered"] > 0)
    table["utilisation"] = table["booked"] / offered
    table["utilisation_if_unknown_booked"] = (table["booked"] + table["unknown"]) / offered
    return table


def by_practice(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per practice (or hub): the period's counts and utilisation, lowest first."""
    keys = ["practice_ods", "practice_name", "sub_icb_code", "pcn_code", "clinical_system"]
    keys = [k for k in keys if k in frame.columns]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, *COUNTS, "utilisation", "utilisation_if_unknown_booked"])
    table = frame.groupby(keys, dropna=False)[list(COUNTS)].sum().reset_index()
    return (
        _with_rates(table)
        .sort_values(["utilisation", "practice_ods"], na_position="last")
        .reset_index(drop=True)
    )


def by_weekday(frame: pd.DataFrame) -> pd.DataFrame:
    table = frame.groupby("iso_day_of_week")[list(COUNTS)].sum().reindex(range(1, 8), fill_value=0)
    table = _with_rates(table.reset_index())
    table.insert(0, "weekday", [WEEKDAYS[int(d) - 1] for d in table["iso_day_of_week"]])
    return table.drop(columns="iso_day_of_week")


def by_hour(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=["hour", *COUNTS, "utilisation", "utilisation_if_unknown_booked"])
    table = frame.groupby("slot_hour")[list(COUNTS)].sum().reset_index()
    table = _with_rates(table)
    table.insert(0, "hour", [f"{int(h):02d}:00" for h in table["slot_hour"]])
    return table.drop(columns="slot_hour")


def by_audience(frame: pd.DataFrame) -> pd.DataFrame:
    table = frame.groupby("audience")[list(COUNTS)].sum().reset_index()
    table = _with_rates(table)
    table["audience"] = table["audience"].map(lambda a: AUDIENCE_LABELS.get(str(a), str(a)))
    return table


def conceal_totals(rows: pd.DataFrame, *, hours: bool = False) -> frozenset[str]:
    """Would the totals of these rows give back a small count hidden in the page's tables?"""
    tables = [by_practice(rows), by_weekday(rows)] + ([by_hour(rows)] if hours else [])
    return unprotected(*(suppress(t, POLICY) for t in tables if not t.empty))


def verdicts_long(shown: pd.DataFrame, key: str) -> pd.DataFrame:
    """Stacked-bar input: one row per (key, verdict) with the count as shown (NaN if hidden)."""
    long = shown[[key, *VERDICTS]].melt(id_vars=key, var_name="verdict_key", value_name="slots")
    long["slots"] = pd.to_numeric(long["slots"], errors="coerce")
    long["verdict"] = long["verdict_key"].map(VERDICT_LABELS)
    long["order"] = long["verdict_key"].map({v: i for i, v in enumerate(VERDICTS)})
    return long
