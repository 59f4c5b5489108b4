"""Column widths that fit the page (dashboards/tables.py): the arithmetic, without a browser."""

from __future__ import annotations

import pandas as pd  # type: ignore[import-untyped]

from dashboards import tables


def test_widths_stay_natural_when_the_table_fits() -> None:
    natural = {"a": 100.0, "b": 200.0}
    assert tables.fit_widths(natural, 400) == {"a": 100, "b": 200}


def test_only_the_widest_columns_give_way_and_the_total_fits() -> None:
    natural = {"ods": 80.0, "name": 420.0, "note": 600.0, "n1": 90.0, "n2": 90.0}
    widths = tables.fit_widths(natural, 700)
    assert sum(widths.values()) <= 700
    assert widths["ods"] == 80 and widths["n1"] == 90 and widths["n2"] == 90
    assert widths["name"] == widths["note"] < 420


def test_a_name_keeps_its_floor_while_numbers_give_way() -> None:
    natural = {"name": 300.0, **{f"n{i}": 120.0 for i in range(8)}}
    widths = tables.fit_widths(natural, 800, {"name": 190.0})
    assert widths["name"] >= 190
    assert sum(widths.values()) <= 801


def test_names_are_told_from_numbers_and_suppression_marks() -> None:
    frame = pd.DataFrame({
        "practice": ["Bedhampton Health Centre", "Liss Surgery"],
        "marks": ["<5", "*"],
        "count": [3, 4],
    })
    assert tables._is_name(frame, "practice")
    assert not tables._is_name(frame, "marks")
    assert not tables._is_name(frame, "count")


def test_empty_missing_and_odd_cells_still_get_a_width() -> None:
    frame = pd.DataFrame({
        "day": pd.Series([pd.NaT, pd.NaT]),
        "note": pd.Series([None, pd.NA], dtype="object"),
        "share": pd.Series([float("nan"), float("nan")]),
        "flag": pd.Series([pd.NA, pd.NA], dtype="boolean"),
    })
    for column in frame.columns:
        assert tables._natural_width(frame, column, None) > 0


def test_floors_that_cannot_all_fit_shrink_alike_so_the_table_still_fits() -> None:
    natural = {f"text{i}": 400.0 for i in range(6)}
    widths = tables.fit_widths(natural, 900, {c: 190.0 for c in natural})
    assert sum(widths.values()) <= 901
    assert len(set(widths.values())) == 1
