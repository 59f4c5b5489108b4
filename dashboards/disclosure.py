"""The statistical disclosure rules slotsync can publish under, and which one is in force.

Two rules, chosen by the setting `disclosure_rule` (`SLOTSYNC_DISCLOSURE_RULE`):

* `nhs-1-4` (the default, slotsync's original rule): a patient-derived count from 1 to 4 is
  shown as "<5"; other counts are exact; complementary suppression stops a "<5" being worked
  out from totals (`dashboards.suppression`).
* `nhse-1-7-round-5`: the rule NHS England applies to hospital statistics below national
  level, which many ICB information-governance teams expect: a patient-derived count from 1
  to 7 is shown as "*", every other patient-derived count is rounded to the nearest 5, and
  rates are computed from the rounded figures. The complementary rule still runs on top (with
  1-7 as the small range), so a total can never pin a hidden count either.

This module only describes the rules; `dashboards.suppression` applies them. Both the
dashboard and `slotsync export` import it, so a page, its CSV download and every export name
and apply the same rule. No Streamlit or pandas here.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.config import get_settings

DEFAULT_RULE = "nhs-1-4"


@dataclass(frozen=True)
class Rule:
    """One disclosure rule: the small range, how a small count is marked, and rounding."""

    name: str
    title: str
    small_min: int
    small_max: int
    primary: str  # the mark of a small count
    secondary: str  # the mark of a cell hidden so a small count cannot be worked out
    round_to: int | None  # visible patient-derived counts are rounded to this (None: exact)
    note: str

    def rounded(self, value: float) -> float:
        """Half away from zero, the way published NHS tables round (12.5 -> 15)."""
        if self.round_to is None:
            return value
        step = float(self.round_to)
        return float(int(abs(value) / step + 0.5) * step) * (1.0 if value >= 0 else -1.0)

    def describe(self) -> str:
        """One line for a page caption, an export's metadata and the data dictionary."""
        return f"{self.name}: {self.title}"


NHS_1_4 = Rule(
    name="nhs-1-4",
    title="counts of 1-4 shown as <5, with complementary suppression",
    small_min=1,
    small_max=4,
    primary="<5",
    secondary="*",
    round_to=None,
    note=(
        "Disclosure rule **nhs-1-4**: counts of booked slots between 1 and 4 are shown as **<5**, "
        "and rates built on them are hidden, so no small group of patients can be picked out (NHS "
        "statistical disclosure practice). Cells marked **\\*** are hidden so that a <5 cannot be "
        "worked out from the totals. Slot capacity (offered, quota, released, free) is not patient "
        "data and is exact, unless it is under 5 next to a hidden count, which it would give away."
    ),
)

NHSE_1_7_ROUND_5 = Rule(
    name="nhse-1-7-round-5",
    title="counts of 1-7 suppressed as *, other patient counts rounded to the nearest 5",
    small_min=1,
    small_max=7,
    primary="*",
    secondary="*",
    round_to=5,
    note=(
        "Disclosure rule **nhse-1-7-round-5** (NHS England's rule for hospital statistics): counts "
        "of booked slots between 1 and 7 are shown as **\\***, other counts about patients are "
        "rounded to the nearest 5, and rates are computed from the rounded figures. Further cells "
        "marked **\\*** are hidden so that a small count cannot be worked out from the totals. Slot "
        "capacity (offered, quota, released, free) is not patient data and is exact, unless it is "
        "under 8 next to a hidden count."
    ),
)

RULES: dict[str, Rule] = {rule.name: rule for rule in (NHS_1_4, NHSE_1_7_ROUND_5)}


class UnknownRuleError(ValueError):
    """A disclosure rule name slotsync does not know."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown disclosure rule {name!r}: choose one of {', '.join(RULES)}")


def rule_named(name: str) -> Rule:
    try:
        return RULES[name]
    except KeyError:
        raise UnknownRuleError(name) from None


def active_rule() -> Rule:
    """The rule in force: the `disclosure_rule` setting (validated when settings load)."""
    return rule_named(get_settings().disclosure_rule)
