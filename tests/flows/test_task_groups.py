"""Sharing a leg's work out to at most N Prefect tasks (flows/task_groups.py)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from flows.task_groups import group_label, groups_in_flight, share_out


@given(st.integers(min_value=0, max_value=9_000), st.integers(min_value=1, max_value=500))
def test_share_out_keeps_order_caps_the_task_count_and_sizes_groups_equally(items: int, cap: int) -> None:
    groups = share_out(list(range(items)), cap)
    assert [i for group in groups for i in group] == list(range(items))
    assert len(groups) <= cap
    if items:
        size = math.ceil(items / cap)
        assert all(len(group) == size for group in groups[:-1]) and 1 <= len(groups[-1]) <= size


def test_an_estate_under_the_cap_keeps_one_task_per_practice_named_as_before() -> None:
    assert share_out(["A81001", "A81002"], 200) == [["A81001"], ["A81002"]]
    assert group_label(["A81001"]) == "A81001"
    assert group_label(["A81001", "A81002", "A81003"]) == "A81001-to-A81003"


def test_england_shares_its_7550_practices_out_to_under_the_cap() -> None:
    groups = share_out(list(range(7_550)), 200)
    assert len(groups) == 199 and len(groups[0]) == 38


def test_enough_groups_start_to_hold_twice_the_practice_limit_and_one_more() -> None:
    assert groups_in_flight(32, 1) == 32  # a task per practice starts when its practice can go
    assert groups_in_flight(32, 38) == 3
    assert groups_in_flight(96, 38) == 7
