"""A simulated week on the sandbox estate: accuracy of the marts and the release flow's effect.

One replay (nightly sync at 02:00, hourly intraday syncs and hourly releases in core hours) is
compared with the sandbox's ground truth and with a twin of the same seeded world in which
nothing is released. The figures are printed (run with `-s`); the tolerances are the ones the
README justifies: NHS 111 utilisation is exact, because every 111 booking is in the 111
provider's log and confirmed at the practice; booked-slot counts differ only where GP Connect
cannot tell (a slot removed from the book looks booked; a booking after the last snapshot
before the slot's start is not yet seen), and never for any other reason. The release flow
must cut unused 111 capacity by at least 80% without touching a booked slot.
"""

from __future__ import annotations

from datetime import UTC, date, timedelta
from pathlib import Path

import pytest

from connectors.clock import SimulatedClock
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.state import SandboxState
from flows.accuracy import evaluate, release_effect
from flows.demo import (
    DEFAULT_START,
    DEMO_RELEASE_AT,
    HOURLY_INTRADAY,
    DemoReport,
    replay,
    replay_schedule,
)
from tests.flows.conftest import run_in_thread


@pytest.mark.accuracy
@pytest.mark.timeout(3600)  # a week of hourly syncs and releases: 8 to 20 minutes, past the suite's 600 s
def test_a_simulated_week_matches_the_ground_truth_and_releases_recover_111_capacity(
    tmp_path: Path,
) -> None:
    schedule = sorted(replay_schedule(DEFAULT_START, 7, HOURLY_INTRADAY, DEMO_RELEASE_AT))
    first = schedule[0].at - timedelta(hours=1)
    clock, twin_clock = SimulatedClock(first), SimulatedClock(first)
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
        twin = SandboxState(sandbox.registry, clock=twin_clock)
        twin_clock.set(schedule[-1].at)
        effect = release_effect(sandbox.state, twin, DEFAULT_START, DEFAULT_START + timedelta(days=6),
                                schedule[-1].at)
    print("\n".join([*accuracy.lines(), *effect.lines()]))

    assert accuracy.practice_days >= 4 * 37  # Tue-Fri practices, plus hubs on Saturday
    assert accuracy.nhs111_practice_days >= 4 * 30
    assert accuracy.nhs111_max_abs_error == 0.0
    assert accuracy.nhs111_offered_ours == accuracy.nhs111_offered_truth
    assert accuracy.causes["other"] == 0
    explained = accuracy.causes["removed_from_book"] + accuracy.causes["booked_after_last_observation"] \
        + accuracy.causes["freed_after_last_observation"]
    assert explained >= accuracy.abs_error_booked  # every practice-day difference has a cause
    # Bookings made in the hour between the last snapshot and the slot's start are invisible
    # to GP Connect (about one in eight here: same-day bookings); everything else must be
    # within 2% of true bookings, and the total within what hourly snapshots allow.
    assert (accuracy.causes["removed_from_book"] + accuracy.causes["freed_after_last_observation"]) \
        <= 0.02 * accuracy.booked_truth
    assert accuracy.booked_relative_error <= 0.15

    assert effect.reserved > 300 and effect.unused_without > 0
    assert effect.cut >= 0.8
    assert effect.booked_slots_touched == 0


def test_schedule_runs_at_uk_wall_clock_times() -> None:
    runs = list(replay_schedule(date(2026, 3, 27), 3))  # Fri, Sat, Sun: the clocks go forward Sunday
    assert [r.flow_name for r in runs] == ["nightly_sync", "intraday_sync", "intraday_sync",
                                            "nightly_sync", "nightly_sync"]
    assert runs[-1].at.astimezone(UTC).isoformat() == "2026-03-29T01:00:00+00:00"  # 02:00 BST
    assert runs[0].at.astimezone(UTC).isoformat() == "2026-03-27T02:00:00+00:00"   # 02:00 GMT
