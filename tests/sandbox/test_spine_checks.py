"""Every GP Connect request must carry valid Spine headers and a valid unsigned JWT."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import jwt
import orjson
import pytest

from connectors.gpconnect.spine import FHIR_JSON, SPINE_ERROR_SYSTEM, Interaction, build_jwt
from tests.sandbox.helpers import INCLUDES, GpcClient, spine_code

SLOT_PARAMS = httpx.QueryParams(
    [("status", "free"), ("start", "ge2026-03-24"), ("end", "le2026-03-25"), *INCLUDES]
)


def _search(gpc: GpcClient, **header_overrides: str) -> httpx.Response:
    practice = gpc.sandbox.registry.practices[0]
    headers = gpc.headers(practice, Interaction.SEARCH_SLOTS, **header_overrides)
    return gpc.http.get(practice.service_root + "/Slot", params=SLOT_PARAMS, headers=headers)


def _token(gpc: GpcClient, change: Callable[[dict[str, Any]], None], *, trailing_dot: bool = True) -> str:
    """A token built like the real one, with its claims edited by `change`."""
    practice = gpc.sandbox.registry.practices[0]
    real = build_jwt(
        gpc.consumer,
        audience=practice.service_root,
        scope=Interaction.SEARCH_SLOTS.scope,
        issued_at=gpc.clock.now(),
    )
    payload_b64 = real.split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    change(claims)
    token = jwt.encode(claims, key="", algorithm="none")
    return token if trailing_dot else token.rstrip(".")


def test_valid_request_is_answered_with_fhir_headers(shared_gpc: GpcClient) -> None:
    response = _search(shared_gpc)
    assert response.status_code == 200
    assert response.headers["content-type"] == FHIR_JSON
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["resourceType"] == "Bundle"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda c: c.update(exp=c["iat"] + 301), id="exp-iat-301"),
        pytest.param(lambda c: c.update(exp=c["iat"] + 299), id="exp-iat-299"),
        pytest.param(lambda c: c.update(sub="someone-else"), id="sub-mismatch"),
        pytest.param(lambda c: c.pop("requesting_device"), id="missing-claim"),
        pytest.param(lambda c: c.update(reason_for_request="secondaryuses"), id="reason"),
        pytest.param(lambda c: c.update(requested_scope="patient/*.read"), id="wrong-scope"),
        pytest.param(lambda c: c.update(iat=c["iat"] - 3600, exp=c["exp"] - 3600), id="expired"),
        pytest.param(lambda c: c.update(iat=c["iat"] + 3600, exp=c["exp"] + 3600), id="future-iat"),
        pytest.param(lambda c: c.update(iat=str(c["iat"])), id="string-iat"),
    ],
)
def test_invalid_jwt_claims_are_bad_requests(
    shared_gpc: GpcClient, change: Callable[[dict[str, Any]], None]
) -> None:
    response = _search(shared_gpc, Authorization=f"Bearer {_token(shared_gpc, change)}")
    assert response.status_code == 400
    assert spine_code(response) == "BAD_REQUEST"


def test_token_without_trailing_dot_is_rejected(shared_gpc: GpcClient) -> None:
    token = _token(shared_gpc, lambda c: None, trailing_dot=False)
    response = _search(shared_gpc, Authorization=f"Bearer {token}")
    assert response.status_code == 400
    assert spine_code(response) == "BAD_REQUEST"


def test_signed_token_is_rejected(shared_gpc: GpcClient) -> None:
    claims_b64 = _token(shared_gpc, lambda c: None).split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(claims_b64 + "=" * (-len(claims_b64) % 4)))
    signed = jwt.encode(claims, key="a-shared-secret-of-at-least-32-bytes!", algorithm="HS256")
    response = _search(shared_gpc, Authorization=f"Bearer {signed}")
    assert response.status_code == 400
    assert spine_code(response) == "BAD_REQUEST"


def test_wrong_resource_type_in_a_claim_is_invalid_resource(shared_gpc: GpcClient) -> None:
    def change(claims: dict[str, Any]) -> None:
        claims["requesting_organization"]["resourceType"] = "Practitioner"

    response = _search(shared_gpc, Authorization=f"Bearer {_token(shared_gpc, change)}")
    assert response.status_code == 422
    assert spine_code(response) == "INVALID_RESOURCE"


@pytest.mark.parametrize(
    "header", ["Ssp-TraceID", "Ssp-From", "Ssp-To", "Ssp-InteractionID", "Authorization"]
)
def test_missing_spine_header_is_a_bad_request(shared_gpc: GpcClient, header: str) -> None:
    practice = shared_gpc.sandbox.registry.practices[0]
    headers = shared_gpc.headers(practice, Interaction.SEARCH_SLOTS)
    del headers[header]
    response = shared_gpc.http.get(practice.service_root + "/Slot", params=SLOT_PARAMS, headers=headers)
    assert response.status_code == 400
    assert spine_code(response) == "BAD_REQUEST"


def test_ssp_to_must_be_this_providers_asid(shared_gpc: GpcClient) -> None:
    other = shared_gpc.sandbox.registry.practices[1]
    response = _search(shared_gpc, **{"Ssp-To": other.provider_asid})
    assert response.status_code == 400
    assert spine_code(response) == "BAD_REQUEST"


def test_interaction_id_must_match_the_route(shared_gpc: GpcClient) -> None:
    response = _search(shared_gpc, **{"Ssp-InteractionID": Interaction.METADATA.urn})
    assert response.status_code == 400
    assert spine_code(response) == "BAD_REQUEST"


def test_jwt_time_is_judged_by_the_sandbox_clock(shared_gpc: GpcClient) -> None:
    practice = shared_gpc.sandbox.registry.practices[0]
    stale = build_jwt(
        shared_gpc.consumer,
        audience=practice.service_root,
        scope=Interaction.SEARCH_SLOTS.scope,
        issued_at=shared_gpc.clock.now() - timedelta(minutes=6),
    )
    assert _search(shared_gpc, Authorization=f"Bearer {stale}").status_code == 400


def test_unknown_practice_is_organisation_not_found(shared_gpc: GpcClient) -> None:
    practice = shared_gpc.sandbox.registry.practices[0]
    url = f"{shared_gpc.sandbox.base_url}/A99999/STU3/1/gpconnect/Slot"
    headers = shared_gpc.headers(practice, Interaction.SEARCH_SLOTS)
    response = shared_gpc.http.get(url, params=SLOT_PARAMS, headers=headers)
    assert response.status_code == 404
    assert spine_code(response) == "ORGANISATION_NOT_FOUND"


def test_errors_are_gp_connect_operation_outcomes(shared_gpc: GpcClient) -> None:
    response = _search(shared_gpc, **{"Ssp-TraceID": "not-a-guid"})
    issue = response.json()["issue"][0]
    assert response.headers["content-type"] == FHIR_JSON
    assert issue["details"]["coding"][0]["system"] == SPINE_ERROR_SYSTEM
    assert issue["severity"] == "error" and issue["diagnostics"]


def test_capability_statement(shared_gpc: GpcClient) -> None:
    practice = shared_gpc.sandbox.registry.practices[0]
    response = shared_gpc.request("GET", practice, "/metadata", Interaction.METADATA)
    assert response.status_code == 200
    body = response.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["version"] == "1.2.7" and body["fhirVersion"] == "3.0.1"
