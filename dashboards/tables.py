"""Tables that fit the page: no horizontal scrolling on a 1,400 px screen.

Why: Streamlit's grid sizes each column to its header and widest cell, so a table of a
dozen outcome columns, or one free-text column (an error, a next step), ran 400 px past the
page and hid its right-hand columns behind a scroll bar a commissioner may never notice. Every
table goes through `dataframe`, which keeps natural widths when they fit and otherwise caps
the widest columns at one common width (water-filling from the top), so narrow columns keep
their full header and only the longest texts are cut (the full value shows on hover, the CSV
has it whole).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock
import streamlit as st

# The main area's width at a 1,400 px window with the sidebar open (wide layout), measured in
# Chromium: 938 px. A little is kept back for the grid's borders and rounding.
FULL_WIDTH_PX = 900
# The grid's font is about 7.5 px a character; a header also carries its sort arrow and
# padding, a cell its padding.
_PX_PER_CHAR = 7.5
_HEADER_EXTRA_PX = 34
_CELL_EXTRA_PX = 20
_MIN_COLUMN_PX = 56
# Streamlit's named widths, in px: a column configured with one takes exactly that.
_PRESET_PX = {"small": 75, "medium": 200, "large": 400}
_SAMPLE_ROWS = 500
# A column of names (practices, PCNs, reasons) keeps this much before numbers give way.
_NAME_FLOOR_PX = 190


def dataframe(
    frame: pd.DataFrame,
    column_config: Mapping[str, Any] | None = None,
    *,
    column_order: Sequence[str] | None = None,
    budget_px: int = FULL_WIDTH_PX,
    height: int | None = None,
) -> None:
    """`st.dataframe` with column widths that fit `budget_px` (index hidden)."""
    order = list(column_order) if column_order is not None else [str(c) for c in frame.columns]
    config = dict(column_config or {})
    natural = {column: _natural_width(frame, column, config.get(column)) for column in order}
    # In a narrow column of the page a name gives way too, to keep the numbers beside it.
    name_floor = min(_NAME_FLOOR_PX, budget_px * 0.28)
    floors = {column: name_floor for column in order if _is_name(frame, column)}
    widths = fit_widths(natural, budget_px, floors)
    for column, width in widths.items():
        if width < natural[column]:
            config[column] = _with_width(config.get(column), column, width)
    kwargs: dict[str, Any] = {"height": height} if height else {}
    st.dataframe(frame, hide_index=True, column_config=config, column_order=order, **kwargs)


def fit_widths(
    natural: Mapping[str, float], budget_px: float, floors: Mapping[str, float] | None = None
) -> dict[str, int]:
    """Each column's width: natural when the total fits, else the widest capped at one width.

    The cap is the largest width c with sum(max(floor, min(natural, c))) <= budget; a column's
    floor (a name still readable, a number still legible) is kept whatever the cap.
    """
    if sum(natural.values()) <= budget_px:
        return {column: round(width) for column, width in natural.items()}
    floor = {c: min(w, (floors or {}).get(c, _MIN_COLUMN_PX)) for c, w in natural.items()}
    if sum(floor.values()) > budget_px:  # too many names to keep them all: shrink every floor alike
        floor = {c: f * budget_px / sum(floor.values()) for c, f in floor.items()}

    def total(cap: float) -> float:
        return sum(max(floor[c], min(w, cap)) for c, w in natural.items())

    low, high = 0.0, max(natural.values())
    for _ in range(40):  # bisection to well under a pixel
        middle = (low + high) / 2
        low, high = (middle, high) if total(middle) <= budget_px else (low, middle)
    return {c: round(max(floor[c], min(w, low))) for c, w in natural.items()}


def _title(config: Any, column: str) -> str:
    if isinstance(config, str):
        return config
    if isinstance(config, Mapping) and config.get("label"):
        return str(config["label"])
    return column


def _natural_width(frame: pd.DataFrame, column: str, config: Any) -> float:
    preset = config.get("width") if isinstance(config, Mapping) else None
    if isinstance(preset, int):
        return float(preset)
    if preset in _PRESET_PX:
        return float(_PRESET_PX[preset])
    header = len(_title(config, column)) * _PX_PER_CHAR + _HEADER_EXTRA_PX
    if column not in frame.columns or frame.empty:
        return header
    values = frame[column].head(_SAMPLE_ROWS)
    if pd.api.types.is_float_dtype(values):
        longest = max((len(f"{v:,.1f}") for v in values.dropna()), default=0)
    else:
        lengths = values.dropna().map(lambda value: len(str(value)))
        longest = int(lengths.max()) if len(lengths) else 0
    return max(header, longest * _PX_PER_CHAR + _CELL_EXTRA_PX)


def _is_name(frame: pd.DataFrame, column: str) -> bool:
    """Mostly words, not numbers or suppression marks ("<5", "*")."""
    if column not in frame.columns or frame.empty or pd.api.types.is_numeric_dtype(frame[column]):
        return False
    values = frame[column].head(_SAMPLE_ROWS).dropna().astype(str)
    wordy = values.str.contains(r"[A-Za-z]{3}").mean() >= 0.5
    return bool(len(values)) and wordy and values.str.len().max() > 12


def _with_width(config: Any, column: str, width: int) -> Any:
    if config is None or isinstance(config, str):
        return st.column_config.Column(_title(config, column), width=width)
    return {**config, "width": width}
