"""The app run in-process with `streamlit.testing.v1.AppTest`: fast, no browser needed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
BELOW = "Core practice-days below quota"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    # st.cache_data is process-wide; another test's snapshot must not leak in.
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def _run() -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _metric(app: AppTest, label: str) -> str:
    return str(next(m.value for m in app.metric if m.label == label))


def test_no_snapshot_shows_how_to_get_one(data_dir_env: Callable[[Path], None], tmp_path: Path) -> None:
    data_dir_env(tmp_path / "empty")
    app = _run()
    messages = " ".join(str(info.value) for info in app.info)
    assert "No data published yet" in messages
    assert "slotsync demo" in messages and "slotsync sync" in messages
    assert not app.metric


def test_kpis_and_filters_match_sql(
    snapshot: Any, data_dir_env: Callable[[Path], None], expected_kpis: Callable[..., Any]
) -> None:
    data_dir_env(snapshot.data_dir)
    app = _run()
    assert _metric(app, "Practices") == "3"
    assert _metric(app, BELOW) == str(expected_kpis().core_days_below)
    assert _metric(app, "% practice-days meeting quota") == "66.7%"
    assert all(m.help for m in app.metric), "every KPI needs its definition in the tooltip"
    assert "Thu 5 Mar 2026, 23:30 GMT" in app.caption[0].value

    app.multiselect(key="nhs111_ccg").select("11M").run()
    assert _metric(app, BELOW) == str(expected_kpis(ccg="11M").core_days_below)

    app.multiselect(key="nhs111_ccg").unselect("11M").run()
    app.multiselect(key="nhs111_practice").select("A81001").run()
    assert _metric(app, BELOW) == str(expected_kpis(practice="A81001").core_days_below)
    assert _metric(app, "Practices") == "1"


def test_weekend_only_range_has_no_core_days(snapshot: Any, data_dir_env: Callable[[Path], None]) -> None:
    data_dir_env(snapshot.data_dir)
    app = _run()
    app.date_input[0].set_value((date(2026, 3, 7), date(2026, 3, 8))).run()
    assert not app.exception
    assert _metric(app, BELOW) == "0"
    assert _metric(app, "% practice-days meeting quota") == "–"
    assert any("No core days" in str(info.value) for info in app.info)
