"""The appointment book: which sessions and slots each practice or hub runs on each UK day.

A day's book is a pure function of (seed, ODS code, UK calendar day), so any sandbox with
the same seed shows the same slots with the same ids, however long it has been running.
Sessions are defined in UK wall-clock time, so a 09:00 session is 09:00 GMT in winter and
09:00 BST (08:00Z) in summer.

Practices run weekday sessions in core hours (mornings 08:30–12:00, afternoons 14:00–18:00)
with GP, telephone and nurse schedules scaled to list size. About half of the routine slots
are GP Connect bookable; the rest never appear in a search. On every core day a practice
that accepts NHS 111 bookings reserves `nhs111_daily_quota(list_size)` slots for
`urgent-care` organisations with its 111 provider's ODS code, spread through the day, and a
couple of slots for each of its hubs (`gp-practice` + hub ODS). Two practices chronically
offer one slot fewer than their quota and about 5% of practice-days fall one short, so a
compliance dashboard has something real to flag.

Hubs run enhanced access: Mon–Fri 18:30–20:00 and Sat 09:00–17:00 in 15-minute slots, all
bookable, mostly unrestricted, with a few Saturday slots reserved for NHS 111.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from common.uktime import uk_local
from connectors.registry import Practice, Registry, nhs111_daily_quota
from sandbox.determinism import Dice, stable_int, stable_random
from sandbox.dialects import SupplierDialect, dialect_for
from sandbox.people import (
    NHS_TEST_RANGE_SIZE,
    Gender,
    Patient,
    PersonName,
    nhs_numbers_in_block,
    synthetic_name,
    synthetic_patient,
)

Audience = Literal["general", "nhs111", "hub", "not_bookable"]
DeliveryChannel = Literal["In-person", "Telephone", "Video"]
SessionKind = Literal["gp", "telephone", "nurse", "clinic", "hub_gp", "hub_nurse"]

URGENT_CARE = "urgent-care"
GP_PRACTICE = "gp-practice"

PATIENTS_PER_PRACTICE = 120
_PATIENT_BLOCK = 160  # candidate NHS number bodies per practice; ~9% fail the check digit
CHRONIC_SHORTFALL_PRACTICES = 2
DAILY_SHORTFALL_CHANCE = 0.05
HUB_RESERVED_PER_HUB = 2
HUB_SATURDAY_111_SLOTS = 4
BOOKABLE_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class JobRole:
    """An SDS job role as carried in the PractitionerRole extension."""

    code: str
    display: str


GP_ROLE = JobRole("R0260", "General Medical Practitioner")
SALARIED_GP_ROLE = JobRole("R0270", "Salaried General Practitioner")
NURSE_PRACTITIONER_ROLE = JobRole("R0600", "Specialist Nurse Practitioner")
STAFF_NURSE_ROLE = JobRole("R0620", "Staff Nurse")
HEALTHCARE_ASSISTANT_ROLE = JobRole("R1480", "Healthcare Assistant")


@dataclass(frozen=True, slots=True)
class Clinician:
    practitioner_id: str
    name: PersonName
    gender: Gender
    sds_user_id: str
    role: JobRole


@dataclass(frozen=True, slots=True)
class Site:
    """A surgery building: the Location every Schedule must name."""

    location_id: str
    name: str
    address_lines: tuple[str, ...]
    town: str
    postcode: str
    phone: str


@dataclass(frozen=True, slots=True, eq=False)
class Session:
    """One clinician's (or one clinic's) block of slots on one day: a GP Connect Schedule."""

    schedule_id: str
    kind: SessionKind
    name: str
    role: JobRole
    clinician: Clinician | None
    site: Site
    start: datetime
    end: datetime

    @property
    def is_nursing(self) -> bool:
        return self.kind in ("nurse", "clinic", "hub_nurse")


@dataclass(frozen=True, slots=True, eq=False)
class PlannedSlot:
    """A slot as the practice configured it when the day was loaded."""

    slot_id: str
    session: Session
    start: datetime
    end: datetime
    slot_type: str
    channel: DeliveryChannel
    audience: Audience
    org_types: tuple[str, ...] = ()
    ods_codes: tuple[str, ...] = ()

    @property
    def bookable(self) -> bool:
        return self.audience != "not_bookable"

    @property
    def reserved_for_ods(self) -> str | None:
        return self.ods_codes[0] if self.ods_codes else None


@dataclass(frozen=True)
class DayBook:
    day: date
    sessions: tuple[Session, ...]
    slots: tuple[PlannedSlot, ...]


@dataclass(frozen=True)
class PracticeProfile:
    """Everything static about one practice or hub: staff, sites, patients, reservations."""

    practice: Practice
    seed: int
    dialect: SupplierDialect
    organization_id: str
    sites: tuple[Site, ...]
    gps: tuple[Clinician, ...]
    nurses: tuple[Clinician, ...]
    gp_slot_minutes: int
    patients: tuple[Patient, ...]
    hub_members: tuple[str, ...]
    member_population: int
    chronic_111_shortfall: bool

    @property
    def ods(self) -> str:
        return self.practice.ods_code

    def nhs111_slots_offered(self, day: date) -> int:
        """How many 111 slots this practice actually reserves on a core day."""
        if not self.practice.accepts_111_booking or self.practice.kind != "practice":
            return 0
        offered = nhs111_daily_quota(self.practice.list_size)
        if self.chronic_111_shortfall:
            offered -= 1
        if Dice(self.seed, self.ods, day.isoformat(), "111-shortfall").chance(DAILY_SHORTFALL_CHANCE):
            offered -= 1
        return max(0, offered)


class EstateIndex:
    """Registry-wide facts each practice's book depends on, and lazily built profiles."""

    def __init__(self, registry: Registry, seed: int) -> None:
        self.registry = registry
        self.seed = seed
        self.by_ods = registry.by_ods()
        self.hub_codes = frozenset(p.ods_code for p in registry.practices if p.kind == "hub")
        self.nhs111_providers = frozenset(
            p.nhs111_provider_ods
            for p in registry.practices
            if p.accepts_111_booking and p.nhs111_provider_ods
        )
        members: dict[str, list[str]] = {hub: [] for hub in self.hub_codes}
        for practice in registry.practices:
            for hub in practice.booking_hubs:
                members.setdefault(hub, []).append(practice.ods_code)
        self.hub_members = {hub: tuple(sorted(codes)) for hub, codes in members.items()}
        self.chronic_shortfall = _chronic_shortfall_practices(registry, seed)
        self._position = {p.ods_code: i for i, p in enumerate(registry.practices)}
        self._patient_block = min(_PATIENT_BLOCK, NHS_TEST_RANGE_SIZE // max(1, len(registry.practices)))
        self._profiles: dict[str, PracticeProfile] = {}

    def profile(self, ods: str) -> PracticeProfile:
        profile = self._profiles.get(ods)
        if profile is None:
            profile = self._build_profile(self.by_ods[ods])
            self._profiles[ods] = profile
        return profile

    def _build_profile(self, practice: Practice) -> PracticeProfile:
        seed, ods = self.seed, practice.ods_code
        dialect = dialect_for(practice)
        rng = stable_random(seed, ods, "staff")
        members = self.hub_members.get(ods, ())
        population = (
            sum(self.by_ods[m].list_size for m in members) if practice.kind == "hub" else practice.list_size
        )
        if practice.kind == "hub":
            gp_count, nurse_count = _hub_clinician_count(population) + 3, 2
        else:
            gp_count = max(
                _gp_sessions_per_half_day(population) + _telephone_sessions_per_half_day(population) + 1,
                round(population / 1800),
            )
            nurse_count = max(2, round(population / 4000))
        key = 0
        gps: list[Clinician] = []
        for _ in range(gp_count):
            role = GP_ROLE if rng.random() < 0.6 else SALARIED_GP_ROLE
            gps.append(_clinician(seed, dialect, ods, key, role, "Dr", rng))
            key += 1
        nurses: list[Clinician] = []
        for _ in range(nurse_count):
            role = NURSE_PRACTITIONER_ROLE if rng.random() < 0.3 else STAFF_NURSE_ROLE
            nurses.append(_clinician(seed, dialect, ods, key, role, None, rng))
            key += 1
        first_body = self._position[ods] * self._patient_block
        patients = tuple(
            synthetic_patient(seed, nhs, dialect.patient_id(seed, nhs))
            for nhs in nhs_numbers_in_block(first_body, self._patient_block, PATIENTS_PER_PRACTICE)
        )
        return PracticeProfile(
            practice=practice,
            seed=seed,
            dialect=dialect,
            organization_id=dialect.organization_id(seed, ods),
            sites=_sites(seed, dialect, practice, rng),
            gps=tuple(gps),
            nurses=tuple(nurses),
            gp_slot_minutes=15 if rng.random() < 0.3 else 10,
            patients=patients,
            hub_members=members,
            member_population=population,
            chronic_111_shortfall=ods in self.chronic_shortfall,
        )


def plan_day(profile: PracticeProfile, day: date) -> DayBook:
    """The sessions and slots `profile`'s practice or hub runs on UK day `day`."""
    if profile.practice.kind == "hub":
        return _plan_hub_day(profile, day)
    return _plan_practice_day(profile, day)


class _DayBuilder:
    """Accumulates one day's sessions and slots, numbering them as the supplier would."""

    def __init__(self, profile: PracticeProfile, day: date) -> None:
        self.profile = profile
        self.day = day
        self.rng = stable_random(profile.seed, profile.ods, day.isoformat(), "book")
        self.sessions: list[Session] = []
        self.slots: list[PlannedSlot] = []

    def session(
        self,
        kind: SessionKind,
        name: str,
        role: JobRole,
        clinician: Clinician | None,
        site: Site,
        start: time,
        end: time,
    ) -> Session:
        profile = self.profile
        session = Session(
            schedule_id=profile.dialect.schedule_id(profile.seed, profile.ods, self.day, len(self.sessions)),
            kind=kind,
            name=name,
            role=role,
            clinician=clinician,
            site=site,
            start=uk_local(self.day, start).astimezone(UTC),
            end=uk_local(self.day, end).astimezone(UTC),
        )
        self.sessions.append(session)
        return session

    def fill(self, session: Session, minutes: int, pick: _SlotChooser, bookable_share: float) -> None:
        step = timedelta(minutes=minutes)
        start = session.start
        while start + step <= session.end:
            slot_type, channel = pick(self.rng)
            audience: Audience = "general" if self.rng.random() < bookable_share else "not_bookable"
            self.slots.append(
                PlannedSlot(
                    slot_id=self.profile.dialect.slot_id(
                        self.profile.seed, self.profile.ods, self.day, len(self.slots)
                    ),
                    session=session,
                    start=start,
                    end=start + step,
                    slot_type=slot_type,
                    channel=channel,
                    audience=audience,
                )
            )
            start += step

    def reserve(
        self, slot: PlannedSlot, audience: Audience, org_type: str, ods: str, slot_type: str | None = None
    ) -> None:
        index = next(i for i, planned in enumerate(self.slots) if planned.slot_id == slot.slot_id)
        self.slots[index] = replace(
            slot,
            audience=audience,
            org_types=(org_type,),
            ods_codes=(ods,),
            slot_type=slot_type or slot.slot_type,
        )

    def build(self) -> DayBook:
        return DayBook(self.day, tuple(self.sessions), tuple(self.slots))


class _SlotChooser:
    """Draws (slot type, delivery channel) for each slot of a session from weighted options."""

    def __init__(self, *options: tuple[float, str, DeliveryChannel]) -> None:
        total = sum(weight for weight, _, _ in options)
        running = 0.0
        self._thresholds: list[tuple[float, str, DeliveryChannel]] = []
        for weight, slot_type, channel in options:
            running += weight / total
            self._thresholds.append((running, slot_type, channel))

    def __call__(self, rng: random.Random) -> tuple[str, DeliveryChannel]:
        draw = rng.random()
        for threshold, slot_type, channel in self._thresholds:
            if draw < threshold:
                return slot_type, channel
        _, slot_type, channel = self._thresholds[-1]
        return slot_type, channel


_GP_SLOTS = _SlotChooser(
    (0.55, "Routine GP Appointment", "In-person"),
    (0.33, "Same Day GP Appointment", "In-person"),
    (0.12, "GP Video Consultation", "Video"),
)
_TELEPHONE_SLOTS = _SlotChooser((1.0, "GP Telephone Consultation", "Telephone"))
_NURSE_SLOTS = _SlotChooser(
    (0.4, "Practice Nurse Appointment", "In-person"),
    (0.25, "Chronic Disease Review", "In-person"),
    (0.15, "Cervical Screening", "In-person"),
    (0.1, "Dressing / Wound Care", "In-person"),
    (0.1, "Nurse Telephone Review", "Telephone"),
)
_CLINIC_SLOTS = _SlotChooser((1.0, "Blood Test", "In-person"))
_HUB_GP_SLOTS = _SlotChooser(
    (0.8, "Enhanced Access GP Appointment", "In-person"),
    (0.2, "Enhanced Access Telephone Appointment", "Telephone"),
)
_HUB_NURSE_SLOTS = _SlotChooser((1.0, "Enhanced Access Nurse Appointment", "In-person"))
_NHS111_SLOT_TYPE = "NHS 111 Appointment"


def _plan_practice_day(profile: PracticeProfile, day: date) -> DayBook:
    builder = _DayBuilder(profile, day)
    if day.weekday() >= 5:
        return builder.build()
    rng = builder.rng
    size = profile.practice.list_size
    halves = (
        (rng.choice((time(8, 30), time(9, 0))), rng.choice((time(11, 30), time(12, 0))), "Morning"),
        (
            rng.choice((time(14, 0), time(14, 30), time(15, 0))),
            rng.choice((time(17, 30), time(18, 0))),
            "Afternoon",
        ),
    )
    for start, end, half in halves:
        gp_sessions = _gp_sessions_per_half_day(size)
        if gp_sessions > 1 and rng.random() < 0.15:
            gp_sessions -= 1  # leave, training or a locum gap
        telephone_sessions = _telephone_sessions_per_half_day(size)
        on_duty = rng.sample(profile.gps, gp_sessions + telephone_sessions)
        for gp in on_duty[:gp_sessions]:
            session = builder.session(
                "gp", f"GP {half} Surgery", gp.role, gp, _site_for(profile, rng), start, end
            )
            builder.fill(session, profile.gp_slot_minutes, _GP_SLOTS, BOOKABLE_SHARE)
        for gp in on_duty[gp_sessions:]:
            session = builder.session(
                "telephone", "GP Telephone Consultations", gp.role, gp, profile.sites[0], start, end
            )
            builder.fill(session, 10, _TELEPHONE_SLOTS, BOOKABLE_SHARE)
        nurse_sessions = max(1, round(size / 8000))
        for nurse in rng.sample(profile.nurses, nurse_sessions):
            if rng.random() < 0.25:
                # Phlebotomy runs as a clinic with whoever is on, not a named clinician's list.
                session = builder.session(
                    "clinic",
                    "Phlebotomy Clinic",
                    HEALTHCARE_ASSISTANT_ROLE,
                    None,
                    _site_for(profile, rng),
                    start,
                    end,
                )
                builder.fill(session, 10, _CLINIC_SLOTS, BOOKABLE_SHARE)
            else:
                session = builder.session(
                    "nurse",
                    "Practice Nurse Clinic",
                    nurse.role,
                    nurse,
                    _site_for(profile, rng),
                    start,
                    end,
                )
                builder.fill(session, 15, _NURSE_SLOTS, BOOKABLE_SHARE)
    _reserve_practice_slots(builder)
    return builder.build()


def _reserve_practice_slots(builder: _DayBuilder) -> None:
    """Turn some GP/telephone slots into NHS 111 and hub reservations."""
    profile = builder.profile
    practice = profile.practice
    candidates = sorted(
        (s for s in builder.slots if s.session.kind in ("gp", "telephone")),
        key=lambda s: (s.start, s.slot_id),
    )
    taken: set[str] = set()
    offered = profile.nhs111_slots_offered(builder.day)
    if offered and practice.nhs111_provider_ods:
        for slot in _spread_evenly(candidates, offered):
            builder.reserve(slot, "nhs111", URGENT_CARE, practice.nhs111_provider_ods, _NHS111_SLOT_TYPE)
            taken.add(slot.slot_id)
    in_person = [s for s in candidates if s.session.kind == "gp" and s.slot_id not in taken]
    for hub in practice.booking_hubs:
        for slot in _pick_across_day(builder.rng, in_person, HUB_RESERVED_PER_HUB):
            builder.reserve(slot, "hub", GP_PRACTICE, hub)
            in_person.remove(slot)


def _plan_hub_day(profile: PracticeProfile, day: date) -> DayBook:
    builder = _DayBuilder(profile, day)
    weekday = day.weekday()
    if weekday == 6:
        return builder.build()
    rng = builder.rng
    clinicians = _hub_clinician_count(profile.member_population)
    site = profile.sites[0]
    if weekday < 5:
        for gp in rng.sample(profile.gps, clinicians):
            session = builder.session(
                "hub_gp", "Enhanced Access Evening Clinic", gp.role, gp, site, time(18, 30), time(20, 0)
            )
            builder.fill(session, 15, _HUB_GP_SLOTS, 1.0)
        return builder.build()
    for gp in rng.sample(profile.gps, clinicians + 1):
        session = builder.session(
            "hub_gp", "Enhanced Access Saturday Clinic", gp.role, gp, site, time(9, 0), time(17, 0)
        )
        builder.fill(session, 15, _HUB_GP_SLOTS, 1.0)
    nurse = rng.choice(profile.nurses)
    session = builder.session(
        "hub_nurse", "Enhanced Access Nurse Clinic", nurse.role, nurse, site, time(9, 0), time(13, 0)
    )
    builder.fill(session, 15, _HUB_NURSE_SLOTS, 1.0)
    provider = profile.practice.nhs111_provider_ods
    if profile.practice.accepts_111_booking and provider:
        gp_slots = sorted((s for s in builder.slots if s.session.kind == "hub_gp"), key=lambda s: s.start)
        for slot in _spread_evenly(gp_slots, HUB_SATURDAY_111_SLOTS):
            builder.reserve(slot, "nhs111", URGENT_CARE, provider)
    return builder.build()


def _spread_evenly(ordered: list[PlannedSlot], count: int) -> list[PlannedSlot]:
    """`count` slots at evenly spaced ranks of a start-ordered list (so evenly through the day)."""
    if not ordered:
        return []
    chosen: list[PlannedSlot] = []
    for i in range(min(count, len(ordered))):
        position = int((i + 0.5) * len(ordered) / count) % len(ordered)
        while ordered[position] in chosen:
            position = (position + 1) % len(ordered)
        chosen.append(ordered[position])
    return chosen


def _pick_across_day(rng: random.Random, slots: list[PlannedSlot], count: int) -> list[PlannedSlot]:
    """`count` random slots, one from each equal part of the day where possible."""
    if not slots:
        return []
    ordered = sorted(slots, key=lambda s: (s.start, s.slot_id))
    picked: list[PlannedSlot] = []
    for part in range(count):
        chunk = ordered[part * len(ordered) // count : (part + 1) * len(ordered) // count]
        options = [s for s in chunk if s not in picked]
        if options:
            picked.append(rng.choice(options))
    return picked


def _gp_sessions_per_half_day(list_size: int) -> int:
    return max(1, round(list_size / 3500))


def _telephone_sessions_per_half_day(list_size: int) -> int:
    return (1 if list_size >= 5000 else 0) + (1 if list_size >= 20000 else 0)


def _hub_clinician_count(member_population: int) -> int:
    return max(1, round(member_population / 25000))


def _site_for(profile: PracticeProfile, rng: random.Random) -> Site:
    """Main surgery, or now and then the branch surgery when the practice has one."""
    if len(profile.sites) > 1 and rng.random() < 0.3:
        return profile.sites[1]
    return profile.sites[0]


def _clinician(
    seed: int,
    dialect: SupplierDialect,
    ods: str,
    key: int,
    role: JobRole,
    prefix: str | None,
    rng: random.Random,
) -> Clinician:
    gender: Gender = "female" if rng.random() < 0.6 else "male"
    title = prefix or ("Mr" if gender == "male" else rng.choice(("Mrs", "Ms", "Miss")))
    return Clinician(
        practitioner_id=dialect.practitioner_id(seed, ods, key),
        name=synthetic_name((seed, ods, "clinician", key), gender, title),
        gender=gender,
        sds_user_id=f"{stable_int(seed, ods, 'sds-user', key) % 10**12:012d}",
        role=role,
    )


_POSTCODE_DISTRICTS = ("PO7", "PO8", "PO9", "PO10", "PO12", "PO13", "PO14", "PO15", "PO16", "GU31")
_STREETS = (
    "High Street",
    "Station Road",
    "West Street",
    "Church Road",
    "London Road",
    "Park Road",
    "Mill Lane",
    "The Avenue",
    "Grange Road",
    "Victoria Road",
)


def _sites(seed: int, dialect: SupplierDialect, practice: Practice, rng: random.Random) -> tuple[Site, ...]:
    district = rng.choice(_POSTCODE_DISTRICTS)
    area_code = "01730" if district.startswith("GU") else rng.choice(("023 92", "01329"))

    def site(key: int, name: str) -> Site:
        number = rng.randint(1, 180)
        return Site(
            location_id=dialect.location_id(seed, practice.ods_code, key),
            name=name,
            address_lines=(f"{number} {rng.choice(_STREETS)}",),
            town=practice.name.split(" ")[0],
            postcode=f"{district} {rng.randint(1, 9)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
            f"{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}",
            phone=f"{area_code} {rng.randint(100000, 999999)}",
        )

    sites = [site(0, practice.name)]
    if practice.kind == "practice" and practice.list_size > 15000:
        sites.append(site(1, f"{practice.name} (Branch Surgery)"))
    return tuple(sites)


def _chronic_shortfall_practices(registry: Registry, seed: int) -> frozenset[str]:
    """The practices that routinely reserve one 111 slot fewer than their quota."""
    eligible = [
        p.ods_code
        for p in registry.practices
        if p.kind == "practice" and p.accepts_111_booking and nhs111_daily_quota(p.list_size) > 1
    ]
    eligible.sort(key=lambda ods: stable_int(seed, ods, "chronic-111-shortfall"))
    return frozenset(eligible[:CHRONIC_SHORTFALL_PRACTICES])
