"""How close the warehouse's numbers are to what really happened in the sandbox.

The sandbox knows every slot's true fate (its ground truth); the warehouse only saw free-slot
snapshots, booking logs and Read Appointment answers. This compares the two per slot and per
practice-day for days whose slots have all started, and it cannot excuse a loss:

- every slot the warehouse holds that the truth lacks is a `phantom_slots` error;
- every practice-day with NHS 111 slots in the truth that the 111 mart lacks is a
  `missing_mart_days` error;
- a truth slot missing from the warehouse is `unobservable` only if it was booked before the
  first snapshot whose window covered it (no search could ever have shown it free): a booked one
  is `unobservable_bookings`, a free one is `freed_after_every_check` only if it was also still
  booked at every general search that covered it before its start (the cancellation came after
  the last); any other missing slot is an error (`missing_slots`);
- each slot-level difference is filed under a cause only when the timeline the cause names
  holds, otherwise under `other`:
  - `removed_from_book`: we say booked; the practice removed the slot before its start, after
    the last search that showed it free and no later than the first that missed it (free-slot
    search cannot tell a removed slot from a booked one);
  - `booked_after_last_observation`: we say not booked; it was booked after our last check;
  - `freed_after_last_observation`: we say booked; the booking was cancelled after our last check.

`evaluate_view` does the comparison on plain data (unit-tested with crafted pairs);
`evaluate` reads that data from a sandbox state and a warehouse file.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from common.uktime import uk_day
from connectors.registry import Registry
from sandbox.state import GroundTruthRow, ReleaseRequestRecord, SandboxState

BOOKED_STATES = ("booked_confirmed", "booked_inferred")
# Causes GP Connect's cadence explains (a booking after the last check before the start).
CADENCE_CAUSES = ("booked_after_last_observation",)
MAX_EXAMPLES = 20


def _hm(at: datetime | None) -> str:
    return "-" if at is None else f"{at:%m-%d %H:%M}"

EXPLAINED_CAUSES = ("removed_from_book", "booked_after_last_observation", "freed_after_last_observation")


@dataclass(frozen=True)
class ObservedSlot:
    """One started slot as the warehouse sees it (core.int_slot_states)."""

    state: str
    last_checked_at: datetime | None
    slot_day: date
    disappeared_at: datetime | None = None
    # The last search that showed it free (None when not known, e.g. a crafted test pair).
    last_seen_at: datetime | None = None

    @property
    def booked(self) -> bool:
        return self.state in BOOKED_STATES


@dataclass
class WarehouseView:
    """What the evaluation needs from a warehouse, as plain data."""

    slots: dict[tuple[str, str], ObservedSlot]
    # Per practice: (window_start, window_end, observed_at) of every successful slot search.
    windows: dict[str, list[tuple[datetime, datetime, datetime]]]
    # (practice, day) -> (offered, booked_by_111) for final rows of the 111 mart.
    nhs111_days: dict[tuple[str, date], tuple[int, int]]
    # Per practice: the same for successful general (unfiltered) searches only, every instant.
    general_checks: dict[str, list[tuple[datetime, datetime, datetime]]] = field(default_factory=dict)

    def covering_checks(self, ods: str, start: datetime, end: datetime) -> list[datetime]:
        """Every general search of `ods` that covered [start, end] before `start`, in order."""
        return sorted(t for t in _covering(self.general_checks.get(ods, ()), start, end) if t < start)

    def first_covering(self, ods: str, start: datetime, end: datetime) -> datetime | None:
        """When a search of `ods` first covered [start, end], or None if none ever did."""
        return min(_covering(self.windows.get(ods, ()), start, end), default=None)


def _covering(
    searches: Iterable[tuple[datetime, datetime, datetime]], start: datetime, end: datetime
) -> Iterator[datetime]:
    """When each of these searches ran, for those whose window holds [start, end]."""
    return (observed for w_start, w_end, observed in searches if w_start <= start and end <= w_end)


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
    # Free in the truth, never in the warehouse: booked at every search that covered it.
    freed_after_every_check: int = 0
    phantom_slots: int = 0
    missing_slots: int = 0
    nhs111_practice_days: int = 0
    nhs111_exact_practice_days: int = 0
    missing_mart_days: int = 0
    phantom_mart_days: int = 0
    nhs111_max_abs_error: float = 0.0
    nhs111_mean_abs_error: float = 0.0
    nhs111_offered_truth: int = 0
    nhs111_offered_ours: int = 0
    nhs111_booked_truth: int = 0
    nhs111_booked_ours: int = 0
    # Reserved slots taken out of the book before any search covered them (never observable).
    nhs111_removed_before_first_snapshot: int = 0
    # Practice-days where our 111 figures differ from the truth, with the slots behind them.
    nhs111_mismatches: list[str] = field(default_factory=list)
    # The first few unexplained differences, each with its timeline, so one can be chased.
    unexplained_examples: list[str] = field(default_factory=list)

    def note_unexplained(self, kind: str, row: GroundTruthRow | None, ours: ObservedSlot | None) -> None:
        if len(self.unexplained_examples) >= MAX_EXAMPLES:
            return
        truth = "absent" if row is None else (
            f"{row.state} by {row.booked_by_kind} start {row.start_utc:%m-%d %H:%M} "
            f"booked {_hm(row.booked_at)} cancelled {_hm(row.cancelled_at)} "
            f"released {_hm(row.released_at)} removed {_hm(row.removed_at)} "
            f"reserved_for {row.reserved_for_ods}")
        seen = "absent" if ours is None else (
            f"{ours.state} checked {_hm(ours.last_checked_at)} disappeared {_hm(ours.disappeared_at)}")
        slot = "" if row is None else f"{row.practice_ods}/{row.slot_id} "
        self.unexplained_examples.append(f"{kind}: {slot}truth {truth}; ours {seen}")

    @property
    def booked_relative_error(self) -> float:
        return self.abs_error_booked / self.booked_truth if self.booked_truth else 0.0

    @property
    def unexplained_booked_differences(self) -> int:
        """Differences no checked cause explains: `other`, phantom and missing slots."""
        return self.causes["other"] + self.phantom_slots + self.missing_slots

    @property
    def non_cadence_differences(self) -> int:
        return sum(v for k, v in self.causes.items() if k not in CADENCE_CAUSES)

    def as_json(self) -> dict[str, Any]:
        return {
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "practice_days": self.practice_days,
            "exact_practice_days": self.exact_practice_days,
            "slots_compared": self.slots_compared,
            "booked_truth": self.booked_truth,
            "booked_ours": self.booked_ours,
            "booked_error_total": self.abs_error_booked,
            "booked_relative_error": round(self.booked_relative_error, 6),
            "differences_by_cause": dict(sorted(self.causes.items())),
            "non_cadence_differences": self.non_cadence_differences,
            "unexplained_booked_differences": self.unexplained_booked_differences,
            "unknown_verdicts": self.unknown_verdicts,
            "unobservable_bookings": self.unobservable_bookings,
            "freed_after_every_check": self.freed_after_every_check,
            "phantom_slots": self.phantom_slots,
            "missing_slots": self.missing_slots,
            "missing_mart_days": self.missing_mart_days,
            "phantom_mart_days": self.phantom_mart_days,
            "nhs111_utilisation_days": self.nhs111_practice_days,
            "nhs111_utilisation_exact_days": self.nhs111_exact_practice_days,
            "nhs111_max_abs_error": self.nhs111_max_abs_error,
            "nhs111_offered_truth": self.nhs111_offered_truth,
            "nhs111_offered_ours": self.nhs111_offered_ours,
            "nhs111_booked_truth": self.nhs111_booked_truth,
            "nhs111_booked_ours": self.nhs111_booked_ours,
            "nhs111_removed_before_first_snapshot": self.nhs111_removed_before_first_snapshot,
            "unexplained_examples": self.unexplained_examples,
        }

    def lines(self) -> list[str]:
        return [
            f"accuracy over {self.first_day}..{self.last_day} ({self.practice_days} practice-days, "
            f"{self.slots_compared:,} slots compared):",
            f"  booked slots: truth {self.booked_truth:,}, ours {self.booked_ours:,}, "
            f"abs error {self.abs_error_booked:,} ({self.booked_relative_error:.2%}), "
            f"{self.exact_practice_days}/{self.practice_days} practice-days exact",
            "  differences by cause: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.causes.items())) or "none"),
            f"  phantom slots {self.phantom_slots}, missing slots {self.missing_slots}, "
            f"unexplained booked differences {self.unexplained_booked_differences}",
            f"  slots with no verdict (last check over 2 h before start): {self.unknown_verdicts:,}",
            f"  booked before the first snapshot covering them (unobservable): {self.unobservable_bookings}",
            f"  free slots booked at every search covering them (never visible): "
            f"{self.freed_after_every_check}",
            f"  NHS 111 utilisation: {self.nhs111_exact_practice_days}/{self.nhs111_practice_days} "
            f"practice-days exact ({self.missing_mart_days} missing from the mart, "
            f"{self.phantom_mart_days} not in the truth), max abs error {self.nhs111_max_abs_error:.4f} "
            f"(offered truth {self.nhs111_offered_truth} / ours {self.nhs111_offered_ours}, booked by "
            f"111 truth {self.nhs111_booked_truth} / ours {self.nhs111_booked_ours})",
            *(f"    differs: {line}" for line in self.nhs111_mismatches),
        ]


def evaluate(
    state: SandboxState, warehouse: Path, first_day: date, last_day: date
) -> AccuracyReport:
    """Compare final practice-days in [first_day, last_day] with the sandbox's ground truth."""
    truth = [r for r in state.ground_truth(first_day=first_day, last_day=last_day) if r.bookable]
    practices = {p.ods_code for p in state.registry.practices if p.kind == "practice"}
    return evaluate_view(truth, read_view(warehouse, first_day, last_day), first_day, last_day, practices)


