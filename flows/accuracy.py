"""How close the warehouse's numbers are to what really happened in the sandbox.

The sandbox knows every slot's true fate (its ground truth); the warehouse only saw free-slot
snapshots, booking logs and Read Appointment answers. This compares the two per practice-day
for days whose slots have all started, and explains every slot-level difference by cause:

- `removed_from_book`: the practice deleted a slot; to GP Connect that looks like a booking.
- `booked_after_last_observation`: booked between our last snapshot and its start.
- `freed_after_last_observation`: a booking cancelled after our last snapshot.
- `other`: anything else (should be none).
Bookings made before our first snapshot of a slot cannot be seen at all and are counted
separately (`unobservable_bookings`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb

from connectors.sandbox.state import GroundTruthRow, SandboxState
from connectors.uktime import uk_day


@dataclass
class AccuracyReport:
    first_day: date
    last_day: date
    practice_days: int = 0
    slots_compared: int = 0
    booked_truth: int = 0
    booked_ours: int = 0
    abs_error_booked: int = 0
    exact_practice_days: int = 0
    causes: Counter[str] = field(default_factory=Counter)
    unknown_verdicts: int = 0
    unobservable_bookings: int = 0
    nhs111_practice_days: int = 0
    nhs111_exact_practice_days: int = 0
    nhs111_max_abs_error: float = 0.0
    nhs111_mean_abs_error: float = 0.0
    nhs111_offered_truth: int = 0
    nhs111_offered_ours: int = 0
    nhs111_booked_truth: int = 0
    # Reserved slots taken out of the book before the first snapshot (outside what we compare).
    nhs111_removed_before_first_snapshot: int = 0
    # Practice-days where our 111 figures differ from the truth, with the slots behind them.
    nhs111_mismatches: list[str] = field(default_factory=list)
    nhs111_booked_ours: int = 0

    @property
    def booked_relative_error(self) -> float:
        return self.abs_error_booked / self.booked_truth if self.booked_truth else 0.0

    def lines(self) -> list[str]:
        return [
            f"accuracy over {self.first_day}..{self.last_day} ({self.practice_days} practice-days, "
            f"{self.slots_compared:,} slots seen):",
            f"  booked slots: truth {self.booked_truth:,}, ours {self.booked_ours:,}, "
            f"abs error {self.abs_error_booked:,} ({self.booked_relative_error:.2%}), "
            f"{self.exact_practice_days}/{self.practice_days} practice-days exact",
            "  differences by cause: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.causes.items())) or "none"),
            f"  slots with no verdict (last check over 2 h before start): {self.unknown_verdicts:,}",
            f"  bookings made before any snapshot saw the slot (unobservable): {self.unobservable_bookings}",
            f"  NHS 111 utilisation: {self.nhs111_exact_practice_days}/{self.nhs111_practice_days} "
            f"practice-days exact, max abs error {self.nhs111_max_abs_error:.4f}, "
            f"mean {self.nhs111_mean_abs_error:.4f} (offered truth {self.nhs111_offered_truth} / ours "
            f"{self.nhs111_offered_ours}, booked by 111 truth {self.nhs111_booked_truth} / ours "
            f"{self.nhs111_booked_ours})",
            f"  NHS 111 reserved slots removed from the book before the first snapshot (never "
            f"observable, not compared): {self.nhs111_removed_before_first_snapshot}",
            *(f"    differs: {line}" for line in self.nhs111_mismatches),
        ]


def evaluate(state: SandboxState, warehouse: Path, first_day: date, last_day: date) -> AccuracyReport:
    """Compare final practice-days in [first_day, last_day] with the sandbox's ground truth."""
    report = AccuracyReport(first_day, last_day)
    truth = {
        (row.practice_ods, row.slot_id): row
        for row in state.ground_truth(first_day=first_day, last_day=last_day)
        if row.bookable
    }
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        ours = {
            (ods, slot): (slot_state, last_checked)
            for ods, slot, slot_state, last_checked in con.execute(
                "select practice_ods, slot_id, state, last_checked_at from core.int_slot_states "
                "where slot_day between ? and ? and start_passed",
                [first_day, last_day],
            ).fetchall()
        }
        first_observation = con.execute("select min(observed_at) from meta.sync_window").fetchall()[0][0]
        nhs111_rows = con.execute(
            "select practice_ods, slot_day, offered, booked_by_111 from marts.mart_111_utilisation_daily "
            "where slot_day between ? and ? and is_final and is_core_day",
            [first_day, last_day],
        ).fetchall()
    finally:
        con.close()

    per_day: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])
    for key, (slot_state, last_checked) in ours.items():
        row = truth.get(key)
        if row is None:
            continue
        day_counts = per_day[(row.practice_ods, uk_day(row.start_utc))]
        ours_booked = slot_state in ("booked_confirmed", "booked_inferred")
        truth_booked = row.state == "booked"
        day_counts[0] += truth_booked
        day_counts[1] += ours_booked
        report.slots_compared += 1
        report.unknown_verdicts += int(slot_state == "unknown")
        if ours_booked != truth_booked:
            report.causes[_cause(row, ours_booked, last_checked)] += 1
    for key, row in truth.items():
        if key not in ours and row.state == "booked" and uk_day(row.start_utc) <= last_day:
            report.unobservable_bookings += 1
    for truth_count, ours_count in per_day.values():
        report.practice_days += 1
        report.booked_truth += truth_count
        report.booked_ours += ours_count
        report.abs_error_booked += abs(truth_count - ours_count)
        report.exact_practice_days += int(truth_count == ours_count)
    _compare_111(report, truth, nhs111_rows, first_observation)
    return report


