"""Estate KPIs for the Overview page, in pure pandas, each with the definition shown on hover.

Every KPI is computed over the chosen period and organisation filters. Outcome-based KPIs
(utilisation, uptake, unused) use finished days only (`is_final`: every slot of the day has
started), because a slot still to come may yet be booked.
"""

from __future__ import annotations

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock

from dashboards.suppression import Policy

NHS111_POLICY = Policy(
    protected=("booked",),
    outcomes=("unused", "unknown"),
    rates=("utilisation",),
    capacity=("offered",),
    rate_terms=(("utilisation", ("booked",), ("offered",)),),
)

HELP = {
    "quota": (
        "Slots reserved for NHS 111 (returned to the 111 provider's GP Connect search but not to "
        "an unfiltered search) offered on core days (Monday to Friday), against the sum of the "
        "practices' daily quotas, max(1, floor(list size / 3000)) per core day. Unrestricted "
        "slots 111 could also see do not count."
    ),
    "below": (
        "Practices with at least one core day in the period on which they offered fewer reserved "
        "NHS 111 slots than their quota, out of all practices shown."
    ),
    "nhs111": (
        "Reserved NHS 111 slots booked by the 111 provider (in its booking log and confirmed by "
        "the practice) ÷ reserved NHS 111 slots offered, over finished days (every slot of the "
        "day has started)."
    ),
    "practice_util": (
        "Booked slots ÷ slots offered at GP practices, all audiences, over finished days. Booked = "
        "confirmed by a booking organisation and the practice, or inferred (the slot disappeared "
        "before its start and was not freed again). Slots whose outcome is unknown count as offered "
        "but not booked; the figure in brackets is the utilisation if every one of them was booked."
    ),
    "unused": (
        "Practice slots that were still free at a check within 2 hours of their start: capacity that "
        "went unused. Slots whose last check was more than 2 hours before their start are 'unknown' "
        "(a late booking cannot be ruled out) and are counted separately, not as unused."
    ),
    "released": (
        "Slots reserved for NHS 111 that were later seen open to everyone (given back to the "
        "practice) and then booked, out of all such released slots, over finished days."
    ),
    "released_decisions": (
        "Reserved NHS 111 slots the release flow gave back to the practice (through the supplier's "
        "API or the practice's work-list) that were then booked, out of all it gave back, for slots "
        "on days in the period. Slots on days not finished yet may still be booked."
    ),
    "hub_util": (
        "Booked ÷ offered slots in the extended-access hubs' own books, over finished days. Booked = "
        "confirmed or inferred as for practices."
    ),
    "fresh": (
        "Practices and hubs whose last complete capture is at most 26 hours older than this data "
        "(the as-of time above), out of all in the registry. 'Data health' lists the others."
    ),
    "failed": "Practices and hubs whose most recent sync failed (they keep their last good data).",
}


def nhs111_totals(frame: pd.DataFrame) -> dict[str, float | int | None]:
    """From `mart_111_utilisation_daily` rows: offered, booked by 111, unused, unknown, rate."""
    offered = int(frame["offered"].sum())
    booked = int(frame["booked_by_111"].sum())
    return {
        "offered": offered,
        "booked": booked,
        "unused": int(frame["unused"].sum()),
        "unknown": int(frame["unknown"].sum()),
        "utilisation": booked / offered if offered else None,
    }