def read_view(warehouse: Path, first_day: date, last_day: date) -> WarehouseView:
    """The started slots, search windows and final 111 mart rows of [first_day, last_day]."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        slots = {
            (ods, slot): ObservedSlot(state, last_checked, day, disappeared, last_seen)
            for ods, slot, state, last_checked, day, disappeared, last_seen in con.execute(
                "select practice_ods, slot_id, state, last_checked_at, slot_day, disappeared_at, "
                "last_seen_at "
                "from core.int_slot_states where slot_day between ? and ? and start_passed",
                [first_day, last_day],
            ).fetchall()
        }
        windows = _searches_by_practice(con.execute(
            "select practice_ods, window_start, window_end, min(observed_at) from raw.gpc_slot_search "
            "where http_status = 200 group by all"
        ).fetchall())
        general = _searches_by_practice(con.execute(
            "select distinct practice_ods, window_start, window_end, observed_at "
            "from raw.gpc_slot_search where http_status = 200 and filter_role = 'general'"
        ).fetchall())
        nhs111 = {
            (ods, day): (offered, booked)
            for ods, day, offered, booked in con.execute(
                "select practice_ods, slot_day, offered, booked_by_111 from marts.mart_111_utilisation_daily "
                "where slot_day between ? and ? and is_final",
                [first_day, last_day],
            ).fetchall()
        }
    finally:
        con.close()
    return WarehouseView(slots, windows, nhs111, general)


def _searches_by_practice(
    rows: list[tuple[str, datetime, datetime, datetime]],
) -> dict[str, list[tuple[datetime, datetime, datetime]]]:
    """(practice, window start, window end, observed) rows -> per practice, the rest of each row."""
    by_practice: dict[str, list[tuple[datetime, datetime, datetime]]] = defaultdict(list)
    for ods, w_start, w_end, observed in rows:
        by_practice[ods].append((w_start, w_end, observed))
    return dict(by_practice)


def evaluate_view(
    truth_rows: Iterable[GroundTruthRow],
    view: WarehouseView,
    first_day: date,
    last_day: date,
    nhs111_practices: set[str] | None = None,
) -> AccuracyReport:
    """Compare bookable truth rows with a warehouse view; `nhs111_practices` = mart's practices."""
    report = AccuracyReport(first_day, last_day)
    truth = {
        (r.practice_ods, r.slot_id): r for r in truth_rows
        if r.bookable and first_day <= uk_day(r.start_utc) <= last_day
    }
    # Per practice-day: [truth booked, ours booked]; every slot on either side counts.
    per_day: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])
    for key, ours in view.slots.items():
        if not first_day <= ours.slot_day <= last_day:
            continue
        row = truth.get(key)
        if row is None:
            report.phantom_slots += 1
            report.note_unexplained(f"phantom {key[0]}/{key[1]}", None, ours)
            per_day[(key[0], ours.slot_day)][1] += ours.booked
            continue
        truth_booked = row.state == "booked"
        counts = per_day[(row.practice_ods, uk_day(row.start_utc))]
        counts[0] += truth_booked
        counts[1] += ours.booked
        report.slots_compared += 1
        report.unknown_verdicts += int(ours.state == "unknown")
        if ours.booked != truth_booked:
            found = cause(row, ours)
            report.causes[found] += 1
            if found == "other":
                report.note_unexplained("other", row, ours)
    for key, row in truth.items():
        if key in view.slots:
            continue
        day_key = (row.practice_ods, uk_day(row.start_utc))
        if row.state == "booked":
            per_day[day_key][0] += 1
            first_seen = view.first_covering(row.practice_ods, row.start_utc, row.end_utc)
            if first_seen is not None and row.booked_at is not None and row.booked_at < first_seen:
                report.unobservable_bookings += 1
            else:
                report.missing_slots += 1
                report.note_unexplained("missing", row, None)
        elif row.state == "free":
            per_day[day_key]  # a free slot we never saw is lost capacity, and a day to count
            if _booked_at_every_check(row, view):
                report.freed_after_every_check += 1
            else:
                report.missing_slots += 1
                report.note_unexplained("missing", row, None)
        # A removed slot we never saw is not capacity: nothing to miss.
    for truth_count, ours_count in per_day.values():
        report.practice_days += 1
        report.booked_truth += truth_count
        report.booked_ours += ours_count
        report.abs_error_booked += abs(truth_count - ours_count)
        report.exact_practice_days += int(truth_count == ours_count)
    _compare_111(report, truth, view, nhs111_practices)
    return report


