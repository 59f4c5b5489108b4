"""The accuracy evaluation and the release outcome: crafted cases, a short replay, the full week.

The crafted cases feed `evaluate_view` truth/warehouse pairs where one loss hides, and prove
each is counted: a phantom slot, a missing slot passed off as unobservable, a cause whose
timeline does not hold, an NHS 111 practice-day missing from the mart. The short replay
(`slotsync replay --days 2`, the deployed cadence) runs in CI and asserts the judged bounds;
the full week is on demand (`pytest -m accuracy -s`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from common.clock import SimulatedClock
from lab.accuracy import ObservedSlot, WarehouseView, evaluate_view
from lab.demo import replay_schedule
from lab.replay import (
    bound_failures,
    cron_times,
    deployed_schedule,
    parse_rates,
    replay_requests,
    run_replay,
    write_json,
)
from sandbox.errors import SandboxError
from sandbox.state import GroundTruthRow, SandboxState
from tests.flows.conftest import run_in_thread
from tests.sandbox.helpers import small_estate

DAY = date(2026, 3, 24)
START = datetime(2026, 3, 24, 10, 0, tzinfo=UTC)
SNAPSHOT = START - timedelta(hours=8)  # the first (and here only) search covering the slots
REPLAY_KEYS = (
    "release_coverage",
    "release_misses_by_cause",
    "nhs111_displaced",
    "booked_release_requests",
    "waste_cut_by_rebook_rate",
    "nhs111_utilisation_exact_days",
    "nhs111_utilisation_days",
    "unexplained_booked_differences",
    "phantom_slots",
    "missing_mart_days",
    "booked_error_total",
)


def truth_row(
    slot_id: str, state: str = "free", *, audience: str = "general", **times: Any
) -> GroundTruthRow:
    values: dict[str, Any] = {
        "booked_at": None,
        "cancelled_at": None,
        "released_at": None,
        "removed_at": None,
        "booked_by_kind": None,
        **times,
    }
    if state == "booked" and values["booked_at"] is None:
        values["booked_at"] = START - timedelta(hours=3)
    if values["booked_at"] is not None and values["booked_by_kind"] is None:
        values["booked_by_kind"] = "nhs111" if audience == "nhs111" else "practice"
    return GroundTruthRow(
        practice_ods="A00001",
        slot_id=slot_id,
        schedule_id="s1",
        start_utc=START,
        end_utc=START + timedelta(minutes=10),
        slot_type="GP",
        delivery_channel="In-person",
        bookable=True,
        audience=audience,
        reserved_for_ods=None,
        state=state,
        booked_by_ods=None,
        appointment_id=None,
        **values,
    )


def observed(state: str, last_checked: datetime = START - timedelta(hours=1)) -> ObservedSlot:
    return ObservedSlot(state=state, last_checked_at=last_checked, slot_day=DAY)


def view(
    slots: dict[str, ObservedSlot],
    nhs111: dict[tuple[str, date], tuple[int, int]] | None = None,
    first_snapshot: datetime = SNAPSHOT,
    general_checks: tuple[datetime, ...] = (),
) -> WarehouseView:
    window = (START - timedelta(days=1), START + timedelta(days=1), first_snapshot)
    later = [(window[0], window[1], at) for at in general_checks]
    return WarehouseView(
        {("A00001", k): v for k, v in slots.items()}, {"A00001": [window]}, nhs111 or {},
        {"A00001": [window, *later]},
    )


def judge(truth: list[GroundTruthRow], warehouse: WarehouseView) -> Any:
    return evaluate_view(truth, warehouse, DAY, DAY, {"A00001"})


def test_matching_pair_has_no_error() -> None:
    report = judge(
        [truth_row("a", "booked"), truth_row("b")],
        view({"a": observed("booked_confirmed"), "b": observed("unused")}),
    )
    assert (report.phantom_slots, report.missing_slots, report.abs_error_booked) == (0, 0, 0)
    assert report.unexplained_booked_differences == 0 and report.exact_practice_days == 1


def test_a_phantom_slot_is_an_error() -> None:
    # The old evaluator skipped warehouse slots the truth lacks without a count.
    report = judge([truth_row("a")], view({"a": observed("unused"), "ghost": observed("booked_inferred")}))
    assert report.phantom_slots == 1
    assert report.unexplained_booked_differences == 1
    assert report.abs_error_booked == 1 and report.booked_ours == 1


def test_a_booking_made_after_the_first_snapshot_and_missing_is_not_unobservable() -> None:
    # Booked after a search covering its window had run: that search could have seen it free.
    seen_later = truth_row("late", "booked", booked_at=SNAPSHOT + timedelta(hours=1))
    report = judge([seen_later], view({}))
    assert report.unobservable_bookings == 0
    assert report.missing_slots == 1 and report.unexplained_booked_differences == 1
    assert report.abs_error_booked == 1


def test_a_booking_before_the_first_covering_snapshot_is_unobservable() -> None:
    early = truth_row("early", "booked", booked_at=SNAPSHOT - timedelta(hours=1))
    report = judge([early], view({}))
    assert report.unobservable_bookings == 1
    assert report.missing_slots == 0 and report.unexplained_booked_differences == 0


def test_a_slot_no_search_ever_covered_is_missing() -> None:
    report = evaluate_view([truth_row("a", "booked")], WarehouseView({}, {}, {}), DAY, DAY)
    assert report.missing_slots == 1 and report.unobservable_bookings == 0


def test_a_free_slot_missing_from_the_warehouse_is_an_error() -> None:
    report = judge([truth_row("free")], view({}))
    assert report.missing_slots == 1


def test_a_free_slot_never_visible_needs_a_booking_at_every_check() -> None:
    # Booked before the first search, cancelled after the last one before its start: no search
    # could have shown it free. Cancelled between two searches instead: the later one could.
    last = START - timedelta(hours=1)
    hidden = truth_row("h", "free", booked_at=SNAPSHOT - timedelta(hours=1),
                       cancelled_at=last + timedelta(minutes=20))
    visible = truth_row("v", "free", booked_at=SNAPSHOT - timedelta(hours=1),
                        cancelled_at=last - timedelta(minutes=20))
    report = judge([hidden, visible], view({}, general_checks=(last,)))
    assert report.freed_after_every_check == 1
    assert report.missing_slots == 1 and report.unexplained_booked_differences == 1


def test_removed_from_book_needs_the_removal_between_last_seen_free_and_disappearance() -> None:
    seen, gone = START - timedelta(hours=3), START - timedelta(hours=2)
    checked = START - timedelta(hours=1)  # later searches keep covering it after it disappeared

    def ours() -> ObservedSlot:
        return ObservedSlot("booked_inferred", checked, DAY, disappeared_at=gone, last_seen_at=seen)

    between = truth_row("b", "removed", removed_at=seen + timedelta(minutes=30))
    before = truth_row("e", "removed", removed_at=seen - timedelta(minutes=30))  # we saw it free after
    report = judge([between, before], view({"b": ours(), "e": ours()}))
    assert report.causes["removed_from_book"] == 1 and report.causes["other"] == 1


def test_freed_after_last_observation_needs_the_cancellation_after_the_last_check() -> None:
    checked = START - timedelta(hours=1)
    before = truth_row(
        "x", "free", booked_at=START - timedelta(hours=5), cancelled_at=checked - timedelta(minutes=30)
    )
    after = truth_row(
        "y", "free", booked_at=START - timedelta(hours=5), cancelled_at=checked + timedelta(minutes=30)
    )
    report = judge(
        [before, after],
        view({"x": observed("booked_confirmed", checked), "y": observed("booked_confirmed", checked)}),
    )
    assert report.causes["freed_after_last_observation"] == 1
    assert report.causes["other"] == 1  # cancelled before our check: we should have seen it


def test_booked_after_last_observation_needs_the_booking_after_the_last_check() -> None:
    checked = START - timedelta(hours=1)
    early = truth_row("x", "booked", booked_at=checked - timedelta(minutes=30))
    late = truth_row("y", "booked", booked_at=checked + timedelta(minutes=30))
    report = judge([early, late], view({"x": observed("unused", checked), "y": observed("unused", checked)}))
    assert report.causes["booked_after_last_observation"] == 1
    assert report.causes["other"] == 1


def test_removed_from_book_needs_a_removal() -> None:
    removed = truth_row("x", "removed", removed_at=START - timedelta(minutes=30))
    free = truth_row("y", "free")
    inferred = observed("booked_inferred")
    report = judge([removed, free], view({"x": inferred, "y": inferred}))
    assert report.causes["removed_from_book"] == 1
    assert report.causes["other"] == 1


def test_an_nhs111_practice_day_missing_from_the_mart_is_an_error() -> None:
    slot = truth_row("r", "booked", audience="nhs111")
    missing = judge([slot], view({"r": observed("booked_confirmed")}))
    assert missing.missing_mart_days == 1
    assert missing.nhs111_practice_days == 1
    assert missing.nhs111_exact_practice_days == 0
    present = judge([slot], view({"r": observed("booked_confirmed")}, {("A00001", DAY): (1, 1)}))
    assert present.missing_mart_days == 0 and present.nhs111_exact_practice_days == 1
    wrong = judge([slot], view({"r": observed("booked_confirmed")}, {("A00001", DAY): (1, 0)}))
    assert wrong.nhs111_exact_practice_days == 0 and wrong.nhs111_max_abs_error == 1.0


def test_a_mart_day_the_truth_lacks_is_counted() -> None:
    report = judge([], view({}, {("A00001", DAY): (2, 1)}))
    assert report.phantom_mart_days == 1
    assert report.nhs111_exact_practice_days < report.nhs111_practice_days


def test_the_provider_logs_a_request_for_a_booked_slot_even_though_it_refuses_it() -> None:
    # What we asked for, not what the provider let through: a refused request still counts.
    clock = SimulatedClock(datetime(2026, 3, 23, 6, 0, tzinfo=UTC))
    state = SandboxState(small_estate("http://x"), clock=clock)
    rows = state.ground_truth(first_day=date(2026, 3, 24), last_day=date(2026, 3, 24))
    target = next(r for r in rows if r.audience == "nhs111" and r.state == "free")
    state.book_now(target.practice_ods, target.slot_id, target.practice_ods)
    slot = state.slot(target.practice_ods, target.slot_id)
    with pytest.raises(SandboxError) as refused:
        state.release_slot(
            target.practice_ods,
            target.slot_id,
            if_match=state.slot_version(slot),
            idempotency_key="k1",
            reason="test",
        )
    assert refused.value.status == 409
    [request] = state.release_requests
    assert (request.slot_state, request.status, request.slot_id) == ("booked", 409, target.slot_id)


def test_rebook_chance_is_a_parameter_and_replaying_requests_reproduces_the_answers() -> None:
    registry = small_estate("http://x")
    started = datetime(2026, 3, 23, 6, 0, tzinfo=UTC)
    clock = SimulatedClock(started)
    world = SandboxState(registry, clock=clock, rebook_after_release_chance=1.0)
    free = [
        r
        for r in world.ground_truth(first_day=date(2026, 3, 24), last_day=date(2026, 3, 24))
        if r.audience == "nhs111" and r.state == "free"
    ][:6]
    assert free
    for row in free:
        slot = world.slot(row.practice_ods, row.slot_id)
        world.release_slot(
            row.practice_ods,
            row.slot_id,
            if_match=world.slot_version(slot),
            idempotency_key=row.slot_id,
            reason="test",
        )
    end = datetime(2026, 3, 25, 6, 0, tzinfo=UTC)
    clock.set(end)
    never, mismatches = replay_requests(registry, world.seed, started, world.release_requests, 0.0, end)
    assert mismatches == 0
    keys = {(r.practice_ods, r.slot_id) for r in free}

    def rebooked(state: SandboxState) -> int:
        return sum(
            1
            for r in state.ground_truth(first_day=date(2026, 3, 24), last_day=date(2026, 3, 24))
            if (r.practice_ods, r.slot_id) in keys and r.state == "booked"
        )

    assert rebooked(world) > 0 and rebooked(never) == 0
    with pytest.raises(ValueError, match="rebook chance"):
        SandboxState(registry, clock=clock, rebook_after_release_chance=1.5)


def test_deployed_schedule_follows_the_deployment_crons() -> None:
    assert cron_times("*/15 8-17 * * 1-5", date(2026, 3, 28)) == []  # a Saturday
    assert len(cron_times("*/15 8-17 * * 1-5", DAY)) == 40
    runs = deployed_schedule(date(2026, 3, 23), 2)
    releases = [r for r in runs if r.flow_name == "release_unused_111"]
    # Every 15 minutes 06:00-17:45 (48) and 18:00, 18:15, 18:30, each weekday.
    assert len(releases) == 2 * 51 and len([r for r in runs if r.flow_name == "intraday_sync"]) == 2 * 11
    assert [r.flow_name for r in runs].count("nightly_sync") == 4  # warm-up, two judged, closing


def test_rebook_rates_are_checked() -> None:
    assert parse_rates("0.2,0.5,0.9") == (0.2, 0.5, 0.9)
    for bad in ("", "x", "0.2,1.5"):
        with pytest.raises(ValueError, match="--rebook-rates"):
            parse_rates(bad)


@pytest.mark.slow
@pytest.mark.timeout(1500)  # about 5 minutes on a quiet 2-core machine, 11 under load
def test_a_short_replay_meets_the_bounds(tmp_path: Path) -> None:
    """Two judged days at the deployed cadence, as CI runs it (`slotsync replay --days 2`)."""
    result = run_in_thread(lambda: run_replay(tmp_path, days=2, progress=lambda _: None))
    write_json(result, tmp_path / "replay.json")
    written = orjson.loads((tmp_path / "replay.json").read_bytes())
    assert set(REPLAY_KEYS) <= written.keys()
    assert bound_failures(written) == []
    assert written["nhs111_utilisation_days"] > 0 and written["reserved_unused_without_release"] > 0
    assert set(written["waste_cut_by_rebook_rate"]) == {"0.20", "0.50", "0.90"}
    cuts = [written["waste_cut_by_rebook_rate"][k]["waste_cut"] for k in ("0.20", "0.50", "0.90")]
    assert cuts == sorted(cuts) and cuts[0] < cuts[-1]  # more demand for released slots, less waste


@pytest.mark.accuracy
@pytest.mark.timeout(3600)  # a week at the deployed cadence: well past the suite's 600 s
def test_a_simulated_week_matches_the_ground_truth_and_releases_recover_111_capacity(tmp_path: Path) -> None:
    result = run_in_thread(lambda: run_replay(tmp_path, days=7))
    out = Path("reports/replay/replay-7d.json")
    write_json(result, out)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    assert result["accuracy"]["practice_days"] >= 5 * 37
    assert bound_failures(result) == []


def test_schedule_runs_at_uk_wall_clock_times() -> None:
    runs = list(replay_schedule(date(2026, 3, 27), 3))  # Fri, Sat, Sun: the clocks go forward Sunday
    assert [r.flow_name for r in runs] == [
        "nightly_sync",
        "intraday_sync",
        "intraday_sync",
        "nightly_sync",
        "nightly_sync",
    ]
    assert runs[-1].at.astimezone(UTC).isoformat() == "2026-03-29T01:00:00+00:00"  # 02:00 BST
    assert runs[0].at.astimezone(UTC).isoformat() == "2026-03-27T02:00:00+00:00"  # 02:00 GMT
