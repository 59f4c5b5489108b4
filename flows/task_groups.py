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

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


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


async def all_or_cancel(futures: Sequence[asyncio.Future[Any]]) -> list[Any]:
    """Every result; when one raises, the others are cancelled and the error goes on.

    A practice's own fetch failure is an outcome, never raised, so only the pipelined writer's
    failure (flows/landed_writer.py), a full disk or a bug gets here: the night stops instead of
    going on fetching what nobody will load.
    """
    try:
        return list(await asyncio.gather(*futures))
    except BaseException:
        for future in futures:
            future.cancel()
        await asyncio.gather(*futures, return_exceptions=True)
        raise


async def run_in_groups(
    items: Sequence[T], *, max_tasks: int, items_in_flight: int, code: Callable[[T], str],
    run_group: Callable[[str, list[T]], Awaitable[list[R]]],
) -> list[R]:
    """Every item's result, in order: `items` shared out, each group's task started when needed.

    `run_group(label, group)` is the leg's Prefect task (its run named by `group_label` of the
    items' `code`s); it bounds its own items to `items_in_flight`.
    """
    groups = share_out(items, max_tasks)
    slots = asyncio.Semaphore(groups_in_flight(items_in_flight, len(groups[0]) if groups else 1))

    async def when_free(group: list[T]) -> list[R]:
        async with slots:
            return await run_group(group_label([code(item) for item in group]), group)

    done = await all_or_cancel([asyncio.ensure_future(when_free(group)) for group in groups])
    return [result for group in done for result in group]