def _booked_at_every_check(row: GroundTruthRow, view: WarehouseView) -> bool:
    """True when no general search covering the slot before its start could have shown it free."""
    checks = view.covering_checks(row.practice_ods, row.start_utc, row.end_utc)
    booked, cancelled = row.booked_at, row.cancelled_at
    if not checks or booked is None or cancelled is None:
        return False
    return booked < checks[0] and cancelled > checks[-1]


def cause(row: GroundTruthRow, ours: ObservedSlot) -> str:
    """The cause of one slot-level difference, only if the timeline it names holds."""
    checked = ours.last_checked_at
    removed = row.removed_at
    # Removed between the last search that showed it free and the first that missed it.
    seen_free = ours.last_seen_at if ours.disappeared_at is not None else checked
    if ours.booked and row.state == "removed" and removed is not None and removed < row.start_utc \
            and (seen_free is None or removed >= seen_free) \
            and (ours.disappeared_at is None or removed <= ours.disappeared_at):
        return "removed_from_book"
    if not ours.booked and row.state == "booked" and row.booked_at is not None and checked is not None \
            and checked < row.booked_at < row.start_utc:
        return "booked_after_last_observation"
    if ours.booked and row.state == "free" and row.cancelled_at is not None and checked is not None \
            and row.cancelled_at > checked:
        return "freed_after_last_observation"
    return "other"


