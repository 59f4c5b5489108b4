"""Booking activity is deterministic, clock-driven and shaped like a real practice's week."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import httpx

from common.clock import SimulatedClock
from common.uktime import uk_day
from sandbox import SandboxServer, SandboxState
from sandbox.simulation import day_opens_at
from sandbox.state import GroundTruthRow
from tests.sandbox.helpers import START, GpcClient, small_estate


def _replay(steps: list[timedelta], *, seed: int = 20261126, search_first: bool = False) -> list[Any]:
    """Ground truth (as served over HTTP) after moving a fresh small sandbox through `steps`."""
    clock = SimulatedClock(START)
    with SandboxServer(clock=clock, seed=seed, registry_factory=small_estate) as sandbox:
        if search_first:
            gpc = GpcClient(sandbox, clock)
            gpc.free_slot_ids(sandbox.registry.practices[0], "2026-03-24", "2026-03-30")
            gpc.close()
        for step in steps:
            clock.advance(step)
            sandbox.state.sync()
        rows: list[Any] = httpx.get(f"{sandbox.base_url}/_sandbox/ground-truth", timeout=30).json()
        return rows


def test_same_seed_and_steps_give_identical_ground_truth() -> None:
    steps = [timedelta(hours=5), timedelta(days=1), timedelta(hours=30)]
    first = _replay(steps)
    assert first == _replay(steps, search_first=True)  # reading never changes what happens
    assert first == _replay([sum(steps, timedelta())])  # nor does how often the clock is read
    assert first != _replay(steps, seed=1)


def test_a_practice_built_late_replays_the_same_history() -> None:
    clock_a, clock_b = SimulatedClock(START), SimulatedClock(START)
    a = SandboxState(small_estate("http://a"), clock=clock_a)
    b = SandboxState(small_estate("http://b"), clock=clock_b)
    a.load_all()
    clock_a.advance(timedelta(days=2))
    clock_b.advance(timedelta(days=2))
    assert a.ground_truth() == b.ground_truth()


def test_advancing_the_clock_books_cancels_and_removes(small_gpc: GpcClient) -> None:
    state = small_gpc.sandbox.state
    before = {(r.practice_ods, r.slot_id): r for r in state.ground_truth()}
    start = small_gpc.clock.now()
    end = small_gpc.clock.advance(timedelta(days=2))
    after = state.ground_truth()

    def happened(instant: datetime | None) -> bool:
        return instant is not None and start < instant <= end

    booked = [r for r in after if happened(r.booked_at)]
    assert len(booked) > 100
    assert Counter(r.booked_by_kind for r in booked).keys() >= {"practice", "nhs111", "hub"}
    assert any(happened(r.cancelled_at) and r.state == "free" for r in after)
    assert any(happened(r.removed_at) and r.state == "removed" for r in after)
    changed = [r for r in after if before.get((r.practice_ods, r.slot_id)) not in (None, r)]
    assert {r.slot_id for r in changed} >= {r.slot_id for r in booked}
    assert len(after) > len(before)  # two more days opened at the far end


def _history(days: int = 10) -> list[GroundTruthRow]:
    """Slots of `days` fully elapsed days in the small estate."""
    clock = SimulatedClock(START)
    state = SandboxState(small_estate("http://x"), clock=clock)
    clock.advance(timedelta(days=days + 1))
    first = START.date()
    return state.ground_truth(first_day=first, last_day=first + timedelta(days=days - 1))


def test_bookings_happen_after_the_day_opens_and_before_the_slot() -> None:
    booked = [r for r in _history() if r.booked_at is not None]
    assert booked
    for row in booked:
        assert row.booked_at is not None
        assert day_opens_at(uk_day(row.start_utc)) <= row.booked_at < row.start_utc
        if row.cancelled_at is not None:
            assert row.booked_at <= row.cancelled_at < row.start_utc


def test_booking_shape_is_realistic() -> None:
    rows = _history()
    general = [r for r in rows if r.audience == "general"]
    booked = [r for r in general if r.booked_at is not None]
    assert 0.6 < len(booked) / len(general) < 0.85
    same_day = [r for r in booked if r.booked_at and uk_day(r.booked_at) == uk_day(r.start_utc)]
    assert 0.35 < len(same_day) / len(booked) < 0.55
    cancelled = [r for r in booked if r.cancelled_at is not None]
    assert 0.01 < len(cancelled) / len(booked) < 0.1
    removed = [r for r in rows if r.state == "removed"]
    assert 0 < len(removed) / len([r for r in rows if r.bookable]) < 0.03
    assert all(r.booked_at is None for r in rows if not r.bookable)


def test_nhs111_books_reserved_slots_close_to_the_time() -> None:
    rows = _history()
    reserved = [r for r in rows if r.audience == "nhs111" and r.practice_ods[0] == "J"]
    by_111 = [r for r in reserved if r.booked_by_kind == "nhs111"]
    assert reserved and 0.25 < len(by_111) / len(reserved) < 0.65
    for row in by_111:
        assert row.booked_by_ods == "RYE" and row.booked_at is not None
        assert timedelta(minutes=15) <= row.start_utc - row.booked_at <= timedelta(hours=10)


def test_hub_slots_are_booked_by_member_practices(small_gpc: GpcClient) -> None:
    small_gpc.clock.advance(timedelta(days=6))
    registry = small_gpc.sandbox.registry
    hub = next(p for p in registry.practices if p.kind == "hub")
    rows = small_gpc.sandbox.state.ground_truth(hub.ods_code)
    booked = [r for r in rows if r.state == "booked" and r.audience == "general"]
    assert booked
    members = {p.ods_code for p in registry.practices if hub.ods_code in p.booking_hubs}
    assert {r.booked_by_ods for r in booked} <= members
    hub_reserved = [
        r
        for p in registry.practices
        if p.kind == "practice"
        for r in small_gpc.sandbox.state.ground_truth(p.ods_code)
        if r.audience == "hub" and r.booked_by_kind == "hub"
    ]
    assert hub_reserved and all(r.booked_by_ods == r.reserved_for_ods for r in hub_reserved)


def test_booking_log_exports_111_bookings(small_gpc: GpcClient) -> None:
    small_gpc.clock.advance(timedelta(days=2))
    url = f"{small_gpc.sandbox.base_url}/_booking-orgs/RYE/bookings"
    rows = small_gpc.http.get(url, params={"format": "json"}).json()
    assert rows and {r["booking_org_ods"] for r in rows} == {"RYE"}
    assert {
        "appointment_id",
        "practice_ods",
        "slot_ids",
        "start",
        "end",
        "booked_at",
        "cancelled_at",
        "status",
        "patient_ref",
    } <= rows[0].keys()
    assert rows[0]["start"][-6:] in ("+00:00", "+01:00") and rows[0]["booked_at"].endswith("Z")
    truth = {(r.practice_ods, r.slot_id): r for r in small_gpc.sandbox.state.ground_truth()}
    for row in rows:
        slot = truth[(row["practice_ods"], row["slot_ids"][0])]
        assert slot.booked_by_ods == "RYE" or slot.cancelled_at is not None
    csv_text = small_gpc.http.get(url, params={"format": "csv"}).text
    header, *lines = csv_text.strip().split("\n")
    assert header.split(",")[:3] == ["appointment_id", "practice_ods", "slot_ids"]
    assert len(lines) == len(rows)
