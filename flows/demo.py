"""The demo: a simulated period on the built-in sandbox estate, replayed through the flows.

One `SimulatedClock` drives both the sandbox (booking activity) and the pipeline (JWTs,
windows, as-of times). The replay visits each scheduled run in time order, all at
Europe/London wall-clock times: the nightly sync at 02:00, intraday syncs in core hours on
weekdays, and the release of unused NHS 111 slots every hour of core hours. Each is the
real Prefect flow run at that instant, so the replay is deterministic. A twin of the same
seeded world, which nobody releases slots in, runs alongside so the demo can say how much
NHS 111 capacity the release flow saved.
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
from flows.accuracy import ReleaseEffect

DEFAULT_START = date(2026, 3, 23)  # a Monday; the week crosses the spring DST change
NIGHTLY_AT = time(2, 0)
# The demo checks twice a day to stay short; the accuracy replay runs what the intraday
# deployment runs (flows/deployments.py): every hour of core hours, which keeps every slot's
# last snapshot within an hour of its start.
INTRADAY_AT = (time(10, 0), time(15, 0))
HOURLY_INTRADAY = tuple(time(hour, 0) for hour in range(8, 19))
# The deployment releases every 15 minutes; hourly keeps the demo short, and with a 2-hour
# lead every slot is still released at least an hour before it starts.
DEMO_RELEASE_AT = tuple(time(hour, 0) for hour in range(7, 18))


@dataclass(frozen=True, order=True)
class ScheduledRun:
    at: datetime
    flow_name: str


def replay_schedule(
    start: date,
    days: int,
    intraday_at: tuple[time, ...] = INTRADAY_AT,
    release_at: tuple[time, ...] = (),
) -> Iterator[ScheduledRun]:
    """Every scheduled run in [start, start + days), in time order, at UK wall-clock times."""
    for offset in range(days):
        day = start + timedelta(days=offset)
        yield ScheduledRun(uk_local(day, NIGHTLY_AT), "nightly_sync")
        if day.isoweekday() <= 5:
            for at in intraday_at:
                yield ScheduledRun(uk_local(day, at), "intraday_sync")
            for at in release_at:
                yield ScheduledRun(uk_local(day, at), "release_unused_111")


@dataclass
class DemoReport:
    data_dir: Path
    warehouse: Path
    runs: int = 0
    practices: int = 0
    failures: int = 0
    slot_rows: int = 0
    release_outcomes: dict[str, int] = field(default_factory=dict)
    last_load_id: str | None = None
    failed_practices: set[str] = field(default_factory=set)
    effect: ReleaseEffect | None = None


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
    from flows.release import release_unused_111
    from flows.sync import intraday_sync, nightly_sync

    flows: dict[str, Any] = {
        "nightly_sync": nightly_sync,
        "intraday_sync": intraday_sync,
        "release_unused_111": release_unused_111,
    }
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
        report.runs += 1
        when = f"  {run.at.astimezone(UK):%a %d %b %H:%M} {run.flow_name:<18}"
        if run.flow_name == "release_unused_111":
            for outcome, count in result["outcomes"].items():
                report.release_outcomes[outcome] = report.release_outcomes.get(outcome, 0) + count
            acted = {k: v for k, v in result["outcomes"].items() if v}
            summary = ", ".join(f"{v} {k}" for k, v in acted.items()) or "nothing due"
            progress(f"{when} {summary}, {monotonic() - began:4.1f} s")
            continue
        failed = [o for o in result["outcomes"] if o["status"] != "ok"]
        rows = sum(o["slot_rows"] for o in result["outcomes"])
        report.failures += len(failed)
        report.failed_practices.update(o["practice_ods"] for o in failed)
        report.slot_rows += rows
        report.last_load_id = result["load_id"]
        progress(
            f"{when} {len(result['outcomes']) - len(failed)}/{len(result['outcomes'])} ok, "
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
    from connectors.sandbox.state import SandboxState
    from flows.accuracy import release_effect

    data_dir.mkdir(parents=True, exist_ok=True)
    schedule = sorted(replay_schedule(start, days, release_at=DEMO_RELEASE_AT))
    first = schedule[0].at - timedelta(hours=1)
    clock, twin_clock = SimulatedClock(first), SimulatedClock(first)
    report = DemoReport(data_dir=data_dir, warehouse=data_dir / "warehouse.duckdb")
    with SandboxServer(clock=clock, seed=seed, host=get_settings().sandbox.host) as sandbox:
        registry_path = data_dir / "sandbox-registry.yaml"
        sandbox.registry.write(registry_path)
        report.practices = len(sandbox.registry.practices)
        progress(f"sandbox: {report.practices} practices and hubs at {sandbox.base_url}")
        replay(clock, schedule, data_dir=data_dir, registry_path=registry_path,
               report=report, progress=progress)
        # The same seeded world with nobody releasing anything, for comparison.
        twin = SandboxState(sandbox.registry, clock=twin_clock, seed=seed)
        end = schedule[-1].at
        twin_clock.set(end)
        report.effect = release_effect(sandbox.state, twin, start, start + timedelta(days=days - 1), end)
    return report
