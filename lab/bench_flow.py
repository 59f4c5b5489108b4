"""The part of `slotsync bench` that runs in its own process: the real nightly flow, end to end.

    python -m lab.bench_flow --registry R --data-dir D --as-of ISO --json OUT [--practice ODS ...]

It runs in a process of its own so its peak RSS is the nightly run's alone (the bench process
holds a sample of responses in memory for the side-by-side ingest), and so DuckDB and Prefect
start cold, as a scheduled run does. In order:

1. **Orchestration overhead.** The nightly flow's shape (one async task per practice gathered
   on the flow's event loop, then one writer task) with no-op tasks, against the same flow
   with plain coroutines; the difference divided by the number of tasks is what Prefect costs
   per practice task. A tiny flow runs first so the temporary Prefect API is already up.
2. **The nightly sync.** `flows.sync.nightly_sync` exactly as scheduled (28-day horizon,
   differential search, bookings leg, load, fold, marts, publish), timed from the call to
   its return. The landing files' last write marks where fetching ended and the writer began.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from flows.environment import prepare_prefect_environment

prepare_prefect_environment(quiet=True)

from prefect import flow, task  # noqa: E402  (Prefect reads its settings at import)
from prefect.cache_policies import NO_CACHE  # noqa: E402


@task(name="fetch-practice", cache_policy=NO_CACHE, task_run_name="noop-{index}")
async def noop_practice(index: int) -> int:
    return index


@task(name="load-and-publish", cache_policy=NO_CACHE)
def noop_writer(outcomes: list[int]) -> int:
    return len(outcomes)


async def _plain_practice(index: int) -> int:
    return index


@flow(name="bench_noop_tasks")
async def flow_with_tasks(tasks: int) -> int:
    outcomes = await asyncio.gather(*(noop_practice(i) for i in range(tasks)))
    return noop_writer(list(outcomes))


@flow(name="bench_noop_plain")
async def flow_without_tasks(tasks: int) -> int:
    outcomes = await asyncio.gather(*(_plain_practice(i) for i in range(tasks)))
    return len(outcomes)


def orchestration_overhead(tasks: int) -> dict[str, Any]:
    """ms per practice task: the nightly flow's shape with no-op tasks vs plain coroutines."""
    asyncio.run(flow_without_tasks(1))  # starts the temporary API; not timed
    began = time.perf_counter()
    asyncio.run(flow_without_tasks(tasks))
    plain_s = time.perf_counter() - began
    began = time.perf_counter()
    asyncio.run(flow_with_tasks(tasks))
    with_tasks_s = time.perf_counter() - began
    return {
        "tasks": tasks + 1,
        "flow_with_tasks_s": round(with_tasks_s, 3),
        "flow_without_tasks_s": round(plain_s, 3),
        "ms_per_task": round((with_tasks_s - plain_s) * 1000 / (tasks + 1), 2),
    }


def run_nightly(
    registry: Path, data_dir: Path, as_of: datetime, horizon_days: int, practices: list[str] | None
) -> dict[str, Any]:
    from flows.sync import nightly_sync

    began = time.time()
    cpu = time.process_time()
    result: dict[str, Any] = asyncio.run(
        nightly_sync(
            registry_path=str(registry), warehouse_path=str(data_dir / "warehouse.duckdb"),
            data_dir=str(data_dir), as_of=as_of, horizon_days=horizon_days, practices=practices,
            max_failed_fraction=1.0,
        )
    )
    wall_s = time.time() - began
    cpu_s = time.process_time() - cpu
    landed = [p.stat() for p in (data_dir / "landing").rglob("*.ndjson")]
    fetched_by = max((s.st_mtime for s in landed), default=began)
    outcomes = result["outcomes"]
    return {
        "wall_s": round(wall_s, 2),
        "cpu_s": round(cpu_s, 2),
        "fetch_s": round(fetched_by - began, 2),  # flow start to the last landing file written
        "fetched_by": fetched_by,
        "load_publish_s": round(began + wall_s - fetched_by, 2),
        "practices": len(outcomes),
        "practices_failed": sum(1 for o in outcomes if o["status"] != "ok"),
        "responses": sum(o["responses"] for o in outcomes),
        "slots": sum(o["slot_rows"] for o in outcomes),
        "appointment_reads": sum(result["booking_logs"]["appointment_reads"].values()),
        "landing_bytes": sum(s.st_size for s in landed),
        "warehouse_bytes": (data_dir / "warehouse.duckdb").stat().st_size,
        "published": result["published"],
        "writer_phases_s": result.get("writer_phases_s") or {},
        "load_id": result["load_id"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.bench_flow")
    parser.add_argument("--registry", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--horizon-days", type=int, default=28)
    parser.add_argument("--practice", action="append", help="only these ODS codes (default: all)")
    parser.add_argument("--noop-tasks", type=int, default=200)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {"orchestration": orchestration_overhead(args.noop_tasks)}
    figures["nightly"] = run_nightly(
        args.registry, args.data_dir, datetime.fromisoformat(args.as_of), args.horizon_days, args.practice
    )
    figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
