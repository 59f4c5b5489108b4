"""Validation of Appointment request bodies and patient search parameters.

Book (`POST /Appointment`), amend and cancel (`PUT /Appointment/{id}`) follow the 1.2.7 use
case pages: a booking needs `status: booked`, slots, start/end, `created`, a description of at
most 100 characters, Patient and Location participants and a contained booking Organization
(ODS identifier, name, telecom) referenced by the BookingOrganisation extension, and must
not carry `reason`, `specialty` and friends. An amend may change only `description` and
`comment`; a cancel only `status` plus the cancellation-reason extension. Anything else is
422 INVALID_RESOURCE; unparseable JSON is 400 BAD_REQUEST.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson

from common.uktime import parse_fhir_datetime
from connectors.gpconnect.spine import (
    BOOKING_ORG_URL,
    CANCELLATION_REASON_URL,
    NHS_NUMBER_SYSTEM,
    ODS_SYSTEM,
    ORG_TYPE_SYSTEM,
)
from sandbox.diary import BookingOrganisation
from sandbox.errors import SandboxError, bad_request, invalid_parameter, invalid_resource
from sandbox.people import is_valid_nhs_number
from sandbox.state import BookingRequest

MAX_DESCRIPTION = 100
MAX_COMMENT = 500
_FORBIDDEN_ON_BOOK = (
    "reason",
    "specialty",
    "appointmentType",
    "indication",
    "supportingInformation",
    "incomingReferral",
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Amendment:
    description: str
    comment: str | None


def parse_json_resource(body: bytes) -> dict[str, Any]:
    try:
        resource = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(resource, dict):
        raise bad_request("the request body must be a JSON object")
    if resource.get("resourceType") != "Appointment":
        raise invalid_resource(f"expected an Appointment, got {resource.get('resourceType')!r}")
    return resource


def parse_booking(resource: dict[str, Any]) -> BookingRequest:
    present = [name for name in _FORBIDDEN_ON_BOOK if name in resource]
    if present:
        raise invalid_resource(f"a booking must not contain {', '.join(present)}")
    if _extension(resource, CANCELLATION_REASON_URL) is not None:
        raise invalid_resource("a booking must not carry a cancellation reason")
    if resource.get("status") != "booked":
        raise invalid_resource(f"a booking must have status 'booked', not {resource.get('status')!r}")
    if "created" not in resource:
        raise invalid_resource("created is mandatory")
    description, comment = _texts(resource)
    return BookingRequest(
        slot_ids=_slot_ids(resource),
        patient_id=_participant(resource, "Patient"),
        booking_org=_booking_organisation(resource),
        start=_instant(resource, "start"),
        end=_instant(resource, "end"),
        description=description,
        comment=comment,
    )


def parse_amendment(resource: dict[str, Any], current: dict[str, Any]) -> Amendment:
    """What an amend changes: only description and comment may differ from `current`."""
    _check_same_appointment(resource, current)
    if resource.get("status") != "booked" or _extension(resource, CANCELLATION_REASON_URL) is not None:
        raise invalid_resource("an amend cannot cancel; use the cancel interaction")
    if _core(resource) != _core(current):
        raise invalid_resource("an amend may change only description and comment")
    description, comment = _texts(resource)
    return Amendment(description, comment)


def parse_cancellation(resource: dict[str, Any], current: dict[str, Any]) -> str:
    """The cancellation reason; nothing but status and the reason may change."""
    _check_same_appointment(resource, current)
    if resource.get("status") != "cancelled":
        raise invalid_resource("a cancel must set status to 'cancelled'")
    reason = _extension(resource, CANCELLATION_REASON_URL)
    if not isinstance(reason, dict) or not reason.get("valueString"):
        raise invalid_parameter("a cancel needs the AppointmentCancellationReason extension")
    unchanged = ("description", "comment")
    if _core(resource)[1:] != _core(current)[1:] or any(
        resource.get(name) != current.get(name) for name in unchanged
    ):
        raise invalid_resource("a cancel may change only status and the cancellation reason")
    return str(reason["valueString"])


def parse_appointment_range(params: Iterable[tuple[str, str]], today: date) -> tuple[date, date]:
    """`start=geYYYY-MM-DD&start=leYYYY-MM-DD`: dates only, both present, not in the past."""
    bounds = [value for name, value in params if name == "start"]
    lower = [v[2:] for v in bounds if v.startswith("ge")]
    upper = [v[2:] for v in bounds if v.startswith("le")]
    if len(bounds) != 2 or len(lower) != 1 or len(upper) != 1:
        raise invalid_parameter("give start=ge<date> and start=le<date>, once each")
    first, last = _date(lower[0]), _date(upper[0])
    if first < today:
        raise invalid_parameter(f"start=ge{first} is in the past; only future appointments can be retrieved")
    if last < first:
        raise invalid_parameter("start=le is before start=ge")
    return first, last


def parse_nhs_number_search(params: Iterable[tuple[str, str]]) -> str:
    identifiers = [value for name, value in params if name == "identifier"]
    if len(identifiers) != 1:
        raise bad_request("give identifier=https://fhir.nhs.uk/Id/nhs-number|<NHS number> once")
    system, _, value = identifiers[0].partition("|")
    if system != NHS_NUMBER_SYSTEM:
        raise SandboxError(400, "INVALID_IDENTIFIER_SYSTEM", f"unsupported identifier system {system!r}")
    if not is_valid_nhs_number(value):
        raise SandboxError(400, "INVALID_NHS_NUMBER", f"{value!r} is not a valid NHS number")
    return value


def if_match_version(header: str | None) -> str | None:
    """`W/"123"` → `123` (also tolerates a strong or unquoted tag)."""
    if header is None:
        return None
    value = header.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def _date(text: str) -> date:
    if not _DATE.fullmatch(text):
        raise invalid_parameter(f"{text!r} must be a date (yyyy-mm-dd) without a time")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise invalid_parameter(f"{text!r} is not a calendar date") from exc


def _extension(resource: dict[str, Any], url: str) -> dict[str, Any] | None:
    for extension in resource.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == url:
            return extension
    return None


def _texts(resource: dict[str, Any]) -> tuple[str, str | None]:
    description = resource.get("description")
    if not isinstance(description, str) or not description:
        raise invalid_resource("description is mandatory")
    if len(description) > MAX_DESCRIPTION:
        raise invalid_resource(f"description is longer than {MAX_DESCRIPTION} characters")
    comment = resource.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT):
        raise invalid_resource(f"comment must be text of at most {MAX_COMMENT} characters")
    return description, comment


def _slot_ids(resource: dict[str, Any]) -> tuple[str, ...]:
    references = resource.get("slot")
    if not isinstance(references, list) or not references:
        raise invalid_resource("slot must list at least one Slot reference")
    ids = []
    for reference in references:
        text = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(text, str) or not text.startswith("Slot/") or len(text) == len("Slot/"):
            raise invalid_resource(f"bad slot reference {reference!r}")
        ids.append(text[len("Slot/") :])
    return tuple(ids)


def _participant(resource: dict[str, Any], resource_type: str) -> str:
    prefix = f"{resource_type}/"
    for participant in resource.get("participant") or []:
        actor = participant.get("actor") if isinstance(participant, dict) else None
        reference = actor.get("reference") if isinstance(actor, dict) else None
        if isinstance(reference, str) and reference.startswith(prefix) and len(reference) > len(prefix):
            return reference[len(prefix) :]
    raise invalid_resource(f"a {resource_type} participant is mandatory")


def _booking_organisation(resource: dict[str, Any]) -> BookingOrganisation:
    _participant(resource, "Location")
    extension = _extension(resource, BOOKING_ORG_URL)
    reference = (extension or {}).get("valueReference", {}).get("reference")
    if not isinstance(reference, str) or not reference.startswith("#"):
        raise invalid_resource("the BookingOrganisation extension must reference a contained Organization")
    organisation = next(
        (
            c
            for c in resource.get("contained") or []
            if isinstance(c, dict)
            and c.get("resourceType") == "Organization"
            and c.get("id") == reference[1:]
        ),
        None,
    )
    if organisation is None:
        raise invalid_resource(f"no contained Organization with id {reference[1:]!r}")
    ods = next(
        (
            i.get("value")
            for i in organisation.get("identifier") or []
            if isinstance(i, dict) and i.get("system") == ODS_SYSTEM
        ),
        None,
    )
    telecom = organisation.get("telecom")
    phone = (
        telecom[0].get("value")
        if isinstance(telecom, list) and telecom and isinstance(telecom[0], dict)
        else None
    )
    if not ods or not organisation.get("name") or not phone:
        raise invalid_resource("the booking Organization needs an ODS code identifier, a name and a telecom")
    return BookingOrganisation(
        ods_code=str(ods),
        name=str(organisation["name"]),
        telecom=str(phone),
        org_type=_org_type(organisation),
    )


def _org_type(organisation: dict[str, Any]) -> str | None:
    for concept in organisation.get("type") or []:
        for coding in (concept or {}).get("coding") or []:
            if isinstance(coding, dict) and coding.get("system") == ORG_TYPE_SYSTEM and coding.get("code"):
                return str(coding["code"])
    return None


def _instant(resource: dict[str, Any], name: str) -> datetime:
    value = resource.get(name)
    if not isinstance(value, str):
        raise invalid_resource(f"{name} is mandatory")
    try:
        return parse_fhir_datetime(value)
    except ValueError as exc:
        raise invalid_resource(f"{name} {value!r} is not a FHIR dateTime with offset") from exc


def _check_same_appointment(resource: dict[str, Any], current: dict[str, Any]) -> None:
    if resource.get("id") != current["id"]:
        raise invalid_resource(
            f"the body's id {resource.get('id')!r} does not match Appointment/{current['id']}"
        )
    present = [name for name in ("reason", "specialty") if name in resource]
    if present:
        raise invalid_resource(f"an appointment must not contain {', '.join(present)}")


def _core(resource: dict[str, Any]) -> tuple[Any, ...]:
    """The fields neither amend nor cancel may change (status first)."""
    try:
        start, end = _instant(resource, "start"), _instant(resource, "end")
        slots = _slot_ids(resource)
        patient = _participant(resource, "Patient")
    except SandboxError as exc:
        raise invalid_resource(f"the appointment is incomplete: {exc.diagnostics}") from exc
    return (resource.get("status"), start, end, slots, patient)
