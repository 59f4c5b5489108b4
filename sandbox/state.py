"""The sandbox's whole world: every practice's live book behind one lock, driven by a clock.

`SandboxState` is what the HTTP app and tests talk to. Each public method first advances the
simulation to `clock.now()`, so a shared `SimulatedClock` drives everything and the same
seed plus the same calls at the same simulated instants always give the same state.

Practices are simulated independently, so a practice's book is built lazily the first time
anything touches it (replaying its history from the first day up to "now"); the result is
identical to having built it at start-up. The first day is the day before the sandbox
started; later days open 35 days ahead as the clock moves.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from common.clock import Clock, SystemClock
from common.uktime import format_uk, uk_day, uk_midnight
from connectors.registry import Practice, Registry
from sandbox.book import URGENT_CARE, EstateIndex, PracticeProfile
from sandbox.determinism import Dice
from sandbox.diary import (
    AppointmentRecord,
    BookerKind,
    BookingOrganisation,
    SlotRecord,
)
from sandbox.errors import SandboxError, invalid_resource
from sandbox.estate import DEFAULT_SEED
from sandbox.faults import FaultInjector, TrafficCounter
from sandbox.organisations import OrganisationDirectory
from sandbox.people import Patient
from sandbox.simulation import REBOOK_AFTER_RELEASE_CHANCE, PracticeSimulation
from sandbox.slot_search import visible_to


def utc_iso(instant: datetime | None) -> str | None:
    """`2026-03-30T08:00:00Z`, or None."""
    if instant is None:
        return None
    return instant.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


@dataclass(frozen=True)
class BookingRequest:
    """A validated book request: which slots, for whom, by whom."""

    slot_ids: tuple[str, ...]
    patient_id: str
    booking_org: BookingOrganisation
    start: datetime
    end: datetime
    description: str
    comment: str | None


@dataclass(frozen=True)
class ReleaseOutcome:
    released: bool
    already_released: bool
    version: str


@dataclass(frozen=True)
class ReleaseRequestRecord:
    """One release request as the provider received it, with the slot's state at that instant.

    Logged before any check, so a request for a booked slot is visible even though the
    provider refuses it: what the releaser asked for, not what the provider let through.
    """

    at: datetime
    practice_ods: str
    slot_id: str
    slot_state: str  # free / booked / removed / unknown (no such slot) when the request arrived
    restricted: bool
    if_match: str | None
    idempotency_key: str
    reason: str
    status: int  # the HTTP status the provider answered with


@dataclass(frozen=True)
class GroundTruthRow:
    """What really happened to one slot, which the GP Connect API can only hint at."""

    practice_ods: str
    slot_id: str
    schedule_id: str
    start_utc: datetime
    end_utc: datetime
    slot_type: str
    delivery_channel: str
    bookable: bool
    audience: str
    reserved_for_ods: str | None
    state: str
    booked_by_ods: str | None
    booked_by_kind: BookerKind | None
    booked_at: datetime | None
    cancelled_at: datetime | None
    released_at: datetime | None
    removed_at: datetime | None
    appointment_id: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "practice_ods": self.practice_ods,
            "slot_id": self.slot_id,
            "schedule_id": self.schedule_id,
            "start_utc": utc_iso(self.start_utc),
            "end_utc": utc_iso(self.end_utc),
            "slot_type": self.slot_type,
            "delivery_channel": self.delivery_channel,
            "bookable": self.bookable,
            "audience": self.audience,
            "reserved_for_ods": self.reserved_for_ods,
            "state": self.state,
            "booked_by_ods": self.booked_by_ods,
            "booked_by_kind": self.booked_by_kind,
            "booked_at": utc_iso(self.booked_at),
            "cancelled_at": utc_iso(self.cancelled_at),
            "released_at": utc_iso(self.released_at),
            "removed_at": utc_iso(self.removed_at),
            "appointment_id": self.appointment_id,
        }


@dataclass(frozen=True)
class BookingLogRow:
    """One appointment as the booking organisation's own system would export it."""

    appointment_id: str
    practice_ods: str
    slot_ids: tuple[str, ...]
    start: str
    end: str
    booked_at: datetime
    cancelled_at: datetime | None
    status: str
    booking_org_ods: str
    patient_ref: str

    def as_json(self) -> dict[str, Any]:
        return {
            "appointment_id": self.appointment_id,
            "practice_ods": self.practice_ods,
            "slot_ids": list(self.slot_ids),
            "start": self.start,
            "end": self.end,
            "booked_at": utc_iso(self.booked_at),
            "cancelled_at": utc_iso(self.cancelled_at),
            "status": self.status,
            "booking_org_ods": self.booking_org_ods,
            "patient_ref": self.patient_ref,
        }


