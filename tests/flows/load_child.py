"""A child process that begins a load and then waits, to be stopped from outside.

Run by tests/flows/test_load_guard.py as `python -m tests.flows.load_child MODE WAREHOUSE LOAD_ID`.
It begins the load the way flows/sync.py does (the ledger records this process as its holder,
inside a `@ends_load_on_exit` run that names it with `guard_load`), closes the warehouse so
others can read it, prints "begun" and waits. MODE `plain` runs outside Prefect; `prefect`
runs inside a Prefect flow (the API named by PREFECT_API_URL), whose SIGTERM bridge is the
way Prefect cancels a flow run.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from flows.load_guard import ends_load_on_exit, guard_load
from warehouse.db import open_warehouse
from warehouse.loader import Warehouse

AS_OF = datetime(2026, 3, 24, 2, 0, tzinfo=UTC)


@ends_load_on_exit
async def begin_and_wait(warehouse_path: Path, load_id: str) -> None:
    guard_load(warehouse_path, load_id)
    con = open_warehouse(warehouse_path)
    try:
        Warehouse(con).begin_load(load_id, flow_name="nightly_sync", as_of=AS_OF, started_at=AS_OF)
    finally:
        con.close()
    print("begun", flush=True)
    await asyncio.sleep(600)


def main(mode: str, warehouse_path: Path, load_id: str) -> None:
    if mode == "plain":
        asyncio.run(begin_and_wait(warehouse_path, load_id))
        return
    from prefect import flow

    @flow(name="load_child")
    async def load_child() -> None:
        await begin_and_wait(warehouse_path, load_id)

    asyncio.run(load_child())


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
