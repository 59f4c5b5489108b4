"""`slotsync bench`: the small size end to end as a user runs it, figures checked for sanity.

No timing thresholds: the machine is shared and noisy, so only shape and sign are asserted.
The targets (ingest ratio >= 0.5, >= 10x the naive baseline, peak RSS < 2 GiB, mart p95 < 1 s)
are reported by the bench and stated in the README, never asserted here.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from lab.bench import limit_object_bytes
from warehouse.load import MIN_OBJECT_BYTES

CLI = [sys.executable, "-m", "flows.cli"]
REQUIRED_KEYS = {
    "size",
    "slots",
    "responses",
    "bytes",
    "http_req_per_s",
    "ingest_slots_per_s",
    "duckdb_limit_slots_per_s",
    "ingest_ratio_vs_duckdb",
    "peak_rss_mib",
    "wall_s",
    "speedup_vs_naive",
    "nightly_wall_s",
    "nightly_slots_per_s",
    "orchestration_overhead_ms_per_task",
    "validation_s_per_million_rows",
    "mart_query_p95_s",
    "capacity_model",
    "ingest_slots",
    "peak_rss_tree_mib",
    "sandbox_peak_rss_mib",
    "naive_label",
    "naive_cpu_s",
    "fhir_peer_label",
    "fhir_peer_slots_per_s",
    "fhir_peer_cpu_s",
    "validation_gate_synthetic_s_per_million_rows",
}


@pytest.fixture(autouse=True)
def prefect_api() -> Iterator[None]:
    """Overrides the package's Prefect test server: the bench's nightly run, in its own process,
    starts its own temporary Prefect API, as `slotsync bench` does for a user."""
    yield


def test_bench_small_reports_sane_figures(tmp_path: Path) -> None:
    figures = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    done = subprocess.run(
        [
            *CLI,
            "bench",
            "--size",
            "small",
            "--json",
            str(figures),
            "--work-dir",
            str(tmp_path),
            "--repetitions",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=480,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ingest_ratio_vs_duckdb" in done.stdout and "limit slots/s" in done.stdout

    data = json.loads(figures.read_text())
    assert data.keys() >= REQUIRED_KEYS
    assert data["size"] == "small"
    assert data["schema_version"] == 5
    # The limit reads its NDJSON in parallel: a buffer just above its largest line, not 256 MiB.
    assert MIN_OBJECT_BYTES <= data["limit_maximum_object_size"] < 64 * 1024 * 1024
    for key in ("slots", "ingest_slots", "responses", "bytes", "nightly_responses", "naive_slots"):
        assert isinstance(data[key], int) and data[key] > 0, key
    for key in (
        "http_req_per_s",
        "ingest_slots_per_s",
        "duckdb_limit_slots_per_s",
        "peak_rss_mib",
        "wall_s",
        "speedup_vs_naive",
        "nightly_wall_s",
        "nightly_slots_per_s",
        "mart_query_p95_s",
        "bench_peak_rss_mib",
        "sandbox_peak_rss_mib",
        "peak_rss_tree_mib",
        "fhir_peer_slots_per_s",
        "naive_cpu_s",
        "fhir_peer_cpu_s",
        "validation_gate_synthetic_s_per_million_rows",
    ):
        assert isinstance(data[key], int | float) and data[key] > 0, key
    # The tree holds the nightly process and Prefect's temporary API server at least.
    assert data["peak_rss_tree_max_processes"] >= 2
    assert data["peak_rss_tree_mib"] > data["peak_rss_mib"] * 0.9
    assert "one transaction" in data["naive_label"] and "fhir.resources" in data["fhir_peer_label"]
    assert isinstance(data["orchestration_overhead_ms_per_task"], int | float)
    assert isinstance(data["validation_s_per_million_rows"], float)
    assert data["validation_s_per_million_rows"] > 0
    # The nightly run synced the same rows the side-by-side ingest typed, and none failed.
    assert data["estate_practices"] == data["practices"] == 4
    assert data["nightly_practices_failed"] == 0
    assert data["slots"] == data["ingest_slots"]
    # Every dashboard read was timed, each several times.
    reads = data["mart_reads_median_s"]
    assert {"publication", "catalogue", "quota_daily", "slot_utilisation"} <= reads.keys()
    model = data["capacity_model"]
    assert model["calls_per_night"] > 30_000 and "EXTRAPOLATED" in model["basis"]
    assert {(r["latency_p50_s"], r["concurrency"]) for r in model["rows"]} >= {(0.3, 8), (1.0, 32), (3.0, 64)}
    ratio = data["ingest_ratio_vs_duckdb"]
    assert math.isfinite(ratio) and ratio > 0
    assert len(data["repetitions"]) == 2
    # Both paths typed exactly the same slots from the same bytes.
    assert data["rows_match"] is True
    # Every response is a bundle of a few hundred bytes per slot at least.
    assert data["bytes"] > data["ingest_slots"] * 100
    # The scratch folder is removed afterwards.
    assert not list(tmp_path.glob("slotsync-bench-*"))


def test_tree_rss_adds_every_descendant() -> None:
    from lab.bench_processes import _current_rss_mib, tree_rss_mib

    hold = "x = bytearray(64 * 1024 * 1024); import time; time.sleep(30)"
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {hold!r}])"]
    )
    try:
        for _ in range(100):
            total, processes = tree_rss_mib(parent.pid)
            if processes == 2 and total - _current_rss_mib(parent.pid) > 60:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert processes == 2
        assert total - _current_rss_mib(parent.pid) > 60  # the child's 64 MiB is in the sum
    finally:
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()


def test_bench_practices_is_for_england_only() -> None:
    result = CliRunner().invoke(app, ["bench", "--size", "small", "--practices", "10"])
    assert result.exit_code == 1
    assert "--practices applies to --size england only" in result.output


def test_bench_unknown_size_lists_the_choices() -> None:
    result = CliRunner().invoke(app, ["bench", "--size", "galaxy"])
    assert result.exit_code == 1
    assert "small, region, england" in result.output


def test_the_limit_reads_with_a_buffer_just_above_its_largest_line(tmp_path: Path) -> None:
    # DuckDB reads a newline-delimited file on every core only when the file is larger than
    # maximum_object_size: the limit's buffer follows its largest line, never a fixed 256 MiB.
    small = tmp_path / "small.ndjson"
    small.write_bytes(b"{}\n" * 10 + b"x" * 2_000_000 + b"\n")
    assert limit_object_bytes(small) == MIN_OBJECT_BYTES
    large = tmp_path / "large.ndjson"
    large.write_bytes(b"{}\n" + b"x" * (MIN_OBJECT_BYTES + 10) + b"\n")
    assert limit_object_bytes(large) == MIN_OBJECT_BYTES + 10 + 1 + 1024