def _compare_111(
    report: AccuracyReport,
    truth: dict[tuple[str, str], GroundTruthRow],
    view: WarehouseView,
    practices: set[str] | None,
) -> None:
    offered: Counter[tuple[str, date]] = Counter()
    booked: Counter[tuple[str, date]] = Counter()
    for row in truth.values():
        if row.audience != "nhs111" or (practices is not None and row.practice_ods not in practices):
            continue
        first_seen = view.first_covering(row.practice_ods, row.start_utc, row.end_utc)
        if row.removed_at is not None and (first_seen is None or row.removed_at < first_seen):
            # Taken out of the book before any search covered it: never offered to anyone.
            report.nhs111_removed_before_first_snapshot += 1
            continue
        key = (row.practice_ods, uk_day(row.start_utc))
        offered[key] += 1
        booked[key] += row.state == "booked" and row.booked_by_kind == "nhs111"
    errors: list[float] = []
    for key in sorted(offered):
        ours = view.nhs111_days.get(key)
        report.nhs111_offered_truth += offered[key]
        report.nhs111_booked_truth += booked[key]
        if ours is None:
            report.missing_mart_days += 1
            errors.append(1.0)
            report.nhs111_mismatches.append(f"{key[0]} {key[1]}: missing from the 111 mart")
            continue
        ours_offered, ours_booked = ours
        report.nhs111_offered_ours += ours_offered
        report.nhs111_booked_ours += ours_booked
        truth_util = booked[key] / offered[key]
        ours_util = ours_booked / ours_offered if ours_offered else 0.0
        errors.append(abs(truth_util - ours_util))
        if offered[key] != ours_offered or booked[key] != ours_booked:
            report.nhs111_mismatches.append(
                f"{key[0]} {key[1]}: offered truth {offered[key]} / ours {ours_offered}, "
                f"booked truth {booked[key]} / ours {ours_booked}"
            )
    for key, (ours_offered, ours_booked) in view.nhs111_days.items():
        if key not in offered and _in_range(key[1], report) and ours_offered:
            report.phantom_mart_days += 1
            report.nhs111_offered_ours += ours_offered
            report.nhs111_booked_ours += ours_booked
            report.nhs111_mismatches.append(f"{key[0]} {key[1]}: in the 111 mart, not in the truth")
    report.nhs111_practice_days = len(errors) + report.phantom_mart_days
    report.nhs111_exact_practice_days = sum(
        1 for key in offered if view.nhs111_days.get(key) == (offered[key], booked[key])
    )
    report.nhs111_max_abs_error = max(errors, default=0.0) if not report.phantom_mart_days else 1.0
    report.nhs111_mean_abs_error = sum(errors) / len(errors) if errors else 0.0


