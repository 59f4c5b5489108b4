"""Accuracy: a simulated week of scheduled syncs, marts compared with the sandbox's truth.

The figures are printed (run with `-s` to see them) and the tolerances are the ones the
README justifies: NHS 111 utilisation is exact, because every 111 booking is in the 111
provider's log and confirmed at the practice; booked-slot counts differ only where GP Connect
cannot tell (a slot removed from the book looks booked; a booking after the last snapshot
before the slot's start is not yet seen), and never for any other reason.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from connectors.clock import SimulatedClock
from connectors.sandbox.server import SandboxServer
from flows.accuracy import evaluate
from flows.demo import DEFAULT_START, HOURLY_INTRADAY, DemoReport, replay, replay_schedule
from tests.flows.conftest import run_in_thread


@pytest.mark.slow
def test_a_simulated_week_matches_the_ground_truth(tmp_path: Path) -> None:
    schedule = sorted(replay_schedule(DEFAULT_START, 7, HOURLY_INTRADAY))
    clock = SimulatedClock(schedule[0].at - timedelta(hours=1))
    report = DemoReport(data_dir=tmp_path, warehouse=tmp_path / "warehouse.duckdb")
    with SandboxServer(clock=clock) as sandbox:
        registry_path = tmp_path / "registry.yaml"
        sandbox.registry.write(registry_path)
        run_in_thread(lambda: replay(clock, schedule, data_dir=tmp_path, registry_path=registry_path,
                                     report=report, progress=print))
        assert report.failures == 0
        # The first day's early bookings predate the first snapshot; judge Tue..Sat, all final.
        accuracy = evaluate(sandbox.state, report.warehouse, DEFAULT_START + timedelta(days=1),
                            DEFAULT_START + timedelta(days=5))
    print("\n".join(accuracy.lines()))

    assert accuracy.practice_days >= 4 * 37  # Tue-Fri practices, plus hubs on Saturday
    assert accuracy.nhs111_practice_days >= 4 * 30
    assert accuracy.nhs111_max_abs_error == 0.0
    assert accuracy.nhs111_offered_ours == accuracy.nhs111_offered_truth
    assert accuracy.causes["other"] == 0
    assert accuracy.booked_relative_error <= 0.05
    explained = accuracy.causes["removed_from_book"] + accuracy.causes["booked_after_last_observation"] \
        + accuracy.causes["freed_after_last_observation"]
    assert explained >= accuracy.abs_error_booked  # every practice-day difference has a cause


def test_schedule_runs_at_uk_wall_clock_times() -> None:
    runs = list(replay_schedule(date(2026, 3, 27), 3))  # Fri, Sat, Sun: the clocks go forward Sunday
    assert [r.flow_name for r in runs] == ["nightly_sync", "intraday_sync", "intraday_sync",
                                            "nightly_sync", "nightly_sync"]
    assert runs[-1].at.isoformat() == "2026-03-29T01:00:00+00:00"  # 02:00 BST
    assert runs[0].at.isoformat() == "2026-03-27T02:00:00+00:00"   # 02:00 GMT
