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
