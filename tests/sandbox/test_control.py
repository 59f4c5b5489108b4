"""Sandbox control endpoints and the server's lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from common.clock import SimulatedClock, SystemClock
from connectors.gpconnect.spine import Interaction
from connectors.registry import registry_from_nhs_csv
from sandbox import SandboxServer, rehome
from tests.sandbox.helpers import START, GpcClient, small_estate, spine_code


def test_clock_moves_forward_only(small_gpc: GpcClient) -> None:
    url = f"{small_gpc.sandbox.base_url}/_sandbox/clock"
    assert small_gpc.http.get(url).json()["now"] == "2026-03-23T06:00:00Z"
    moved = small_gpc.http.post(url, json={"now": "2026-03-24T09:30:00+00:00"})
    assert moved.status_code == 200
    assert moved.json()["now"] == "2026-03-24T09:30:00Z" and moved.json()["simulated"] is True
    assert small_gpc.clock.now() == datetime(2026, 3, 24, 9, 30, tzinfo=UTC)
    assert small_gpc.sandbox.state.now == small_gpc.clock.now()
    backwards = small_gpc.http.post(url, json={"now": "2026-03-23T09:30:00+00:00"})
    assert backwards.status_code == 400
    assert small_gpc.http.post(url, json={"now": "yesterday"}).status_code == 400


def test_clock_cannot_be_set_on_a_system_clock() -> None:
    with SandboxServer(clock=SystemClock(), registry_factory=small_estate) as sandbox:
        url = f"{sandbox.base_url}/_sandbox/clock"
        assert httpx.get(url).json()["simulated"] is False
        assert httpx.post(url, json={"now": "2030-01-01T00:00:00+00:00"}).status_code == 409


def test_ground_truth_endpoint_filters(small_gpc: GpcClient) -> None:
    practice = small_gpc.sandbox.registry.practices[0]
    url = f"{small_gpc.sandbox.base_url}/_sandbox/ground-truth"
    rows = small_gpc.http.get(
        url, params={"practice": practice.ods_code, "from": "2026-03-24", "to": "2026-03-24"}
    )
    assert rows.status_code == 200
    body = rows.json()
    assert body and {r["practice_ods"] for r in body} == {practice.ods_code}
    assert {r["start_utc"][:10] for r in body} == {"2026-03-24"}
    assert {
        "practice_ods",
        "slot_id",
        "schedule_id",
        "start_utc",
        "end_utc",
        "bookable",
        "audience",
        "reserved_for_ods",
        "state",
        "booked_by_ods",
        "booked_by_kind",
        "booked_at",
        "cancelled_at",
        "released_at",
        "appointment_id",
    } <= body[0].keys()
    assert {r["audience"] for r in body} <= {"general", "nhs111", "hub", "not_bookable"}
    assert small_gpc.http.get(url, params={"practice": "A99999"}).status_code == 404
    assert small_gpc.http.get(url, params={"from": "soon"}).status_code == 400


def test_first_day_is_the_day_before_start_and_horizon_is_35_days(small_gpc: GpcClient) -> None:
    days = {r.start_utc.date() for r in small_gpc.sandbox.state.ground_truth()}
    assert min(days).isoformat() >= "2026-03-22"
    assert max(days).isoformat() == "2026-04-27"  # START's UK day + 35


def test_unimplemented_route_is_not_implemented(small_gpc: GpcClient) -> None:
    practice = small_gpc.sandbox.registry.practices[0]
    response = small_gpc.request("GET", practice, "/Organization/1", Interaction.METADATA)
    assert response.status_code == 501
    assert spine_code(response) == "NOT_IMPLEMENTED"


def test_server_lifecycle_releases_the_port() -> None:
    sandbox = SandboxServer(registry_factory=small_estate)
    with pytest.raises(RuntimeError):
        _ = sandbox.state
    with sandbox:
        base = sandbox.base_url
        assert base.startswith("http://127.0.0.1:")
        assert all(p.service_root.startswith(base) for p in sandbox.registry.practices)
        assert httpx.get(f"{base}/_sandbox/clock").status_code == 200
    sandbox.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/_sandbox/clock")


def test_any_registry_can_be_served() -> None:
    csv_text = "ODS code,Practice name,Registered patients,GP system\nA81001,Elm Tree Surgery,6100,TPP\n"
    source = registry_from_nhs_csv(
        csv_text, source="test.csv", service_root_template="https://elsewhere.invalid/{ods}/STU3/1/gpconnect"
    )
    clock = SimulatedClock(START)
    with SandboxServer(clock=clock, registry_factory=lambda base: rehome(source, base)) as sandbox:
        practice = sandbox.registry.get("A81001")
        assert practice.provider_asid == source.get("A81001").provider_asid
        assert practice.service_root.startswith(sandbox.base_url)
        gpc = GpcClient(sandbox, clock)
        response = gpc.search(practice, "2026-03-24", "2026-03-24")
        assert response.status_code == 200
        slots = [e["resource"] for e in response.json()["entry"] if e["resource"]["resourceType"] == "Slot"]
        assert slots and not slots[0]["id"].isdigit()  # a SystmOne practice speaks TPP's dialect
        gpc.close()
