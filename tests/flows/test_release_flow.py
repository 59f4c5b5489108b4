"""Releasing unused NHS 111 slots: timing, safety under races and crashes, audit, DST."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from common.clock import SimulatedClock
from connectors.registry import ReleasePolicy
from connectors.release.supplier_api import SupplierApiReleaser
from flows.release import RELEASE_EVERY, due_at, in_core_hours, release_unused_111
from flows.sync import nightly_sync
from sandbox.server import SandboxServer
from tests.flows.conftest import run_async

SNAPSHOT_AT = datetime(2026, 3, 24, 2, 0, tzinfo=UTC)  # Tuesday 02:00 GMT
RELEASE_AT = datetime(2026, 3, 24, 10, 0, tzinfo=UTC)  # Tuesday 10:00 GMT
# A run hands back what falls due before the next deployed run, 15 minutes on.
NEXT_RUN = RELEASE_AT + RELEASE_EVERY


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[SandboxServer, SimulatedClock, Path]]:
    clock = SimulatedClock(SNAPSHOT_AT)
    with SandboxServer(clock=clock) as server:
        registry_path = tmp_path / "registry.yaml"
        server.registry.write(registry_path)
        run_async(
            nightly_sync(
                registry_path=str(registry_path),
                data_dir=str(tmp_path),
                warehouse_path=str(tmp_path / "wh.duckdb"),
                as_of=SNAPSHOT_AT,
                horizon_days=2,
            )
        )
        yield server, clock, registry_path


def release(tmp_path: Path, registry_path: Path, at: datetime, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = run_async(
        release_unused_111(
            registry_path=str(registry_path),
            data_dir=str(tmp_path),
            warehouse_path=str(tmp_path / "wh.duckdb"),
            as_of=at,
            **kwargs,
        )
    )
    return result


def audit(tmp_path: Path) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        return con.execute(
            "select practice_ods, slot_id, outcome, idempotency_key, slot_start_at, due_at, releaser "
            "from audit.release_decision order by decided_at, slot_id"
        ).fetchall()
    finally:
        con.close()


def test_unused_reserved_slots_are_released_from_two_hours_before_start_and_booked_ones_never(
    estate: tuple[SandboxServer, SimulatedClock, Path], tmp_path: Path
) -> None:
    server, clock, registry_path = estate
    clock.set(RELEASE_AT)
    before = {(r.practice_ods, r.slot_id): r for r in server.state.ground_truth()}
    result = release(tmp_path, registry_path, RELEASE_AT)
    after = {(r.practice_ods, r.slot_id): r for r in server.state.ground_truth()}

    released = {(ods, slot) for ods, slot, outcome, *_ in audit(tmp_path) if outcome == "released"}
    queued = {(ods, slot) for ods, slot, outcome, *_ in audit(tmp_path) if outcome == "queued"}
    assert released, result["outcomes"]
    assert queued, "the SystmOne practice's due slots go on its work-list"
    for key in released:
        row = after[key]
        assert row.audience == "nhs111" and row.released_at == RELEASE_AT
        assert row.start_utc - timedelta(hours=2) <= NEXT_RUN and row.start_utc > RELEASE_AT
        assert before[key].state == "free"
    # Due before the next run, reserved, and still free when the run started: every one was
    # released or queued.
    due_and_free = {
        key
        for key, row in before.items()
        if row.audience == "nhs111"
        and row.state == "free"
        and row.bookable
        and row.start_utc - timedelta(hours=2) <= NEXT_RUN
        and row.start_utc > RELEASE_AT
    }
    assert due_and_free == released | queued
    # Booked slots were never touched; slots due after the next run neither.
    for key, row in after.items():
        if before[key].state == "booked" or row.start_utc - timedelta(hours=2) > NEXT_RUN:
            assert row.released_at is None


def test_a_run_without_lookahead_releases_only_what_is_already_due(
    estate: tuple[SandboxServer, SimulatedClock, Path], tmp_path: Path
) -> None:
    _server, clock, registry_path = estate
    clock.set(RELEASE_AT)
    release(tmp_path, registry_path, RELEASE_AT, due_within_minutes=0)
    dues = [due for *_, due, _releaser in audit(tmp_path)]
    assert dues and all(due <= RELEASE_AT for due in dues)


def test_a_111_booking_racing_the_release_wins_and_the_refusal_is_audited(
    estate: tuple[SandboxServer, SimulatedClock, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, clock, registry_path = estate
    clock.set(RELEASE_AT)
    real_release = SupplierApiReleaser.release
    raced: list[tuple[str, str]] = []

    async def book_first(self: SupplierApiReleaser, practice: Any, request: Any) -> Any:
        if not raced:  # NHS 111 books the first slot between the live re-check and the release
            server.state.book_now(request.practice_ods, request.slot_id, "RYE")
            raced.append((request.practice_ods, request.slot_id))
        return await real_release(self, practice, request)

    monkeypatch.setattr(SupplierApiReleaser, "release", book_first)
    release(tmp_path, registry_path, RELEASE_AT)
    ((ods, slot_id),) = raced
    decisions = [row for row in audit(tmp_path) if (row[0], row[1]) == (ods, slot_id)]
    assert [d[2] for d in decisions] == ["refused_version"]
    truth = next(r for r in server.state.ground_truth(ods) if r.slot_id == slot_id)
    assert truth.state == "booked" and truth.booked_by_ods == "RYE" and truth.released_at is None


def test_a_crash_mid_batch_then_a_re_run_releases_nothing_twice(
    estate: tuple[SandboxServer, SimulatedClock, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, clock, registry_path = estate
    clock.set(RELEASE_AT)
    real_release = SupplierApiReleaser.release
    calls = {"n": 0}

    async def crash_after_third(self: SupplierApiReleaser, practice: Any, request: Any) -> Any:
        result = await real_release(self, practice, request)
        calls["n"] += 1
        if calls["n"] == 3:  # the supplier applied it, then the process died
            raise RuntimeError("simulated crash after a release was applied")
        return result

    monkeypatch.setattr(SupplierApiReleaser, "release", crash_after_third)
    with pytest.raises(RuntimeError, match="simulated crash"):
        release(tmp_path, registry_path, RELEASE_AT)
    attempting = [row for row in audit(tmp_path) if row[2] == "attempting"]
    assert attempting, "the crash leaves the in-flight decisions visible"
    monkeypatch.setattr(SupplierApiReleaser, "release", real_release)

    release(tmp_path, registry_path, RELEASE_AT)
    release(tmp_path, registry_path, RELEASE_AT)  # and once more: nothing new to do
    rows = audit(tmp_path)
    final = {}
    for ods, slot, outcome, *_ in rows:
        if outcome != "attempting":
            final.setdefault((ods, slot), []).append(outcome)
    assert any(outcomes == ["already_released"] for outcomes in final.values())
    acted = {"released", "already_released", "queued", "already_queued"}
    # Each slot reached a release (or work-list) outcome at most once; skips may repeat until
    # the next snapshot shows the slot gone.
    assert all(sum(o in acted for o in outcomes) <= 1 for outcomes in final.values()), final
    released_slots = {(r.practice_ods, r.slot_id) for r in server.state.ground_truth() if r.released_at}
    assert released_slots == {
        key for key, outcomes in final.items() if {"released", "already_released"} & set(outcomes)
    }


def test_a_slot_found_gone_at_the_live_re_check_waits_for_the_next_snapshot(
    estate: tuple[SandboxServer, SimulatedClock, Path], tmp_path: Path
) -> None:
    server, clock, registry_path = estate
    clock.set(RELEASE_AT)
    due = sorted(
        (
            r
            for r in server.state.ground_truth()
            if r.audience == "nhs111"
            and r.state == "free"
            and r.bookable
            and r.start_utc - timedelta(hours=2) <= RELEASE_AT < r.start_utc
        ),
        key=lambda r: (r.practice_ods, r.start_utc),
    )
    assert due, "the sandbox estate has due reserved slots at 10:00"
    booked = due[0]
    server.state.book_now(booked.practice_ods, booked.slot_id, "RYE")  # after the snapshot
    release(tmp_path, registry_path, RELEASE_AT)
    later = RELEASE_AT + timedelta(minutes=15)
    clock.set(later)
    release(tmp_path, registry_path, later)

    key = (booked.practice_ods, booked.slot_id)
    about_it = [row[2] for row in audit(tmp_path) if (row[0], row[1]) == key]
    assert about_it == ["skipped_gone_since_snapshot"], "recorded once, not every 15 minutes"
    truth = next(r for r in server.state.ground_truth(booked.practice_ods) if r.slot_id == booked.slot_id)
    assert truth.state == "booked" and truth.released_at is None


def test_dry_run_releases_nothing_but_records_why(
    estate: tuple[SandboxServer, SimulatedClock, Path], tmp_path: Path
) -> None:
    server, clock, registry_path = estate
    clock.set(RELEASE_AT)
    result = release(tmp_path, registry_path, RELEASE_AT, dry_run=True)
    assert result["outcomes"].get("dry_run", 0) > 0
    assert not [r for r in server.state.ground_truth() if r.released_at is not None]
    assert all("would release" in d["reason"] for d in result["decisions"] if d["outcome"] == "dry_run")


@pytest.mark.parametrize(
    ("start", "lead", "expected"),
    [
        # The spring-forward night: 03:30 BST is 02:30 UTC; two hours earlier is 00:30 GMT.
        (datetime(2026, 3, 29, 2, 30, tzinfo=UTC), 120, datetime(2026, 3, 29, 0, 30, tzinfo=UTC)),
        # First BST weekday: 09:00 BST (08:00 UTC) less one hour.
        (datetime(2026, 3, 30, 8, 0, tzinfo=UTC), 60, datetime(2026, 3, 30, 7, 0, tzinfo=UTC)),
        # The fall-back night: the second 01:30 (GMT) less two hours is 00:30 BST (23:30 UTC).
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), 120, datetime(2026, 10, 24, 23, 30, tzinfo=UTC)),
    ],
)
def test_lead_times_are_elapsed_time_across_dst(start: datetime, lead: int, expected: datetime) -> None:
    assert due_at(ReleasePolicy(lead_minutes=lead), start) == expected


def test_daily_cutoff_uses_uk_wall_clock_on_dst_days() -> None:
    policy = ReleasePolicy(daily_cutoff=time(12, 0))
    # 12:00 on the first BST Monday is 11:00 UTC; a 16:00 BST slot is due then.
    cutoff = datetime(2026, 3, 30, 11, 0, tzinfo=UTC)
    assert due_at(policy, datetime(2026, 3, 30, 15, 0, tzinfo=UTC)) == cutoff
    # A slot before the cut-off falls back to the lead time.
    assert due_at(policy, datetime(2026, 3, 30, 9, 0, tzinfo=UTC)) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert in_core_hours(datetime(2026, 3, 30, 7, 0, tzinfo=UTC))  # 08:00 BST
    assert not in_core_hours(datetime(2026, 3, 30, 17, 30, tzinfo=UTC))  # 18:30 BST
    assert not in_core_hours(datetime(2026, 3, 29, 10, 0, tzinfo=UTC))  # Sunday
