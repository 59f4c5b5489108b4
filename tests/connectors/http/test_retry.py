"""The retry policy refuses a `Retry-After` it cannot honour instead of sleeping on it (#18)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from common.clock import SimulatedClock
from common.config import ConsumerIdentity, HttpSettings
from connectors.gpconnect.client import GpConnectClient
from connectors.gpconnect.spine import NO_FILTER
from connectors.gpconnect.windows import SearchWindow
from connectors.http.errors import RateLimited
from connectors.http.retry import retrying
from connectors.registry import Practice

pytestmark = pytest.mark.anyio

FAST = HttpSettings(backoff_initial_s=0.01, backoff_max_s=0.05, timeout_s=5.0)
PRACTICE = Practice(
    ods_code="A00001", name="P", list_size=1, clinical_system="other",
    service_root="https://provider.example/A00001/STU3/1/gpconnect",
    provider_asid="918999198993", accepts_111_booking=False,
)
WINDOW = SearchWindow(datetime(2026, 3, 23, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC))
BUNDLE = b'{"resourceType":"Bundle","type":"searchset"}'


def _client(handler: httpx.MockTransport, http: HttpSettings = FAST) -> GpConnectClient:
    return GpConnectClient(
        http, ConsumerIdentity(), clock=SimulatedClock(datetime(2026, 3, 23, tzinfo=UTC)),
        transport=handler,
    )


async def test_a_retry_after_beyond_the_cap_fails_the_practice_at_once() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(429, headers={"Retry-After": "86400"})

    started = time.monotonic()
    async with _client(httpx.MockTransport(handler)) as client:
        with pytest.raises(RateLimited) as failure:
            await client.search_free_slots(PRACTICE, WINDOW, NO_FILTER)
    assert time.monotonic() - started < 5, "the capped wait is not slept on"
    assert len(seen) == 1, "asked once, never again after an over-long Retry-After"
    error = failure.value
    assert error.error_class == "RateLimited" and not error.retryable
    assert error.retry_after_s == 86400
    text = str(error)
    assert "wait 86400 s (Retry-After)" in text and "120 s cap" in text and "A00001" in text
    assert "HTTP 429" in text and "Next step" in text


async def test_a_retry_after_within_the_cap_is_still_waited_and_retried() -> None:
    answers = [httpx.Response(429, headers={"Retry-After": "0.05"})]

    def handler(request: httpx.Request) -> httpx.Response:
        if answers:
            return answers.pop()
        return httpx.Response(200, content=BUNDLE, headers={"content-type": "application/fhir+json"})

    async with _client(httpx.MockTransport(handler)) as client:
        result = await client.search_free_slots(PRACTICE, WINDOW, NO_FILTER)
        assert client.attempts["A00001"] == 2
    assert result.http_status == 200


async def test_a_retry_after_beyond_the_remaining_budget_is_not_slept_on() -> None:
    calls = 0
    started = time.monotonic()
    with pytest.raises(RateLimited, match=r"wait 30 s .*remaining budget of \d+ s") as failure:
        async for attempt in retrying(FAST, deadline=time.monotonic() + 10):
            with attempt:
                calls += 1
                raise RateLimited(
                    "Too Many Requests", practice_ods="A00001", interaction="search free slots",
                    status=429, retry_after_s=30.0,
                )
    assert calls == 1 and time.monotonic() - started < 5
    assert not failure.value.retryable


async def test_a_retry_after_inside_the_budget_is_waited() -> None:
    calls = 0
    async for attempt in retrying(FAST, deadline=time.monotonic() + 60):
        with attempt:
            calls += 1
            if calls == 1:
                raise RateLimited(
                    "Too Many Requests", practice_ods="A00001", interaction="search free slots",
                    status=429, retry_after_s=0.01,
                )
    assert calls == 2
