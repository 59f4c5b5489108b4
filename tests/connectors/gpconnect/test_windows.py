"""Search planning: <= 14-day windows on UK midnights with DST-correct offsets."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.uktime import format_uk, uk_day, uk_midnight
from connectors.gpconnect.windows import SearchWindow, plan_windows
from tests.reliability import Result, record


def test_28_day_horizon_is_two_windows_ending_on_uk_midnights() -> None:
    start = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)  # 02:00 BST
    windows = plan_windows(start, 28)
    assert [str(w) for w in windows] == [
        "2026-06-01T02:00:00+01:00..2026-06-15T00:00:00+01:00",
        "2026-06-15T00:00:00+01:00..2026-06-29T00:00:00+01:00",
    ]
    assert windows[0].end == windows[1].start


@pytest.mark.parametrize(
    ("start", "expected_params"),
    [
        # Window containing the last Sunday of March: starts GMT, ends BST.
        (
            datetime(2026, 3, 23, 2, 0, tzinfo=UTC),
            ("ge2026-03-23T02:00:00+00:00", "le2026-04-06T00:00:00+01:00"),
        ),
        # Window containing the last Sunday of October: starts BST, ends GMT.
        (
            datetime(2026, 10, 19, 1, 0, tzinfo=UTC),
            ("ge2026-10-19T02:00:00+01:00", "le2026-11-02T00:00:00+00:00"),
        ),
    ],
)
def test_dst_boundary_windows_carry_each_ends_offset(
    start: datetime, expected_params: tuple[str, str]
) -> None:
    window = plan_windows(start, 14)[0]
    assert (window.start_param, window.end_param) == expected_params


def test_no_window_spans_more_than_14_days_and_horizon_is_covered() -> None:
    start = datetime(2026, 3, 20, 23, 59, tzinfo=UTC)
    windows = plan_windows(start, 60)
    assert windows[0].start == start
    for a, b in itertools.pairwise(windows):
        assert a.end == b.start
    for w in windows:
        assert (w.end - w.start) <= timedelta(days=14)
    assert format_uk(windows[-1].end).endswith("T00:00:00+01:00")


def test_invalid_plans_are_refused() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        plan_windows(now, 28, window_days=15)
    with pytest.raises(ValueError):
        plan_windows(now, 0)
    with pytest.raises(ValueError):
        SearchWindow(now, now)


def test_any_plan_covers_the_horizon_in_windows_of_at_most_14_days_with_uk_offsets() -> None:
    """Property: for any start, horizon and window size, the windows tile [start, horizon end)
    on UK midnights, none longer than its window size (<= 14 days), and each bound's wire
    offset is the one the UK used at that instant (+00:00 GMT, +01:00 BST)."""
    london = ZoneInfo("Europe/London")
    examples = {"n": 0, "dst_crossing": 0}

    @settings(max_examples=400, deadline=None)
    @given(
        start=st.datetimes(
            min_value=datetime(2024, 1, 1), max_value=datetime(2032, 12, 31), timezones=st.just(UTC)
        ),
        horizon=st.integers(1, 90),
        window_days=st.integers(1, 14),
    )
    def check(start: datetime, horizon: int, window_days: int) -> None:
        examples["n"] += 1
        windows = plan_windows(start, horizon, window_days)
        assert windows[0].start == start.replace(microsecond=0)
        assert windows[-1].end == uk_midnight(uk_day(start) + timedelta(days=horizon))
        for a, b in itertools.pairwise(windows):
            assert a.end == b.start
        for w in windows:
            # 14 days as providers count them (ChronoUnit.DAYS on UK local time, see the
            # sandbox's slot_search): a window over the autumn change lasts 14 days and 1 hour.
            local_start, local_end = (t.astimezone(london).replace(tzinfo=None) for t in (w.start, w.end))
            local = local_end - local_start
            assert local <= timedelta(days=14) and w.end - w.start <= timedelta(days=14, hours=1)
            assert (uk_day(w.end) - uk_day(w.start)).days <= window_days
            assert w.end.astimezone(london).time() == datetime.min.time()  # ends on a UK midnight
            for param, instant in ((w.start_param[2:], w.start), (w.end_param[2:], w.end)):
                parsed = datetime.fromisoformat(param)
                assert parsed == instant
                assert parsed.utcoffset() == instant.astimezone(london).utcoffset()
                assert param[-6:] in ("+00:00", "+01:00")
            examples["dst_crossing"] += w.start_param[-6:] != w.end_param[-6:]

    check()
    assert examples["dst_crossing"] > 0, "no example crossed a DST change"
    record(
        Result(
            "property",
            "window planner (horizon, <= 14 days, DST offsets)",
            examples["n"],
            examples["n"],
            None,
            None,
            f"{examples['dst_crossing']} windows crossed a DST change",
            "tests/connectors/gpconnect/test_windows.py::"
            "test_any_plan_covers_the_horizon_in_windows_of_at_most_14_days_with_uk_offsets",
            not_measured="a planner property: no data involved",
        )
    )
