"""UK local time as GP Connect puts it on the wire.

GP Connect dateTimes are UK local with an explicit offset: `+00:00` in GMT and `+01:00` in
BST, and the offset must match the date's DST state. We store UTC and keep the original
string. `zoneinfo` (with the `tzdata` package as a fallback database) knows the rules, so
no DST arithmetic is written by hand here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

UK = ZoneInfo("Europe/London")
_VALID_OFFSETS = {timedelta(0): "+00:00", timedelta(hours=1): "+01:00"}


def to_uk(instant: datetime) -> datetime:
    """Convert an aware instant to Europe/London local time."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime: attach a timezone before converting to UK time")
    return instant.astimezone(UK)


def format_uk(instant: datetime) -> str:
    """Render an instant as GP Connect wants it: `2026-03-29T01:00:00+00:00`."""
    local = to_uk(instant).replace(microsecond=0)
    offset = local.utcoffset()
    assert offset is not None
    return local.strftime("%Y-%m-%dT%H:%M:%S") + _VALID_OFFSETS[offset]


def uk_midnight(day: date) -> datetime:
    """The instant (aware, UK zone) at which a UK calendar day starts."""
    return datetime.combine(day, time(0, 0), tzinfo=UK)


def uk_local(day: date, at: time) -> datetime:
    """An aware UK-local datetime for a wall-clock time on a UK day.

    A wall time that does not exist (inside the spring-forward gap) resolves forward, one
    that happens twice (autumn fall-back) resolves to its first occurrence (fold=0).
    """
    naive = datetime.combine(day, at)
    aware = naive.replace(tzinfo=UK)
    # Round-trip through UTC normalises non-existent times (01:30 on the spring-forward day).
    return aware.astimezone(UTC).astimezone(UK)


def parse_fhir_datetime(text: str) -> datetime:
    """Parse a FHIR dateTime with offset into an aware UTC datetime."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"dateTime {text!r} has no offset; GP Connect requires +00:00 or +01:00")
    return value.astimezone(UTC)


def offset_matches_uk_dst(text: str) -> bool:
    """True when a dateTime's offset is the one the UK used at that instant."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return False
    offset = value.utcoffset()
    if offset not in _VALID_OFFSETS:
        return False
    return value.astimezone(UK).utcoffset() == offset


def uk_day(instant: datetime) -> date:
    """The UK calendar day an instant falls on."""
    return to_uk(instant).date()
