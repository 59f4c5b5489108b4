"""The pre-rendered sandbox serves each row its template's bundles under its own ODS code."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest
from starlette.testclient import TestClient

from connectors.gpconnect.spine import NO_FILTER, SearchFilter
from connectors.gpconnect.windows import plan_windows
from connectors.registry import Registry
from sandbox.england import england_estate, sample_estate
from sandbox.prerendered import PrerenderedEstate, create_app, slot_params

START = datetime.fromisoformat("2026-03-23T02:00:00+00:00")
BASE = "http://testserver"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return sample_estate(england_estate(BASE, seed=3), 40)


@pytest.fixture(scope="module")
def estate(registry: Registry) -> PrerenderedEstate:
    estate = PrerenderedEstate(registry, start=START, seed=3, templates_per_group=2)
    estate.prerender(horizon_days=28)
    return estate


def _slots(body: bytes) -> list[dict[str, object]]:
    bundle = orjson.loads(body)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    return [e["resource"] for e in bundle.get("entry", []) if e["resource"]["resourceType"] == "Slot"]


def test_every_row_has_a_template_of_its_kind_and_system(
    registry: Registry, estate: PrerenderedEstate
) -> None:
    by_ods = registry.by_ods()
    assert estate.template_of.keys() == by_ods.keys()
    for ods, template in estate.template_of.items():
        row, model = by_ods[ods], by_ods[template]
        assert (row.kind, row.clinical_system, row.accepts_111_booking) == (
            model.kind,
            model.clinical_system,
            model.accepts_111_booking,
        )
    # Rendering happened once per template, filter and window, at start-up.
    rendered = estate.cost.renders
    assert rendered > 0 and estate.cost.templates < len(by_ods)


def test_a_row_gets_its_templates_bundle_under_its_own_code(
    registry: Registry, estate: PrerenderedEstate
) -> None:
    window = plan_windows(START, 28)[0]
    row = next(
        r
        for r in registry.practices
        if r.kind == "practice" and estate.template_of[r.ods_code] != r.ods_code and r.accepts_111_booking
    )
    template = registry.by_ods()[estate.template_of[row.ods_code]]
    renders = estate.cost.renders
    hub, nhs111 = "gp-practice", "urgent-care"
    for mine, theirs in (
        (NO_FILTER, NO_FILTER),
        (SearchFilter(hub, row.booking_hubs[0]), SearchFilter(hub, template.booking_hubs[0])),
        (SearchFilter(nhs111, row.nhs111_provider_ods), SearchFilter(nhs111, template.nhs111_provider_ods)),
    ):
        body = estate.slot_search(row.ods_code, slot_params(window, mine))
        original = estate.slot_search(template.ods_code, slot_params(window, theirs))
        assert body == original.replace(template.ods_code.encode(), row.ods_code.encode())
        assert row.ods_code.encode() in body and template.ods_code.encode() not in body
    assert estate.cost.renders == renders  # served from memory, nothing rendered on request
    unfiltered = _slots(estate.slot_search(row.ods_code, slot_params(window, NO_FILTER)))
    for_111 = _slots(
        estate.slot_search(
            row.ods_code, slot_params(window, SearchFilter("urgent-care", row.nhs111_provider_ods))
        )
    )
    assert unfiltered and len(for_111) >= len(unfiltered)  # 111 sees the open slots and its own


def test_http_face(registry: Registry, estate: PrerenderedEstate) -> None:
    client = TestClient(create_app(estate))
    row = next(r for r in registry.practices if r.kind == "practice")
    window = plan_windows(START, 28)[1]
    params = slot_params(window, NO_FILTER)
    response = client.get(f"/{row.ods_code}/STU3/1/gpconnect/Slot", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert _slots(response.content)
    assert client.get("/Z99999/STU3/1/gpconnect/Slot", params=params).status_code == 404
    assert client.get(f"/{row.ods_code}/STU3/1/gpconnect/metadata").status_code == 501
    hub = row.booking_hubs[0]
    assert client.get(f"/_booking-orgs/{hub}/bookings", params={"format": "json"}).json() == []
    csv_export = client.get(f"/_booking-orgs/{hub}/bookings", params={"format": "csv"}).text
    assert csv_export.startswith("appointment_id,practice_ods")
    stats = client.get("/_sandbox/stats").json()
    assert stats["requests"] >= 1 and stats["cpu_s"] > 0 and stats["peak_rss_mib"] > 0
