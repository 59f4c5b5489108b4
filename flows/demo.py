"""The demo: a simulated period on the built-in sandbox estate, replayed through the flows.

One `SimulatedClock` drives both the sandbox (booking activity) and the pipeline (JWTs,
windows, as-of times). The replay visits each scheduled run in time order (nightly sync at
02:00, intraday syncs during core hours on weekdays, all Europe/London) and runs the real
Prefect flow at that instant, so a week replays in about a minute and deterministically.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from time import monotonic
from typing import Any

from connectors.clock import SimulatedClock
from connectors.uktime import UK, uk_local

DEFAULT_START = date(2026, 3, 23)  # a Monday; the week crosses the spring DST change
NIGHTLY_AT = time(2, 0)
INTRADAY_AT = (time(10, 0), time(15, 0))
# What production should run (see the README's accuracy notes): a check every hour of core
# hours keeps every slot's last snapshot within an hour of its start.
HOURLY_INTRADAY = tuple(time(hour, 0) for hour in range(8, 19))


@dataclass(frozen=True, order=True)
class ScheduledRun:
    at: datetime
    flow_name: str


def replay_schedule(
    start: date, days: int, intraday_at: tuple[time, ...] = INTRADAY_AT
) -> Iterator[ScheduledRun]:
    """Every scheduled run in [start, start + days), in time order, at UK wall-clock times."""
    for offset in range(days):
        day = start + timedelta(days=offset)
        yield ScheduledRun(uk_local(day, NIGHTLY_AT), "nightly_sync")
        if day.isoweekday() <= 5:
            for at in intraday_at:
                yield ScheduledRun(uk_local(day, at), "intraday_sync")


@dataclass
class DemoReport:
    data_dir: Path
    warehouse: Path
    runs: int = 0
    practices: int = 0
    failures: int = 0
    slot_rows: int = 0
    last_load_id: str | None = None
    failed_practices: set[str] = field(default_factory=set)


def replay(
    clock: SimulatedClock,
    schedule: list[ScheduledRun],
    *,
    data_dir: Path,
    registry_path: Path,
    report: DemoReport,
    progress: Callable[[str], None] = print,
) -> None:
    """Run each scheduled flow at its instant, moving the shared clock first."""
    from flows.sync import intraday_sync, nightly_sync

    flows: dict[str, Any] = {"nightly_sync": nightly_sync, "intraday_sync": intraday_sync}
    for run in schedule:
        clock.set(run.at)
        began = monotonic()
        result: dict[str, Any] = asyncio.run(
            flows[run.flow_name](
                registry_path=str(registry_path),
                warehouse_path=str(report.warehouse),
                data_dir=str(data_dir),
                as_of=run.at,
            )
        )
        failed = [o for o in result["outcomes"] if o["status"] != "ok"]
        rows = sum(o["slot_rows"] for o in result["outcomes"])
        report.runs += 1
        report.failures += len(failed)
        report.failed_practices.update(o["practice_ods"] for o in failed)
        report.slot_rows += rows
        report.last_load_id = result["load_id"]
        progress(
            f"  {run.at.astimezone(UK):%a %d %b %H:%M} {run.flow_name:<13} "
            f"{len(result['outcomes']) - len(failed)}/{len(result['outcomes'])} ok, "
            f"{rows:>7,} slot rows, {monotonic() - began:4.1f} s"
        )


def run_demo(
    data_dir: Path,
    *,
    start: date = DEFAULT_START,
    days: int = 7,
    seed: int = 20261126,
    progress: Callable[[str], None] = print,
) -> DemoReport:
    """Start the sandbox, replay `days` of scheduled runs, and stop everything again."""
    from connectors.config import get_settings
    from connectors.sandbox.server import SandboxServer

    data_dir.mkdir(parents=True, exist_ok=True)
    schedule = sorted(replay_schedule(start, days))
    clock = SimulatedClock(schedule[0].at - timedelta(hours=1))
    report = DemoReport(data_dir=data_dir, warehouse=data_dir / "warehouse.duckdb")
    with SandboxServer(clock=clock, seed=seed, host=get_settings().sandbox.host) as sandbox:
        registry_path = data_dir / "sandbox-registry.yaml"
        sandbox.registry.write(registry_path)
        report.practices = len(sandbox.registry.practices)
        progress(f"sandbox: {report.practices} practices and hubs at {sandbox.base_url}")
        replay(clock, schedule, data_dir=data_dir, registry_path=registry_path,
               report=report, progress=progress)
    return report
