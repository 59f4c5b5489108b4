"""Small-number suppression for every figure the dashboards and exports share.

The rule in force is a setting (`dashboards.disclosure`); every function here takes it as
`rule=` and otherwise applies the active one. Under the default `nhs-1-4` (NHS statistical
disclosure practice) a count of events about patients between 1 and 4 is not published; it
is shown as "<5". Under `nhse-1-7-round-5` the small range is 1 to 7, shown as "*", every
other visible patient-derived count is rounded to the nearest 5 and rates are recomputed
from the rounded figures (`Policy.rate_terms`; a rate without terms is hidden). The text
below speaks of "<5" and 1..4; read "*" and 1..7 under the NHS England rule.

Protection applies to counts derived from bookings (booked slots, bookings by NHS 111 or a
hub, released slots later booked, refused releases because the slot was booked, reconciliation
findings about appointments) and to any rate computed from them. Counts of *capacity* (slots
offered, quota, slots released, slots left free) describe a practice's appointment book, not
patients, and are shown exactly.

Hiding one cell is not enough when the page lets the reader work it out again:

1. **Inside a row.** When a row has a hidden count, every other outcome count of that row
   (unused, unknown, still free, the other booked columns) and its rates are hidden too
   ("*"), because offered = booked + unused + unknown + still free would give it back. If the
   row's capacity is itself 1 to 4 it is shown as "<5" as well.
2. **Across rows.** Where a table's total is shown (a KPI, a per-practice total beside a
   per-day table), the hidden cells of each group could be recovered from the total. A group
   (for every grouping whose totals the page shows) must never have exactly one hidden row,
   and for every protected column the hidden cells are checked the way a reader would: each
   "<5" lies in 1..4, the others are unknown. While a group has one hidden row or a "<5" could
   be pinned to one value, the smallest remaining count of 5 or more in the group is hidden as
   well ("*", complementary suppression).

Zero is shown: it discloses nothing about a patient. All of this is pure pandas, so it is
tested without Streamlit.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not in the lock

from dashboards.disclosure import NHS_1_4, Rule, active_rule

# The default rule's marks and range, for code and tests written against it.
SMALL_MIN = NHS_1_4.small_min
SMALL_MAX = NHS_1_4.small_max
PRIMARY = NHS_1_4.primary
SECONDARY = NHS_1_4.secondary


@dataclass(frozen=True)
class Policy:
    """Which columns of a table need what.

    `protected` counts, `outcomes` and `rates` describe the same slots (offered = booked +
    unused + unknown), so a row hides them together. `independent` counts are patient-derived
    too but not tied to the others (refused releases, findings of one kind): each is
    suppressed on its own, with its own complements across rows.

    `totals_by` lists the groupings whose totals the reader can see elsewhere on the page:
    `()` inside it means the whole table's total; an empty `totals_by` means no totals are
    shown, so only primary and in-row suppression apply.
    """

    protected: tuple[str, ...]
    outcomes: tuple[str, ...] = ()
    rates: tuple[str, ...] = ()
    capacity: tuple[str, ...] = ()
    totals_by: tuple[tuple[str, ...], ...] = ((),)
    independent: tuple[str, ...] = ()
    # How each rate is built, (rate, numerator columns, denominator columns), each side a sum:
    # under a rounding rule a rate is recomputed from the rounded figures.
    rate_terms: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Suppressed:
    """`values` keeps every column, with hidden cells set to NaN; `marks` says why."""

    values: pd.DataFrame
    marks: pd.DataFrame = field(repr=False)
    policy: Policy = field(repr=False)
    rule: Rule = NHS_1_4
    # Columns whose total, shown elsewhere, would still pin a "<5" because no count was left to
    # hide with it (every row small): the page must hide that total too (`suppress_one(conceal=)`).
    unprotected: frozenset[str] = frozenset()

    @property
    def hidden_rows(self) -> pd.Series:
        return (self.marks != "").any(axis=1)

    def display(self, *, percent_digits: int = 1) -> pd.DataFrame:
        """Strings for the policy's columns ("1,234", "<5", "*", "45.2%"), for st.dataframe."""
        out = self.values.copy()
        for column in self.marks.columns:
            is_rate = column in self.policy.rates
            texts = [
                mark or _format(value, rate=is_rate, digits=percent_digits)
                for value, mark in zip(self.values[column], self.marks[column], strict=True)
            ]
            out[column] = pd.Series(texts, index=out.index, dtype="object")
        return out

    def export(self) -> pd.DataFrame:
        """For CSV: numbers stay numbers, hidden cells carry their mark instead."""
        out = self.values.copy()
        for column in self.marks.columns:
            texts = [
                mark or _plain(value)
                for value, mark in zip(self.values[column], self.marks[column], strict=True)
            ]
            out[column] = pd.Series(texts, index=out.index, dtype="object")
        return out


