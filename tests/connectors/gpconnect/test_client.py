"""The GP Connect client against the real sandbox over loopback, plus wire-format checks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from common.clock import SimulatedClock
from common.config import ConsumerIdentity, HttpSettings
from connectors.gpconnect.client import GpConnectClient
from connectors.gpconnect.spine import NO_FILTER, SearchFilter
from connectors.gpconnect.windows import SearchWindow, plan_windows
from connectors.http.errors import (
    ConfigurationError,
    Conflict,
    HttpError,
    NotFound,
    RequestRejected,
    ResponseInvalid,
    TransientError,
)
from connectors.registry import Practice
from sandbox import SandboxServer
from sandbox.faults import FaultRule
from tests.sandbox.helpers import booking_body

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 23, 6, 0, tzinfo=UTC)
FAST = HttpSettings(backoff_initial_s=0.01, backoff_max_s=0.05, timeout_s=5.0)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(clock=SimulatedClock(NOW)) as server:
        yield server


@pytest.fixture(autouse=True)
def clear_faults(sandbox: SandboxServer) -> Iterator[None]:
    yield
    sandbox.state.faults.clear()


def practice(sandbox: SandboxServer, index: int = 0) -> Practice:
    return [p for p in sandbox.registry.practices if p.kind == "practice"][index]


async def search(client: GpConnectClient, p: Practice, sf: SearchFilter = NO_FILTER) -> dict[str, Any]:
    window = plan_windows(NOW, 7)[0]
    response = await client.search_free_slots(p, window, sf)
    body: dict[str, Any] = orjson.loads(response.body)
    return body


def client_for(http: HttpSettings = FAST, **kwargs: Any) -> GpConnectClient:
    return GpConnectClient(http, ConsumerIdentity(), clock=SimulatedClock(NOW), **kwargs)


async def test_capability_statement(sandbox: SandboxServer) -> None:
    async with client_for() as client:
        statement = await client.capability_statement(practice(sandbox))
    assert statement["resourceType"] == "CapabilityStatement"


async def test_differential_searches_see_different_slots(sandbox: SandboxServer) -> None:
    p = next(x for x in sandbox.registry.practices if x.accepts_111_booking and x.kind == "practice")
    async with client_for() as client:
        general = await search(client, p)
        nhs111 = await search(client, p, SearchFilter("urgent-care", p.nhs111_provider_ods))

    def slot_ids(bundle: dict[str, Any]) -> set[str]:
        entries = bundle.get("entry") or []
        return {e["resource"]["id"] for e in entries if e["resource"]["resourceType"] == "Slot"}

    assert slot_ids(general) < slot_ids(nhs111), "111 sees everything general plus its reserved slots"


async def test_book_read_amend_cancel_and_patient_appointments(sandbox: SandboxServer) -> None:
    p = practice(sandbox, 1)
    async with client_for() as client:
        bundle = await search(client, p)
        resources = [e["resource"] for e in bundle["entry"]]
        slot = next(r for r in resources if r["resourceType"] == "Slot")
        schedule = next(
            r
            for r in resources
            if r["resourceType"] == "Schedule" and r["id"] == slot["schedule"]["reference"].split("/")[1]
        )
        location = next(a["reference"] for a in schedule["actor"] if a["reference"].startswith("Location/"))
        patient_id = sandbox.state.profile(p.ods_code).patients[0].logical_id
        body = booking_body(slot, patient_id=patient_id, location_id=location.split("/")[1])
        booked = await client.book_appointment(p, body)
        assert booked.status == "booked" and booked.slot_ids == [slot["id"]]
        assert booked.booking_org_ods == "X26" and booked.patient_id == patient_id

        with pytest.raises(Conflict) as taken:
            await client.book_appointment(p, body)
        assert taken.value.spine_code == "DUPLICATE_REJECTED"

        read = await client.read_appointment(p, booked.id)
        assert read.meta.versionId == booked.meta.versionId
        resource = read.model_dump(mode="json", exclude_none=True)
        full = {**body, **resource, "description": "Amended by the client test"}
        amended = await client.amend_appointment(p, full, read.meta.versionId or "")
        assert amended.description == "Amended by the client test"
        with pytest.raises(Conflict):  # the old version no longer matches
            await client.amend_appointment(p, full, read.meta.versionId or "")

        day = date(2026, 3, 23)
        listed = await client.patient_appointments(p, patient_id, day, day + timedelta(days=14))
        assert booked.id in {a.id for a in listed}

        current = await client.read_appointment(p, booked.id)
        cancel = {
            **full,
            "status": "cancelled",
            "extension": [
                *full["extension"],
                {
                    "url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-AppointmentCancellationReason-1",
                    "valueString": "Patient no longer needs it",
                },
            ],
        }
        cancelled = await client.cancel_appointment(p, cancel, current.meta.versionId or "")
        assert cancelled.status == "cancelled"
        with pytest.raises(NotFound):
            await client.read_appointment(p, "no-such-appointment")


@pytest.mark.parametrize(
    "fault",
    [
        FaultRule(kind="status", status=502, count=2),
        FaultRule(kind="status", status=503, count=1),
        FaultRule(kind="status", status=504, count=1),
        FaultRule(kind="status", status=429, retry_after_s=0.1, count=2),
        FaultRule(kind="reset", count=1),
        FaultRule(kind="truncate", count=1),
        FaultRule(kind="wrong_content_type", count=1),
        FaultRule(kind="stall", delay_s=2.0, count=1),
    ],
    ids=lambda f: f"{f.kind}-{f.status}",
)
async def test_transient_faults_are_retried_to_the_same_answer(
    sandbox: SandboxServer, fault: FaultRule
) -> None:
    p = practice(sandbox, 2)
    http = FAST.model_copy(update={"timeout_s": 0.5})
    async with client_for(http) as client:
        clean = await search(client, p)
        sandbox.state.faults.add(fault.model_copy(update={"practice": p.ods_code}))
        before = client.attempts[p.ods_code]
        faulty = await search(client, p)
        assert faulty == clean
        assert client.attempts[p.ods_code] - before == (fault.count or 1) + 1


async def test_retries_are_capped_and_the_error_says_what_to_do(sandbox: SandboxServer) -> None:
    p = practice(sandbox, 3)
    sandbox.state.faults.add(FaultRule(practice=p.ods_code, kind="status", status=503))
    async with client_for(FAST.model_copy(update={"max_attempts": 3})) as client:
        with pytest.raises(TransientError) as failure:
            await search(client, p)
        assert client.attempts[p.ods_code] == 3
    text = str(failure.value)
    assert p.ods_code in text and "search free slots" in text and "HTTP 503" in text and "Next step" in text


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, ConfigurationError), (403, ConfigurationError), (400, RequestRejected), (422, RequestRejected)],
)
async def test_client_errors_are_never_retried(
    sandbox: SandboxServer, status: int, error: type[Exception]
) -> None:
    p = practice(sandbox, 4)
    sandbox.state.faults.add(FaultRule(practice=p.ods_code, kind="status", status=status))
    async with client_for() as client:
        with pytest.raises(error):
            await search(client, p)
        assert client.attempts[p.ods_code] == 1


async def test_oversized_responses_are_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=b"{" + b" " * 5000 + b"}", headers={"content-type": "application/fhir+json"}
        )

    p = Practice(
        ods_code="A00001",
        name="Big",
        list_size=1,
        clinical_system="other",
        service_root="https://big.example/A00001/STU3/1/gpconnect",
        provider_asid="123456789012",
        accepts_111_booking=False,
    )
    http = FAST.model_copy(update={"max_response_bytes": 1024})
    async with client_for(http, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(Exception, match="larger than the 1024-byte cap"):
            await search(client, p)


async def test_wire_format_of_a_dst_window_search_through_the_ssp() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            content=b'{"resourceType":"Bundle","type":"searchset"}',
            headers={"content-type": "application/fhir+json;charset=utf-8"},
        )

    p = Practice(
        ods_code="A00001",
        name="P",
        list_size=1,
        clinical_system="other",
        service_root="https://provider.example/A00001/STU3/1/gpconnect",
        provider_asid="918999198993",
        accepts_111_booking=True,
        nhs111_provider_ods="RYE",
    )
    http = FAST.model_copy(update={"ssp_prefix": "https://ssp.example"})
    window = SearchWindow(datetime(2026, 10, 19, 1, 0, tzinfo=UTC), datetime(2026, 11, 2, 0, 0, tzinfo=UTC))
    async with client_for(http, transport=httpx.MockTransport(handler)) as client:
        await client.search_free_slots(p, window, SearchFilter("urgent-care", "RYE"))
    request = seen[0]
    url = str(request.url)
    assert url.startswith("https://ssp.example/https://provider.example/A00001/STU3/1/gpconnect/Slot?")
    query = request.url.query.decode()
    assert "start=ge2026-10-19T02%3A00%3A00%2B01%3A00" in query
    assert "end=le2026-11-02T00%3A00%3A00%2B00%3A00" in query
    assert "status=free" in query and "_include=Slot%3Aschedule" in query
    assert "searchFilter=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fods-organization-code%7CRYE" in query
    assert request.headers["Ssp-To"] == "918999198993"
    assert request.headers["Ssp-InteractionID"].endswith(":rest:search:slot-1")
    authorization = request.headers["Authorization"]
    assert authorization.startswith("Bearer ") and authorization.endswith(".")


def _outcome_practice() -> Practice:
    return Practice(
        ods_code="A00002", name="Outcome", list_size=1, clinical_system="other",
        service_root="https://outcome.example/A00002/STU3/1/gpconnect", provider_asid="123456789012",
        accepts_111_booking=False,
    )


def _answering(status: int, body: dict[str, Any]) -> httpx.MockTransport:
    content = orjson.dumps(body)
    return httpx.MockTransport(lambda request: httpx.Response(
        status, content=content, headers={"content-type": "application/fhir+json"}))


LONG = "the slot search could not be completed for patient 943 476 5919 because " + "x" * 400


@pytest.mark.parametrize("status", [200, 400, 500])
async def test_an_operation_outcome_shows_its_issue_codes_and_diagnostics(status: int) -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "processing", "diagnostics": LONG},
        {"severity": "warning", "code": "too-costly"},
    ]}
    async with client_for(transport=_answering(status, outcome)) as client:
        with pytest.raises(HttpError) as failure:
            await search(client, _outcome_practice())
    text = str(failure.value)
    assert text.startswith(f"practice A00002, search free slots: HTTP {status}: ")
    assert ("processing: the slot search could not be completed for patient [number removed] "
            "because xxx") in text
    assert "943" not in text and "x" * 300 not in text  # no patient identifier; cut short
    assert "Next step: " in text and "\n" not in text
    if status == 200:  # a success status with the provider's error is refused, never loaded
        assert isinstance(failure.value, ResponseInvalid) and not failure.value.retryable
        assert "OperationOutcome instead of a Bundle" in text


async def test_an_outcome_inside_a_bundle_is_not_an_error() -> None:
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": {"resourceType": "OperationOutcome", "issue": [{"code": "informational"}]}}]}
    async with client_for(transport=_answering(200, bundle)) as client:
        assert (await search(client, _outcome_practice()))["resourceType"] == "Bundle"
