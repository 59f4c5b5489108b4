"""`slotsync bench --latency p50=1s,p95=3s`: the nightly run again, with provider latency.

The bench's own nightly run talks to a sandbox that answers at once, which hides what decides
a real night: the provider's latency through the Spine. This repeats the same nightly run
(same estate, same rows, same settings) against a sandbox that delays every GP Connect call
by a draw from the latency model (`sandbox.latency`, seeded), and holds its wall time against
the capacity model's prediction for that latency and the run's in-flight limits
(`lab.bench_capacity.predict_night`, fed the zero-latency run's figures).

The sandbox counts the calls it had in flight, per host and overall: the achieved
concurrency, reported with its maximum and time-weighted mean, and checked against
`http.per_host_concurrency` and `http.overall_concurrency` (the limits must never be exceeded).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from common.config import get_settings
from lab.bench_capacity import (
    TARGET_PREDICTION_ERROR,
    Limits,
    calls_by_host,
    calls_by_supplier,
    predict_night,
)
from lab.bench_processes import StandaloneSandbox, run_nightly
from sandbox.latency import parse_latency

# The latency night's noop-flow for Prefect's overhead is not what it measures: keep it tiny.
LATENCY_NOOP_TASKS = 1


def achieved_concurrency(in_flight: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """The sandbox's in-flight account against the limits: max and mean, and whether they held."""
    hosts = in_flight.get("hosts") or {}
    max_per_host = max((h["max"] for h in hosts.values()), default=0)
    return {
        "requests": in_flight.get("requests"),
        "max_overall": in_flight.get("max_overall"),
        "mean_overall": in_flight.get("mean_overall"),
        "max_per_host": max_per_host,
        "per_host": hosts,
        "per_host_limit": limits.per_host,
        "overall_limit": limits.overall,
        "limits_respected": max_per_host <= limits.per_host
        and int(in_flight.get("max_overall") or 0) <= limits.overall,
    }


def compare(measured: dict[str, Any], predicted: dict[str, Any]) -> dict[str, Any]:
    """Measured wall against the prediction: the relative error and whether it is within target."""
    wall, expected = float(measured["wall_s"]), float(predicted["wall_s"])
    error = (wall - expected) / expected if expected > 0 else None
    return {
        "measured_wall_s": wall,
        "measured_fetch_s": measured.get("fetch_s"),
        "measured_load_publish_s": measured.get("load_publish_s"),
        "predicted_wall_s": expected,
        "predicted_fetch_s": predicted["fetch_s"],
        "prediction_error": None if error is None else round(error, 4),
        "target_prediction_error": TARGET_PREDICTION_ERROR,
        "within_target": error is not None and abs(error) <= TARGET_PREDICTION_ERROR,
    }


def latency_night(
    root: Path, *, spec: str, zero_latency: dict[str, Any], nightly_rows: Sequence[str] | None,
    england_practices: int | None, start: datetime, horizon_days: int,
    in_flight_limit: int | None = None, progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the nightly again against a sandbox with `spec` latency; measured vs predicted.

    `in_flight_limit` sets this night's per-host and overall limits (the sandbox serves every
    practice from one host, as the Spine Secure Proxy does), so a latency night of all England
    need not run at the default 8 calls in flight for hours.
    """
    latency = parse_latency(spec)  # a bad spec fails here, before a sandbox starts
    settings = get_settings()
    overrides: dict[str, str] = {}
    if in_flight_limit is not None:
        overrides = {"SLOTSYNC_HTTP__PER_HOST_CONCURRENCY": str(in_flight_limit),
                     "SLOTSYNC_HTTP__OVERALL_CONCURRENCY": str(in_flight_limit)}
        settings = settings.model_copy(update={"http": settings.http.model_copy(update={
            "per_host_concurrency": in_flight_limit, "overall_concurrency": in_flight_limit})})
    root.mkdir(parents=True, exist_ok=True)
    progress(f"nightly sync again, with provider latency {spec} (its own sandbox and process)")
    sandbox = StandaloneSandbox(root, england_practices=england_practices, latency=spec)
    with sandbox as registry:
        figures, _usage, tree = run_nightly(root, sandbox.registry_path, nightly_rows, LATENCY_NOOP_TASKS,
                                            env_overrides=overrides)
        in_flight = sandbox.in_flight()
    rows = [p for p in registry.practices if nightly_rows is None or p.ods_code in set(nightly_rows)]
    window_days = settings.sync.window_days
    hosts = calls_by_host(rows, start, horizon_days, window_days)
    total = sum(hosts.values()) or 1
    limits = Limits(settings.http.per_host_concurrency, settings.http.overall_concurrency, hosts=len(hosts))
    predicted = predict_night(
        zero_latency, latency, limits,
        suppliers=calls_by_supplier(rows, start, horizon_days, window_days),
        busiest_host_share=max(hosts.values(), default=0) / total,
    )
    measured = figures["nightly"]
    return {
        "latency": latency.as_json(),
        "practices": measured.get("practices"),
        "practices_failed": measured.get("practices_failed"),
        "responses": measured.get("responses"),
        "appointment_reads": measured.get("appointment_reads"),
        "nightly_cpu_tree_s": round(float(tree["cpu_s"]), 2),
        "nightly_peak_rss_tree_mib": round(float(tree["peak_mib"]), 1),
        "prediction": predicted,
        **compare(measured, predicted),
        "achieved_concurrency": achieved_concurrency(in_flight, limits),
    }


def format_latency(data: dict[str, Any]) -> list[str]:
    """The latency night's lines for the bench's text report."""
    achieved, predicted = data["achieved_concurrency"], data["prediction"]
    error = data["prediction_error"]
    error_text = "n/a" if error is None else f"{error:+.1%}"
    return [
        "",
        f"with provider latency {data['latency']['spec']} (mean {predicted['mean_latency_s']:.3f} s a call): "
        f"{predicted['calls']:,} calls, {predicted['effective_concurrency']} in flight at most",
        f"  night wall s: measured {data['measured_wall_s']:,.1f}, predicted {data['predicted_wall_s']:,.1f} "
        f"({error_text}; target within {data['target_prediction_error']:.0%}: "
        f"{'yes' if data['within_target'] else 'NO'})",
        f"  achieved in flight: max {achieved['max_overall']} overall (limit {achieved['overall_limit']}), "
        f"max {achieved['max_per_host']} per host (limit {achieved['per_host_limit']}), "
        f"mean {achieved['mean_overall']}; limits respected: "
        f"{'yes' if achieved['limits_respected'] else 'NO'}",
    ]
