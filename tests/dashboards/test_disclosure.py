"""The disclosure rule as a setting: the NHS England rule's figures, and every page naming the rule.

(The reader-plays-attacker property test runs under both rules in test_suppression.py.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from pydantic import ValidationError
from streamlit.navigation.page import calc_hash
from streamlit.testing.v1 import AppTest

from common.config import Settings, get_settings
from dashboards import releases, utilisation
from dashboards.disclosure import NHS_1_4, NHSE_1_7_ROUND_5, UnknownRuleError, active_rule, rule_named
from dashboards.suppression import suppress, suppress_one
from tests.dashboards.conftest import Snapshot

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
PAGES = ("overview", "nhs111", "utilisation", "releases", "data-health")


def _table(rows: list[tuple[str, int, int, int, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["practice_ods", "offered", "booked", "unused", "unknown"])
    frame["utilisation"] = frame["booked"] / frame["offered"]
    frame["utilisation_if_unknown_booked"] = (frame["booked"] + frame["unknown"]) / frame["offered"]
    return frame


def test_disclosure_nhse_rule_suppresses_1_to_7_and_rounds_the_rest_to_5() -> None:
    frame = _table([("A", 40, 7, 20, 13), ("B", 40, 12, 20, 8), ("C", 50, 33, 10, 7), ("D", 60, 8, 50, 2)])
    result = suppress(frame, utilisation.POLICY, rule=NHSE_1_7_ROUND_5)
    shown = result.display().set_index("practice_ods")
    assert shown.loc["A", "booked"] == "*"  # 7: inside 1-7
    assert shown.loc["A", "unused"] == shown.loc["A", "utilisation"] == "*"  # in-row
    assert shown.loc["A", "offered"] == "40"  # capacity stays exact
    visible = [ods for ods in "BCD" if shown.loc[ods, "booked"] != "*"]
    assert visible, shown
    for ods in visible:
        booked = frame.set_index("practice_ods").loc[ods, "booked"]
        assert shown.loc[ods, "booked"] == f"{NHSE_1_7_ROUND_5.rounded(booked):.0f}"
        # The rate is built from the rounded count, not the true one.
        rounded = NHSE_1_7_ROUND_5.rounded(booked) / frame.set_index("practice_ods").loc[ods, "offered"]
        assert shown.loc[ods, "utilisation"] == f"{rounded:.1%}"
    # 8 would be exact under the default rule.
    assert suppress(frame, utilisation.POLICY, rule=NHS_1_4).display()["booked"].tolist()[3] == "8"


def test_disclosure_nhse_totals_round_and_rebuild_rates() -> None:
    totals = {
        "released": 41,
        "queued": 2,
        "refused": 6,
        "skipped": 9,
        "released_then_booked": 12,
        "uptake": 12 / 43,
    }
    shown = suppress_one(totals, releases.DECISION_POLICY, rule=NHSE_1_7_ROUND_5)
    assert shown["released"] == "41" and shown["queued"] == "2"  # capacity
    assert shown["refused"] == "*" and shown["skipped"] == "10" and shown["released_then_booked"] == "10"
    assert shown["uptake"] == f"{10 / 43:.1%}"


def test_disclosure_rule_setting_is_validated() -> None:
    assert Settings(disclosure_rule="nhse-1-7-round-5").disclosure_rule == "nhse-1-7-round-5"
    with pytest.raises(ValidationError):
        Settings(disclosure_rule="nhs-1-9")
    with pytest.raises(UnknownRuleError, match="choose one of nhs-1-4, nhse-1-7-round-5"):
        rule_named("nhs-1-9")
    assert NHSE_1_7_ROUND_5.rounded(12) == 10 and NHSE_1_7_ROUND_5.rounded(13) == 15


@pytest.fixture
def _fresh_cache() -> Iterator[None]:
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.mark.usefixtures("_fresh_cache")
@pytest.mark.parametrize("rule", [NHS_1_4, NHSE_1_7_ROUND_5], ids=lambda r: r.name)
def test_disclosure_rule_is_named_on_every_page(
    small_snapshot: Snapshot,
    data_dir_env: Callable[[Path], None],
    monkeypatch: pytest.MonkeyPatch,
    rule: object,
) -> None:
    monkeypatch.setenv("SLOTSYNC_DISCLOSURE_RULE", rule.name)  # type: ignore[attr-defined]
    data_dir_env(small_snapshot.data_dir)
    assert active_rule() == rule
    for page in PAGES:
        app = AppTest.from_file(str(APP), default_timeout=60)
        app._page_hash = calc_hash(page)
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        captions = " ".join(str(c.value) for c in app.caption)
        assert f"disclosure rule `{rule.name}`" in captions, (page, captions)  # type: ignore[attr-defined]
    get_settings.cache_clear()
