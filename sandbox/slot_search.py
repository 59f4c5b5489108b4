"""`GET /Slot` parameters and the restriction table, exactly as GP Connect 1.2.7 defines them.

Parameter rules (spec "Search for free slots"; demonstrator `SlotResourceProvider`):
`status=free` is mandatory and the only value; `start=ge…` and `end=le…` appear exactly once
each, as a date or a dateTime whose offset matches UK DST; the window may span at most 14
days (`ChronoUnit.DAYS.between`, counted on UK local time); `_include=Slot:schedule` is
mandatory (400 when absent, 422 for the other mistakes).

Restriction table (spec "Slot availability management"): a slot restricted by organisation
type and/or ODS code is returned only when the consumer's searchFilter matches every
restriction it has, and a filterless search sees only unrestricted slots.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from common.uktime import UK, offset_matches_uk_dst, uk_midnight
from connectors.gpconnect.spine import ODS_SYSTEM, ORG_TYPE_SYSTEM
from sandbox.diary import SlotRecord
from sandbox.errors import bad_request, invalid_parameter

MAX_WINDOW_DAYS = 14
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+0[01]:00")
_INCLUDE_PRACTITIONER = "Schedule:actor:Practitioner"
_INCLUDE_LOCATION = "Schedule:actor:Location"
_INCLUDE_ORGANIZATION = "Location:managingOrganization"


@dataclass(frozen=True)
class SlotQuery:
    """A validated slot search: the window (UTC), who is asking, and what to include."""

    start: datetime
    end: datetime
    org_types: frozenset[str]
    ods_codes: frozenset[str]
    include_practitioner: bool
    include_location: bool
    include_organization: bool


def parse_slot_query(params: Iterable[tuple[str, str]]) -> SlotQuery:
    """Validate decoded query parameters; raises `SandboxError` with the demonstrator's codes."""
    values: dict[str, list[str]] = {}
    for name, value in params:
        values.setdefault(name, []).append(value)
    if "Slot:schedule" not in values.get("_include", []):
        raise bad_request("_include=Slot:schedule is mandatory for a slot search")
    statuses = values.get("status", [])
    if statuses != ["free"]:
        raise invalid_parameter(f"status must be given once as 'free', got {statuses or 'nothing'}")
    start_text = _single(values, "start", "ge")
    end_text = _single(values, "end", "le")
    start_local, start = _bound(start_text, "start", end_of_day=False)
    end_local, end = _bound(end_text, "end", end_of_day=True)
    if end_local < start_local:
        raise invalid_parameter(f"end {end_text} is before start {start_text}")
    # ChronoUnit.DAYS.between on local date-times: whole days, DST-independent.
    if (end_local - start_local) // timedelta(days=1) > MAX_WINDOW_DAYS:
        raise invalid_parameter(
            f"the search window {start_text}..{end_text} is longer than {MAX_WINDOW_DAYS} days"
        )
    org_types: set[str] = set()
    ods_codes: set[str] = set()
    for token in values.get("searchFilter", []):
        system, _, code = token.partition("|")
        if system == ORG_TYPE_SYSTEM and code:
            org_types.add(code)
        elif system == ODS_SYSTEM and code:
            ods_codes.add(code)
        # Unknown searchFilter systems SHALL be ignored without error.
    recurse = set(values.get("_include:recurse", []))
    return SlotQuery(
        start=start,
        end=end,
        org_types=frozenset(org_types),
        ods_codes=frozenset(ods_codes),
        include_practitioner=_INCLUDE_PRACTITIONER in recurse,
        include_location=_INCLUDE_LOCATION in recurse,
        include_organization=_INCLUDE_ORGANIZATION in recurse,
    )


def visible_to(slot: SlotRecord, org_types: frozenset[str], ods_codes: frozenset[str]) -> bool:
    """The §2.3 table: every restriction the slot has must be matched by the searchFilter.

    No filter sees only unrestricted slots; a type-only filter sees slots without an ODS
    restriction whose type restriction (if any) matches; ODS-only likewise; type + ODS sees
    slots whose every restriction matches.
    """
    if slot.org_types and not org_types.intersection(slot.org_types):
        return False
    return not (slot.ods_codes and not ods_codes.intersection(slot.ods_codes))


def _single(values: dict[str, list[str]], name: str, prefix: str) -> str:
    given = values.get(name, [])
    if len(given) != 1:
        raise invalid_parameter(f"{name} must appear exactly once with prefix '{prefix}'")
    value = given[0]
    if not value.startswith(prefix):
        raise invalid_parameter(f"{name}={value}: the prefix must be '{prefix}'")
    return value[len(prefix) :]


def _bound(text: str, name: str, *, end_of_day: bool) -> tuple[datetime, datetime]:
    """(UK local naive, UTC) for a date or offset dateTime; a date `end` means end of day."""
    if _DATE.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise invalid_parameter(f"{name}: {text!r} is not a calendar date") from exc
        if end_of_day:
            # The whole day is in the window: up to the next UK midnight (23 or 25 h away on
            # DST days), counted as 23:59:59 local for the 14-day rule.
            return datetime.combine(day, time(23, 59, 59)), uk_midnight(day + timedelta(days=1)).astimezone(
                UTC
            )
        return datetime.combine(day, time(0, 0)), uk_midnight(day).astimezone(UTC)
    if not _DATETIME.fullmatch(text):
        raise invalid_parameter(f"{name}: {text!r} must be yyyy-mm-dd or yyyy-mm-ddThh:mm:ss+00:00/+01:00")
    try:
        instant = datetime.fromisoformat(text)
    except ValueError as exc:
        raise invalid_parameter(f"{name}: {text!r} is not a valid dateTime") from exc
    if not offset_matches_uk_dst(text):
        raise invalid_parameter(f"{name}: the offset of {text!r} does not match UK daylight saving")
    return instant.astimezone(UK).replace(tzinfo=None), instant.astimezone(UTC)