def _in_range(day: date, report: AccuracyReport) -> bool:
    return report.first_day <= day <= report.last_day


@dataclass
class ReleaseEffect:
    """NHS 111 capacity that went unused, with the release flow and without it.

    The cut depends on how often the practice rebooks a released slot, which is the
    sandbox's assumption (`rebook_chance`), not something the pipeline controls: every
    rendering names it.
    """

    reserved: int
    unused_without: int
    unused_with: int
    released: int
    released_then_booked: int
    booked_slots_touched: int
    rebook_chance: float

    @property
    def share_unused_without(self) -> float:
        return self.unused_without / self.reserved if self.reserved else 0.0

    @property
    def share_unused_with(self) -> float:
        return self.unused_with / self.reserved if self.reserved else 0.0

    @property
    def cut(self) -> float:
        """How much of the unused 111 capacity was used instead, at this rebook chance."""
        if not self.unused_without:
            return 0.0
        return 1 - self.unused_with / self.unused_without

    def lines(self) -> list[str]:
        return [
            f"NHS 111 reserved capacity ({self.reserved} slots that have started):",
            f"  unused without the release flow : {self.unused_without} ({self.share_unused_without:.1%})",
            f"  unused with the release flow    : {self.unused_with} ({self.share_unused_with:.1%})"
            f" -> {self.cut:.0%} less waste ASSUMING the practice rebooks a released slot with "
            f"chance {self.rebook_chance:.2f} (the sandbox's assumption, not measured demand; "
            "`slotsync replay` gives the curve over it)",
            f"  released {self.released}, then booked by the practice {self.released_then_booked}",
        ]


def _reserved_started(
    state: SandboxState, first_day: date, last_day: date, now: datetime
) -> dict[tuple[str, str], GroundTruthRow]:
    """Bookable NHS 111 slots of the days that started by `now`, removed ones excluded."""
    return {
        (r.practice_ods, r.slot_id): r
        for r in state.ground_truth(first_day=first_day, last_day=last_day)
        if r.audience == "nhs111" and r.bookable and r.start_utc <= now and r.state != "removed"
    }


def release_effect(
    with_release: SandboxState, without_release: SandboxState, first_day: date, last_day: date,
    now: datetime,
) -> ReleaseEffect:
    """Compare two runs of the same seeded world: one with the release flow, one without.

    A reserved slot went unused when its start passed and nobody booked it (slots the
    practice removed are not capacity). Whether a requested release hit a booked slot is
    measured from the provider's request log (`release_outcome`), not here.
    """
    base = _reserved_started(without_release, first_day, last_day, now)
    treated = _reserved_started(with_release, first_day, last_day, now)
    released = [r for r in treated.values() if r.released_at is not None]
    booked_requests = sum(1 for r in with_release.release_requests if r.slot_state == "booked")
    return ReleaseEffect(
        reserved=len(treated),
        unused_without=sum(1 for r in base.values() if r.state == "free"),
        unused_with=sum(1 for r in treated.values() if r.state == "free"),
        released=len(released),
        released_then_booked=sum(1 for r in released if r.state == "booked"),
        booked_slots_touched=booked_requests,
        rebook_chance=with_release.rebook_after_release_chance,
    )


# ------------------------------------------------------------------ what the release flow controls

MISS_CAUSES = (
    "released_too_late", "never_a_candidate", "skipped", "refused", "failed", "outside_policy_hours",
    "other",
)


