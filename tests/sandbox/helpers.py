"""Helpers shared by the sandbox tests: a minimal GP Connect consumer and small estates."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx

from common.clock import SimulatedClock
from common.config import ConsumerIdentity
from connectors.gpconnect.spine import FHIR_JSON, Interaction, SearchFilter, spine_headers
from connectors.registry import Practice, Registry
from sandbox import SandboxServer, southern_hampshire_estate

# Monday 23 March 2026, 06:00 GMT: the week before the clocks go forward (Sun 29 March).
START = datetime(2026, 3, 23, 6, 0, tzinfo=UTC)
INCLUDES = [
    ("_include", "Slot:schedule"),
    ("_include:recurse", "Schedule:actor:Practitioner"),
    ("_include:recurse", "Schedule:actor:Location"),
    ("_include:recurse", "Location:managingOrganization"),
]


class GpcClient:
    """A minimal GP Connect consumer for tests: valid Spine headers on every call."""

    def __init__(self, sandbox: SandboxServer, clock: SimulatedClock) -> None:
        self.sandbox = sandbox
        self.clock = clock
        self.consumer = ConsumerIdentity()
        self.http = httpx.Client(timeout=10.0)

    def practice(self, ods: str) -> Practice:
        return self.sandbox.registry.get(ods)

    def headers(self, practice: Practice, interaction: Interaction, **overrides: str) -> dict[str, str]:
        headers = spine_headers(
            self.consumer,
            provider_asid=practice.provider_asid,
            interaction=interaction,
            audience=practice.service_root,
            issued_at=self.clock.now(),
        )
        headers.update(overrides)
        return headers

    def request(
        self,
        method: str,
        practice: Practice,
        path: str,
        interaction: Interaction,
        *,
        params: Iterable[tuple[str, str]] = (),
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = self.headers(practice, interaction)
        if json is not None:
            all_headers["Content-Type"] = FHIR_JSON
        all_headers.update(headers or {})
        return self.http.request(
            method,
            practice.service_root + path,
            params=list(params),
            json=json,
            headers=all_headers,
        )

    def search(
        self,
        practice: Practice,
        start: str,
        end: str,
        search_filter: SearchFilter | None = None,
        *,
        extra: Iterable[tuple[str, str]] = (),
        includes: Iterable[tuple[str, str]] = INCLUDES,
    ) -> httpx.Response:
        params = [("status", "free"), ("start", f"ge{start}"), ("end", f"le{end}"), *includes]
        params += (search_filter or SearchFilter()).params()
        params += list(extra)
        return self.request("GET", practice, "/Slot", Interaction.SEARCH_SLOTS, params=params)

    def free_slot_ids(
        self, practice: Practice, start: str, end: str, search_filter: SearchFilter | None = None
    ) -> set[str]:
        response = self.search(practice, start, end, search_filter)
        assert response.status_code == 200, response.text
        return {
            entry["resource"]["id"]
            for entry in response.json().get("entry", [])
            if entry["resource"]["resourceType"] == "Slot"
        }

    def close(self) -> None:
        self.http.close()


def spine_code(response: httpx.Response) -> str:
    """The Spine error code of an OperationOutcome response."""
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    code: str = body["issue"][0]["details"]["coding"][0]["code"]
    return code


def practices_of(registry: Registry, kind: str = "practice") -> list[Practice]:
    return [p for p in registry.practices if p.kind == kind]


def small_estate(base_url: str) -> Registry:
    """Three practices (one SystmOne) and their hub, for tests that replay whole books."""
    estate = southern_hampshire_estate(base_url)
    systmone = next(p for p in estate.practices if p.clinical_system == "SystmOne")
    hub = estate.get(systmone.booking_hubs[0])
    emis = [p for p in estate.practices if p.kind == "practice" and p.clinical_system == "EMIS Web"][:2]
    return Registry(practices=(*emis, systmone, hub))


def first_free_slot(gpc: GpcClient, practice: Practice, start: str, end: str) -> tuple[dict[str, Any], str]:
    """(a free slot resource, the id of its schedule's Location) from a no-filter search."""
    response = gpc.search(practice, start, end)
    assert response.status_code == 200, response.text
    resources = [entry["resource"] for entry in response.json()["entry"]]
    slot = next(r for r in resources if r["resourceType"] == "Slot")
    schedule_id = slot["schedule"]["reference"].split("/")[1]
    schedule = next(r for r in resources if r["resourceType"] == "Schedule" and r["id"] == schedule_id)
    location = next(a["reference"] for a in schedule["actor"] if a["reference"].startswith("Location/"))
    return slot, location.split("/")[1]


def booking_body(
    slot: dict[str, Any],
    *,
    patient_id: str,
    location_id: str,
    org_ods: str = "X26",
    org_type: str | None = "gp-practice",
    description: str = "Booked by the sandbox tests",
) -> dict[str, Any]:
    """A GP Connect 1.2.7 book request for one slot."""
    organization: dict[str, Any] = {
        "resourceType": "Organization",
        "id": "1",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": org_ods}],
        "name": f"Booking organisation {org_ods}",
        "telecom": [{"system": "phone", "value": "0300 000 0000"}],
    }
    if org_type:
        organization["type"] = [
            {
                "coding": [
                    {
                        "system": "https://fhir.nhs.uk/STU3/CodeSystem/GPConnect-OrganisationType-1",
                        "code": org_type,
                    }
                ]
            }
        ]
    return {
        "resourceType": "Appointment",
        "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-Appointment-1"]},
        "contained": [organization],
        "extension": [
            {
                "url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-BookingOrganisation-1",
                "valueReference": {"reference": "#1"},
            }
        ],
        "status": "booked",
        "description": description,
        "start": slot["start"],
        "end": slot["end"],
        "slot": [{"reference": f"Slot/{slot['id']}"}],
        "created": "2026-03-23T06:00:00+00:00",
        "participant": [
            {"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"},
            {"actor": {"reference": f"Location/{location_id}"}, "status": "accepted"},
        ],
    }
