"""Spine wire facts: interaction ids, scopes, media types, headers and the unsigned JWT.

These are shared by the consumer client and the sandbox provider, so both sides agree on
exactly one definition of each fact (GP Connect 1.2.7, "Integration" pages).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

import jwt

from common.config import ConsumerIdentity

FHIR_JSON = "application/fhir+json;charset=utf-8"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
ORG_TYPE_SYSTEM = "https://fhir.nhs.uk/STU3/CodeSystem/GPConnect-OrganisationType-1"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
SDS_USER_SYSTEM = "https://fhir.nhs.uk/Id/sds-user-id"
SDS_ROLE_PROFILE_SYSTEM = "https://fhir.nhs.uk/Id/sds-role-profile-id"
DELIVERY_CHANNEL_URL = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-DeliveryChannel-2"
PRACTITIONER_ROLE_URL = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-PractitionerRole-1"
BOOKING_ORG_URL = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-BookingOrganisation-1"
CANCELLATION_REASON_URL = (
    "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-AppointmentCancellationReason-1"
)
SPINE_ERROR_SYSTEM = "https://fhir.nhs.uk/STU3/CodeSystem/Spine-ErrorOrWarningCode-1"
JWT_LIFETIME_S = 300


class Interaction(Enum):
    """GP Connect interactions slotsync uses: (Ssp-InteractionID, requested_scope)."""

    METADATA = ("urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1", "organization/*.read")
    SEARCH_SLOTS = ("urn:nhs:names:services:gpconnect:fhir:rest:search:slot-1", "organization/*.read")
    READ_APPOINTMENT = (
        "urn:nhs:names:services:gpconnect:fhir:rest:read:appointment-1", "patient/*.read")
    PATIENT_APPOINTMENTS = (
        "urn:nhs:names:services:gpconnect:fhir:rest:search:patient_appointments-1",
        "patient/*.read",
    )
    BOOK_APPOINTMENT = (
        "urn:nhs:names:services:gpconnect:fhir:rest:create:appointment-1", "patient/*.write")
    AMEND_APPOINTMENT = (
        "urn:nhs:names:services:gpconnect:fhir:rest:update:appointment-1", "patient/*.write")
    CANCEL_APPOINTMENT = (
        "urn:nhs:names:services:gpconnect:fhir:rest:cancel:appointment-1", "patient/*.write")
    FIND_PATIENT = ("urn:nhs:names:services:gpconnect:fhir:rest:search:patient-1", "patient/*.read")

    @property
    def urn(self) -> str:
        return self.value[0]

    @property
    def scope(self) -> str:
        return self.value[1]

    @property
    def label(self) -> str:
        """The interaction's name in the specification, used in logs and error messages."""
        return _LABELS[self.name]

    @classmethod
    def from_urn(cls, urn: str) -> Interaction | None:
        for member in cls:
            if member.urn == urn:
                return member
        return None


_LABELS = {
    "METADATA": "get capability statement",
    "SEARCH_SLOTS": "search free slots",
    "READ_APPOINTMENT": "read appointment",
    "PATIENT_APPOINTMENTS": "retrieve patient appointments",
    "BOOK_APPOINTMENT": "book appointment",
    "AMEND_APPOINTMENT": "amend appointment",
    "CANCEL_APPOINTMENT": "cancel appointment",
    "FIND_PATIENT": "find patient",
}


@dataclass(frozen=True)
class SearchFilter:
    """A `searchFilter` pair: who the caller says it is (org type and ODS code)."""

    org_type: str | None = None
    ods_code: str | None = None

    @property
    def key(self) -> str:
        """Stable name for the filter, stored with every fetched payload."""
        if self.org_type is None and self.ods_code is None:
            return "none"
        return f"{self.org_type or '-'}:{self.ods_code or '-'}"

    def params(self) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        if self.org_type:
            pairs.append(("searchFilter", f"{ORG_TYPE_SYSTEM}|{self.org_type}"))
        if self.ods_code:
            pairs.append(("searchFilter", f"{ODS_SYSTEM}|{self.ods_code}"))
        return pairs


NO_FILTER = SearchFilter()


def build_jwt(
    consumer: ConsumerIdentity, *, audience: str, scope: str, issued_at: datetime
) -> str:
    """An unsigned GP Connect JWT: `alg: none`, trailing dot, `exp = iat + 300` exactly."""
    iat = int(issued_at.timestamp())
    practitioner_id = consumer.practitioner_id
    claims: dict[str, Any] = {
        "iss": consumer.endpoint_url,
        "sub": practitioner_id,
        "aud": audience,
        "exp": iat + JWT_LIFETIME_S,
        "iat": iat,
        "reason_for_request": "directcare",
        "requested_scope": scope,
        "requesting_device": {
            "resourceType": "Device",
            "identifier": [{"system": "https://slotsync.invalid/device", "value": consumer.asid}],
            "model": consumer.device_model,
            "version": consumer.device_version,
        },
        "requesting_organization": {
            "resourceType": "Organization",
            "name": consumer.organisation_name,
            "identifier": [{"system": ODS_SYSTEM, "value": consumer.ods_code}],
        },
        "requesting_practitioner": {
            "resourceType": "Practitioner",
            "id": practitioner_id,
            "name": [
                {
                    "family": consumer.practitioner_family,
                    "given": [consumer.practitioner_given],
                    "prefix": [],
                }
            ],
            "identifier": [
                {"system": SDS_USER_SYSTEM, "value": consumer.sds_user_id},
                {"system": SDS_ROLE_PROFILE_SYSTEM, "value": consumer.sds_role_profile_id},
                {"system": "https://slotsync.invalid/user-id", "value": practitioner_id},
            ],
        },
    }
    token = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    # PyJWT already emits `header.payload.`; the spec says the trailing dot must not be omitted.
    return token if token.endswith(".") else token + "."


def spine_headers(
    consumer: ConsumerIdentity,
    *,
    provider_asid: str,
    interaction: Interaction,
    audience: str,
    issued_at: datetime,
    trace_id: str | None = None,
) -> dict[str, str]:
    """The four Ssp headers, the bearer JWT and the FHIR media types for one request."""
    return {
        "Ssp-TraceID": trace_id or str(uuid.uuid4()),
        "Ssp-From": consumer.asid,
        "Ssp-To": provider_asid,
        "Ssp-InteractionID": interaction.urn,
        "Authorization": "Bearer "
        + build_jwt(consumer, audience=audience, scope=interaction.scope, issued_at=issued_at),
        "Accept": FHIR_JSON,
    }
