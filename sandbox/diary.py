"""The live state of one practice's (or hub's) book: slot states, appointments, releases.

`book.py` says what the practice configured; this module says what has happened since:
who booked which slot, which bookings were cancelled, which slots the practice removed and
which 111 reservations were released. Every change bumps the resource's version, which is
what `meta.versionId`, ETags and `If-Match` are built from.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from common.uktime import uk_day
from sandbox.book import DayBook, PlannedSlot, PracticeProfile, Session
from sandbox.errors import SandboxError, no_record
from sandbox.people import Patient

SlotState = Literal["free", "booked", "removed"]
BookerKind = Literal["practice", "nhs111", "hub", "external"]
AppointmentStatus = Literal["booked", "cancelled"]


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class BookingOrganisation:
    """The organisation that made a booking (the Appointment's contained Organization)."""

    ods_code: str
    name: str
    telecom: str | None = None
    org_type: str | None = None


@dataclass(slots=True, eq=False)
class SlotRecord:
    """A slot's configuration plus everything that has happened to it."""

    plan: PlannedSlot
    practice_ods: str
    opened_at: datetime
    version_ms: int
    org_types: tuple[str, ...]
    ods_codes: tuple[str, ...]
    state: SlotState = "free"
    latest_appointment: AppointmentRecord | None = None
    released_at: datetime | None = None
    release_key: str | None = None
    release_reason: str | None = None
    removed_at: datetime | None = None
    rendered: bytes | None = None  # cached searchset entry, cleared by every change

    @property
    def slot_id(self) -> str:
        return self.plan.slot_id

    @property
    def start(self) -> datetime:
        return self.plan.start

    @property
    def end(self) -> datetime:
        return self.plan.end

    @property
    def session(self) -> Session:
        return self.plan.session

    @property
    def is_restricted(self) -> bool:
        return bool(self.org_types or self.ods_codes)

    def touch(self, at: datetime) -> None:
        """Record a change at `at`: versions only ever increase."""
        self.version_ms = max(self.version_ms + 1, epoch_ms(at))
        self.rendered = None


@dataclass(slots=True, eq=False)
class AppointmentRecord:
    appointment_id: str
    practice_ods: str
    slots: tuple[SlotRecord, ...]
    patient: Patient
    booking_org: BookingOrganisation
    booked_by_kind: BookerKind
    created: datetime
    description: str
    comment: str | None
    version_ms: int
    status: AppointmentStatus = "booked"
    cancelled_at: datetime | None = None
    cancellation_reason: str | None = None

    @property
    def start(self) -> datetime:
        return self.slots[0].start

    @property
    def end(self) -> datetime:
        return self.slots[-1].end

    @property
    def session(self) -> Session:
        return self.slots[0].session

    def touch(self, at: datetime) -> None:
        self.version_ms = max(self.version_ms + 1, epoch_ms(at))


class PracticeDiary:
    """One practice's slots (indexed by id and by UK day), appointments and patients."""

    def __init__(self, profile: PracticeProfile) -> None:
        self.profile = profile
        self.slots: dict[str, SlotRecord] = {}
        self.days: dict[date, list[SlotRecord]] = {}
        self.appointments: dict[str, AppointmentRecord] = {}
        self.patients_by_id = {p.logical_id: p for p in profile.patients}
        self.patients_by_nhs = {p.nhs_number: p for p in profile.patients}
        self._appointment_sequence = 0

    @property
    def ods(self) -> str:
        return self.profile.ods

    def open_day(self, book: DayBook, at: datetime) -> list[SlotRecord]:
        """Load a day's configured slots into the live book, all free."""
        version = epoch_ms(at)
        ods = self.ods
        records = [
            SlotRecord(
                plan=plan,
                practice_ods=ods,
                opened_at=at,
                version_ms=version,
                org_types=plan.org_types,
                ods_codes=plan.ods_codes,
            )
            for plan in sorted(book.slots, key=lambda p: (p.start, p.slot_id))
        ]
        self.days[book.day] = records
        self.slots.update((record.slot_id, record) for record in records)
        return records

    def slots_within(self, start: datetime, end: datetime) -> Iterator[SlotRecord]:
        """Slots lying fully inside [start, end], in start order (via the per-day index)."""
        day, last = uk_day(start), uk_day(end)
        while day <= last:
            for slot in self.days.get(day, ()):
                if slot.start >= start and slot.end <= end:
                    yield slot
            day += timedelta(days=1)

    def slot(self, slot_id: str) -> SlotRecord:
        slot = self.slots.get(slot_id)
        if slot is None:
            raise no_record(f"Slot/{slot_id} does not exist at {self.ods}")
        return slot

    def appointment(self, appointment_id: str) -> AppointmentRecord:
        appointment = self.appointments.get(appointment_id)
        if appointment is None:
            raise no_record(f"Appointment/{appointment_id} does not exist at {self.ods}")
        return appointment

    def book(
        self,
        slots: Sequence[SlotRecord],
        *,
        patient: Patient,
        booking_org: BookingOrganisation,
        kind: BookerKind,
        at: datetime,
        description: str,
        comment: str | None = None,
    ) -> AppointmentRecord:
        """Book free slots into one appointment; a taken slot is a 409 DUPLICATE_REJECTED."""
        for slot in slots:
            if slot.state != "free":
                raise SandboxError(
                    409, "DUPLICATE_REJECTED", f"Slot/{slot.slot_id} is no longer free ({slot.state})"
                )
        self._appointment_sequence += 1
        profile = self.profile
        appointment = AppointmentRecord(
            appointment_id=profile.dialect.appointment_id(profile.seed, self.ods, self._appointment_sequence),
            practice_ods=self.ods,
            slots=tuple(slots),
            patient=patient,
            booking_org=booking_org,
            booked_by_kind=kind,
            created=at,
            description=description,
            comment=comment,
            version_ms=epoch_ms(at),
        )
        self.appointments[appointment.appointment_id] = appointment
        for slot in slots:
            slot.state = "booked"
            slot.latest_appointment = appointment
            slot.touch(at)
        return appointment

    def cancel(self, appointment: AppointmentRecord, *, at: datetime, reason: str) -> None:
        """Cancel and free the slots, which show in searches again."""
        appointment.status = "cancelled"
        appointment.cancelled_at = at
        appointment.cancellation_reason = reason
        appointment.touch(at)
        for slot in appointment.slots:
            if slot.latest_appointment is appointment:
                slot.state = "free"
                slot.touch(at)

    def amend(
        self, appointment: AppointmentRecord, *, at: datetime, description: str, comment: str | None
    ) -> None:
        appointment.description = description
        appointment.comment = comment
        appointment.touch(at)

    def release(self, slot: SlotRecord, *, at: datetime, key: str, reason: str) -> None:
        """Drop a reservation's restrictions: the slot becomes visible to everyone."""
        slot.org_types = ()
        slot.ods_codes = ()
        slot.released_at = at
        slot.release_key = key
        slot.release_reason = reason
        slot.touch(at)

    def remove(self, slot: SlotRecord, *, at: datetime) -> None:
        """The practice deletes a free slot (sickness, session cut short)."""
        slot.state = "removed"
        slot.removed_at = at
        slot.touch(at)
