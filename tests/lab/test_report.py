"""Published figures are generated: the committed docs equal the rendering of committed JSON.

`python3 -m uv run python -m lab.report render` writes BENCHMARKS.md, RELIABILITY.md and
the README's generated blocks from `reports/`; a figure typed by hand into any of them, or a
JSON file committed without re-rendering, fails here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lab.report import ROOT, main, render_benchmarks, render_readme, render_reliability_table, rendered


def test_committed_docs_equal_the_rendering_of_committed_json() -> None:
    for path, text in rendered(ROOT).items():
        assert path.read_text() == text, (
            f"{path.name} differs from the rendering of reports/: run "
            "`python3 -m uv run python -m lab.report render` and commit the result"
        )
    assert main(["check"]) == 0


def test_a_size_without_committed_json_says_n_a(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    (reports / "bench").mkdir(parents=True)
    small = sorted((ROOT / "reports" / "bench").glob("bench-small-*.json"))
    assert small, "a small bench JSON is committed"
    shutil.copy(small[-1], reports / "bench" / small[-1].name)
    text = render_benchmarks(reports)
    assert "n/a (no committed bench JSON for this size: not run this round)" in text
    figures = json.loads(small[-1].read_text())
    assert f"{figures['peak_rss_tree_mib']:,.0f}" in text


def test_a_figure_edited_by_hand_is_caught(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    begin = readme.index("<!-- generated:benchmarks -->")
    edited = readme[:begin] + readme[begin:].replace("|", "| 1", 1)
    assert render_readme(edited) != edited
    with pytest.raises(ValueError, match="markers"):
        render_readme("no markers here")


def test_unmeasured_reliability_columns_render_n_a_with_the_reason() -> None:
    row = {
        "area": "security",
        "fault": "f",
        "injected": 2,
        "survived": 2,
        "data_lost": None,
        "duplicate_rows": None,
        "handling": "h",
        "test": "t",
        "recorded_at": "x",
        "not_measured": "not a data-loading test",
    }
    table = render_reliability_table([row, {**row, "data_lost": 0, "duplicate_rows": 0, "not_measured": ""}])
    assert "| n/a (not a data-loading test) | n/a (not a data-loading test) |" in table
    assert "| 0 | 0 |" in table


def test_latency_night_and_growth_render_from_their_json(tmp_path: Path) -> None:
    from lab.bench_growth import summarise

    reports = tmp_path / "reports"
    (reports / "bench").mkdir(parents=True)
    small = sorted((ROOT / "reports" / "bench").glob("bench-small-*.json"))[-1]
    figures = json.loads(small.read_text())
    figures["latency_night"] = {
        "latency": {"spec": "p50=0.2s,p95=0.6s"}, "measured_wall_s": 123.4, "predicted_wall_s": 110.0,
        "prediction_error": 0.1218, "within_target": True,
        "prediction": {"mean_latency_s": 0.2493, "calls": 4321, "effective_concurrency": 8},
        "achieved_concurrency": {"max_overall": 8, "max_per_host": 8, "overall_limit": 32,
                                 "per_host_limit": 8, "mean_overall": 7.6, "limits_respected": True},
    }
    (reports / "bench" / small.name).write_text(json.dumps(figures))
    points = [{"practices": 300, "rows": 360, "responses": 2000, "wall_s": 61.0, "cpu_tree_s": 70.0,
               "peak_rss_tree_mib": 900.0, "sandbox_cpu_s": 5.0},
              {"practices": 1000, "rows": 1200, "responses": 6600, "wall_s": 190.0, "cpu_tree_s": 210.0,
               "peak_rss_tree_mib": 950.0, "sandbox_cpu_s": 12.0}]
    growth = {"commit": "abc1234", "generated_at": "2026-12-06T18:00:00+00:00", "latency": None,
              "sizes": points, **summarise(points)}
    (reports / "bench" / "growth-abc1234.json").write_text(json.dumps(growth))
    text = render_benchmarks(reports)
    assert "| small | `" in text and "p50=0.2s,p95=0.6s" in text and "4,321" in text
    assert "123.4" in text and "+12.2%" in text and "8 / 8 (32 / 8)" in text
    assert "growth-abc1234.json" in text and "| 1,000 | 1,200 | 6,600 | 190.0 |" in text
    assert "R^2 n/a (fewer than three sizes" in text and "x1.056" in text
    assert "n/a (no committed bench JSON with a latency night" in text  # region, england
