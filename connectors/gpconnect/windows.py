"""Cut a practice's horizon into GP Connect search windows.

A slot search may cover at most 14 days and has no paging, so the horizon is split into
consecutive windows that end on UK midnights. Window bounds are aware datetimes; the wire
form (`ge2026-03-29T02:00:00+01:00`) comes from `uktime.format_uk`, which picks the offset
the UK used at that instant, so windows crossing a DST change carry different offsets at
each end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from common.uktime import format_uk, uk_day, uk_midnight

MAX_WINDOW_DAYS = 14


@dataclass(frozen=True, order=True)
class SearchWindow:
    """A closed search interval [start, end] (slots must lie fully inside it)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("search windows need timezone-aware bounds")
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} is not after start {self.start}")

    @property
    def start_param(self) -> str:
        return "ge" + format_uk(self.start)

    @property
    def end_param(self) -> str:
        return "le" + format_uk(self.end)

    @property
    def start_utc(self) -> datetime:
        return self.start.astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        return self.end.astimezone(UTC)

    def __str__(self) -> str:
        return f"{format_uk(self.start)}..{format_uk(self.end)}"


def plan_windows(
    start: datetime, horizon_days: int, window_days: int = MAX_WINDOW_DAYS
) -> list[SearchWindow]:
    """Windows covering `start` up to UK midnight `horizon_days` days later.

    Each window spans at most `window_days` calendar days (<= 14) and ends on a UK
    midnight, so consecutive windows share a boundary and DST changes fall inside them.
    """
    if not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise ValueError(f"window_days must be 1..{MAX_WINDOW_DAYS}, got {window_days}")
    if horizon_days < 1:
        raise ValueError("horizon_days must be at least 1")
    start = start.astimezone(UTC).replace(microsecond=0)
    first_day = uk_day(start)
    horizon_end = uk_midnight(first_day + timedelta(days=horizon_days))
    windows: list[SearchWindow] = []
    cursor = start
    day = first_day
    while cursor < horizon_end:
        day = day + timedelta(days=window_days)
        end = min(uk_midnight(day), horizon_end)
        windows.append(SearchWindow(cursor, end.astimezone(UTC)))
        cursor = end.astimezone(UTC)
    return windows
