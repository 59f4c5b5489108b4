"""Per-host and overall concurrency caps plus an optional requests-per-second cap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class Limiter:
    """Holds a call to at most `per_host` per host and `overall` in all, paced to `rate_per_s`.

    The semaphores are made lazily, inside the running event loop.
    """

    per_host: int
    overall: int
    rate_per_s: float
    _hosts: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    _overall: asyncio.Semaphore | None = None
    _next_slot: float = 0.0
    _rate_lock: asyncio.Lock | None = None

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Wait for a free place (overall, then per host) and for the pace; hold it for the block."""
        if self._overall is None:
            self._overall = asyncio.Semaphore(self.overall)
            self._rate_lock = asyncio.Lock()
        if host not in self._hosts:
            self._hosts[host] = asyncio.Semaphore(self.per_host)
        async with self._overall, self._hosts[host]:
            await self._pace()
            yield

    async def _pace(self) -> None:
        if self.rate_per_s <= 0 or self._rate_lock is None:
            return
        async with self._rate_lock:
            now = time.monotonic()
            wait = self._next_slot - now
            self._next_slot = max(now, self._next_slot) + 1.0 / self.rate_per_s
        if wait > 0:
            await asyncio.sleep(wait)
