"""`Retry-After` parsing, the one status table of the shared HTTP layer, and "only a 200 is data"."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import formatdate

import httpx
import pytest

from common.clock import SimulatedClock
from common.config import ConsumerIdentity, HttpSettings
from connectors.bookinglog import BookingLogClient
from connectors.gpconnect.client import GpConnectClient
from connectors.gpconnect.spine import NO_FILTER
from connectors.gpconnect.windows import SearchWindow
from connectors.http.errors import (
    HttpError,
    NotFound,
    RateLimited,
    Redirected,
    RequestRejected,
    ResponseInvalid,
    TransientError,
    UnexpectedStatus,
    classify_status,
)
from connectors.http.transport import retry_after_seconds
from connectors.registry import BookingOrganisation, Practice

NOW = 1_780_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        ("0", 0.0),
        ("-5", 0.0),
        (formatdate(NOW + 45, usegmt=True), 45.0),
        (formatdate(NOW - 45, usegmt=True), 0.0),
        ("Wed, 21 Oct 2015 07:28:00 -0000", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value, now=NOW) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [(429, RateLimited), (503, TransientError), (404, NotFound), (500, HttpError), (418, RequestRejected)],
)
def test_one_status_table(status: int, expected: type[HttpError]) -> None:
    assert classify_status(status) is expected


@pytest.mark.parametrize("status", [300, 301, 302, 303, 304, 307, 308])
def test_every_redirect_is_classified_never_success(status: int) -> None:
    assert classify_status(status) is Redirected
    assert not Redirected.retryable


@pytest.mark.parametrize("status", [100, 201, 202, 203, 204, 206])
def test_a_non_200_success_status_is_classified_not_data(status: int) -> None:
    assert classify_status(status) is UnexpectedStatus
    assert issubclass(UnexpectedStatus, ResponseInvalid) and not UnexpectedStatus.retryable


BUNDLE = b'{"resourceType":"Bundle","type":"searchset","entry":[]}'
PRACTICE = Practice(
    ods_code="A00001", name="P", list_size=1, clinical_system="other",
    service_root="https://provider.example/A00001/STU3/1/gpconnect",
    provider_asid="918999198993", accepts_111_booking=False,
)
FAST = HttpSettings(backoff_initial_s=0.01, backoff_max_s=0.05, timeout_s=5.0)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "headers", "error", "text"),
    [
        (302, {"location": "https://evil.example/steal"}, Redirected, "evil.example (another host)"),
        (301, {"location": "/A00001/STU3/1/gpconnect/Slot"}, Redirected, "not followed"),
        (307, {}, Redirected, "redirect without a Location"),
        (204, {}, UnexpectedStatus, "HTTP 204"),
        (203, {}, UnexpectedStatus, "HTTP 203"),
    ],
)
async def test_a_fhir_bundle_under_a_non_200_status_is_never_data(
    status: int, headers: dict[str, str], error: type[HttpError], text: str
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            status, content=BUNDLE, headers={"content-type": "application/fhir+json", **headers}
        )

    window = SearchWindow(datetime(2026, 3, 23, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC))
    client = GpConnectClient(
        FAST, ConsumerIdentity(), clock=SimulatedClock(datetime(2026, 3, 23, tzinfo=UTC)),
        transport=httpx.MockTransport(handler),
    )
    async with client:
        with pytest.raises(error, match=re.escape(text)) as failure:
            await client.search_free_slots(PRACTICE, window, NO_FILTER)
    assert failure.value.status == status and "Next step" in str(failure.value)
    assert [r.url.host for r in seen] == ["provider.example"], "not retried, never followed"


@pytest.mark.anyio
async def test_a_booking_log_behind_a_redirect_is_not_loaded() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            302, content=b"[]", headers={"location": "http://other.example/x.json"}
        )

    org = BookingOrganisation(
        ods_code="RYE", name="NHS 111 provider", kind="nhs111",
        booking_log_url="https://x.example/bookings.json",
    )
    async with BookingLogClient(FAST, hash_secret="k", transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(Redirected, match=r"other\.example \(another host\)"):
            await c.fetch(org)
    assert len(seen) == 1
