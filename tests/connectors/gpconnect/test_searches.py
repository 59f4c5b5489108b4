"""The differential searches of one observation (connectors/gpconnect/searches.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.gpconnect.searches import planned_units, search_filters
from connectors.gpconnect.spine import NO_FILTER, SearchFilter
from connectors.gpconnect.windows import plan_windows
from connectors.registry import Practice
from tests.connectors.test_registry import practice_row


def test_a_111_practice_with_a_hub_is_searched_three_ways() -> None:
    practice = Practice.model_validate(practice_row(booking_hubs=["Y00001"]))
    assert search_filters(practice) == [
        ("general", NO_FILTER),
        ("nhs111", SearchFilter("urgent-care", "RYE")),
        ("hub", SearchFilter("gp-practice", "Y00001")),
    ]


def test_a_practice_not_set_up_for_111_has_no_111_search() -> None:
    practice = Practice.model_validate(practice_row(accepts_111_booking=False))
    assert [role for role, _ in search_filters(practice)] == ["general"]


def test_planned_units_are_every_search_in_every_window() -> None:
    practice = Practice.model_validate(practice_row())
    windows = plan_windows(datetime(2026, 3, 23, tzinfo=UTC), 28, 14)
    units = planned_units(practice, windows)
    assert len(windows) == 2 and len(units) == 4
    # The second window starts at UK midnight after the clocks change: 23:00 UTC.
    assert {start for _, start, _ in units} == {datetime(2026, 3, 23, tzinfo=UTC),
                                                 datetime(2026, 4, 5, 23, tzinfo=UTC)}
    assert {key for key, _, _ in units} == {sf.key for _, sf in search_filters(practice)}
