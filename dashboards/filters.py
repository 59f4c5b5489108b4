"""The filters every page shares (period, NHS region, ICB, sub-ICB location, PCN, practice,
clinical system), in pure pandas.

CCGs were abolished in July 2022; their codes (10K, 10V...) now identify sub-ICB locations
inside integrated care boards (ICBs), and PCNs are what commissioners group practices by.
Marts name practices by ODS code; their geography, PCN and clinical system come from the
practice dimension the catalogue builds (`data.Catalogue.practices`), so a filter applies the
same way to marts that carry those columns and to those that do not (releases, freshness).
Hubs have a sub-ICB location but no PCN, so choosing a PCN leaves hubs out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock

DEFAULT_PERIOD_DAYS = 7


@dataclass(frozen=True)
class Filters:
    """What the user picked; an empty tuple means "no restriction"."""

    first_day: date
    last_day: date
    sub_icbs: tuple[str, ...] = field(default=())
    pcns: tuple[str, ...] = field(default=())
    practices: tuple[str, ...] = field(default=())
    systems: tuple[str, ...] = field(default=())
    icbs: tuple[str, ...] = field(default=())
    regions: tuple[str, ...] = field(default=())

    @property
    def narrowed(self) -> bool:
        """True when any organisation filter is set (not just the period)."""
        return bool(
            self.regions or self.icbs or self.sub_icbs or self.pcns or self.practices or self.systems
        )

    def describe(self) -> str:
        days = (
            f"{self.first_day:%a %d %b %Y}"
            if self.first_day == self.last_day
            else f"{self.first_day:%a %d %b} to {self.last_day:%a %d %b %Y}"
        )
        parts = [days]
        for label, chosen in (
            ("region", self.regions),
            ("ICB", self.icbs),
            ("sub-ICB", self.sub_icbs),
            ("PCN", self.pcns),
            ("practice", self.practices),
            ("system", self.systems),
        ):
            if chosen:
                parts.append(f"{label} {', '.join(chosen)}")
        return " · ".join(parts)


def default_period(first: date, last: date, as_of_day: date) -> tuple[date, date]:
    """The week up to the day the data was captured (UK), clipped to the days the snapshot
    covers; the first week it covers when it was captured before any of them."""
    week = timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    if as_of_day < first:
        return first, min(last, first + week)
    end = min(as_of_day, last)
    return max(first, end - week), end


def allowed_practices(practices: pd.DataFrame, filters: Filters) -> set[str] | None:
    """ODS codes that pass the organisation filters; None when none is set."""
    if not filters.narrowed:
        return None
    keep = pd.Series(True, index=practices.index)
    for column, wanted in (
        ("region_code", filters.regions),
        ("icb_code", filters.icbs),
        ("sub_icb_code", filters.sub_icbs),
        ("pcn_code", filters.pcns),
        ("practice_ods", filters.practices),
        ("clinical_system", filters.systems),
    ):
        if wanted:
            keep &= practices[column].isin(wanted)
    return {str(ods) for ods in practices.loc[keep, "practice_ods"]}


def select(
    frame: pd.DataFrame,
    filters: Filters,
    allowed: set[str] | None,
    *,
    ods_column: str = "practice_ods",
    day_column: str | None = "slot_day",
) -> pd.DataFrame:
    """Rows inside the period whose practice passes the organisation filters."""
    keep = pd.Series(True, index=frame.index)
    if day_column is not None:
        days = pd.to_datetime(frame[day_column])
        keep &= (days >= pd.Timestamp(filters.first_day)) & (days <= pd.Timestamp(filters.last_day))
    if allowed is not None:
        keep &= frame[ods_column].isin(allowed)
    return frame.loc[keep]


def options(practices: pd.DataFrame, column: str) -> list[str]:
    return sorted(str(value) for value in practices[column].dropna().unique())


def labels(practices: pd.DataFrame) -> dict[str, str]:
    """`ODS code -> "Name (ODS)"`, hubs marked as such, for pickers and tables."""
    out: dict[str, str] = {}
    for row in practices.itertuples(index=False):
        name = str(row.practice_name) if pd.notna(row.practice_name) else str(row.practice_ods)
        suffix = ", hub" if row.kind == "hub" else ""
        out[str(row.practice_ods)] = f"{name} ({row.practice_ods}{suffix})"
    return out
