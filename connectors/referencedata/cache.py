"""A small on-disk cache of reference-data answers, so a registry build works offline.

Every GET a reference-data client makes goes through `ReferenceCache.get(source, url, fetch)`.
Online, a definitive answer (200 or 404) is stored under `<root>/<source>/<sha256 of url>.json`
and used; when the remote is unreachable (connection error, 5xx, throttled past the back-off)
the cached answer is used instead and recorded as *stale*. Offline, only the cache is read.
Cached answers older than `max_age` are also reported stale, so the build can say which
sources it could not refresh.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors.http.transport import retry_after_seconds

KEPT_HEADERS = ("content-type", "x-total-count")


@dataclass(frozen=True)
class Fetched:
    """One answer to a GET: status, the headers we use, body, and where it came from."""

    status: int
    headers: dict[str, str]
    body: bytes
    fetched_at: datetime
    from_cache: bool = False


class SourceUnavailable(Exception):
    """A source answered nothing usable and nothing is cached for this request."""


class RemoteFailure(Exception):
    """Raised by a fetch function when the remote gave no definitive answer (to fall back)."""


@dataclass
class StaleSource:
    """Cached answers of one source used without refreshing them."""

    source: str
    answers: int = 0
    oldest: datetime | None = None
    reasons: set[str] = field(default_factory=set)

    def describe(self, now: datetime) -> str:
        age = f", oldest {(now - self.oldest).days} day(s) old" if self.oldest else ""
        why = "; ".join(sorted(self.reasons))
        return f"{self.source}: {self.answers} cached answer(s) used{age} ({why})"


class ReferenceCache:
    """Cache of reference-data answers under `root` (None = no cache, online only)."""

    def __init__(
        self,
        root: Path | None,
        *,
        offline: bool = False,
        max_age: timedelta = timedelta(days=35),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if offline and root is None:
            raise ValueError("offline needs a cache directory")
        self.root = root
        self.offline = offline
        self.max_age = max_age
        self._now = now
        self.stale: dict[str, StaleSource] = {}

    def get(self, source: str, url: str, fetch: Callable[[], Fetched]) -> Fetched:
        """The answer for `url`: fetched (and stored) online, else from the cache."""
        if not self.offline:
            try:
                answer = fetch()
            except RemoteFailure as exc:
                return self._cached_or_raise(source, url, f"remote failed: {exc}")
            if answer.status in (200, 404):
                self._store(source, url, answer)
            return answer
        return self._cached_or_raise(source, url, "offline")

    def stale_report(self) -> list[str]:
        now = self._now()
        return [entry.describe(now) for _, entry in sorted(self.stale.items())]

    def _cached_or_raise(self, source: str, url: str, reason: str) -> Fetched:
        cached = self._load(source, url)
        if cached is None:
            raise SourceUnavailable(f"{source}: {url} is not cached ({reason})")
        age = self._now() - cached.fetched_at
        if reason != "offline" or age > self.max_age:
            entry = self.stale.setdefault(source, StaleSource(source))
            entry.answers += 1
            entry.reasons.add(
                reason if reason != "offline" else f"offline, older than {self.max_age.days} days"
            )
            if entry.oldest is None or cached.fetched_at < entry.oldest:
                entry.oldest = cached.fetched_at
        return cached

    def _path(self, source: str, url: str) -> Path | None:
        if self.root is None:
            return None
        key = hashlib.sha256(url.encode()).hexdigest()
        return self.root / source / f"{key}.json"

    def _store(self, source: str, url: str, answer: Fetched) -> None:
        path = self._path(source, url)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "url": url,
            "status": answer.status,
            "headers": {k: v for k, v in answer.headers.items() if k in KEPT_HEADERS},
            "fetched_at": answer.fetched_at.isoformat(),
            "body_b64": base64.b64encode(answer.body).decode("ascii"),
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        tmp.replace(path)

    def _load(self, source: str, url: str) -> Fetched | None:
        path = self._path(source, url)
        if path is None or not path.exists():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            return Fetched(
                status=int(record["status"]),
                headers=dict(record["headers"]),
                body=base64.b64decode(record["body_b64"]),
                fetched_at=datetime.fromisoformat(record["fetched_at"]),
                from_cache=True,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a damaged entry is as good as none


def http_get(
    send: Callable[[], tuple[int, dict[str, str], bytes]],
    *,
    what: str,
    sleep: Callable[[float], None],
    max_attempts: int = 5,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Fetched:
    """Call `send` with back-off on 429 (honouring Retry-After) and 5xx; definitive answers return.

    Raises `RemoteFailure` when no definitive answer came, so the cache can fall back.
    """
    delay = 0.5
    for attempt in range(1, max_attempts + 1):
        status, headers, body = send()  # raises RemoteFailure on a transport error
        if status == 429 or status >= 500:
            if attempt == max_attempts:
                raise RemoteFailure(f"{what}: HTTP {status} after {max_attempts} attempts")
            sleep(_retry_after(headers.get("retry-after"), delay))
            delay = min(delay * 2, 30.0)
            continue
        return Fetched(status=status, headers=headers, body=body, fetched_at=now())
    raise RemoteFailure(f"{what}: no answer")  # pragma: no cover - loop always returns or raises


def _retry_after(value: str | None, default: float) -> float:
    """The provider's requested wait (seconds or an HTTP-date), capped at a minute; else our back-off."""
    requested = retry_after_seconds(value)
    return default if requested is None else min(requested, 60.0)