def is_small(value: object, rule: Rule | None = None) -> bool:
    """True for a count in the rule's small range (the values that must not be shown)."""
    rule = rule or active_rule()
    if _missing(value):
        return False
    number = float(value)  # type: ignore[arg-type]
    return rule.small_min <= number <= rule.small_max


def suppress(frame: pd.DataFrame, policy: Policy, *, rule: Rule | None = None) -> Suppressed:
    """Apply primary, in-row and complementary suppression (see the module docstring), then
    the rule's rounding."""
    rule = rule or active_rule()

    def present(columns: tuple[str, ...]) -> list[str]:
        return [c for c in columns if c in frame.columns]

    protected, outcomes, rates = present(policy.protected), present(policy.outcomes), present(policy.rates)
    capacity, independent = present(policy.capacity), present(policy.independent)
    data = frame.reset_index(drop=True)
    marks = pd.DataFrame(
        "", index=data.index, columns=[*protected, *outcomes, *rates, *independent, *capacity]
    )
    unprotected: set[str] = set()
    families = [(protected, [*outcomes, *rates])] + [([c], []) for c in independent]
    for counts, linked in families:
        if not counts:
            continue
        numbers = data[counts].apply(pd.to_numeric, errors="coerce").astype("float64")
        small = (numbers >= rule.small_min) & (numbers <= rule.small_max)
        hidden = _complementary(
            data, numbers, small, small.any(axis=1), policy.totals_by, unprotected, rule.small_max
        )
        for column in [*counts, *linked]:
            marks.loc[hidden, column] = rule.secondary
        for column in counts:
            marks.loc[small[column], column] = rule.primary
        if counts == protected:
            for column in capacity:
                is_small_capacity = data[column].map(lambda v: is_small(v, rule)).astype(bool)
                marks.loc[hidden & is_small_capacity, column] = rule.primary

    values = data.copy()
    for column in marks.columns:
        hide = marks[column] != ""
        if hide.any():
            values[column] = values[column].astype("float64").mask(hide)
    if rule.round_to is not None:
        _round(values, marks, policy, rule, [*protected, *outcomes, *independent])
    return Suppressed(
        values=values, marks=marks, policy=policy, rule=rule, unprotected=frozenset(unprotected)
    )


def _round(values: pd.DataFrame, marks: pd.DataFrame, policy: Policy, rule: Rule, counts: list[str]) -> None:
    """Round the visible patient-derived counts, then rebuild each rate from what is shown."""
    for column in counts:
        visible = marks[column] == ""
        values[column] = values[column].astype("float64")
        values.loc[visible, column] = values.loc[visible, column].map(
            lambda v: v if _missing(v) else rule.rounded(float(v))
        )
    terms = {rate: (top, bottom) for rate, top, bottom in policy.rate_terms}
    for rate in [c for c in policy.rates if c in marks.columns]:
        visible = marks[rate] == ""
        # A term the table lacks (an older mart without `queued`) counts as zero.
        top, bottom = (
            [c for c in side if c in values.columns] for side in terms.get(rate, ((), ()))
        )
        parts = [*top, *bottom]
        if not top or not bottom:
            # No way to rebuild it from rounded figures: hiding it is the only safe choice.
            marks.loc[visible, rate] = rule.secondary
            values[rate] = values[rate].astype("float64").mask(marks[rate] != "")
            continue
        marked = [marks[c] != "" for c in parts if c in marks.columns]
        used = pd.concat(marked, axis=1).any(axis=1) if marked else pd.Series(False, index=marks.index)
        marks.loc[visible & used, rate] = rule.secondary
        numerator = values[top].astype("float64").sum(axis=1, min_count=len(top))
        denominator = values[bottom].astype("float64").sum(axis=1, min_count=len(bottom))
        rebuilt = numerator / denominator.where(denominator > 0)
        values[rate] = rebuilt.mask(marks[rate] != "")


def suppress_one(
    figures: dict[str, float | int | None],
    policy: Policy,
    *,
    conceal: Collection[str] = (),
    rule: Rule | None = None,
) -> dict[str, str]:
    """One row of totals (the KPIs of a page), each figure formatted as shown.

    `conceal` names totals to hide outright, because a table of the same figures on the page
    could not protect its small counts without them (`unprotected()`). Hiding the first
    protected column (the one the outcomes complete and the rates are built on) hides those
    too.
    """
    rule = rule or active_rule()
    alone = replace(policy, totals_by=())
    shown = suppress(pd.DataFrame([figures]), alone, rule=rule).display()
    out = {key: _format(shown.at[0, key], rate=key in policy.rates) for key in figures}
    hide = set(conceal)
    if policy.protected and policy.protected[0] in hide:
        hide |= {*policy.outcomes, *policy.rates}
    for key in hide:
        if key in out and out[key] not in ("0", "–", rule.primary):
            out[key] = rule.secondary
    return out


