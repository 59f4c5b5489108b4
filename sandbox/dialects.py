"""How each GP system's GP Connect endpoint differs on the wire.

Real providers pass the same conformance suite yet differ in ways a consumer must tolerate:
id formats, versionId formats, the order of searchset entries, whether `meta.profile` is
sent, object-versus-array slips copied from the spec examples, and which optional elements
appear. Consumers tested only against one shape break on the other, so the sandbox
reproduces both:

- EMIS Web: numeric ids, versionId = epoch milliseconds, slots sorted by start followed by
  Schedule/Practitioner/Location/Organization, profiles present, `Location.telecom` and
  `Organization.address`/`telecom` as single objects, Organization always included, and an
  empty searchset carries `"entry": []`.
- SystmOne: opaque alphanumeric ids, versionId in .NET ticks (18 digits), each Schedule
  followed by its own slots, no `meta.profile`, arrays where STU3 wants arrays, no
  Practitioner on nurse schedules, no `planningHorizon`, Organization only when
  `Location:managingOrganization` is asked for, and an empty searchset has no `entry`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date

from connectors.registry import Practice
from sandbox.determinism import stable_digest

_EPOCH_DAY = date(2000, 1, 1)
# Room per day in EMIS-style numeric ids, so no practice's day can spill into the next.
_SLOTS_PER_DAY = 100_000
_SCHEDULES_PER_DAY = 1_000
_DOTNET_TICKS_AT_UNIX_EPOCH = 621_355_968_000_000_000
_TICKS_PER_MS = 10_000


@dataclass(frozen=True)
class SupplierDialect:
    """One GP system's wire habits. Ids depend only on stable keys, never on state."""

    system: str
    publisher: str
    numeric_ids: bool
    version_in_ticks: bool
    send_profiles: bool
    contacts_as_single_objects: bool
    slots_grouped_by_schedule: bool
    practitioner_on_nurse_schedules: bool
    send_planning_horizon: bool
    always_include_organization: bool
    empty_bundle_has_entry: bool

    def slot_id(self, seed: int, ods: str, day: date, index: int) -> str:
        if self.numeric_ids:
            return str((day - _EPOCH_DAY).days * _SLOTS_PER_DAY + index)
        return _opaque(seed, ods, "slot", day, index)

    def schedule_id(self, seed: int, ods: str, day: date, index: int) -> str:
        if self.numeric_ids:
            return str((day - _EPOCH_DAY).days * _SCHEDULES_PER_DAY + index)
        return _opaque(seed, ods, "schedule", day, index)

    def practitioner_id(self, seed: int, ods: str, key: int) -> str:
        return str(key + 1) if self.numeric_ids else _opaque(seed, ods, "practitioner", key)

    def location_id(self, seed: int, ods: str, key: int) -> str:
        return str(key + 1) if self.numeric_ids else _opaque(seed, ods, "location", key)

    def organization_id(self, seed: int, ods: str) -> str:
        return "1" if self.numeric_ids else _opaque(seed, ods, "organization")

    def appointment_id(self, seed: int, ods: str, sequence: int) -> str:
        if self.numeric_ids:
            return str(100_000 + sequence)
        return _opaque(seed, ods, "appointment", sequence)

    def patient_id(self, seed: int, nhs_number: str) -> str:
        if self.numeric_ids:
            return str(int(nhs_number[3:9]) + 1_000_000)  # unique: the NHS number body is
        return _opaque(seed, "patient", nhs_number)

    def version(self, epoch_ms: int) -> str:
        if self.version_in_ticks:
            return str(_DOTNET_TICKS_AT_UNIX_EPOCH + epoch_ms * _TICKS_PER_MS)
        return str(epoch_ms)


EMIS_WEB = SupplierDialect(
    system="EMIS Web",
    publisher="EMIS Health",
    numeric_ids=True,
    version_in_ticks=False,
    send_profiles=True,
    contacts_as_single_objects=True,
    slots_grouped_by_schedule=False,
    practitioner_on_nurse_schedules=True,
    send_planning_horizon=True,
    always_include_organization=True,
    empty_bundle_has_entry=True,
)

SYSTMONE = SupplierDialect(
    system="SystmOne",
    publisher="TPP",
    numeric_ids=False,
    version_in_ticks=True,
    send_profiles=False,
    contacts_as_single_objects=False,
    slots_grouped_by_schedule=True,
    practitioner_on_nurse_schedules=False,
    send_planning_horizon=False,
    always_include_organization=False,
    empty_bundle_has_entry=False,
)


def dialect_for(practice: Practice) -> SupplierDialect:
    """SystmOne practices get TPP's habits; EMIS Web and any other system get EMIS's."""
    return SYSTMONE if practice.clinical_system == "SystmOne" else EMIS_WEB


def _opaque(*parts: object) -> str:
    """A stable 16-character upper-case alphanumeric id (base32 of a digest)."""
    return base64.b32encode(stable_digest(*parts, size=10)).decode()