class SandboxState:
    """Every practice's live book, the fault plan and the traffic counters."""

    def __init__(
        self,
        registry: Registry,
        *,
        clock: Clock | None = None,
        seed: int = DEFAULT_SEED,
        rebook_after_release_chance: float = REBOOK_AFTER_RELEASE_CHANCE,
    ) -> None:
        if not 0.0 <= rebook_after_release_chance <= 1.0:
            raise ValueError(f"rebook chance must be in [0, 1], not {rebook_after_release_chance}")
        self.registry = registry
        self.rebook_after_release_chance = rebook_after_release_chance
        # Every release request received, in arrival order (see ReleaseRequestRecord).
        self.release_requests: list[ReleaseRequestRecord] = []
        self.clock: Clock = clock or SystemClock()
        self.seed = seed
        self.started_at = self.clock.now()
        self.first_day = uk_day(self.started_at) - timedelta(days=1)
        self.faults = FaultInjector()
        self.traffic = TrafficCounter()
        self.lock = threading.RLock()  # hold it to read records consistently across calls
        self._index = EstateIndex(registry, seed)
        self._organisations = OrganisationDirectory(self._index)
        self._simulations: dict[str, PracticeSimulation] = {}
        self._now = self.started_at
        # Practices whose NHS 111 reservations are switched off (drift drills): their slots
        # restricted to urgent-care organisations stop showing in any search.
        self.nhs111_reservations_off: set[str] = set()

    def set_nhs111_reservations(self, ods: str, *, enabled: bool) -> None:
        """Switch a practice's NHS 111 reserved slots on or off, as a practice's set-up change would."""
        with self.lock:
            self.practice(ods)
            if enabled:
                self.nhs111_reservations_off.discard(ods)
            else:
                self.nhs111_reservations_off.add(ods)

    # -- time -------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The instant the simulation has been advanced to."""
        return self._now

    def advance_to(self, instant: datetime) -> None:
        """Apply every simulated event up to `instant` (never backwards)."""
        with self.lock:
            if instant <= self._now:
                return
            self._now = instant
            for simulation in self._simulations.values():
                simulation.advance_to(instant)

    def sync(self) -> datetime:
        """Advance to the clock's now; every public operation starts with this."""
        with self.lock:
            self.advance_to(self.clock.now())
            return self._now

    def load_all(self) -> None:
        """Build every practice's book now rather than on first use (e.g. to warm up)."""
        with self.lock:
            self.sync()
            for practice in self.registry.practices:
                self._simulation(practice.ods_code)

    # -- registry ---------------------------------------------------------------------------

    def practice(self, ods: str) -> Practice:
        """The registry row for `ods`, or 404 ORGANISATION_NOT_FOUND."""
        practice = self._index.by_ods.get(ods)
        if practice is None:
            raise SandboxError(404, "ORGANISATION_NOT_FOUND", f"no GP Connect provider for ODS code {ods}")
        return practice

    def profile(self, ods: str) -> PracticeProfile:
        """A practice's static profile: staff, sites, patients, supplier dialect."""
        with self.lock:
            self.practice(ods)
            return self._index.profile(ods)

    # -- GP Connect operations --------------------------------------------------------------

    def search_slots(
        self,
        ods: str,
        start: datetime,
        end: datetime,
        *,
        org_types: frozenset[str] = frozenset(),
        ods_codes: frozenset[str] = frozenset(),
    ) -> list[SlotRecord]:
        """Free, bookable, not-yet-started slots fully inside [start, end] that the filter sees."""
        with self.lock:
            now = self.sync()
            diary = self._simulation(ods).diary
            hide_111 = ods in self.nhs111_reservations_off
            return [
                slot
                for slot in diary.slots_within(start, end)
                if slot.state == "free"
                and slot.plan.bookable
                and slot.start > now
                and visible_to(slot, org_types, ods_codes)
                and not (hide_111 and URGENT_CARE in slot.org_types)
            ]

    def book_appointment(self, ods: str, request: BookingRequest) -> AppointmentRecord:
        """Book for a consumer (POST /Appointment); who booked is classified by ODS code.

        Like the demonstrator, the slot's restrictions are not re-checked here: the search
        filter is the gate. A slot that is no longer free is 409 DUPLICATE_REJECTED.
        """
        with self.lock:
            now = self.sync()
            diary = self._simulation(ods).diary
            patient = diary.patients_by_id.get(request.patient_id)
            if patient is None:
                raise SandboxError(
                    422, "REFERENCE_NOT_FOUND", f"Patient/{request.patient_id} is not registered at {ods}"
                )
            slots = []
            for slot_id in request.slot_ids:
                slot = diary.slots.get(slot_id)
                if slot is None or not slot.plan.bookable:
                    raise invalid_resource(f"Slot/{slot_id} is not a GP Connect bookable slot at {ods}")
                slots.append(slot)
            _check_contiguous(slots)
            if slots[0].start <= now:
                raise invalid_resource("cannot book a slot that has already started")
            if request.start != slots[0].start or request.end != slots[-1].end:
                raise invalid_resource("Appointment start/end must equal the booked slots' start/end")
            return diary.book(
                slots,
                patient=patient,
                booking_org=request.booking_org,
                kind=self._organisations.kind_of(request.booking_org.ods_code),
                at=now,
                description=request.description,
                comment=request.comment,
            )

    def appointment(self, ods: str, appointment_id: str) -> AppointmentRecord:
        with self.lock:
            self.sync()
            return self._simulation(ods).diary.appointment(appointment_id)

    def appointment_for_update(self, ods: str, appointment_id: str, if_match: str) -> AppointmentRecord:
        """The appointment if it may be amended or cancelled with this `If-Match` version.

        Stale version → 409 FHIR_CONSTRAINT_VIOLATION; cancelled or started → 422.
        """
        with self.lock:
            now = self.sync()
            appointment = self._simulation(ods).diary.appointment(appointment_id)
            current = self.appointment_version(appointment)
            if if_match != current:
                raise SandboxError(
                    409,
                    "FHIR_CONSTRAINT_VIOLATION",
                    f"Appointment/{appointment_id} is at version {current}, not {if_match}",
                )
            if appointment.status == "cancelled":
                raise invalid_resource(f"Appointment/{appointment_id} is cancelled and cannot be changed")
            if appointment.start <= now:
                raise invalid_resource(f"Appointment/{appointment_id} has started and cannot be changed")
            return appointment

    def amend_appointment(
        self, ods: str, appointment_id: str, *, if_match: str, description: str, comment: str | None
    ) -> AppointmentRecord:
        with self.lock:
            appointment = self.appointment_for_update(ods, appointment_id, if_match)
            self._simulation(ods).diary.amend(
                appointment, at=self._now, description=description, comment=comment
            )
            return appointment

    def cancel_appointment(
        self, ods: str, appointment_id: str, *, if_match: str, reason: str
    ) -> AppointmentRecord:
        with self.lock:
            appointment = self.appointment_for_update(ods, appointment_id, if_match)
            self._simulation(ods).diary.cancel(appointment, at=self._now, reason=reason)
            return appointment

    def patient_appointments(
        self, ods: str, patient_id: str, first_day: date, last_day: date
    ) -> list[AppointmentRecord]:
        """A patient's appointments (cancelled included) starting on UK days in the range."""
        with self.lock:
            self.sync()
            diary = self._simulation(ods).diary
            if patient_id not in diary.patients_by_id:
                raise SandboxError(
                    404, "PATIENT_NOT_FOUND", f"Patient/{patient_id} is not registered at {ods}"
                )
            start = uk_midnight(first_day)
            end = uk_midnight(last_day + timedelta(days=1))
            return sorted(
                (
                    a
                    for a in diary.appointments.values()
                    if a.patient.logical_id == patient_id and start <= a.start < end
                ),
                key=lambda a: (a.start, a.appointment_id),
            )

    def find_patient(self, ods: str, nhs_number: str) -> Patient | None:
        with self.lock:
            self.sync()
            return self._simulation(ods).diary.patients_by_nhs.get(nhs_number)

    # -- supplier-side slot management ------------------------------------------------------

    def slot(self, ods: str, slot_id: str) -> SlotRecord:
        with self.lock:
            self.sync()
            return self._simulation(ods).diary.slot(slot_id)

    def slot_version(self, slot: SlotRecord) -> str:
        return self._index.profile(slot.practice_ods).dialect.version(slot.version_ms)

    def appointment_version(self, appointment: AppointmentRecord) -> str:
        return self._index.profile(appointment.practice_ods).dialect.version(appointment.version_ms)

    def release_slot(
        self, ods: str, slot_id: str, *, if_match: str | None, idempotency_key: str, reason: str
    ) -> ReleaseOutcome:
        """Remove a reserved slot's restrictions, as the practice would in its GP system.

        Same key again → already released (no second release); stale `If-Match` → 412;
        booked or removed → 409; started or not restricted → 422; no `If-Match` → 428.
        """
        with self.lock:
            now = self.sync()
            simulation = self._simulation(ods)
            known = simulation.diary.slots.get(slot_id)
            record = functools.partial(
                ReleaseRequestRecord, now, ods, slot_id, known.state if known else "unknown",
                bool(known and known.is_restricted), if_match, idempotency_key, reason,
            )
            try:
                outcome = self._release_slot(simulation, slot_id, now, if_match, idempotency_key, reason)
            except SandboxError as error:
                self.release_requests.append(record(error.status))
                raise
            self.release_requests.append(record(200))
            return outcome

    def _release_slot(
        self,
        simulation: PracticeSimulation,
        slot_id: str,
        now: datetime,
        if_match: str | None,
        idempotency_key: str,
        reason: str,
    ) -> ReleaseOutcome:
        slot = simulation.diary.slot(slot_id)
        if slot.release_key is not None and slot.release_key == idempotency_key:
            return ReleaseOutcome(True, True, self.slot_version(slot))
        if if_match is None:
            raise SandboxError(
                428, "PRECONDITION_REQUIRED", "If-Match with the slot's version is required"
            )
        if if_match != self.slot_version(slot):
            raise SandboxError(
                412,
                "VERSION_MISMATCH",
                f"Slot/{slot_id} is at version {self.slot_version(slot)}, not {if_match}",
            )
        if slot.state != "free":
            raise SandboxError(409, "SLOT_NOT_FREE", f"Slot/{slot_id} is {slot.state}")
        if slot.start <= now:
            raise SandboxError(422, "SLOT_STARTED", f"Slot/{slot_id} started at {format_uk(slot.start)}")
        if not slot.is_restricted:
            raise SandboxError(422, "NOT_RESTRICTED", f"Slot/{slot_id} has no restrictions to release")
        simulation.diary.release(slot, at=now, key=idempotency_key, reason=reason)
        simulation.after_release(slot, now)
        return ReleaseOutcome(True, False, self.slot_version(slot))

    def book_now(
        self, practice_ods: str, slot_id: str, booking_org_ods: str, kind: BookerKind | None = None
    ) -> AppointmentRecord:
        """Book a slot at the current instant as `booking_org_ods` (for race tests).

        The patient is drawn deterministically from the practice's list; `kind` defaults to
        what the ODS code is (the 111 provider, a hub, a practice, or external).
        """
        with self.lock:
            now = self.sync()
            simulation = self._simulation(practice_ods)
            slot = simulation.diary.slot(slot_id)
            patient = Dice(self.seed, practice_ods, slot_id, booking_org_ods, "book-now").choice(
                simulation.profile.patients
            )
            return simulation.diary.book(
                [slot],
                patient=patient,
                booking_org=self._organisations.organisation(booking_org_ods),
                kind=kind or self._organisations.kind_of(booking_org_ods),
                at=now,
                description="Booked directly in the sandbox",
            )

    # -- exports ----------------------------------------------------------------------------

    def booking_log(self, org_ods: str) -> list[BookingLogRow]:
        """Every appointment `org_ods` booked at any practice, in booking order."""
        with self.lock:
            self.load_all()
            rows = [
                BookingLogRow(
                    appointment_id=a.appointment_id,
                    practice_ods=a.practice_ods,
                    slot_ids=tuple(s.slot_id for s in a.slots),
                    start=format_uk(a.start),
                    end=format_uk(a.end),
                    booked_at=a.created,
                    cancelled_at=a.cancelled_at,
                    status=a.status,
                    booking_org_ods=a.booking_org.ods_code,
                    patient_ref=a.patient.logical_id,
                )
                for a in self._all_appointments()
                if a.booking_org.ods_code == org_ods
            ]
            rows.sort(key=lambda r: (r.booked_at, r.practice_ods, r.appointment_id))
            return rows

    def ground_truth(
        self,
        practice: str | None = None,
        *,
        first_day: date | None = None,
        last_day: date | None = None,
    ) -> list[GroundTruthRow]:
        """One row per slot ever loaded, in registry then start order.

        Optionally for one practice and/or UK days in [first_day, last_day]. The booking
        columns describe the slot's latest booking, current or cancelled.
        """
        with self.lock:
            if practice is None:
                self.load_all()
                codes = [p.ods_code for p in self.registry.practices]
            else:
                self.practice(practice)
                self.sync()
                codes = [practice]
            rows: list[GroundTruthRow] = []
            for ods in codes:
                days = self._simulation(ods).diary.days
                for day in sorted(days):
                    if (first_day is None or day >= first_day) and (last_day is None or day <= last_day):
                        rows.extend(_ground_truth_row(slot) for slot in days[day])
            return rows

    # -- internals --------------------------------------------------------------------------

    def _simulation(self, ods: str) -> PracticeSimulation:
        simulation = self._simulations.get(ods)
        if simulation is None:
            self.practice(ods)
            simulation = PracticeSimulation(
                self._index, self._organisations, ods, self.first_day,
                rebook_after_release_chance=self.rebook_after_release_chance,
            )
            simulation.advance_to(self._now)
            self._simulations[ods] = simulation
        return simulation

    def _all_appointments(self) -> Iterator[AppointmentRecord]:
        for simulation in self._simulations.values():
            yield from simulation.diary.appointments.values()


