"""The app run in-process with `streamlit.testing.v1.AppTest`: fast, no browser needed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
import streamlit as st
from streamlit.navigation.page import calc_hash
from streamlit.testing.v1 import AppTest

from tests.dashboards.conftest import PERIOD_CTE, Snapshot, sql_rows

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
PAGES = ("overview", "nhs111", "utilisation", "releases", "data-health")
BELOW = "Practice-days below quota"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    # st.cache_data is process-wide; another test's snapshot must not leak in.
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def _run(page: str = "overview") -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=60)
    # Pages are callables with a url_path; AppTest.switch_page only takes files, so select the
    # page the way a browser's URL does: by the hash of its url_path.
    app._page_hash = calc_hash(page)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _metric(app: AppTest, label: str) -> str:
    return str(next(m.value for m in app.metric if m.label == label))


def _texts(app: AppTest) -> str:
    return " ".join(str(e.value) for e in [*app.info, *app.caption, *app.markdown, *app.warning])


@pytest.mark.parametrize("page", PAGES)
def test_no_snapshot_shows_how_to_get_one(
    data_dir_env: Callable[[Path], None], tmp_path: Path, page: str
) -> None:
    data_dir_env(tmp_path / "empty")
    app = _run(page)
    messages = " ".join(str(info.value) for info in app.info)
    assert "No data published yet" in messages
    assert "slotsync demo" in messages and "slotsync sync" in messages
    assert not app.metric


def _quota_sql(
    marts: Path, sub_icb: str | None = None, practice: str | None = None, icb: str | None = None
) -> int:
    (below,) = sql_rows(
        marts,
        "select count(*) filter (where is_core_day and not meets_quota and accepts_111_booking) "
        "from mart_111_quota_daily where ($c is null or sub_icb_code = $c) "
        "and ($p is null or practice_ods = $p) and ($i is null or icb_code = $i)",
        {"c": sub_icb, "p": practice, "i": icb},
    )[0]
    return int(below)


def test_quota_kpis_and_filters_match_sql(
    small_snapshot: Snapshot, data_dir_env: Callable[[Path], None]
) -> None:
    data_dir_env(small_snapshot.data_dir)
    app = _run("nhs111")
    assert _metric(app, "Practices") == "3"
    assert _metric(app, BELOW) == str(_quota_sql(small_snapshot.marts))
    assert _metric(app, "111 slots offered on core days") == "19"
    assert all(m.help for m in app.metric), "every KPI needs its definition in the tooltip"
    assert "Thu 5 Mar 2026, 23:30 GMT" in _texts(app)

    app.multiselect(key="f_sub_icb").select("11M").run()
    assert _metric(app, BELOW) == str(_quota_sql(small_snapshot.marts, sub_icb="11M"))

    app.multiselect(key="f_sub_icb").unselect("11M").run()
    # The snapshot carries ICBs and one region, so both filters are offered; an ICB narrows the
    # sub-ICB locations offered to its own.
    assert app.multiselect(key="f_region").options == ["Y58"]
    app.multiselect(key="f_icb").select("QSL").run()
    assert _metric(app, BELOW) == str(_quota_sql(small_snapshot.marts, icb="QSL"))
    assert app.multiselect(key="f_sub_icb").options == ["15N"]
    app.multiselect(key="f_icb").unselect("QSL").run()
    app.multiselect(key="f_practice").select("A81001").run()
    assert _metric(app, BELOW) == str(_quota_sql(small_snapshot.marts, practice="A81001"))
    assert _metric(app, "Practices") == "1"


def test_weekend_only_range_has_no_core_days(
    small_snapshot: Snapshot, data_dir_env: Callable[[Path], None]
) -> None:
    data_dir_env(small_snapshot.data_dir)
    app = _run("nhs111")
    app.date_input(key="f_period").set_value((date(2026, 3, 7), date(2026, 3, 8))).run()
    assert not app.exception
    assert _metric(app, BELOW) == "–"  # no core day: no quota applies, nothing to count
    assert any("No core days" in str(info.value) for info in app.info)


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("overview", "not available yet"),
        ("utilisation", "Practice slot utilisation: not available yet"),
        ("releases", "Released slots: not available yet"),
        ("data-health", "Reconciliation findings: not available yet"),
        ("data-health", "NHS 111 configuration drift: not available yet"),
    ],
)
def test_missing_marts_say_not_available_yet(
    small_snapshot: Snapshot, data_dir_env: Callable[[Path], None], page: str, expected: str
) -> None:
    # The small snapshot has mart_111_quota_daily only: every other figure must degrade.
    data_dir_env(small_snapshot.data_dir)
    app = _run(page)
    assert expected in _texts(app)


def test_filters_persist_from_page_to_page(demo: Snapshot, data_dir_env: Callable[[Path], None]) -> None:
    data_dir_env(demo.data_dir)
    app = _run("overview")
    app.multiselect(key="f_sub_icb").select("10K").run()
    app._page_hash = calc_hash("utilisation")
    app.run()
    assert app.multiselect(key="f_sub_icb").value == ["10K"]
    assert "sub-ICB 10K" in _texts(app)


def test_utilisation_audience_and_pcn_filters_match_sql(
    demo: Snapshot, data_dir_env: Callable[[Path], None]
) -> None:
    data_dir_env(demo.data_dir)
    app = _run("utilisation")

    def expected(audience: str | None, pcn: str | None) -> str:
        (booked,) = sql_rows(
            demo.marts,
            f"""
            with {PERIOD_CTE}
            select sum(booked) from mart_slot_utilisation_daily, period
            where kind = 'practice' and is_final and slot_day between first_day and last_day
              and ($a is null or audience = $a) and ($p is null or pcn_code = $p)""",
            {"a": audience, "p": pcn},
        )[0]
        return "<5" if 1 <= booked <= 4 else f"{int(booked):,}"

    assert _metric(app, "Booked") == expected(None, None)
    app.segmented_control(key="u_audience").set_value("Reserved for NHS 111").run()
    assert _metric(app, "Booked") == expected("nhs111", None)
    (pcn,) = sql_rows(demo.marts, "select min(pcn_code) from mart_slot_utilisation_daily")[0]
    app.multiselect(key="f_pcn").select(pcn).run()
    assert _metric(app, "Booked") == expected("nhs111", pcn)


@pytest.mark.parametrize("page", PAGES)
def test_every_figure_has_its_definition_on_hover(
    demo: Snapshot, data_dir_env: Callable[[Path], None], page: str
) -> None:
    data_dir_env(demo.data_dir)
    app = _run(page)
    assert app.metric, "each page shows figures on the demo snapshot"
    assert [m.label for m in app.metric if not m.help] == []
    assert "not available yet" not in _texts(app).replace("Data-quality results: not available yet", "")