def conceal(result: Suppressed, rows: pd.Series, columns: Collection[str]) -> Suppressed:
    """Hide `columns` in `rows` as well: they are totals of a table elsewhere on the page that
    could not protect its small counts (`unprotected()`). Hiding the first protected column
    hides its outcomes and rates too."""
    policy = result.policy
    hide = {c for c in columns if c in result.marks.columns}
    if policy.protected and policy.protected[0] in hide:
        hide |= {c for c in (*policy.outcomes, *policy.rates) if c in result.marks.columns}
    if not hide or not rows.any():
        return result
    marks, values = result.marks.copy(), result.values.copy()
    for column in hide:
        target = rows.to_numpy() & (marks[column] == "").to_numpy()
        marks.loc[target, column] = result.rule.secondary
        values[column] = values[column].astype("float64").mask(marks[column] != "")
    return replace(result, marks=marks, values=values)


def unprotected(*results: Suppressed) -> frozenset[str]:
    """Columns whose total would give a small count back in any of these tables."""
    return frozenset().union(*(result.unprotected for result in results))


# ---------------------------------------------------------------------------- internals


def _complementary(
    data: pd.DataFrame,
    numbers: pd.DataFrame,
    small: pd.DataFrame,
    hidden: pd.Series,
    totals_by: Sequence[tuple[str, ...]],
    unprotected: set[str],
    small_max: int,
) -> pd.Series:
    hidden = hidden.copy()
    changed = True
    while changed:
        changed = False
        for keys in totals_by:
            groups = (
                [data.index]
                if not keys
                else list(data.groupby(list(keys), dropna=False, sort=False).groups.values())
            )
            for index in groups:
                rows = pd.Index(index)
                while hidden.loc[rows].any():
                    # A group with one hidden row gives that row back exactly (total minus the
                    # rest), whatever it is hidden for; otherwise ask whether a "<5" is pinned.
                    alone = int(hidden.loc[rows].sum()) == 1
                    column = (
                        numbers.columns[0]
                        if alone
                        else _exposed(numbers.loc[rows], small.loc[rows], hidden.loc[rows], small_max)
                    )
                    if column is None:
                        break
                    visible = numbers.loc[rows][~hidden.loc[rows]][column]
                    candidates = visible[visible > small_max]
                    if candidates.empty and alone:
                        candidates = visible
                    if candidates.empty:
                        # Nothing left to hide with it: the group's total must not be shown.
                        unprotected.add(str(column))
                        break
                    hidden.loc[candidates.sort_values(kind="stable").index[0]] = True
                    changed = True
    return hidden


def _exposed(numbers: pd.DataFrame, small: pd.DataFrame, hidden: pd.Series, small_max: int) -> str | None:
    """A protected column in which a reader knowing the total could pin a "<5" to one value."""
    for column in numbers.columns:
        cells = numbers.loc[hidden, column].fillna(0.0)
        is_primary = small.loc[hidden, column]
        if not is_primary.any():
            continue
        total = float(cells.sum())
        # What a reader knows of each hidden cell: "<5" is 1..4; "*" is 0 or more (5 or
        # more when it is a complement, which a reader could guess).
        low = [
            1.0 if p else (float(small_max + 1) if v > small_max else 0.0)
            for v, p in zip(cells, is_primary, strict=True)
        ]
        high = [float(small_max) if p else math.inf for p in is_primary]
        for i, primary in enumerate(is_primary):
            if not primary:
                continue
            lowest = max(low[i], total - (sum(high) - high[i]))
            highest = min(high[i], total - (sum(low) - low[i]))
            if lowest >= highest:
                return str(column)
    return None


def _missing(value: object) -> bool:
    return value is None or bool(pd.api.types.is_scalar(value) and pd.isna(value))


def _format(value: object, *, rate: bool, digits: int = 1) -> str:
    if _missing(value):
        return "–"
    if isinstance(value, str):
        return value
    number = float(value)  # type: ignore[arg-type]
    if rate:
        return f"{number:.{digits}%}"
    return f"{number:,.0f}" if number.is_integer() else f"{number:,.1f}"


def _plain(value: object) -> object:
    if _missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