@dataclass
class ReleaseOutcome:
    """The release flow judged on what it controls, from the with/without replay.

    `unused_without` = reserved NHS 111 slots of the judged days that started unused in the
    no-release twin; each was either released at or before `start - lead` (its policy's due
    time) or is a miss, counted by cause. `displaced` = slots NHS 111 booked in the twin that
    the flow had released in the treated world and 111 then did not get.
    `booked_release_requests` = requests the provider received for a slot booked at that
    instant (its request log, whatever it answered).
    """

    unused_without: int = 0
    released_in_time: int = 0
    # Work-list practices (no supplier write API): the flow's job is to queue the release for
    # staff by the due time; the sandbox has no staff, so these slots stay reserved there.
    queued_in_time: int = 0
    misses_by_cause: Counter[str] = field(default_factory=Counter)
    nhs111_bookings_without: int = 0
    nhs111_bookings_with: int = 0
    displaced: int = 0
    release_requests: int = 0
    booked_release_requests: int = 0
    policies: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        done = self.released_in_time + self.queued_in_time
        return done / self.unused_without if self.unused_without else 1.0

    @property
    def displaced_share(self) -> float:
        return self.displaced / self.nhs111_bookings_without if self.nhs111_bookings_without else 0.0


def release_outcome(
    with_release: SandboxState,
    without_release: SandboxState,
    registry: Registry,
    decisions: dict[tuple[str, str], list[tuple[str, datetime]]],
    first_day: date,
    last_day: date,
    now: datetime,
) -> ReleaseOutcome:
    """Coverage, misses by cause, displacement and booked-slot requests over the judged days.

    `decisions` = (outcome, decided_at) the release flow recorded per slot (audit.release_decision).
    """
    from flows.release import due_at, in_core_hours, policy_name

    outcome = ReleaseOutcome()
    practices = registry.by_ods()
    base = _reserved_started(without_release, first_day, last_day, now)
    treated = _reserved_started(with_release, first_day, last_day, now)
    for key, twin_row in base.items():
        row = treated.get(key)
        if twin_row.state == "booked" and twin_row.booked_by_kind == "nhs111":
            outcome.nhs111_bookings_without += 1
            if row is not None and row.released_at is not None and not (
                row.state == "booked" and row.booked_by_kind == "nhs111"
            ):
                outcome.displaced += 1
        if twin_row.state != "free":
            continue
        outcome.unused_without += 1
        policy = practices[twin_row.practice_ods].release_policy
        due = due_at(policy, twin_row.start_utc)
        slot_decisions = decisions.get(key, [])
        if row is not None and row.released_at is not None and row.released_at <= due:
            outcome.released_in_time += 1
        elif any(o in ("queued", "already_queued") and at <= due for o, at in slot_decisions):
            outcome.queued_in_time += 1
        else:
            outcome.misses_by_cause[_miss_cause(row, slot_decisions, policy.core_hours_only
                                                and not in_core_hours(twin_row.start_utc))] += 1
    outcome.nhs111_bookings_with = sum(
        1 for r in treated.values() if r.state == "booked" and r.booked_by_kind == "nhs111"
    )
    judged = [
        r for r in with_release.release_requests
        if first_day <= uk_day(_slot_start(with_release, r)) <= last_day
    ]
    outcome.release_requests = len(judged)
    outcome.booked_release_requests = sum(1 for r in judged if r.slot_state == "booked")
    outcome.policies = sorted({policy_name(p.release_policy) for p in registry.practices})
    return outcome


def _slot_start(state: SandboxState, request: ReleaseRequestRecord) -> datetime:
    return state.slot(request.practice_ods, request.slot_id).start


def _miss_cause(
    row: GroundTruthRow | None, decisions: list[tuple[str, datetime]], outside_policy: bool
) -> str:
    outcomes = [o for o, _ in decisions]
    if (row is not None and row.released_at is not None) or "queued" in outcomes:
        return "released_too_late"
    if outside_policy:
        return "outside_policy_hours"
    if not outcomes:
        return "never_a_candidate"
    if any(o.startswith("refused") for o in outcomes):
        return "refused"
    if any(o.startswith("failed") or o == "attempting" for o in outcomes):
        return "failed"
    if any(o.startswith(("skipped", "gone", "not_")) for o in outcomes):
        return "skipped"
    return "other"
