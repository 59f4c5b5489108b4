"""The booking-log client through the shared HTTP layer: size cap and HTTP-date Retry-After."""

from __future__ import annotations

import time
from email.utils import formatdate

import httpx
import orjson
import pytest

from common.config import HttpSettings
from connectors.bookinglog import BookingLogClient
from connectors.http.errors import HttpError, RateLimited, ResponseInvalid
from connectors.registry import BookingOrganisation

pytestmark = pytest.mark.anyio

ORG = BookingOrganisation(
    ods_code="RYE", name="NHS 111 provider", kind="nhs111", booking_log_url="https://x.example/bookings.json"
)
FAST = HttpSettings(backoff_initial_s=0.01, backoff_max_s=0.05, timeout_s=5.0)


def _serving(responses: list[httpx.Response], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return responses.pop(0) if len(responses) > 1 else responses[0]

    return httpx.MockTransport(handler)


async def test_booking_log_over_the_size_cap_is_refused_not_retried() -> None:
    seen: list[httpx.Request] = []
    big = orjson.dumps([{"pad": "x" * 2048}])  # over a 1 KiB cap
    http = FAST.model_copy(update={"max_response_bytes": 1024})
    transport = _serving([httpx.Response(200, content=big)], seen)
    async with BookingLogClient(http, hash_secret="k", transport=transport) as client:
        with pytest.raises(ResponseInvalid, match="larger than the 1024-byte cap") as excinfo:
            await client.fetch(ORG)
    assert len(seen) == 1, "an oversized export is not worth a retry"
    assert "booking organisation RYE" in str(excinfo.value)
    assert excinfo.value.error_class == "ResponseInvalid"


async def test_booking_log_reads_retry_after_as_an_http_date() -> None:
    seen: list[httpx.Request] = []
    later = formatdate(time.time() + 90, usegmt=True)
    http = FAST.model_copy(update={"max_attempts": 1})
    transport = _serving([httpx.Response(429, headers={"Retry-After": later})], seen)
    async with BookingLogClient(http, hash_secret="k", transport=transport) as client:
        with pytest.raises(RateLimited) as excinfo:
            await client.fetch(ORG)
    assert excinfo.value.retry_after_s is not None
    assert 80 < excinfo.value.retry_after_s <= 90


async def test_booking_log_waits_out_a_past_http_date_and_then_succeeds() -> None:
    seen: list[httpx.Request] = []
    past = formatdate(time.time() - 60, usegmt=True)
    transport = _serving(
        [httpx.Response(429, headers={"Retry-After": past}), httpx.Response(200, content=b"[]")], seen
    )
    async with BookingLogClient(FAST, hash_secret="k", transport=transport) as client:
        export = await client.fetch(ORG)
    assert len(seen) == 2 and export.entries == () and export.http_status == 200


async def test_booking_log_failures_are_generic_http_errors_not_gp_connect_ones() -> None:
    seen: list[httpx.Request] = []
    transport = _serving([httpx.Response(500)], seen)
    async with BookingLogClient(FAST, hash_secret="k", transport=transport) as client:
        with pytest.raises(HttpError) as excinfo:
            await client.fetch(ORG)
    assert excinfo.value.error_class == "HttpError" and excinfo.value.status == 500
