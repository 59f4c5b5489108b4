"""Provider latency for the sandbox, and the calls it actually had in flight.

A real night waits on providers through the Spine (around a second a call, worse at peaks);
the sandbox answers at once. `LatencyModel` draws a delay per GP Connect request from a
log-normal with the given median and 95th percentile, per clinical-system supplier, from a
seeded generator so runs repeat:

    p50=1s,p95=3s                       every supplier
    p50=1s,p95=3s;emis:p50=2s,p95=6s    EMIS Web differs; the rest as the first group

Suppliers: `emis` (EMIS Web), `tpp` (SystmOne), `other`. Values take `s` or `ms` (bare numbers
are seconds); a group with only `p50` is a constant delay. A log-normal is the usual shape of
service latency: never negative, a long right tail. Its mean, exp(mu + sigma^2 / 2) with
mu = ln p50 and sigma = ln(p95 / p50) / z0.95, is what a capacity model multiplies by.

`ProviderLatency` is an ASGI middleware for both sandbox apps (live and pre-rendered): on
`/{ODS}/STU3/1/gpconnect/...` it counts the request in flight (per `Host` and overall),
sleeps the drawn delay, then lets the app answer. `GET /_sandbox/in-flight` reports the
maximum and time-weighted mean in flight over the span from the first request to the last
response; `DELETE` resets it. Other paths (booking-log exports, control) pass untouched.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

Z95 = NormalDist().inv_cdf(0.95)
SUPPLIERS = {"emis": "EMIS Web", "tpp": "SystmOne", "other": "other"}
DEFAULT_LATENCY_SEED = 20261206
IN_FLIGHT_PATH = "/_sandbox/in-flight"
_GPCONNECT = re.compile(r"^/([^/]+)/STU3/1/gpconnect/")
_VALUE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")


@dataclass(frozen=True)
class LogNormal:
    """Delay in seconds with median `p50` and 95th percentile `p95` (p95 == p50: constant)."""

    p50: float
    p95: float

    @property
    def mu(self) -> float:
        return math.log(self.p50) if self.p50 > 0 else -math.inf

    @property
    def sigma(self) -> float:
        return math.log(self.p95 / self.p50) / Z95 if self.p50 > 0 else 0.0

    @property
    def mean(self) -> float:
        return 0.0 if self.p50 <= 0 else math.exp(self.mu + self.sigma**2 / 2)

    def draw(self, rng: random.Random) -> float:
        return 0.0 if self.p50 <= 0 else rng.lognormvariate(self.mu, self.sigma)

    def as_json(self) -> dict[str, float]:
        return {"p50_s": self.p50, "p95_s": self.p95, "mean_s": round(self.mean, 4)}


@dataclass(frozen=True)
class LatencyModel:
    """Per-supplier delays (keys: clinical system names); `default` for any other."""

    default: LogNormal
    by_supplier: dict[str, LogNormal] = field(default_factory=dict)
    spec: str = ""

    def for_supplier(self, supplier: str | None) -> LogNormal:
        return self.by_supplier.get(supplier or "", self.default)

    def mean_s(self, calls_by_supplier: dict[str, int]) -> float:
        """Mean delay over a night with these calls per supplier (the default's if none)."""
        total = sum(calls_by_supplier.values())
        if total == 0:
            return self.default.mean
        return sum(self.for_supplier(s).mean * n for s, n in calls_by_supplier.items()) / total

    def as_json(self) -> dict[str, Any]:
        return {"spec": self.spec, "default": self.default.as_json(),
                "by_supplier": {s: d.as_json() for s, d in self.by_supplier.items()}}


def parse_latency(spec: str) -> LatencyModel:
    """`p50=1s,p95=3s[;emis:p50=...,p95=...]` as a model; ValueError says what is wrong."""
    default: LogNormal | None = None
    by_supplier: dict[str, LogNormal] = {}
    for group in (g.strip() for g in spec.split(";")):
        if not group:
            continue
        supplier, _, body = group.rpartition(":")
        delay = _parse_group(body, group)
        if not supplier:
            default = delay
        elif supplier.lower() in SUPPLIERS:
            by_supplier[SUPPLIERS[supplier.lower()]] = delay
        else:
            raise ValueError(f"--latency {group!r}: supplier must be one of {', '.join(SUPPLIERS)}")
    if default is None and not by_supplier:
        raise ValueError(f"--latency {spec!r}: give at least p50, e.g. p50=1s,p95=3s")
    return LatencyModel(default or LogNormal(0.0, 0.0), by_supplier, spec)


def _parse_group(body: str, group: str) -> LogNormal:
    values: dict[str, float] = {}
    for part in (p.strip() for p in body.split(",")):
        key, _, raw = part.partition("=")
        match = _VALUE.match(raw.strip())
        if key.strip() not in ("p50", "p95") or match is None:
            raise ValueError(f"--latency {group!r}: write p50=1s,p95=3s (s or ms)")
        values[key.strip()] = float(match[1]) / (1000 if match[2] == "ms" else 1)
    if "p50" not in values:
        raise ValueError(f"--latency {group!r}: p50 is required")
    p50 = values["p50"]
    p95 = values.get("p95", p50)
    if p95 < p50 or (p50 == 0 and p95 > 0):
        raise ValueError(f"--latency {group!r}: p95 must be at least p50 (and p50 above 0)")
    return LogNormal(p50, p95)


@dataclass
class _Gauge:
    """In-flight count with its maximum and time integral."""

    now: int = 0
    peak: int = 0
    area: float = 0.0
    changed_at: float = 0.0

    def move(self, by: int, at: float) -> None:
        if self.changed_at:
            self.area += self.now * (at - self.changed_at)
        self.changed_at = at
        self.now += by
        self.peak = max(self.peak, self.now)


@dataclass
class InFlight:
    """GP Connect requests in flight, per host and overall, as the provider saw them."""

    overall: _Gauge = field(default_factory=_Gauge)
    hosts: dict[str, _Gauge] = field(default_factory=dict)
    requests: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    clock: Callable[[], float] = time.monotonic

    def enter(self, host: str) -> None:
        at = self.clock()
        if not self.first_at:
            self.first_at = at
        self.requests += 1
        self.overall.move(1, at)
        self.hosts.setdefault(host, _Gauge()).move(1, at)

    def leave(self, host: str) -> None:
        at = self.last_at = self.clock()
        self.overall.move(-1, at)
        self.hosts[host].move(-1, at)

    def as_json(self) -> dict[str, Any]:
        span = self.last_at - self.first_at

        def mean(gauge: _Gauge) -> float | None:
            return round(gauge.area / span, 2) if span > 0 else None

        return {
            "requests": self.requests,
            "span_s": round(span, 3),
            "max_overall": self.overall.peak,
            "mean_overall": mean(self.overall),
            "hosts": {host: {"max": g.peak, "mean": mean(g)} for host, g in sorted(self.hosts.items())},
        }


class ProviderLatency:
    """ASGI middleware: count GP Connect requests in flight and delay them by the model."""

    def __init__(
        self, app: ASGIApp, *, latency: LatencyModel | None, supplier_of: Callable[[str], str | None],
        seed: int = DEFAULT_LATENCY_SEED, in_flight: InFlight | None = None,
    ) -> None:
        self.app = app
        self.latency = latency
        self.supplier_of = supplier_of
        self.rng = random.Random(seed)
        self.in_flight = in_flight if in_flight is not None else InFlight()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == IN_FLIGHT_PATH:
            await self._report(scope, send)
            return
        match = _GPCONNECT.match(path)
        if match is None:
            await self.app(scope, receive, send)
            return
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        self.in_flight.enter(host)
        try:
            if self.latency is not None:
                delay = self.latency.for_supplier(self.supplier_of(match[1])).draw(self.rng)
                if delay > 0:
                    await asyncio.sleep(delay)
            await self.app(scope, receive, send)
        finally:
            self.in_flight.leave(host)

    async def _report(self, scope: Scope, send: Send) -> None:
        if scope["method"] == "DELETE":
            self.in_flight = InFlight()
        body = orjson.dumps({**self.in_flight.as_json(),
                             "latency": self.latency.as_json() if self.latency else None})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
