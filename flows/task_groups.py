"""A leg's work shared out to at most N Prefect tasks, each started only when it can run.

Every Prefect task run costs the Prefect server three state events to record and the flow a
few milliseconds of its event loop. One task per practice made an England night 8,800 task
runs (7,550 practices and hubs, 1,266 booking-log exports), and the Prefect server alone used
about a third of the night's CPU on two cores. Prefect's guidance is a few hundred tasks a
night, so an estate larger than the cap (`sync.max_tasks_per_leg`) shares its work out in
contiguous groups of equal size; an estate under the cap keeps one task per practice, named
as before (`fetch-A81001`). A practice's failure is still its own outcome inside its group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def share_out(items: Sequence[T], max_tasks: int) -> list[list[T]]:
    """`items` in order, in at most `max_tasks` contiguous groups of equal size (the last may be short)."""
    size = max(1, math.ceil(len(items) / max(1, max_tasks)))
    return [list(items[start:start + size]) for start in range(0, len(items), size)]


def group_label(codes: Sequence[str]) -> str:
    """A group's task-run name: its one ODS code, or its first and last (`A81001-to-A81026`)."""
    if not codes:
        return "none"
    return codes[0] if len(codes) == 1 else f"{codes[0]}-to-{codes[-1]}"


def groups_in_flight(items_in_flight: int, group_size: int) -> int:
    """How many groups to start at once so every item slot stays busy.

    Enough groups to hold twice the item limit, plus one. A group ends with its slowest item,
    and while it waits the groups after it must still have items to start: with only enough
    groups for the limit plus one, an England night at 1 s provider latency kept 78 of its 96
    calls in flight on average (the slowest of a practice's searches is the tail of the
    latency, and 38 practices a group wait on theirs). Started all at once, a night's groups
    would all show Running from its first second. A group of one is its item: it starts only
    when its item can go, as a task per practice always did.
    """
    if group_size <= 1:
        return items_in_flight
    return math.ceil(2 * items_in_flight / group_size) + 1
