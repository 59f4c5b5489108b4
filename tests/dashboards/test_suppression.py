"""Small-number suppression: hand-made tables where the exact figures matter.

The property test plays the reader: knowing each hidden group's total (shown elsewhere on the
page), the visible cells, that a "<5" is 1 to 4 and that a "*" is any other count, it
enumerates every table consistent with what is shown and checks that no "<5" has one
possible value.
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboards import health, releases, utilisation
from dashboards.disclosure import NHS_1_4, NHSE_1_7_ROUND_5, Rule
from dashboards.suppression import PRIMARY, SECONDARY, Policy, suppress, suppress_one
from dashboards.suppression import conceal as suppress_conceal

UTIL = utilisation.POLICY


def _table(rows: list[tuple[str, int, int, int, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["practice_ods", "offered", "booked", "unused", "unknown"])
    offered = frame["offered"].where(frame["offered"] > 0)
    frame["utilisation"] = frame["booked"] / offered
    frame["utilisation_if_unknown_booked"] = (frame["booked"] + frame["unknown"]) / offered
    return frame


def test_counts_of_one_to_four_are_shown_as_less_than_five() -> None:
    shown = (
        suppress(
            _table([("A", 60, 3, 30, 27), ("B", 50, 4, 20, 26), ("C", 40, 0, 20, 20), ("D", 80, 30, 40, 10)]),
            UTIL,
        )
        .display()
        .set_index("practice_ods")
    )
    assert shown.loc["A", "booked"] == shown.loc["B", "booked"] == PRIMARY
    assert shown.loc["C", "booked"] == "0"  # zero discloses nothing
    assert shown.loc["D", "booked"] == "30"
    assert shown.loc["D", "utilisation"] == "37.5%"


def test_a_hidden_count_hides_its_rate_and_complements_but_not_capacity() -> None:
    shown = suppress(_table([("A", 60, 2, 30, 28), ("B", 50, 3, 20, 27), ("C", 80, 30, 40, 10)]), UTIL)
    row = shown.display().set_index("practice_ods").loc["A"]
    # offered - unused - unknown would give booked back, so they go too; offered stays.
    assert (row["booked"], row["unused"], row["unknown"]) == (PRIMARY, SECONDARY, SECONDARY)
    assert row["utilisation"] == row["utilisation_if_unknown_booked"] == SECONDARY
    assert row["offered"] == "60"
    assert pd.isna(shown.values.set_index("practice_ods").loc["A", "booked"])


def test_small_capacity_in_a_hidden_row_is_shown_as_less_than_five() -> None:
    shown = suppress(_table([("A", 3, 2, 1, 0), ("B", 40, 4, 20, 16), ("C", 80, 30, 40, 10)]), UTIL).display()
    assert shown.set_index("practice_ods").loc["A", "offered"] == PRIMARY


def test_a_single_hidden_row_gets_a_complement_when_the_total_is_shown() -> None:
    frame = _table([("A", 60, 2, 30, 28), ("B", 50, 9, 20, 21), ("C", 80, 30, 40, 10), ("D", 70, 7, 30, 33)])
    shown = suppress(frame, UTIL).display().set_index("practice_ods")
    # The total (48) is on the page, so A's 2 = 48 - 9 - 30 - 7 unless another row is hidden:
    # the smallest count of 5 or more goes (D, 7).
    assert shown["booked"].to_dict() == {"A": PRIMARY, "B": "9", "C": "30", "D": SECONDARY}
    # Without a total on the page nothing more is hidden.
    alone = suppress(frame, Policy(UTIL.protected, UTIL.outcomes, UTIL.rates, UTIL.capacity, totals_by=()))
    assert alone.display().set_index("practice_ods")["booked"].to_dict() == {
        "A": PRIMARY,
        "B": "9",
        "C": "30",
        "D": "7",
    }


def test_hidden_cells_whose_sum_pins_them_get_a_complement() -> None:
    # Two hidden 1s sum to 2: each must be 1. Two hidden cells summing to 5 are ambiguous.
    pinned = suppress(_table([("A", 9, 1, 4, 4), ("B", 9, 1, 4, 4), ("C", 90, 30, 30, 30)]), UTIL)
    assert pinned.display()["booked"].tolist() == [PRIMARY, PRIMARY, SECONDARY]
    ambiguous = suppress(_table([("A", 9, 2, 4, 3), ("B", 9, 3, 3, 3), ("C", 90, 30, 30, 30)]), UTIL)
    assert ambiguous.display()["booked"].tolist() == [PRIMARY, PRIMARY, "30"]


def test_complements_follow_every_grouping_with_totals() -> None:
    # Practice x day rows; practice totals and day totals are both shown elsewhere.
    frame = pd.DataFrame(
        {
            "practice_ods": ["A", "A", "B", "B"],
            "slot_day": ["Mon", "Tue", "Mon", "Tue"],
            "offered": [40, 40, 40, 40],
            "booked": [3, 20, 15, 25],
            "unused": [37, 20, 25, 15],
            "unknown": [0] * 4,
        }
    )
    policy = Policy(
        UTIL.protected, UTIL.outcomes, (), UTIL.capacity, totals_by=(("practice_ods",), ("slot_day",))
    )
    shown = suppress(frame, policy).display()
    assert shown["booked"].tolist() == [PRIMARY, SECONDARY, SECONDARY, SECONDARY]


def test_export_keeps_numbers_and_marks() -> None:
    exported = suppress(
        _table([("A", 60, 2, 30, 28), ("B", 50, 3, 20, 27), ("C", 80, 30, 40, 10)]), UTIL
    ).export()
    assert exported["booked"].tolist() == [PRIMARY, PRIMARY, 30]
    assert exported["offered"].tolist() == [60, 50, 80]
    assert exported["utilisation"].tolist()[2] == pytest.approx(30 / 80)


def test_kpis_are_suppressed_as_one_row() -> None:
    assert suppress_one(
        {
            "offered": 100,
            "booked": 3,
            "unused": 60,
            "unknown": 37,
            "utilisation": 0.03,
            "utilisation_if_unknown_booked": 0.4,
        },
        UTIL,
    ) == {
        "offered": "100",
        "booked": PRIMARY,
        "unused": SECONDARY,
        "unknown": SECONDARY,
        "utilisation": SECONDARY,
        "utilisation_if_unknown_booked": SECONDARY,
    }
    assert (
        suppress_one(
            {
                "offered": 1200,
                "booked": 340,
                "unused": 500,
                "unknown": 360,
                "utilisation": 340 / 1200,
                "utilisation_if_unknown_booked": 0.5,
            },
            UTIL,
        )["utilisation"]
        == "28.3%"
    )
    assert (
        suppress_one(
            {
                "offered": 0,
                "booked": 0,
                "unused": 0,
                "unknown": 0,
                "utilisation": None,
                "utilisation_if_unknown_booked": None,
            },
            UTIL,
        )["utilisation"]
        == "–"
    )


def test_refused_releases_are_patient_counts_but_released_slots_are_not() -> None:
    shown = suppress_one(
        {"released": 30, "queued": 0, "refused": 2, "skipped": 7, "released_then_booked": 0, "uptake": 0.0},
        releases.DECISION_POLICY,
    )
    assert shown["released"] == "30" and shown["refused"] == PRIMARY and shown["uptake"] == "0.0%"


def test_findings_about_appointments_are_suppressed_quota_findings_are_not() -> None:
    wide = pd.DataFrame(
        {"practice_ods": ["A", "B", "C"], "SLOT_REAPPEARED": [2, 9, 30], "BELOW_111_QUOTA": [3, 1, 2]}
    )
    shown = suppress(wide, health.practice_policy(["SLOT_REAPPEARED", "BELOW_111_QUOTA"])).display()
    # The by-reason table shows the column's total, so the 2 needs a complement (the 9).
    assert shown["SLOT_REAPPEARED"].tolist() == [PRIMARY, SECONDARY, "30"]
    assert shown["BELOW_111_QUOTA"].tolist() == [3, 1, 2]


def test_independent_counts_do_not_hide_each_other() -> None:
    frame = pd.DataFrame(
        {
            "practice_ods": ["A", "B", "C"],
            "released": [30, 40, 50],
            "refused": [2, 0, 0],
            "skipped": [10, 12, 20],
            "released_then_booked": [9, 15, 20],
            "released_unused": [6, 10, 12],
            "uptake": [0.3, 0.375, 0.4],
        }
    )
    shown = suppress(frame, releases.DECISION_POLICY).display()
    # A's small refused count does not hide its bookings. Its column's total is on the page,
    # so another refused cell is hidden with it (a 0: the reader cannot tell 2 + 0 from 1 + 1).
    assert shown["refused"].tolist() == [PRIMARY, SECONDARY, "0"]
    assert shown["released_then_booked"].tolist() == ["9", "15", "20"]
    assert shown["skipped"].tolist() == ["10", "12", "20"]


# ---------------------------------------------------------------------------- the reader


def _known(shown: str, rule: Rule) -> tuple[int, int]:
    """What a reader knows of a visible cell: its exact value, or under a rounding rule every
    value that rounds to what is shown (0 is exact: 1 and 2 would have been suppressed)."""
    value = int(shown.replace(",", ""))
    if rule.round_to is None or value == 0:
        return value, value
    half = rule.round_to // 2
    return value - half, value + half


def _possible_values(
    shown: list[str], hidden: list[bool], values: list[int], total_shown: str, rule: Rule
) -> list[tuple[int, int]]:
    """The values each hidden cell can take given what is shown and the column's total.

    The reader is told which hidden cells are small (the strongest reader: under the NHS
    England rule both kinds are "*"); a small one lies in the rule's range, any other hidden
    cell is 0 or more. All constraints are integer intervals and one sum, so the values a cell
    can take form the interval returned (exactly what enumerating every table would find).
    """
    total_low, total_high = _known(total_shown, rule)
    cells = [
        ((rule.small_min, rule.small_max) if rule.small_min <= value <= rule.small_max else (0, total_high))
        if is_hidden
        else _known(text, rule)
        for text, is_hidden, value in zip(shown, hidden, values, strict=True)
    ]
    low_all, high_all = sum(c[0] for c in cells), sum(c[1] for c in cells)
    possible = []
    for (low, high), is_hidden, value in zip(cells, hidden, values, strict=True):
        if not is_hidden:
            continue
        lowest = max(low, total_low - (high_all - high))
        highest = min(high, total_high - (low_all - low))
        assert lowest <= value <= highest  # the truth is always possible
        possible.append((lowest, highest))
    return possible


@pytest.mark.parametrize("rule", [NHS_1_4, NHSE_1_7_ROUND_5], ids=lambda r: r.name)
@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 20]), min_size=1, max_size=5))
def test_disclosure_no_small_count_can_be_worked_out_from_the_total(rule: Rule, booked: list[int]) -> None:
    frame = pd.DataFrame(
        {
            "practice_ods": [f"P{i}" for i in range(len(booked))],
            "offered": [b + 10 for b in booked],
            "booked": booked,
            "unused": [10] * len(booked),
            "unknown": [0] * len(booked),
        }
    )
    policy = Policy(("booked",), ("unused", "unknown"), (), ("offered",))
    result = suppress(frame, policy, rule=rule)
    hidden = (result.marks["booked"] != "").tolist()
    shown = [str(s) for s in result.display()["booked"]]
    # Every small count is hidden; every other shown count is the rule's figure for the truth.
    for value, is_hidden, text in zip(booked, hidden, shown, strict=True):
        if rule.small_min <= value <= rule.small_max:
            assert is_hidden and text == rule.primary
        elif not is_hidden:
            assert text == f"{rule.rounded(value):,.0f}"
    total = suppress_one({"booked": sum(booked)}, policy, conceal=result.unprotected, rule=rule)["booked"]
    if total in (rule.primary, rule.secondary):
        return  # the reader does not get the total
    assert not result.unprotected
    hidden_values = [v for v, h in zip(booked, hidden, strict=True) if h]
    possible = _possible_values(shown, hidden, booked, total, rule)
    for value, (lowest, highest) in zip(hidden_values, possible, strict=True):
        if rule.small_min <= value <= rule.small_max:
            assert highest > lowest, (rule.name, booked, shown, total, possible)


def test_a_total_that_would_pin_every_small_count_is_concealed() -> None:
    # Every practice had 1 booking: the total 5 would say so. No count is left to hide with
    # them, so the table reports the column and the KPI hides the total.
    frame = _table([(p, 20, 1, 10, 9) for p in "ABCDE"])
    result = suppress(frame, UTIL)
    assert result.unprotected == {"booked"}
    totals = {
        "offered": 100,
        "booked": 5,
        "unused": 50,
        "unknown": 45,
        "utilisation": 0.05,
        "utilisation_if_unknown_booked": 0.5,
    }
    shown = suppress_one(totals, UTIL, conceal=result.unprotected)
    assert shown["booked"] == shown["utilisation"] == shown["unused"] == SECONDARY
    assert shown["offered"] == "100"
    # Concealing a column the rates are not built on hides that column only.
    other = suppress_one(
        {"released": 30, "refused": 0, "skipped": 7, "released_then_booked": 9, "uptake": 0.3},
        releases.DECISION_POLICY,
        conceal={"skipped"},
    )
    assert (other["skipped"], other["released_then_booked"], other["uptake"]) == (SECONDARY, "9", "30.0%")


def test_conceal_hides_totals_in_chosen_rows() -> None:
    frame = _table([("A", 60, 30, 20, 10), ("B", 50, 0, 20, 30)])
    result = suppress(frame, UTIL)
    hidden = suppress_conceal(result, frame["practice_ods"] == "A", {"booked"}).display()
    assert hidden["booked"].tolist() == [SECONDARY, "0"]
    assert hidden["unused"].tolist() == [SECONDARY, "20"] and hidden["utilisation"].tolist()[0] == SECONDARY
    assert hidden["offered"].tolist() == ["60", "50"]