def _check_contiguous(slots: list[SlotRecord]) -> None:
    """Several slots make one appointment only if adjacent, same schedule, type and channel."""
    if not slots:
        raise invalid_resource("an appointment must reference at least one slot")
    if len({slot.slot_id for slot in slots}) != len(slots):
        raise invalid_resource("the same slot is referenced twice")
    for previous, following in itertools.pairwise(slots):
        if (
            following.start != previous.end
            or following.session.schedule_id != previous.session.schedule_id
            or following.plan.channel != previous.plan.channel
            or following.plan.slot_type != previous.plan.slot_type
        ):
            raise invalid_resource(
                f"Slot/{previous.slot_id} and Slot/{following.slot_id} are not adjacent slots of one "
                "schedule with the same delivery channel and slot type"
            )


def _ground_truth_row(slot: SlotRecord) -> GroundTruthRow:
    appointment = slot.latest_appointment
    return GroundTruthRow(
        practice_ods=slot.practice_ods,
        slot_id=slot.slot_id,
        schedule_id=slot.session.schedule_id,
        start_utc=slot.start,
        end_utc=slot.end,
        slot_type=slot.plan.slot_type,
        delivery_channel=slot.plan.channel,
        bookable=slot.plan.bookable,
        audience=slot.plan.audience,
        reserved_for_ods=slot.plan.reserved_for_ods,
        state=slot.state,
        booked_by_ods=appointment.booking_org.ods_code if appointment else None,
        booked_by_kind=appointment.booked_by_kind if appointment else None,
        booked_at=appointment.created if appointment else None,
        cancelled_at=appointment.cancelled_at if appointment else None,
        released_at=slot.released_at,
        removed_at=slot.removed_at,
        appointment_id=appointment.appointment_id if appointment else None,
    )
