"""Deterministic, clock-driven booking activity for one practice or hub.

Each practice keeps a queue of timed events. A day is loaded ("opened") 35 days before it
starts; opening it schedules, from a per-slot RNG keyed by (seed, ODS, slot id), what will
happen to each bookable slot:

- general slots are booked by practice staff (p≈0.75) with lead times skewed to the same
  (≈44%) or next day; hub slots are booked by member practices (p≈0.65);
- NHS 111 slots are booked by the 111 provider (p≈0.45), mostly between 10 h and 15 min
  before the start; hub-reserved practice slots are booked by the hub (p≈0.6);
- ~5% of bookings are cancelled later (the slot is free and searchable again), and ~1% of
  slots are removed by the practice before they start.

`advance_to(t)` applies every event due by `t` in (time, sequence) order, so the state at a
given instant depends only on the seed, the registry and what callers did at which times,
never on how often the clock was looked at. Planned events check the slot when they fire: a
planned booking of a slot a consumer already took is dropped, and a planned 111 or hub
booking is dropped once the reservation has been released.
"""

from __future__ import annotations

import functools
import heapq
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from common.uktime import uk_day, uk_local, uk_midnight
from sandbox.book import EstateIndex, plan_day
from sandbox.determinism import Dice
from sandbox.diary import AppointmentRecord, BookerKind, PracticeDiary, SlotRecord
from sandbox.organisations import OrganisationDirectory

HORIZON_DAYS = 35
GENERAL_BOOKING_CHANCE = 0.75
HUB_SLOT_BOOKING_CHANCE = 0.65
NHS111_BOOKING_CHANCE = 0.45
HUB_RESERVED_BOOKING_CHANCE = 0.60
CANCELLATION_CHANCE = 0.05
REMOVAL_CHANCE = 0.01
# The practice's demand for a released slot: an assumption of the simulation, not something
# the pipeline controls. `SandboxState(rebook_after_release_chance=...)` varies it so the
# replay can measure the waste cut as a curve over it.
REBOOK_AFTER_RELEASE_CHANCE = 0.90
SAME_DAY_SHARE = 0.44
NEXT_DAY_SHARE = 0.18
MEAN_LONG_LEAD_DAYS = 6.0

_BOOKING_DESCRIPTIONS: dict[BookerKind, str] = {
    "practice": "Booked by practice reception",
    "nhs111": "NHS 111 direct booking",
    "hub": "Booked by extended access hub",
    "external": "Booked externally",
}


def day_opens_at(day: date) -> datetime:
    """When a UK day's book is loaded: 35 days before its midnight (UK wall clock)."""
    return (uk_midnight(day) - timedelta(days=HORIZON_DAYS)).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class OpenDay:
    day: date


@dataclass(frozen=True, slots=True)
class Booking:
    slot_id: str
    booker_ods: str
    kind: BookerKind
    patient_index: int
    token: int  # links a later Cancellation to the appointment this booking makes
    needs_reservation: bool  # 111/hub bookings only happen while the slot is still reserved


@dataclass(frozen=True, slots=True)
class Cancellation:
    slot_id: str
    token: int


@dataclass(frozen=True, slots=True)
class Removal:
    slot_id: str


Event = OpenDay | Booking | Cancellation | Removal


