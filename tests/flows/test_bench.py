"""`slotsync bench`: the small size end to end as a user runs it, figures checked for sanity.

No timing thresholds: the machine is shared and noisy, so only shape and sign are asserted.
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

CLI = [sys.executable, "-m", "flows.cli"]
REQUIRED_KEYS = {
    "size", "slots", "responses", "bytes", "http_req_per_s", "ingest_slots_per_s",
    "duckdb_limit_slots_per_s", "ingest_ratio_vs_duckdb", "peak_rss_mib", "wall_s",
    "speedup_vs_naive",
}


@pytest.fixture(autouse=True)
def prefect_api() -> Iterator[None]:
    """Overrides the package's Prefect test server: the bench never talks to a Prefect API."""
    yield


def test_bench_small_reports_sane_figures(tmp_path: Path) -> None:
    figures = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    done = subprocess.run(
        [*CLI, "bench", "--size", "small", "--json", str(figures), "--work-dir", str(tmp_path),
         "--repetitions", "2"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ingest_ratio_vs_duckdb" in done.stdout and "limit slots/s" in done.stdout

    data = json.loads(figures.read_text())
    assert data.keys() >= REQUIRED_KEYS
    assert data["size"] == "small"
    assert data["speedup_vs_naive"] is None
    for key in ("slots", "responses", "bytes"):
        assert isinstance(data[key], int) and data[key] > 0, key
    for key in ("http_req_per_s", "ingest_slots_per_s", "duckdb_limit_slots_per_s", "peak_rss_mib",
                "wall_s"):
        assert isinstance(data[key], int | float) and data[key] > 0, key
    ratio = data["ingest_ratio_vs_duckdb"]
    assert math.isfinite(ratio) and ratio > 0
    assert len(data["repetitions"]) == 2
    # Both paths typed exactly the same slots from the same bytes.
    assert data["rows_match"] is True
    # Every response is a bundle of a few hundred bytes per slot at least.
    assert data["bytes"] > data["slots"] * 100
    # The scratch folder is removed afterwards.
    assert not list(tmp_path.glob("slotsync-bench-*"))


def test_bench_england_is_refused_clearly() -> None:
    result = CliRunner().invoke(app, ["bench", "--size", "england"])
    assert result.exit_code == 1
    assert "not implemented yet" in result.output


def test_bench_unknown_size_lists_the_choices() -> None:
    result = CliRunner().invoke(app, ["bench", "--size", "galaxy"])
    assert result.exit_code == 1
    assert "small, region, england" in result.output
