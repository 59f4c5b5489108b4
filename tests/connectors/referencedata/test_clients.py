"""ORD and SDS clients on recorded payloads (tests/fixtures/ods, tests/fixtures/sds).

The clients take an `httpx.Client`; here it carries an `httpx.MockTransport` that answers from
the fixtures and records every request, so paging, 404, 429 back-off and ambiguous SDS
answers are checked request by request, without a network.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.referencedata.build import Scope, Sources, build_registry
from connectors.referencedata.cache import ReferenceCache, SourceUnavailable
from connectors.referencedata.ods import OrdClient, parse_record
from connectors.referencedata.sds import (
    ASID_SYSTEM,
    INTERACTION_SYSTEM,
    ODS_SYSTEM,
    SLOT_SEARCH_INTERACTION,
    SdsClient,
)
from connectors.referencedata.sources import ListSizes

FIXTURES = Path(__file__).parents[2] / "fixtures"
ORD = "https://ord.test/ORD/2-0-0"
SDS = "https://sds.test/spine-directory/FHIR/R4"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def renamed(document: Any, old: str, new: str) -> Any:
    """A fixture with one code swapped for another (a second practice of the same shape)."""
    return json.loads(json.dumps(document).replace(old, new))


Answer = tuple[int, dict[str, str], Any]


@dataclass
class FakeApi:
    """Answers requests from a routing function; can throttle the first N requests."""

    route: Callable[[httpx.Request], Answer]
    throttle: list[dict[str, str]] = field(default_factory=list)  # one 429's headers per entry
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.throttle:
            return httpx.Response(429, headers=self.throttle.pop(0), json={"error": "throttled"})
        status, headers, body = self.route(request)
        return httpx.Response(status, headers=headers, json=body)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))


def ord_route(request: httpx.Request) -> Answer:
    path = request.url.path.removeprefix("/ORD/2-0-0")
    if path == "/organisations":
        page = {"0": "ods/search_practices_offset0.json", "2": "ods/search_practices_offset2.json"}
        name = page.get(request.url.params.get("Offset", ""))
        if name is None:
            return 200, {"X-Total-Count": "3"}, {"Organisations": []}
        return 200, {"X-Total-Count": "3"}, fixture(name)
    records = {
        "J82001": fixture("ods/organisation_practice.json"),
        "J82002": renamed(fixture("ods/organisation_practice.json"), "J82001", "J82002"),
        "J82009": renamed(fixture("ods/organisation_practice.json"), "J82001", "J82009"),
        "J82003": fixture("ods/organisation_closed.json"),
        "10K": fixture("ods/organisation_sub_icb.json"),
        "QRL": fixture("ods/organisation_icb.json"),
    }
    code = path.removeprefix("/organisations/")
    if code in records:
        return 200, {}, records[code]
    return 404, {}, fixture("ods/not_found.json")


def sds_route(request: httpx.Request) -> Answer:
    resource = request.url.path.rsplit("/", 1)[-1]
    ods = request.url.params["organization"].removeprefix(f"{ODS_SYSTEM}|")
    assert request.url.params["identifier"] == f"{INTERACTION_SYSTEM}|{SLOT_SEARCH_INTERACTION}"
    endpoint = fixture("sds/endpoint_single.json")
    answers = {
        ("Endpoint", "J82001"): endpoint,
        ("Device", "J82001"): fixture("sds/device_single.json"),
        # Mid-migration: one service root, two accredited systems.
        ("Endpoint", "J82002"): renamed(endpoint, "J82001", "J82002"),
        ("Device", "J82002"): fixture("sds/device_two.json"),
    }
    empty = fixture(f"sds/{resource.lower()}_empty.json")
    return 200, {"Content-Type": "application/fhir+json"}, answers.get((resource, ods), empty)


@pytest.fixture
def sleeps() -> list[float]:
    return []


def ord_client(
    api: FakeApi, sleeps: list[float], cache: ReferenceCache | None = None, **kw: Any
) -> OrdClient:
    return OrdClient(ORD, cache=cache or ReferenceCache(None), http=api.client(), sleep=sleeps.append, **kw)


def sds_client(api: FakeApi, sleeps: list[float], **kw: Any) -> SdsClient:
    return SdsClient(SDS, cache=ReferenceCache(None), http=api.client(), sleep=sleeps.append, **kw)


# --- ORD: payload shapes ---------------------------------------------------------------------


def test_ord_record_reads_active_commissioner_pcn_and_successor() -> None:
    practice = parse_record(fixture("ods/organisation_practice.json"))
    assert practice.code == "J82001" and practice.postcode == "PO16 7AA"
    assert practice.is_gp_practice and practice.active
    # The 2013-2022 commissioner (10R) has ended: only the active RE4 counts.
    assert practice.targets(rel_id="RE4") == ["10K"]
    assert practice.targets(roles=("RO272",)) == ["U91001"]
    closed = parse_record(fixture("ods/organisation_closed.json"))
    assert not closed.active and closed.successors == ("J82001",)
    assert parse_record(fixture("ods/organisation_icb.json")).targets(roles=("RO209",)) == ["Y59"]


# --- ORD: paging ---------------------------------------------------------------------------


def test_ord_search_follows_offset_until_x_total_count(sleeps: list[float]) -> None:
    api = FakeApi(ord_route)
    found = ord_client(api, sleeps, page_size=2).practices_commissioned_by("10K")
    assert [org.code for org in found] == ["J82001", "J82002", "J82003"]
    assert found[2].status == "Inactive" and found[0].postcode == "PO16 7AA"
    params = [dict(r.url.params) for r in api.requests]
    assert [p["Offset"] for p in params] == ["0", "2"]  # stops at the total: no empty third page
    assert all(
        p["Limit"] == "2"
        and p["PrimaryRoleId"] == "RO177"
        and p["NonPrimaryRoleId"] == "RO76"
        and p["RelTypeId"] == "RE4"
        and p["TargetOrgId"] == "10K"
        for p in params
    )


def test_ord_search_without_a_total_stops_at_the_first_short_page(sleeps: list[float]) -> None:
    def no_total(request: httpx.Request) -> Answer:
        status, _, body = ord_route(request)
        return status, {}, body

    api = FakeApi(no_total)
    found = ord_client(api, sleeps, page_size=2).practices()
    assert [org.code for org in found] == ["J82001", "J82002", "J82003"]
    assert [r.url.params["Offset"] for r in api.requests] == ["0", "2"]


# --- ORD: unknown code ---------------------------------------------------------------------


def test_ord_unknown_code_is_none_and_cached_as_unknown(tmp_path: Path, sleeps: list[float]) -> None:
    api = FakeApi(ord_route)
    assert ord_client(api, sleeps, ReferenceCache(tmp_path)).organisation("Z99999") is None
    assert len(api.requests) == 1 and not sleeps  # 404 is an answer: no retry
    offline = FakeApi(ord_route)
    assert ord_client(offline, sleeps, ReferenceCache(tmp_path, offline=True)).organisation("Z99999") is None
    assert offline.requests == []


# --- 429 back-off ------------------------------------------------------------------------------


def test_ord_429_waits_for_retry_after_then_answers(sleeps: list[float]) -> None:
    api = FakeApi(ord_route, throttle=[{"Retry-After": "3"}, {"Retry-After": "7"}])
    record = ord_client(api, sleeps).organisation("J82001")
    assert record is not None and record.code == "J82001"
    assert sleeps == [3.0, 7.0] and len(api.requests) == 3


def test_retry_after_as_http_date_and_capped_at_a_minute(sleeps: list[float]) -> None:
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    api = FakeApi(ord_route, throttle=[{"Retry-After": soon}, {"Retry-After": "3600"}, {}, {}])
    assert ord_client(api, sleeps).organisation("J82001") is not None
    assert 15 <= sleeps[0] <= 20
    # An hour is not waited (the cap); without Retry-After the back-off doubles from 0.5 s.
    assert sleeps[1:] == [60.0, 2.0, 4.0]


def test_sds_429_is_retried_too(sleeps: list[float]) -> None:
    api = FakeApi(sds_route, throttle=[{"Retry-After": "2"}])
    resolution = sds_client(api, sleeps).resolve("J82001")
    assert resolution.asid == "918999198738" and sleeps == [2.0]


def test_throttled_past_the_attempts_falls_back_to_the_cache_and_says_stale(
    tmp_path: Path, sleeps: list[float]
) -> None:
    fresh = FakeApi(ord_route)
    assert ord_client(fresh, sleeps, ReferenceCache(tmp_path)).organisation("J82001") is not None
    cache = ReferenceCache(tmp_path)
    throttled = FakeApi(ord_route, throttle=[{"Retry-After": "1"}] * 10)
    record = ord_client(throttled, sleeps, cache, max_attempts=3).organisation("J82001")
    assert record is not None and record.code == "J82001"
    assert len(throttled.requests) == 3 and sleeps == [1.0, 1.0]
    [stale] = cache.stale_report()
    assert stale.startswith("ods-ord: 1 cached answer(s) used") and "HTTP 429 after 3 attempts" in stale
    nothing_cached = FakeApi(ord_route, throttle=[{}] * 10)
    with pytest.raises(SourceUnavailable, match="not cached"):
        ord_client(nothing_cached, [], ReferenceCache(tmp_path), max_attempts=2).organisation("J82002")


# --- SDS: one answer, or a finding -------------------------------------------------------------


def test_sds_single_match_gives_service_root_and_asid(sleeps: list[float]) -> None:
    api = FakeApi(sds_route)
    resolution = sds_client(api, sleeps, api_key="k3y").resolve("J82001")
    assert resolution.problem is None
    assert resolution.service_root == "https://gpconnect.supplier-a.example.nhs.uk/J82001/STU3/1/gpconnect"
    assert resolution.asid == "918999198738"
    assert [r.url.path.rsplit("/", 1)[-1] for r in api.requests] == ["Endpoint", "Device"]
    assert all(r.headers["apikey"] == "k3y" for r in api.requests)


@pytest.mark.parametrize(
    ("ods", "expected"),
    [
        ("J82009", "SDS has 0 Endpoint(s) for urn:nhs:names:services:gpconnect:fhir:rest:search:slot-1"),
        ("J82002", "SDS has 2 accredited system(s) (Device) for "
         "urn:nhs:names:services:gpconnect:fhir:rest:search:slot-1: ASIDs 918999198801, 200000000357"),
    ],
)  # fmt: skip
def test_sds_zero_or_several_matches_is_a_problem_not_a_guess(
    ods: str, expected: str, sleeps: list[float]
) -> None:
    resolution = sds_client(FakeApi(sds_route), sleeps).resolve(ods)
    assert resolution.problem == expected
    assert resolution.service_root is None and resolution.asid is None


def test_sds_endpoint_and_device_of_different_systems_is_a_problem(sleeps: list[float]) -> None:
    def other_party(request: httpx.Request) -> Answer:
        status, headers, body = sds_route(request)
        return status, headers, json.loads(json.dumps(body).replace("J82001-9000123", "J82001-7000001"))

    def endpoint_only_changed(request: httpx.Request) -> Answer:
        return (other_party if request.url.path.endswith("/Endpoint") else sds_route)(request)

    resolution = sds_client(FakeApi(endpoint_only_changed), sleeps).resolve("J82001")
    assert resolution.asid is None
    assert resolution.problem == (
        "SDS Endpoint party key J82001-7000001 does not match the Device's J82001-9000123"
    )


def test_sds_ignores_devices_without_an_asid_and_inactive_endpoints(sleeps: list[float]) -> None:
    def degraded(request: httpx.Request) -> Answer:
        status, headers, body = sds_route(request)
        for entry in body.get("entry", []):
            resource = entry["resource"]
            if resource["resourceType"] == "Endpoint":
                resource["status"] = "off"
            resource["identifier"] = [i for i in resource["identifier"] if i["system"] != ASID_SYSTEM]
        return status, headers, body

    client = sds_client(FakeApi(degraded), sleeps)
    assert client.endpoints("J82001") == [] and client.devices("J82001") == []
    assert [d.party_key for d in sds_client(FakeApi(sds_route), sleeps).devices("J82001")] == [
        "J82001-9000123"
    ]


# --- the build turns each problem into that practice's finding ---------------------------------


@pytest.fixture
def clients(sleeps: list[float]) -> Iterator[tuple[OrdClient, SdsClient]]:
    ord_api, sds_api = FakeApi(ord_route), FakeApi(sds_route)
    ord_c, sds_c = ord_client(ord_api, sleeps), sds_client(sds_api, sleeps)
    yield ord_c, sds_c
    ord_c.close()
    sds_c.close()


def test_build_keeps_the_resolved_practice_and_reports_each_other_one(
    clients: tuple[OrdClient, SdsClient],
) -> None:
    ord_c, sds_c = clients
    sizes = ListSizes(sizes={c: 6000 for c in ("J82001", "J82002", "J82009")}, extract_date=None, problems=())
    result = build_registry(
        Scope(practices=("J82001", "J82002", "J82009", "J82003", "Z99999")),
        Sources(ord=ord_c, sds=sds_c, list_sizes=sizes),
    )
    [practice] = result.registry.practices
    assert practice.ods_code == "J82001" and practice.provider_asid == "918999198738"
    assert (practice.sub_icb_code, practice.icb_code, practice.region_code, practice.pcn_code) == (
        "10K",
        "QRL",
        "Y59",
        "U91001",
    )
    findings = {(f.ods_code, f.field): f for f in result.findings if f.excluded}
    assert set(findings) == {
        ("J82002", "service_root"),
        ("J82009", "service_root"),
        ("J82003", "status"),
        ("Z99999", "ods_code"),
    }
    assert "ASIDs 918999198801, 200000000357" in findings[("J82002", "service_root")].message
    assert "0 Endpoint(s)" in findings[("J82009", "service_root")].message
    assert "merged into J82001" in findings[("J82003", "status")].message
    assert result.closed == {"J82003": "merged into J82001"}
    assert "unknown to ODS" in findings[("Z99999", "ods_code")].message