def _cause(row: GroundTruthRow, ours_booked: bool, last_checked: datetime | None) -> str:
    if ours_booked and row.state == "removed":
        return "removed_from_book"
    booked_late = row.booked_at is not None and last_checked is not None and row.booked_at > last_checked
    if not ours_booked and booked_late:
        return "booked_after_last_observation"
    if ours_booked and row.cancelled_at is not None:
        return "freed_after_last_observation"
    return "other"


def _compare_111(
    report: AccuracyReport,
    truth: dict[tuple[str, str], GroundTruthRow],
    rows: list[tuple[str, date, int, int]],
    first_observation: datetime | None,
) -> None:
    offered: Counter[tuple[str, date]] = Counter()
    booked: Counter[tuple[str, date]] = Counter()
    for row in truth.values():
        if row.audience != "nhs111":
            continue
        if row.removed_at is not None and (first_observation is None or row.removed_at < first_observation):
            # Taken out of the book before our first snapshot: no search could ever show it.
            report.nhs111_removed_before_first_snapshot += 1
            continue
        key = (row.practice_ods, uk_day(row.start_utc))
        offered[key] += 1
        booked[key] += row.state == "booked" and row.booked_by_kind == "nhs111"
    errors: list[float] = []
    for ods, day, ours_offered, ours_booked in rows:
        key = (ods, day)
        truth_util = booked[key] / offered[key] if offered[key] else 0.0
        ours_util = ours_booked / ours_offered if ours_offered else 0.0
        errors.append(abs(truth_util - ours_util))
        if offered[key] != ours_offered or booked[key] != ours_booked:
            report.nhs111_mismatches.append(
                f"{ods} {day}: offered truth {offered[key]} / ours {ours_offered}, booked truth "
                f"{booked[key]} / ours {ours_booked}; truth slots: " + "; ".join(
                    f"{row.slot_id} {row.state} by {row.booked_by_kind} at {row.booked_at} "
                    f"removed {row.removed_at} released {row.released_at} start {row.start_utc}"
                    for row in truth.values()
                    if row.audience == "nhs111" and (row.practice_ods, uk_day(row.start_utc)) == key
                )
            )
        report.nhs111_offered_truth += offered[key]
        report.nhs111_offered_ours += ours_offered
        report.nhs111_booked_truth += booked[key]
        report.nhs111_booked_ours += ours_booked
    report.nhs111_practice_days = len(errors)
    report.nhs111_exact_practice_days = sum(1 for e in errors if e < 1e-9)
    report.nhs111_max_abs_error = max(errors, default=0.0)
    report.nhs111_mean_abs_error = sum(errors) / len(errors) if errors else 0.0


@dataclass
class ReleaseEffect:
    """NHS 111 capacity that went unused, with the release flow and without it."""

    reserved: int
    unused_without: int
    unused_with: int
    released: int
    released_then_booked: int
    booked_slots_touched: int

    @property
    def share_unused_without(self) -> float:
        return self.unused_without / self.reserved if self.reserved else 0.0

    @property
    def share_unused_with(self) -> float:
        return self.unused_with / self.reserved if self.reserved else 0.0

    @property
    def cut(self) -> float:
        """How much of the unused 111 capacity the release flow recovered."""
        if not self.unused_without:
            return 0.0
        return 1 - self.unused_with / self.unused_without

    def lines(self) -> list[str]:
        return [
            f"NHS 111 reserved capacity ({self.reserved} slots that have started):",
            f"  unused without the release flow : {self.unused_without} ({self.share_unused_without:.1%})",
            f"  unused with the release flow    : {self.unused_with} ({self.share_unused_with:.1%})"
            f" -> {self.cut:.0%} less waste",
            f"  released {self.released}, then booked by the practice {self.released_then_booked}; "
            f"booked slots touched by a release: {self.booked_slots_touched}",
        ]


def release_effect(
    with_release: SandboxState, without_release: SandboxState, first_day: date, last_day: date,
    now: datetime,
) -> ReleaseEffect:
    """Compare two runs of the same seeded world: one with the release flow, one without.

    A reserved slot went unused when its start passed and nobody booked it (slots the
    practice removed are not capacity). A booked slot is "touched" if a release happened
    after someone had booked it; the supplier's version check must make that impossible.
    """
    def reserved(state: SandboxState) -> dict[tuple[str, str], GroundTruthRow]:
        return {
            (r.practice_ods, r.slot_id): r
            for r in state.ground_truth(first_day=first_day, last_day=last_day)
            if r.audience == "nhs111" and r.bookable and r.start_utc <= now and r.state != "removed"
        }

    base, treated = reserved(without_release), reserved(with_release)
    released = [r for r in treated.values() if r.released_at is not None]
    return ReleaseEffect(
        reserved=len(treated),
        unused_without=sum(1 for r in base.values() if r.state == "free"),
        unused_with=sum(1 for r in treated.values() if r.state == "free"),
        released=len(released),
        released_then_booked=sum(1 for r in released if r.state == "booked"),
        booked_slots_touched=sum(1 for r in released if _booked_before_release(r)),
    )


def _booked_before_release(row: GroundTruthRow) -> bool:
    """A release that came after someone (other than the practice it went to) had booked."""
    return (
        row.booked_at is not None and row.released_at is not None and row.booked_at <= row.released_at
        and row.cancelled_at is None and row.booked_by_kind != "practice"
    )