class PracticeSimulation:
    """One practice's live book plus the queue of things that will happen to it."""

    def __init__(
        self,
        index: EstateIndex,
        organisations: OrganisationDirectory,
        ods: str,
        first_day: date,
        *,
        rebook_after_release_chance: float = REBOOK_AFTER_RELEASE_CHANCE,
    ) -> None:
        self.rebook_after_release_chance = rebook_after_release_chance
        self.profile = index.profile(ods)
        self.diary = PracticeDiary(self.profile)
        self._organisations = organisations
        self._queue: list[tuple[datetime, int, Event]] = []
        self._sequence = 0
        self._last_token = 0
        self._bookings_by_token: dict[int, AppointmentRecord] = {}
        self._schedule(day_opens_at(first_day), OpenDay(first_day))

    @property
    def seed(self) -> int:
        return self.profile.seed

    @property
    def ods(self) -> str:
        return self.profile.ods

    def advance_to(self, instant: datetime) -> None:
        """Apply every event due at or before `instant`, in (time, sequence) order."""
        queue = self._queue
        while queue and queue[0][0] <= instant:
            at, _, event = heapq.heappop(queue)
            self._apply(at, event)

    def after_release(self, slot: SlotRecord, at: datetime) -> None:
        """Staff usually fill a released slot quickly with one of their own patients."""
        dice = Dice(self.seed, self.ods, slot.slot_id, "after-release", slot.release_key)
        if not dice.chance(self.rebook_after_release_chance):
            return
        booked_at = at + timedelta(minutes=dice.between(5, 60))
        if booked_at < slot.start:
            self._schedule_booking(slot, booked_at, self.ods, self._own_kind(), dice, needs_reservation=False)

    def _schedule(self, at: datetime, event: Event) -> None:
        self._sequence += 1
        heapq.heappush(self._queue, (at, self._sequence, event))

    def _apply(self, at: datetime, event: Event) -> None:
        diary = self.diary
        match event:
            case OpenDay(day):
                self._open(day, at)
            case Booking():
                slot = diary.slots[event.slot_id]
                if slot.state != "free" or (event.needs_reservation and not slot.is_restricted):
                    return
                appointment = diary.book(
                    [slot],
                    patient=self.profile.patients[event.patient_index],
                    booking_org=self._organisations.organisation(event.booker_ods),
                    kind=event.kind,
                    at=at,
                    description=_BOOKING_DESCRIPTIONS[event.kind],
                )
                self._bookings_by_token[event.token] = appointment
            case Cancellation(slot_id, token):
                booked = self._bookings_by_token.pop(token, None)
                slot = diary.slots[slot_id]
                # Only the booking this event planned, if it happened and still stands.
                if booked is not None and booked.status == "booked" and slot.latest_appointment is booked:
                    diary.cancel(booked, at=at, reason="Patient cancelled by telephone")
            case Removal(slot_id):
                slot = diary.slots[slot_id]
                if slot.state == "free":
                    diary.remove(slot, at=at)

    def _open(self, day: date, at: datetime) -> None:
        for slot in self.diary.open_day(plan_day(self.profile, day), at):
            if slot.plan.bookable:
                self._plan_slot(slot, at)
        following = day + timedelta(days=1)
        self._schedule(day_opens_at(following), OpenDay(following))

    def _plan_slot(self, slot: SlotRecord, opened_at: datetime) -> None:
        dice = Dice(self.seed, self.ods, slot.slot_id, "activity")
        start = slot.start
        if dice.chance(REMOVAL_CHANCE):
            latest = start - timedelta(minutes=30)
            if latest > opened_at:
                removed_at = opened_at + (latest - opened_at) * dice.uniform()
                self._schedule(removed_at, Removal(slot.slot_id))
            return
        chance, booker, kind, booked_at = self._planned_booking(slot, dice)
        if not dice.chance(chance):
            return
        # Nobody books a day before the practice has loaded it.
        booked_at = max(booked_at, opened_at + (start - opened_at) * 0.05 * dice.uniform())
        if booked_at >= start:
            return
        reserved = slot.plan.audience in ("nhs111", "hub")
        token = self._schedule_booking(slot, booked_at, booker, kind, dice, needs_reservation=reserved)
        if dice.chance(CANCELLATION_CHANCE):
            cancelled_at = booked_at + (start - booked_at) * dice.uniform()
            self._schedule(cancelled_at, Cancellation(slot.slot_id, token))

    def _planned_booking(self, slot: SlotRecord, dice: Dice) -> tuple[float, str, BookerKind, datetime]:
        """(chance, booking ODS, booker kind, when) for a slot's audience."""
        plan, start = slot.plan, slot.start
        is_hub = self.profile.practice.kind == "hub"
        if plan.audience == "nhs111":
            # 111 books after triage: mostly the same day, 10 h to 15 min before the start.
            earliest, latest = start - timedelta(hours=10), start - timedelta(minutes=15)
            chance = HUB_SLOT_BOOKING_CHANCE if is_hub else NHS111_BOOKING_CHANCE
            return chance, plan.ods_codes[0], "nhs111", earliest + (latest - earliest) * dice.uniform()
        if plan.audience == "hub":
            earliest, latest = start - timedelta(days=3), start - timedelta(minutes=30)
            booked_at = earliest + (latest - earliest) * dice.uniform()
            return HUB_RESERVED_BOOKING_CHANCE, plan.ods_codes[0], "hub", booked_at
        if is_hub:
            members = self.profile.hub_members
            booked_at = _routine_booking_time(dice, start)
            if members:
                return HUB_SLOT_BOOKING_CHANCE, dice.choice(members), "practice", booked_at
            return HUB_SLOT_BOOKING_CHANCE, self.ods, "hub", booked_at
        return GENERAL_BOOKING_CHANCE, self.ods, "practice", _routine_booking_time(dice, start)

    def _schedule_booking(
        self,
        slot: SlotRecord,
        at: datetime,
        booker: str,
        kind: BookerKind,
        dice: Dice,
        *,
        needs_reservation: bool,
    ) -> int:
        patient_index = int(dice.uniform() * len(self.profile.patients))
        self._last_token += 1
        token = self._last_token
        self._schedule(at, Booking(slot.slot_id, booker, kind, patient_index, token, needs_reservation))
        return token

    def _own_kind(self) -> BookerKind:
        return "hub" if self.profile.practice.kind == "hub" else "practice"


@functools.lru_cache(maxsize=512)
def _reception_hours(day: date) -> tuple[datetime, datetime]:
    """08:00–18:30 UK time on `day`, in UTC (cached: every slot of a day asks)."""
    return (
        uk_local(day, time(8, 0)).astimezone(UTC),
        uk_local(day, time(18, 30)).astimezone(UTC),
    )


def _routine_booking_time(dice: Dice, start: datetime) -> datetime:
    """Reception bookings: same day ~44%, next day ~18%, otherwise days to weeks ahead."""
    band = dice.uniform()
    if band < SAME_DAY_SHARE:
        days_ahead = 0
    elif band < SAME_DAY_SHARE + NEXT_DAY_SHARE:
        days_ahead = 1
    else:
        days_ahead = min(HORIZON_DAYS - 1, 2 + int(-math.log(1.0 - dice.uniform()) * MEAN_LONG_LEAD_DAYS))
    phones_open, phones_close = _reception_hours(uk_day(start) - timedelta(days=days_ahead))
    latest = min(phones_close, start - timedelta(minutes=10))
    if latest <= phones_open:
        return start - timedelta(minutes=10) * (1 + dice.uniform())
    return phones_open + (latest - phones_open) * dice.uniform()
