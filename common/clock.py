"""One injectable notion of "now" for the sandbox and the pipeline.

Everything that needs the current time (JWT `iat`, window planning, booking simulation,
release decisions) takes a `Clock`, so a simulated week can be replayed deterministically
by moving one `SimulatedClock` forward.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Source of the current instant (always timezone-aware UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock that only moves when told to; safe to share between threads."""

    def __init__(self, start: datetime) -> None:
        self._now = _require_aware(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, instant: datetime) -> None:
        """Move to `instant`; time never runs backwards in a replay."""
        instant = _require_aware(instant)
        with self._lock:
            if instant < self._now:
                raise ValueError(f"simulated clock cannot go back from {self._now} to {instant}")
            self._now = instant

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now = self._now + delta
            return self._now


def _require_aware(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("clock instants must be timezone-aware")
    return instant.astimezone(UTC)
