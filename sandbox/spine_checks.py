"""Validation of the Spine headers and the unsigned audit JWT on every GP Connect request.

Rules follow the GP Connect 1.2.7 integration pages as enforced by the demonstrator and the
provider test suite (`JWT.feature`, `Http.feature`): the four `Ssp-*` headers must be
present, `Ssp-To` must be this provider's ASID and `Ssp-InteractionID` must match the route
and verb; the token must be `alg: none` with an empty signature (trailing dot), carry every
claim, have `exp - iat == 300` exactly, not be expired, not be issued more than 600 s in the
future, have `sub == requesting_practitioner.id`, `reason_for_request == directcare` and the
interaction's `requested_scope`. Any failure is 400 BAD_REQUEST, except a claim holding the
wrong resourceType, which the suite expects as 422 INVALID_RESOURCE.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from connectors.gpconnect.spine import (
    JWT_LIFETIME_S,
    ODS_SYSTEM,
    SDS_ROLE_PROFILE_SYSTEM,
    SDS_USER_SYSTEM,
    Interaction,
)
from connectors.registry import Practice
from sandbox.errors import bad_request, invalid_resource

FUTURE_IAT_LEEWAY_S = 600  # demonstrator `request.leeway`
_REQUIRED_CLAIMS = (
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "reason_for_request",
    "requested_scope",
    "requesting_device",
    "requesting_organization",
    "requesting_practitioner",
)
_CLAIM_RESOURCE_TYPES = {
    "requesting_device": "Device",
    "requesting_organization": "Organization",
    "requesting_practitioner": "Practitioner",
}
_ASID = re.compile(r"\d{12}")


def check_spine_headers(headers: Mapping[str, str], *, practice: Practice, interaction: Interaction) -> None:
    trace_id = headers.get("ssp-traceid")
    if not trace_id:
        raise bad_request("Ssp-TraceID header is missing")
    try:
        uuid.UUID(trace_id)
    except ValueError as exc:
        raise bad_request(f"Ssp-TraceID {trace_id!r} is not a GUID") from exc
    sender = headers.get("ssp-from")
    if not sender or not _ASID.fullmatch(sender):
        raise bad_request("Ssp-From header must be the consumer's 12-digit ASID")
    recipient = headers.get("ssp-to")
    if recipient != practice.provider_asid:
        raise bad_request(
            f"Ssp-To {recipient!r} is not the ASID of {practice.ods_code} ({practice.provider_asid})"
        )
    interaction_id = headers.get("ssp-interactionid")
    if not interaction_id:
        raise bad_request("Ssp-InteractionID header is missing")
    if interaction_id != interaction.urn:
        raise bad_request(
            f"Ssp-InteractionID {interaction_id} does not match this request ({interaction.urn})"
        )


def check_bearer_token(
    authorization: str | None, *, interaction: Interaction, now: datetime
) -> dict[str, Any]:
    """Validate the Authorization header and return the token's claims."""
    if not authorization or not authorization.startswith("Bearer "):
        raise bad_request("Authorization header must be 'Bearer <JWT>'")
    parts = authorization[len("Bearer ") :].strip().split(".")
    if len(parts) != 3:
        raise bad_request("the JWT must have three dot-separated parts and end with '.'")
    header_b64, payload_b64, signature = parts
    if signature:
        raise bad_request("the JWT must be unsigned: the signature part must be empty")
    header = _decode_segment(header_b64, "header")
    if header.get("alg") != "none":
        raise bad_request(f"the JWT alg must be 'none', got {header.get('alg')!r}")
    claims = _decode_segment(payload_b64, "payload")
    missing = [name for name in _REQUIRED_CLAIMS if name not in claims]
    if missing:
        raise bad_request(f"JWT claims missing: {', '.join(missing)}")
    _check_times(claims, now)
    if claims["reason_for_request"] != "directcare":
        raise bad_request("JWT reason_for_request must be 'directcare'")
    if claims["requested_scope"] != interaction.scope:
        raise bad_request(
            f"JWT requested_scope {claims['requested_scope']!r} does not match {interaction.scope!r}"
        )
    for name in ("iss", "aud", "sub"):
        if not isinstance(claims[name], str) or not claims[name]:
            raise bad_request(f"JWT claim {name} must be a non-empty string")
    for name, resource_type in _CLAIM_RESOURCE_TYPES.items():
        claim = claims[name]
        if not isinstance(claim, dict):
            raise bad_request(f"JWT claim {name} must be a FHIR resource object")
        if claim.get("resourceType") != resource_type:
            raise invalid_resource(
                f"JWT claim {name} must be a {resource_type}, got {claim.get('resourceType')!r}"
            )
    _check_device(claims["requesting_device"])
    _check_organization(claims["requesting_organization"])
    _check_practitioner(claims["requesting_practitioner"], claims["sub"])
    return claims


def _decode_segment(segment: str, name: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise bad_request(f"the JWT {name} is not base64url-encoded JSON") from exc
    if not isinstance(value, dict):
        raise bad_request(f"the JWT {name} must be a JSON object")
    return value


def _check_times(claims: dict[str, Any], now: datetime) -> None:
    iat, exp = claims["iat"], claims["exp"]
    if not (isinstance(iat, int) and isinstance(exp, int)) or isinstance(iat, bool) or isinstance(exp, bool):
        raise bad_request("JWT iat and exp must be integer Unix seconds")
    if exp - iat != JWT_LIFETIME_S:
        raise bad_request(f"JWT exp - iat must be exactly {JWT_LIFETIME_S} seconds, got {exp - iat}")
    current = int(now.timestamp())
    if exp < current:
        raise bad_request("the JWT has expired")
    if iat > current + FUTURE_IAT_LEEWAY_S:
        raise bad_request("the JWT iat is too far in the future")


def _identifier_systems(resource: dict[str, Any]) -> set[str]:
    identifiers = resource.get("identifier")
    if not isinstance(identifiers, list):
        return set()
    return {
        str(i.get("system"))
        for i in identifiers
        if isinstance(i, dict) and i.get("system") and i.get("value")
    }


def _check_device(device: dict[str, Any]) -> None:
    if not _identifier_systems(device) or not device.get("model") or not device.get("version"):
        raise bad_request("JWT requesting_device needs identifier, model and version")


def _check_organization(organization: dict[str, Any]) -> None:
    if not organization.get("name") or ODS_SYSTEM not in _identifier_systems(organization):
        raise bad_request("JWT requesting_organization needs a name and an ODS code identifier")


def _check_practitioner(practitioner: dict[str, Any], subject: str) -> None:
    if practitioner.get("id") != subject:
        raise bad_request("JWT sub must equal requesting_practitioner.id")
    if not isinstance(practitioner.get("name"), list) or not practitioner["name"]:
        raise bad_request("JWT requesting_practitioner needs a name")
    systems = _identifier_systems(practitioner)
    if SDS_USER_SYSTEM not in systems or SDS_ROLE_PROFILE_SYSTEM not in systems:
        raise bad_request("JWT requesting_practitioner needs SDS user id and role profile id identifiers")
