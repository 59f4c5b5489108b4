"""The metrics layer: every named figure the dashboard, the demo summary and `slotsync status`
show, each defined once in SQL (`dashboards/figures/sql/fig_*.sql`) over the published marts.

Why: the same words used to mean different numbers on different pages (released slots had three
answers, "111 slots offered" two). A tile, a table total, a CSV, the demo summary and the CLI
now read a figure by name from here, so they cannot disagree.

No Streamlit import, so `flows.cli` and `lab.demo` can use it. "Now" comes from an
injectable clock: `SLOTSYNC_NOW` (ISO instant) pins it, as the demo does for its simulated
week and tests do for a stale snapshot; otherwise the wall clock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock

from dashboards import data

SQL_DIR = Path(__file__).with_name("sql")
NOW_ENV = "SLOTSYNC_NOW"
# Fresh = a successful nightly within 26 hours (a nightly plus two hours' grace); `slotsync
# status` uses this constant too.
STALE_AFTER = timedelta(hours=26)

Value = int | float | datetime | None
Numbers = dict[str, float | int | None]


@dataclass(frozen=True)
class Group:
    """One SQL file of figures and the mart it needs (absent mart: the figures are None)."""

    sql_file: str
    table: str


GROUPS: dict[str, Group] = {
    "nhs111_quota": Group("fig_nhs111_quota.sql", "mart_111_quota_daily"),
    "nhs111_utilisation": Group("fig_nhs111_utilisation.sql", "mart_111_utilisation_daily"),
    "practice_utilisation": Group("fig_practice_utilisation.sql", "mart_slot_utilisation_daily"),
    "hub_utilisation": Group("fig_hub_utilisation.sql", "mart_hub_utilisation_hourly"),
    "releases": Group("fig_releases.sql", "mart_releases_daily"),
    "freshness": Group("fig_freshness.sql", "mart_pipeline_freshness"),
}
SCORECARD = Group("fig_nhs111_scorecard.sql", "mart_111_quota_daily")

# The words every surface uses for a figure: a tile label, a demo summary line and a test's
# lookup key are the same string.
LABELS: dict[str, str] = {
    "nhs111_offered_core_days": "111 slots offered on core days",
    "nhs111_quota": "111 quota on core days",
    "nhs111_shortfall_slots": "111 shortfall (slots)",
    "practices_below_quota": "Practices below 111 quota",
    "practices_not_set_up_for_111": "Practices not set up for 111 booking",
    "nhs111_utilisation": "NHS 111 utilisation",
    "practice_utilisation": "Practice slot utilisation",
    "practice_unused": "Practice slots unused",
    "hub_utilisation": "Hub utilisation",
    "released": "Released 111 slots",
    "released_then_booked": "Released, then booked",
    "released_unused": "Released, unused",
    "released_unknown": "Released, outcome not known yet",
    "release_uptake": "Release uptake",
    "practices_fresh": "Practices up to date",
    "practices_failed": "Latest sync failed",
}


@dataclass(frozen=True)
class Scope:
    """The period (UK days, inclusive) and the ODS codes the organisation filters allow
    (None: no organisation filter)."""

    first_day: date
    last_day: date
    ods: tuple[str, ...] | None = None

    def params(self) -> dict[str, object]:
        return {
            "first_day": self.first_day,
            "last_day": self.last_day,
            "all_ods": self.ods is None,
            "ods": list(self.ods or ()),
        }

    @property
    def has_core_day(self) -> bool:
        day = self.first_day
        while day <= self.last_day:
            if day.isoweekday() <= 5:
                return True
            day += timedelta(days=1)
        return False


def now() -> datetime:
    """The injectable "now": `SLOTSYNC_NOW` when set (a simulated or pinned clock), else the wall clock."""
    pinned = os.environ.get(NOW_ENV)
    if not pinned:
        return datetime.now(UTC)
    instant = datetime.fromisoformat(pinned.replace("Z", "+00:00"))
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def clock_is_pinned() -> bool:
    return bool(os.environ.get(NOW_ENV))


@cache
def sql(file_name: str) -> str:
    return (SQL_DIR / file_name).read_text(encoding="utf-8")


def read_group(
    name: str, scope: Scope, *, snapshot: Path | None = None, at: datetime | None = None
) -> dict[str, Value] | None:
    """The figures of one group for a scope; None when the snapshot lacks the group's mart."""
    group = GROUPS[name]
    params: dict[str, object] = scope.params()
    text = sql(group.sql_file)
    if name == "nhs111_quota":
        text = f"with scorecard as ({sql(SCORECARD.sql_file)})\n{text}"
    if name == "freshness":
        params = {
            "all_ods": scope.ods is None,
            "ods": list(scope.ods or ()),
            "now": at or now(),
            "stale_after_s": STALE_AFTER.total_seconds(),
        }
    if not _has_table(group.table, snapshot):
        return None
    frame = data.read_frame(text, params, path=snapshot)
    row = frame.iloc[0].to_dict()
    return {str(k): _plain(v) for k, v in row.items()}


def read_all(
    scope: Scope, *, snapshot: Path | None = None, at: datetime | None = None
) -> dict[str, Value]:
    """Every figure by name (a group whose mart is missing contributes nothing)."""
    out: dict[str, Value] = {}
    for name in GROUPS:
        values = read_group(name, scope, snapshot=snapshot, at=at)
        if values:
            out.update(values)
    return out


def numbers(values: dict[str, Value]) -> Numbers:
    """The numeric figures of a group (timestamps left out), for formatting and suppression."""
    return {k: v for k, v in values.items() if not isinstance(v, datetime)}


def scorecard(scope: Scope, *, snapshot: Path | None = None) -> pd.DataFrame | None:
    """The weekly NHS 111 quota scorecard, one row per practice (fig_nhs111_scorecard.sql)."""
    if not _has_table(SCORECARD.table, snapshot):
        return None
    return data.read_frame(sql(SCORECARD.sql_file), scope.params(), path=snapshot)


def scope_for_period(first_day: date, last_day: date, ods: set[str] | None) -> Scope:
    return Scope(first_day, last_day, None if ods is None else tuple(sorted(ods)))


def _has_table(table: str, snapshot: Path | None) -> bool:
    frame = data.read_frame(
        "select count(*) as n from information_schema.tables "
        f"where table_catalog = '{data.CATALOG}' and table_schema = 'marts' and table_name = $t",
        {"t": table},
        path=snapshot,
    )
    return bool(int(frame.iloc[0]["n"]))


def _plain(value: Any) -> Value:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and pd.isna(value):
        return None
    if isinstance(value, pd.Timestamp):
        stamp: datetime = value.to_pydatetime()
        return stamp
    if isinstance(value, datetime):
        return value
    if isinstance(value, bool):
        return int(value)
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, int | float):
        return value
    return float(value)
