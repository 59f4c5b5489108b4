"""Wall-clock bounds a slow provider cannot stretch (#18): a request deadline and a practice budget.

A real loopback server trickles a body one byte at a time, each byte well inside the read
timeout (`http.timeout_s` restarts with every byte, so it never fires): only the total
request deadline and the practice's budget end the call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
import pytest

from common.clock import SimulatedClock
from common.config import ConsumerIdentity, HttpSettings
from connectors.gpconnect.client import GpConnectClient
from connectors.gpconnect.spine import NO_FILTER
from connectors.gpconnect.windows import SearchWindow
from connectors.http.errors import (
    PracticeBudgetExceeded,
    RateLimited,
    RequestDeadlineExceeded,
    TransientError,
)
from connectors.http.retry import retrying
from connectors.http.transport import Caller, new_client, send_capped
from connectors.registry import Practice

pytestmark = pytest.mark.anyio

BYTE_EVERY_S = 0.1  # far inside the 2 s read timeout below
BODY_BYTES = 400  # 40 s at that pace: a whole trickled body takes far longer than any bound here
WINDOW = SearchWindow(datetime(2026, 3, 23, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC))


def _practice(base: str) -> Practice:
    return Practice(
        ods_code="A00001", name="P", list_size=1, clinical_system="other",
        service_root=f"{base}/A00001/STU3/1/gpconnect", provider_asid="918999198993",
        accepts_111_booking=False,
    )


@asynccontextmanager
async def trickling_server() -> AsyncIterator[tuple[str, list[float]]]:
    """A loopback HTTP/1.1 server answering 200 with a body sent one byte every `BYTE_EVERY_S`.

    Yields its base URL and the instants it accepted each request.
    """
    accepted: list[float] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(time.monotonic())
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
                b"Content-Length: %d\r\n\r\n" % BODY_BYTES
            )
            for _ in range(BODY_BYTES):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(BYTE_EVERY_S)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up: what the deadline is for
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", accepted
    finally:
        server.close()
        await server.wait_closed()


async def test_the_request_deadline_ends_a_trickled_body_the_read_timeout_never_would() -> None:
    http = HttpSettings(timeout_s=2.0, request_deadline_s=1.0)
    async with trickling_server() as (base, accepted), new_client(http) as client:
        started = time.monotonic()
        with pytest.raises(RequestDeadlineExceeded) as failure:
            await send_capped(client, http, Caller("A00001", "search free slots"), "GET", f"{base}/x")
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 3.0, f"ended after {elapsed:.1f} s, not at the 1 s deadline"
    assert len(accepted) == 1
    error = failure.value
    assert error.retryable and isinstance(error, TransientError)
    text = str(error)
    assert "\n" not in text and "A00001" in text and "http.request_deadline_s" in text
    assert "Next step" in text and "trickled" in text


async def test_a_trickling_practice_fails_once_its_budget_is_spent_retries_included() -> None:
    http = HttpSettings(
        timeout_s=2.0, request_deadline_s=0.8, practice_budget_s=2.0, max_attempts=10,
        backoff_initial_s=0.05, backoff_max_s=0.1,
    )
    clock = SimulatedClock(datetime(2026, 3, 23, tzinfo=UTC))
    async with (
        trickling_server() as (base, accepted),
        GpConnectClient(http, ConsumerIdentity(), clock=clock) as client,
    ):
        practice = _practice(base)
        deadline = client.practice_deadline(practice)
        assert client.practice_deadline(practice) == deadline, "one budget per practice per run"
        started = time.monotonic()
        with pytest.raises(PracticeBudgetExceeded) as failure:
            await client.search_free_slots(practice, WINDOW, NO_FILTER, deadline=deadline)
        elapsed = time.monotonic() - started
    assert 1.9 <= elapsed < 3.5, f"ended after {elapsed:.1f} s, not at the 2 s budget"
    # Retried on the request deadline (0.8 s each) until the budget, not max_attempts, ended it.
    assert 2 <= len(accepted) < 10
    error = failure.value
    assert not error.retryable
    text = str(error)
    assert "\n" not in text and "practice A00001" in text and "http.practice_budget_s" in text
    assert "Next step" in text and "slotsync rerun" in text


async def test_a_retry_after_beyond_the_practice_budget_fails_at_once_through_the_client() -> None:
    # Under the cap, so only the budget the client passes on can refuse the wait.
    http = HttpSettings(retry_after_cap_s=100_000, practice_budget_s=5.0)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(429, headers={"Retry-After": "600"})

    clock = SimulatedClock(datetime(2026, 3, 23, tzinfo=UTC))
    practice = _practice("https://provider.example")
    async with GpConnectClient(
        http, ConsumerIdentity(), clock=clock, transport=httpx.MockTransport(handler)
    ) as client:
        started = time.monotonic()
        with pytest.raises(RateLimited, match=r"wait 600 s .*remaining budget of [45] s"):
            await client.search_free_slots(
                practice, WINDOW, NO_FILTER, deadline=client.practice_deadline(practice)
            )
    assert len(seen) == 1 and time.monotonic() - started < 2


async def test_backoff_never_sleeps_past_the_budget() -> None:
    http = HttpSettings(backoff_initial_s=3.0, backoff_max_s=3.0, max_attempts=3, practice_budget_s=0.5)
    calls = 0
    started = time.monotonic()
    with pytest.raises(PracticeBudgetExceeded, match=r"last attempt: TransientError"):
        async for attempt in retrying(http, deadline=time.monotonic() + 0.5):
            with attempt:
                calls += 1
                raise TransientError("Service Unavailable", practice_ods="A00001",
                                     interaction="search free slots", status=503)
    assert time.monotonic() - started < 1.5, "slept the 3 s backoff past a 0.5 s budget"
    assert calls in (2, 3)  # the first retry waits out exactly what is left, no more
