"""Provider latency in the sandbox: the spec, the draws, the delay served and the in-flight count."""

from __future__ import annotations

import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from common.clock import SimulatedClock
from connectors.gpconnect.spine import Interaction
from sandbox import SandboxServer
from sandbox.latency import InFlight, LogNormal, parse_latency
from tests.sandbox.helpers import START, GpcClient, small_estate


def test_spec_sets_a_default_and_per_supplier_overrides() -> None:
    model = parse_latency("p50=1s,p95=3s; emis:p50=200ms,p95=0.5")
    assert model.default == LogNormal(1.0, 3.0)
    assert model.for_supplier("EMIS Web") == LogNormal(0.2, 0.5)
    assert model.for_supplier("SystmOne") == model.default
    assert model.for_supplier(None) == model.default
    assert parse_latency("p50=0.3").default == LogNormal(0.3, 0.3)  # constant


@pytest.mark.parametrize(
    ("spec", "says"),
    [("p95=3s", "p50 is required"), ("p50=1s,p95=0.5s", "at least p50"), ("p50=fast", "p50=1s,p95=3s"),
     ("cerner:p50=1s", "supplier must be one of"), ("", "at least p50"), ("p50=1s,p99=3s", "p50=1s,p95=3s")],
)
def test_bad_specs_say_what_to_write(spec: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_latency(spec)


def test_seeded_draws_have_the_asked_quantiles_and_mean() -> None:
    delay = LogNormal(1.0, 3.0)
    rng = random.Random(7)
    draws = sorted(delay.draw(rng) for _ in range(20_000))
    assert draws[len(draws) // 2] == pytest.approx(1.0, rel=0.05)
    assert draws[int(len(draws) * 0.95)] == pytest.approx(3.0, rel=0.08)
    assert statistics.fmean(draws) == pytest.approx(delay.mean, rel=0.05)
    assert delay.mean == pytest.approx(1.25, abs=0.01)  # exp(sigma^2/2), sigma = ln 3 / 1.645


def test_same_seed_same_draws() -> None:
    delay = LogNormal(0.5, 2.0)
    first, second = random.Random(11), random.Random(11)
    assert [delay.draw(first) for _ in range(50)] == [delay.draw(second) for _ in range(50)]


def test_mean_weights_suppliers_by_their_calls() -> None:
    model = parse_latency("p50=1s;tpp:p50=3s")
    assert model.mean_s({"EMIS Web": 3, "SystmOne": 1}) == pytest.approx(1.5)


def test_in_flight_keeps_peak_and_time_weighted_mean() -> None:
    now = [0.0]
    account = InFlight(clock=lambda: now[0])
    now[0] = 1.0
    account.enter("a")  # 1 in flight over [1, 3)
    now[0] = 2.0
    account.enter("a")  # 2 over [2, 3)
    account.enter("b")
    now[0] = 3.0
    account.leave("a")
    account.leave("a")
    account.leave("b")
    report = account.as_json()
    assert report["requests"] == 3 and report["span_s"] == 2.0
    assert report["max_overall"] == 3
    assert report["mean_overall"] == pytest.approx((1 * 1 + 3 * 1) / 2)
    assert report["hosts"]["a"] == {"max": 2, "mean": pytest.approx(1.5)}
    assert report["hosts"]["b"] == {"max": 1, "mean": 0.5}


def test_live_sandbox_delays_each_search_and_counts_it_in_flight() -> None:
    clock = SimulatedClock(START)
    latency = parse_latency("p50=0.2s,p95=0.2s")
    with SandboxServer(clock=clock, registry_factory=small_estate, latency=latency) as sandbox:
        gpc = GpcClient(sandbox, clock)
        practice = sandbox.registry.practices[0]
        meta = gpc.request("GET", practice, "/metadata", Interaction.METADATA)  # warm the book
        assert meta.status_code == 200
        httpx.delete(f"{sandbox.base_url}/_sandbox/in-flight")

        def one(_: int) -> float:
            began = time.perf_counter()
            response = gpc.search(practice, "2026-03-23", "2026-03-24")
            assert response.status_code == 200, response.text
            return time.perf_counter() - began

        with ThreadPoolExecutor(4) as pool:
            took = list(pool.map(one, range(4)))
        report = httpx.get(f"{sandbox.base_url}/_sandbox/in-flight").json()
        gpc.close()
    assert min(took) >= 0.2
    assert statistics.median(took) < 0.2 + 0.5  # the delay, plus the search itself
    assert report["requests"] == 4
    assert 2 <= report["max_overall"] <= 4
    assert report["latency"]["default"]["p50_s"] == 0.2
    (host,) = report["hosts"]
    assert host == sandbox.base_url.removeprefix("http://")


def test_without_latency_the_sandbox_answers_at_once() -> None:
    clock = SimulatedClock(START)
    with SandboxServer(clock=clock, registry_factory=small_estate) as sandbox:
        gpc = GpcClient(sandbox, clock)
        practice = sandbox.registry.practices[0]
        gpc.search(practice, "2026-03-23", "2026-03-24")
        began = time.perf_counter()
        assert gpc.search(practice, "2026-03-23", "2026-03-24").status_code == 200
        took = time.perf_counter() - began
        report = httpx.get(f"{sandbox.base_url}/_sandbox/in-flight").json()
        gpc.close()
    assert took < 0.2
    assert report["requests"] == 2 and report["latency"] is None
