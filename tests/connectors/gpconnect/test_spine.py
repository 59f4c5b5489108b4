"""Spine headers and the unsigned JWT, per GP Connect 1.2.7."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

from common.config import ConsumerIdentity
from connectors.gpconnect.spine import Interaction, SearchFilter, build_jwt, spine_headers


def decode(segment: str) -> dict[str, object]:
    padded = segment + "=" * (-len(segment) % 4)
    result: dict[str, object] = json.loads(base64.urlsafe_b64decode(padded))
    return result


def test_jwt_is_unsigned_with_trailing_dot_and_300s_life() -> None:
    issued = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    token = build_jwt(
        ConsumerIdentity(),
        audience="https://p/A1/STU3/1/gpconnect",
        scope="organization/*.read",
        issued_at=issued,
    )
    header, payload, signature = token.split(".")
    assert token.endswith(".") and signature == ""
    assert decode(header) == {"alg": "none", "typ": "JWT"}
    claims = decode(payload)
    assert claims["iat"] == int(issued.timestamp())
    assert claims["exp"] - claims["iat"] == 300  # type: ignore[operator]
    assert claims["sub"] == claims["requesting_practitioner"]["id"]  # type: ignore[index]
    assert claims["reason_for_request"] == "directcare"
    assert claims["aud"] == "https://p/A1/STU3/1/gpconnect"


def test_headers_are_fresh_per_request_and_name_the_interaction() -> None:
    kwargs = dict(
        provider_asid="918999198993",
        interaction=Interaction.SEARCH_SLOTS,
        audience="https://p/A1/STU3/1/gpconnect",
        issued_at=datetime.now(UTC),
    )
    first = spine_headers(ConsumerIdentity(), **kwargs)  # type: ignore[arg-type]
    second = spine_headers(ConsumerIdentity(), **kwargs)  # type: ignore[arg-type]
    assert first["Ssp-TraceID"] != second["Ssp-TraceID"]
    uuid.UUID(first["Ssp-TraceID"])
    assert first["Ssp-To"] == "918999198993"
    assert first["Ssp-InteractionID"] == "urn:nhs:names:services:gpconnect:fhir:rest:search:slot-1"
    assert first["Accept"] == "application/fhir+json;charset=utf-8"
    scope = decode(first["Authorization"].removeprefix("Bearer ").split(".")[1])["requested_scope"]
    assert scope == "organization/*.read"


def test_scopes_follow_the_interaction() -> None:
    assert Interaction.READ_APPOINTMENT.scope == "patient/*.read"
    assert Interaction.CANCEL_APPOINTMENT.scope == "patient/*.write"
    assert Interaction.from_urn(Interaction.AMEND_APPOINTMENT.urn) is Interaction.AMEND_APPOINTMENT


def test_search_filter_params_and_keys() -> None:
    nhs111 = SearchFilter("urgent-care", "RYE")
    assert nhs111.key == "urgent-care:RYE"
    assert nhs111.params() == [
        ("searchFilter", "https://fhir.nhs.uk/STU3/CodeSystem/GPConnect-OrganisationType-1|urgent-care"),
        ("searchFilter", "https://fhir.nhs.uk/Id/ods-organization-code|RYE"),
    ]
    assert SearchFilter().key == "none" and SearchFilter().params() == []
