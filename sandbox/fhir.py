"""FHIR STU3 resources as each GP system renders them on the wire.

`PracticeRenderer` turns one practice's records into GP Connect JSON in that practice's
supplier dialect (see `dialects.py`). Searchsets are assembled from pre-serialised entry
bytes: a slot's entry is cached on the slot until it changes, and schedule, practitioner,
location and organization entries are cached per practice, so a 14-day search costs little
more than filtering the day index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson

from common.uktime import format_uk, uk_day
from connectors.gpconnect.spine import (
    BOOKING_ORG_URL,
    CANCELLATION_REASON_URL,
    DELIVERY_CHANNEL_URL,
    NHS_NUMBER_SYSTEM,
    ODS_SYSTEM,
    ORG_TYPE_SYSTEM,
    PRACTITIONER_ROLE_URL,
    SDS_USER_SYSTEM,
    SPINE_ERROR_SYSTEM,
)
from sandbox.book import Clinician, JobRole, PracticeProfile, Session, Site
from sandbox.determinism import stable_int
from sandbox.diary import AppointmentRecord, SlotRecord, epoch_ms
from sandbox.people import Patient
from sandbox.simulation import day_opens_at
from sandbox.slot_search import SlotQuery

_PROFILE_BASE = "https://fhir.nhs.uk/STU3/StructureDefinition/"
SLOT_PROFILE = _PROFILE_BASE + "GPConnect-Slot-1"
SCHEDULE_PROFILE = _PROFILE_BASE + "GPConnect-Schedule-1"
APPOINTMENT_PROFILE = _PROFILE_BASE + "GPConnect-Appointment-1"
PRACTITIONER_PROFILE = _PROFILE_BASE + "CareConnect-GPC-Practitioner-1"
LOCATION_PROFILE = _PROFILE_BASE + "CareConnect-GPC-Location-1"
ORGANIZATION_PROFILE = _PROFILE_BASE + "CareConnect-GPC-Organization-1"
PATIENT_PROFILE = _PROFILE_BASE + "CareConnect-GPC-Patient-1"
OPERATION_OUTCOME_PROFILE = _PROFILE_BASE + "GPConnect-OperationOutcome-1"
SDS_JOB_ROLE_SYSTEM = "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-SDSJobRoleName-1"
GP_CONNECT_VERSION = "1.2.7"

# Records that never change in the sandbox (staff, sites, the practice) carry a fixed
# per-practice "last updated" instant, late 2025.
_STATIC_EPOCH_MS = epoch_ms(datetime(2025, 11, 1, tzinfo=UTC))

_ISSUE_CODES = {
    400: "invalid",
    401: "security",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    412: "conflict",
    415: "not-supported",
    422: "invalid",
    428: "invalid",
    429: "throttled",
    500: "exception",
    501: "not-supported",
    502: "transient",
    503: "transient",
    504: "timeout",
}
_SPINE_DISPLAYS = {
    "BAD_REQUEST": "Bad request",
    "INVALID_PARAMETER": "Submitted parameter is not valid.",
    "INVALID_RESOURCE": "Submitted resource is not valid.",
    "INVALID_IDENTIFIER_SYSTEM": "Invalid identifier system",
    "INVALID_NHS_NUMBER": "NHS number invalid",
    "ORGANISATION_NOT_FOUND": "Organisation record not found",
    "PATIENT_NOT_FOUND": "Patient record not found",
    "NO_RECORD_FOUND": "No record found",
    "DUPLICATE_REJECTED": "Create would lead to creation of a duplicate resource",
    "FHIR_CONSTRAINT_VIOLATION": "FHIR constraint violated",
    "REFERENCE_NOT_FOUND": "Reference not found",
    "ACCESS_DENIED": "Access denied",
    "INTERNAL_SERVER_ERROR": "Unexpected internal server error",
    "NOT_IMPLEMENTED": "Not implemented",
}


def operation_outcome(status: int, code: str, diagnostics: str) -> dict[str, Any]:
    """A GP Connect error body; consumers read `issue[0].details.coding[0].code`."""
    return {
        "resourceType": "OperationOutcome",
        "meta": {"profile": [OPERATION_OUTCOME_PROFILE]},
        "issue": [
            {
                "severity": "error",
                "code": "duplicate"
                if code == "DUPLICATE_REJECTED"
                else _ISSUE_CODES.get(status, "processing"),
                "details": {
                    "coding": [
                        {
                            "system": SPINE_ERROR_SYSTEM,
                            "code": code,
                            "display": _SPINE_DISPLAYS.get(code, code),
                        }
                    ]
                },
                "diagnostics": diagnostics,
            }
        ],
    }


class PracticeRenderer:
    """Renders one practice's resources in its supplier's dialect, caching what is static."""

    def __init__(self, profile: PracticeProfile) -> None:
        self.profile = profile
        self.dialect = profile.dialect
        self._static_version = self.dialect.version(
            _STATIC_EPOCH_MS + stable_int(profile.seed, profile.ods, "static-version") % 86_400_000
        )
        self._entries: dict[tuple[str, str], bytes] = {}

    # -- searchset ----------------------------------------------------------------------------

    def slot_bundle(self, slots: Sequence[SlotRecord], query: SlotQuery) -> bytes:
        """The searchset for free slots, in the supplier's entry order."""
        if not slots:
            return self._bundle([])
        sessions: dict[str, Session] = {}
        for slot in sorted(slots, key=lambda s: (s.start, s.slot_id)):
            sessions.setdefault(slot.session.schedule_id, slot.session)
        if self.dialect.slots_grouped_by_schedule:
            by_schedule: dict[str, list[SlotRecord]] = {}
            for slot in slots:
                by_schedule.setdefault(slot.session.schedule_id, []).append(slot)
            entries = []
            for schedule_id in sorted(by_schedule):
                entries.append(self._schedule_entry(sessions[schedule_id]))
                entries.extend(
                    self._slot_entry(s) for s in sorted(by_schedule[schedule_id], key=lambda s: s.start)
                )
        else:
            entries = [self._slot_entry(s) for s in sorted(slots, key=lambda s: (s.start, s.slot_id))]
            entries.extend(self._schedule_entry(session) for session in sessions.values())
        if query.include_practitioner:
            clinicians: dict[str, Clinician] = {}
            for session in sessions.values():
                clinician = self._schedule_practitioner(session)
                if clinician is not None:
                    clinicians.setdefault(clinician.practitioner_id, clinician)
            entries.extend(
                self._cached("Practitioner", c.practitioner_id, partial(self._practitioner, c))
                for c in clinicians.values()
            )
        if query.include_location:
            sites = {session.site.location_id: session.site for session in sessions.values()}
            entries.extend(
                self._cached("Location", s.location_id, partial(self._location, s)) for s in sites.values()
            )
        if query.include_organization or self.dialect.always_include_organization:
            entries.append(self._cached("Organization", self.profile.organization_id, self.organization))
        return self._bundle(entries)

    def resource_bundle(self, resources: Sequence[dict[str, Any]]) -> bytes:
        return self._bundle([orjson.dumps({"resource": r}) for r in resources])

    def _bundle(self, entries: list[bytes]) -> bytes:
        if not entries and not self.dialect.empty_bundle_has_entry:
            return b'{"resourceType":"Bundle","type":"searchset"}'
        return b'{"resourceType":"Bundle","type":"searchset","entry":[' + b",".join(entries) + b"]}"

    def _slot_entry(self, slot: SlotRecord) -> bytes:
        if slot.rendered is None:
            slot.rendered = orjson.dumps({"resource": self.slot(slot)})
        return slot.rendered

    def _schedule_entry(self, session: Session) -> bytes:
        return self._cached("Schedule", session.schedule_id, partial(self._schedule, session))

    def _cached(self, kind: str, key: str, render: Callable[[], dict[str, Any]]) -> bytes:
        """A searchset entry for a resource that never changes, serialised once."""
        entry = self._entries.get((kind, key))
        if entry is None:
            entry = orjson.dumps({"resource": render()})
            self._entries[(kind, key)] = entry
        return entry

    # -- resources ----------------------------------------------------------------------------

    def slot(self, slot: SlotRecord) -> dict[str, Any]:
        return {
            "resourceType": "Slot",
            "id": slot.slot_id,
            "meta": self._meta(self.dialect.version(slot.version_ms), SLOT_PROFILE),
            "extension": [{"url": DELIVERY_CHANNEL_URL, "valueCode": slot.plan.channel}],
            "serviceType": [{"text": slot.plan.slot_type}],
            "schedule": {"reference": f"Schedule/{slot.session.schedule_id}"},
            "status": "free" if slot.state == "free" else "busy",
            "start": format_uk(slot.start),
            "end": format_uk(slot.end),
        }

    def _schedule(self, session: Session) -> dict[str, Any]:
        actors = [{"reference": f"Location/{session.site.location_id}"}]
        clinician = self._schedule_practitioner(session)
        if clinician is not None:
            actors.append({"reference": f"Practitioner/{clinician.practitioner_id}"})
        resource: dict[str, Any] = {
            "resourceType": "Schedule",
            "id": session.schedule_id,
            "meta": self._meta(
                self.dialect.version(epoch_ms(day_opens_at(uk_day(session.start)))), SCHEDULE_PROFILE
            ),
            "extension": [{"url": PRACTITIONER_ROLE_URL, "valueCodeableConcept": _job_role(session.role)}],
            "serviceCategory": {"text": session.name},
            "actor": actors,
        }
        if self.dialect.send_planning_horizon:
            resource["planningHorizon"] = {"start": format_uk(session.start), "end": format_uk(session.end)}
        return resource

    def _schedule_practitioner(self, session: Session) -> Clinician | None:
        if session.is_nursing and not self.dialect.practitioner_on_nurse_schedules:
            return None
        return session.clinician

    def _practitioner(self, clinician: Clinician) -> dict[str, Any]:
        name = clinician.name
        return {
            "resourceType": "Practitioner",
            "id": clinician.practitioner_id,
            "meta": self._meta(self._static_version, PRACTITIONER_PROFILE),
            "identifier": [{"system": SDS_USER_SYSTEM, "value": clinician.sds_user_id}],
            "name": [{"family": name.family, "given": [name.given], "prefix": [name.prefix]}],
            "gender": clinician.gender,
        }

    def _location(self, site: Site) -> dict[str, Any]:
        return {
            "resourceType": "Location",
            "id": site.location_id,
            "meta": self._meta(self._static_version, LOCATION_PROFILE),
            "name": site.name,
            "address": _address(site),
            "telecom": self._contact({"system": "phone", "value": site.phone, "use": "work"}),
            "managingOrganization": {"reference": f"Organization/{self.profile.organization_id}"},
        }

    def organization(self) -> dict[str, Any]:
        main_site = self.profile.sites[0]
        return {
            "resourceType": "Organization",
            "id": self.profile.organization_id,
            "meta": self._meta(self._static_version, ORGANIZATION_PROFILE),
            "identifier": [{"system": ODS_SYSTEM, "value": self.profile.ods}],
            "name": self.profile.practice.name,
            "address": self._contact(_address(main_site)),
            "telecom": self._contact({"system": "phone", "value": main_site.phone, "use": "work"}),
        }

    def appointment(self, appointment: AppointmentRecord) -> dict[str, Any]:
        session = appointment.session
        first_slot = appointment.slots[0]
        org = appointment.booking_org
        contained: dict[str, Any] = {
            "resourceType": "Organization",
            "id": "1",
            "meta": {"profile": [ORGANIZATION_PROFILE]},
            "identifier": [{"system": ODS_SYSTEM, "value": org.ods_code}],
        }
        if org.org_type:
            contained["type"] = [{"coding": [{"system": ORG_TYPE_SYSTEM, "code": org.org_type}]}]
        contained["name"] = org.name
        if org.telecom:
            contained["telecom"] = [{"system": "phone", "value": org.telecom}]
        extensions: list[dict[str, Any]] = [
            {"url": BOOKING_ORG_URL, "valueReference": {"reference": "#1"}},
            {"url": PRACTITIONER_ROLE_URL, "valueCodeableConcept": _job_role(session.role)},
            {"url": DELIVERY_CHANNEL_URL, "valueCode": first_slot.plan.channel},
        ]
        if appointment.status == "cancelled" and appointment.cancellation_reason:
            extensions.append(
                {"url": CANCELLATION_REASON_URL, "valueString": appointment.cancellation_reason}
            )
        participants: list[dict[str, Any]] = [
            {"actor": {"reference": f"Patient/{appointment.patient.logical_id}"}, "status": "accepted"},
            {"actor": {"reference": f"Location/{session.site.location_id}"}, "status": "accepted"},
        ]
        if session.clinician is not None:
            participants.append(
                {
                    "actor": {"reference": f"Practitioner/{session.clinician.practitioner_id}"},
                    "status": "accepted",
                }
            )
        resource: dict[str, Any] = {
            "resourceType": "Appointment",
            "id": appointment.appointment_id,
            "meta": self._meta(self.dialect.version(appointment.version_ms), APPOINTMENT_PROFILE),
            "contained": [contained],
            "extension": extensions,
            "status": appointment.status,
            "serviceCategory": {"text": session.name},
            "serviceType": [{"text": first_slot.plan.slot_type}],
            "description": appointment.description,
            "start": format_uk(appointment.start),
            "end": format_uk(appointment.end),
            "slot": [{"reference": f"Slot/{s.slot_id}"} for s in appointment.slots],
            "created": format_uk(appointment.created),
        }
        if appointment.comment is not None:
            resource["comment"] = appointment.comment
        resource["participant"] = participants
        return resource

    def patient(self, patient: Patient) -> dict[str, Any]:
        name = patient.name
        return {
            "resourceType": "Patient",
            "id": patient.logical_id,
            "meta": self._meta(self._static_version, PATIENT_PROFILE),
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": patient.nhs_number}],
            "active": True,
            "name": [
                {"use": "official", "family": name.family, "given": [name.given], "prefix": [name.prefix]}
            ],
            "gender": patient.gender,
            "birthDate": patient.birth_date.isoformat(),
            "managingOrganization": {"reference": f"Organization/{self.profile.organization_id}"},
        }

    def capability_statement(self) -> dict[str, Any]:
        def resource(kind: str, *interactions: str) -> dict[str, Any]:
            return {"type": kind, "interaction": [{"code": code} for code in interactions]}

        slot_resource = resource("Slot", "search-type")
        slot_resource["searchInclude"] = [
            "Slot:schedule",
            "Schedule:actor:Practitioner",
            "Schedule:actor:Location",
            "Location:managingOrganization",
        ]
        return {
            "resourceType": "CapabilityStatement",
            "version": GP_CONNECT_VERSION,
            "name": "GP Connect",
            "status": "active",
            "date": "2025-11-01",
            "publisher": self.dialect.publisher,
            "description": f"This server implements the GP Connect API version {GP_CONNECT_VERSION}",
            "kind": "capability",
            "software": {"name": self.dialect.system, "version": "sandbox"},
            "fhirVersion": "3.0.1",
            "acceptUnknown": "both",
            "format": ["application/fhir+json"],
            "rest": [
                {
                    "mode": "server",
                    "resource": [
                        resource("Patient", "read", "search-type"),
                        resource("Appointment", "read", "create", "update", "search-type"),
                        slot_resource,
                        resource("Organization", "read", "search-type"),
                        resource("Practitioner", "read", "search-type"),
                        resource("Location", "read"),
                    ],
                }
            ],
        }

    def _meta(self, version: str, profile_url: str) -> dict[str, Any]:
        if self.dialect.send_profiles:
            return {"versionId": version, "profile": [profile_url]}
        return {"versionId": version}

    def _contact(self, value: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]]:
        """EMIS copies the spec examples' slip (a single object); STU3 says an array."""
        return value if self.dialect.contacts_as_single_objects else [value]


def _job_role(role: JobRole) -> dict[str, Any]:
    return {"coding": [{"system": SDS_JOB_ROLE_SYSTEM, "code": role.code, "display": role.display}]}


def _address(site: Site) -> dict[str, Any]:
    return {"line": list(site.address_lines), "city": site.town, "postalCode": site.postcode}
