"""httpx's connection pool, split into pools of at most `SHARD_CONNECTIONS` connections.

httpcore's pool looks at every one of its connections (is it idle, has it expired: a socket
poll each) for every request it starts and every response it closes. At the 8 calls in flight
of a default night that is cheap; at the 96 a real night needs against 1 s of Spine latency,
it was 44% of the fetch's event loop (py-spy, 1,000 practices, `--latency p50=1s,p95=3s`):
the loop answered late, and the provider saw 75 of our 96 calls in flight on average.

`ShardedTransport` keeps httpx's own transports and only chooses one per request: the one
with the fewest requests open, so none ever holds more than its share while the HTTP limiter
(connectors/http/limits.py) keeps the total at `http.overall_concurrency`. A request is open
until its response body is closed.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

SHARD_CONNECTIONS = 16  # connections per pool: below this the pool's scan costs little


def shard_count(max_connections: int) -> int:
    """How many pools hold `max_connections` with at most SHARD_CONNECTIONS each."""
    return max(1, math.ceil(max_connections / SHARD_CONNECTIONS))


class _ClosingStream(httpx.AsyncByteStream):
    """A response body that tells its pool's count when it is closed (once)."""

    def __init__(self, stream: httpx.AsyncByteStream, closed: Callable[[], None]) -> None:
        self._stream = stream
        self._closed: Callable[[], None] | None = closed

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            closed, self._closed = self._closed, None
            if closed is not None:
                closed()


class ShardedTransport(httpx.AsyncBaseTransport):
    """Several `httpx.AsyncHTTPTransport` pools; each request goes to the least busy one."""

    def __init__(self, *, max_connections: int, **transport: Any) -> None:
        shards = shard_count(max_connections)
        per_shard = math.ceil(max_connections / shards)
        limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
        self._pools = [httpx.AsyncHTTPTransport(limits=limits, **transport) for _ in range(shards)]
        self._open = [0] * shards

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        shard = min(range(len(self._pools)), key=self._open.__getitem__)
        self._open[shard] += 1

        def closed() -> None:
            self._open[shard] -= 1

        try:
            response = await self._pools[shard].handle_async_request(request)
        except BaseException:
            closed()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _ClosingStream(response.stream, closed)
        return response

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
