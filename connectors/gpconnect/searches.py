"""Which slot searches make up one observation of a practice: the differential searches.

Free-slot search shows NHS 111 reservation only as a difference between searches with
different `searchFilter`s, so every observation is the unfiltered search, plus the 111
provider's search when the practice takes 111 bookings, plus one per hub that books into it.
This rule lives here once: the sync plans and re-plans by it, the release re-check asks the
same 111 search, and the sandbox's pre-rendered mode and the bench call it rather than copy it.
"""

from __future__ import annotations

from datetime import datetime

from connectors.gpconnect.spine import NO_FILTER, SearchFilter
from connectors.gpconnect.windows import SearchWindow
from connectors.registry import Practice

UnitKey = tuple[str, datetime, datetime]  # (filter_key, window start UTC, window end UTC)


def nhs111_filter(practice: Practice) -> SearchFilter:
    """The search NHS 111 makes: organisation type urgent-care, its provider's ODS code."""
    return SearchFilter("urgent-care", practice.nhs111_provider_ods)


def search_filters(practice: Practice) -> list[tuple[str, SearchFilter]]:
    """The differential searches for a practice: (filter role, searchFilter)."""
    filters: list[tuple[str, SearchFilter]] = [("general", NO_FILTER)]
    if practice.accepts_111_booking and practice.nhs111_provider_ods:
        filters.append(("nhs111", nhs111_filter(practice)))
    filters.extend(("hub", SearchFilter("gp-practice", hub)) for hub in practice.booking_hubs)
    return filters


def planned_units(practice: Practice, windows: list[SearchWindow]) -> set[UnitKey]:
    """Every (filter, window) unit a full observation of the practice consists of."""
    return {(sf.key, w.start_utc, w.end_utc) for w in windows for _, sf in search_filters(practice)}
