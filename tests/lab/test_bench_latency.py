"""The capacity model with latency, the achieved-concurrency check and the growth summary."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from common.config import get_settings
from lab.bench import PLANS, BenchSize, select_practices
from lab.bench_capacity import Limits, calls_by_host, calls_by_supplier, capacity_model_from, predict_night
from lab.bench_growth import linear_fit, parse_sizes, summarise
from lab.bench_latency import achieved_concurrency, compare, latency_night
from lab.bench_processes import BENCH_START, HORIZON_DAYS, SANDBOX_SEED
from sandbox.england import england_estate, sample_estate
from sandbox.estate import southern_hampshire_estate
from sandbox.latency import parse_latency

ZERO = {"responses": 900, "appointment_reads": 100, "fetch_s": 10.0, "load_publish_s": 20.0}


def test_effective_concurrency_is_the_tighter_limit() -> None:
    assert Limits(per_host=8, overall=32).concurrency == 8  # the sandbox: one host
    assert Limits(per_host=8, overall=32, hosts=3).concurrency == 24
    assert Limits(per_host=8, overall=32, hosts=10).concurrency == 32


def test_prediction_is_calls_times_mean_latency_over_concurrency_plus_load() -> None:
    latency = parse_latency("p50=1s,p95=3s")
    predicted = predict_night(ZERO, latency, Limits(8, 32), suppliers={})
    assert predicted["calls"] == 1_000
    assert predicted["mean_latency_s"] == pytest.approx(1.2497, abs=1e-3)  # the mean, not the p50
    assert predicted["fetch_s"] == pytest.approx(1_000 * 1.2497 / 8, rel=1e-3)
    assert predicted["wall_s"] == pytest.approx(predicted["fetch_s"] + 20.0)


def test_at_small_latency_our_own_ceiling_binds() -> None:
    predicted = predict_night(ZERO, parse_latency("p50=1ms"), Limits(8, 32), suppliers={})
    assert predicted["fetch_s"] == 10.0 and predicted["wall_s"] == 30.0


def test_a_busy_host_bounds_the_night_when_hosts_are_uneven() -> None:
    latency = parse_latency("p50=1s")
    even = predict_night(ZERO, latency, Limits(8, 32, hosts=4), suppliers={}, busiest_host_share=0.25)
    uneven = predict_night(ZERO, latency, Limits(8, 32, hosts=4), suppliers={}, busiest_host_share=0.55)
    assert even["fetch_s"] == pytest.approx(1_000 / 32)
    assert uneven["fetch_s"] == pytest.approx(550 / 8)


def test_suppliers_latency_is_weighted_by_their_calls() -> None:
    latency = parse_latency("p50=1s;tpp:p50=3s")
    predicted = predict_night(ZERO, latency, Limits(8, 32), suppliers={"EMIS Web": 600, "SystmOne": 400})
    assert predicted["mean_latency_s"] == pytest.approx(1.8)


def test_calls_per_host_and_supplier_follow_the_searches() -> None:
    rows = sample_estate(england_estate("http://127.0.0.1:9"), 30).practices
    start = datetime.fromisoformat("2026-03-23T02:00:00+00:00")
    hosts = calls_by_host(rows, start, 28, 14)
    suppliers = calls_by_supplier(rows, start, 28, 14)
    assert list(hosts) == ["127.0.0.1:9"]
    assert sum(hosts.values()) == sum(suppliers.values()) >= 2 * len(rows)  # >= 2 windows a row
    assert set(suppliers) <= {"EMIS Web", "SystmOne", "other"}


def test_england_capacity_rows_keep_their_shape() -> None:
    model = capacity_model_from(
        {"responses": 1000, "fetch_s": 10.0, "load_publish_s": 5.0},
        england_searches=10_000, measured_on_england=False, estate_rows=100,
    )
    assert model is not None
    row = next(r for r in model["rows"] if r["latency_p50_s"] == 1.0 and r["concurrency"] == 32)
    calls = model["calls_per_night"]
    assert row["fetch_s"] == round(calls * 1.0 / 32)
    assert row["wall_s"] == round(calls / 32 + 50.0)


def test_achieved_concurrency_flags_a_broken_limit() -> None:
    limits = Limits(per_host=8, overall=32)
    held = {"requests": 50, "max_overall": 8, "mean_overall": 7.5, "hosts": {"h:1": {"max": 8, "mean": 7.5}}}
    report = achieved_concurrency(held, limits)
    assert report["limits_respected"] is True and report["max_per_host"] == 8
    broken = {**held, "hosts": {"h:1": {"max": 9, "mean": 8.1}}, "max_overall": 9}
    assert achieved_concurrency(broken, limits)["limits_respected"] is False
    assert achieved_concurrency({**held, "max_overall": 33}, limits)["limits_respected"] is False


def test_compare_reports_the_relative_error_against_the_target() -> None:
    close = compare({"wall_s": 110.0}, {"wall_s": 100.0, "fetch_s": 80.0})
    assert close["prediction_error"] == pytest.approx(0.10) and close["within_target"] is True
    far = compare({"wall_s": 80.0}, {"wall_s": 100.0, "fetch_s": 80.0})
    assert far["prediction_error"] == pytest.approx(-0.20) and far["within_target"] is False


def test_growth_sizes_parse_and_bad_ones_say_what_to_write() -> None:
    assert parse_sizes("1000, 300,6300") == [300, 1000, 6300]
    with pytest.raises(ValueError, match="300,1000,3000,6300"):
        parse_sizes("300,lots")
    with pytest.raises(ValueError, match="at least 1"):
        parse_sizes("0,10")


def test_linear_fit_and_r2() -> None:
    fit = linear_fit([300, 1000, 3000], [40.0, 110.0, 310.0])
    assert fit["fixed_s"] == pytest.approx(10.0) and fit["s_per_practice"] == pytest.approx(0.1)
    assert fit["r2"] == pytest.approx(1.0)
    assert linear_fit([1, 2], [5.0, 9.0])["r2"] is None
    assert (linear_fit([1, 2, 3], [1.0, 5.0, 2.0])["r2"] or 0) < 0.5


def test_growth_summary_flags_growing_memory_and_per_practice_wall() -> None:
    points = [
        {"practices": 300, "wall_s": 60.0, "peak_rss_tree_mib": 500.0},
        {"practices": 3000, "wall_s": 420.0, "peak_rss_tree_mib": 900.0},
    ]
    summary = summarise(points)
    assert points[0]["wall_per_practice_vs_largest"] == pytest.approx(60 / 300 / (420 / 3000), abs=1e-3)
    assert points[1]["wall_per_practice_vs_largest"] == 1.0
    assert summary["peak_rss_tree_growth"] == 1.8 and summary["memory_flat"] is False
    assert summary["wall_linear"] is None  # two sizes always fit a line


def test_the_nightly_with_latency_waits_on_the_provider_within_the_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live small estate, end to end, with 0.1 s a call and two calls a host: the night
    pays the latency on every call, and the sandbox never sees more in flight than allowed."""
    monkeypatch.setenv("SLOTSYNC_HTTP__PER_HOST_CONCURRENCY", "2")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    for key in [k for k in os.environ if k.startswith("PREFECT_API")]:
        monkeypatch.delenv(key)
    get_settings.cache_clear()
    # The small plan's rows, as the bench picks them from the live estate (a function of the seed).
    rows = [p.ods_code for p in select_practices(
        southern_hampshire_estate("http://127.0.0.1:9", SANDBOX_SEED), PLANS[BenchSize.small]
    )]
    try:
        night = latency_night(
            tmp_path / "latency", spec="p50=0.1s,p95=0.1s", nightly_rows=rows, england_practices=None,
            start=datetime.fromisoformat(BENCH_START), horizon_days=HORIZON_DAYS, progress=lambda _: None,
            zero_latency={"responses": 0, "appointment_reads": 0, "fetch_s": 0.0, "load_publish_s": 0.0},
        )
    finally:
        get_settings.cache_clear()
    achieved = night["achieved_concurrency"]
    assert night["practices"] == 4 and night["practices_failed"] == 0
    assert achieved["per_host_limit"] == 2 and achieved["limits_respected"] is True
    assert achieved["max_per_host"] == 2  # the limit binds: more calls than places
    assert achieved["requests"] >= night["responses"] > 8
    # Every slot search waited 0.1 s, two at a time: the fetch cannot be shorter.
    assert night["measured_fetch_s"] >= 0.9 * night["responses"] * 0.1 / 2
    assert night["prediction"]["effective_concurrency"] == 2
