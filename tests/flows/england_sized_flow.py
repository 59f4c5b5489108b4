"""A flow shaped like an England night for the Prefect-on-PostgreSQL test (not product code).

One task per practice (7,550: England's practices and hubs), started a bounded number at a
time like flows/sync.py does. No GP Connect and no DuckDB (the writer lock is a file lock
that never touches the Prefect API): the test measures what the Prefect server
and its database make of the task-run volume. Deployed by module path, so the worker imports
it from the repository root.
"""

from __future__ import annotations

import asyncio

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

ENGLAND_TASK_RUNS = 7550


# A practice's capture is several GP Connect round trips; half a second is a fast one. With 24
# in flight that is ~150 task-run events a second, as an England night sends them. The server
# keeps up only with its task-run recorder and event persister writing in batches (flows/serve.py,
# SERVER_SETTINGS); at Prefect's defaults its in-memory broker (10,000 events per consumer)
# overflows and drops events, and their task-run records are lost whatever the database.
CAPTURE_S = 0.5


@task(name="capture-practice", cache_policy=NO_CACHE)
async def capture_practice(index: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return index


@flow(name="england_sized_night")
async def england_sized_night(
    task_runs: int = ENGLAND_TASK_RUNS, in_flight: int = 24, capture_s: float = CAPTURE_S
) -> dict[str, int]:
    gate = asyncio.Semaphore(in_flight)

    async def one(index: int) -> int:
        async with gate:
            return await capture_practice(index, capture_s)

    done = await asyncio.gather(*(one(i) for i in range(task_runs)))
    return {"task_runs": len(done), "checksum": sum(done)}
