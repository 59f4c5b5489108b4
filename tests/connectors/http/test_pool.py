"""The sharded connection pool (connectors/http/pool.py): least busy pool, counts that return."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from common.config import HttpSettings
from connectors.http.pool import SHARD_CONNECTIONS, ShardedTransport, shard_count
from connectors.http.transport import new_client


class _Recording(httpx.AsyncBaseTransport):
    """A pool stand-in: answers at once, or raises, and counts what it was sent."""

    def __init__(self, fail: bool = False) -> None:
        self.sent = 0
        self.fail = fail

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        if self.fail:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, stream=httpx.ByteStream(b"{}"))


def sharded(shards: int, fail: bool = False) -> tuple[ShardedTransport, list[_Recording]]:
    transport = ShardedTransport(max_connections=shards * SHARD_CONNECTIONS)
    pools = [_Recording(fail) for _ in range(shards)]
    transport._pools = pools  # type: ignore[assignment]
    return transport, pools


def test_a_pool_holds_at_most_sixteen_connections() -> None:
    assert [shard_count(n) for n in (1, 8, 16, 17, 32, 96)] == [1, 1, 1, 2, 2, 6]


def test_requests_go_to_the_least_busy_pool_and_free_it_when_their_body_is_closed() -> None:
    async def scenario() -> None:
        transport, pools = sharded(3)
        request = httpx.Request("GET", "http://provider.test/slots")
        open_ = [await transport.handle_async_request(request) for _ in range(6)]
        assert [p.sent for p in pools] == [2, 2, 2] and transport._open == [2, 2, 2]
        await open_[0].aclose()
        await open_[0].aclose()  # closing twice frees once
        assert transport._open == [1, 2, 2]
        await transport.handle_async_request(request)  # the pool with room takes it
        assert [p.sent for p in pools] == [3, 2, 2] and transport._open == [2, 2, 2]

    asyncio.run(scenario())


def test_a_request_that_fails_before_its_response_frees_its_pool() -> None:
    async def scenario() -> None:
        transport, _ = sharded(2, fail=True)
        with pytest.raises(httpx.ConnectError):
            await transport.handle_async_request(httpx.Request("GET", "http://provider.test/"))
        assert transport._open == [0, 0]

    asyncio.run(scenario())


def test_the_client_shards_only_past_sixteen_connections_and_never_behind_a_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

    async def scenario() -> None:
        async with new_client(HttpSettings(overall_concurrency=8)) as small, \
                new_client(HttpSettings(overall_concurrency=96)) as large:
            assert not isinstance(small._transport, ShardedTransport)
            assert isinstance(large._transport, ShardedTransport) and len(large._transport._pools) == 6

    asyncio.run(scenario())

    async def proxied() -> None:
        # httpx reads HTTPS_PROXY and NO_PROXY only for its own transport: keep it there.
        async with new_client(HttpSettings(overall_concurrency=96)) as client:
            assert not isinstance(client._transport, ShardedTransport)
            assert any(t is not None for t in client._mounts.values())

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    asyncio.run(proxied())
