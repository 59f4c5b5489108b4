"""UK wall-clock time on the wire: offsets follow DST, storage is UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from common.uktime import format_uk, offset_matches_uk_dst, parse_fhir_datetime, uk_local


@pytest.mark.parametrize(
    ("instant", "text"),
    [
        (datetime(2026, 1, 15, 9, 0, tzinfo=UTC), "2026-01-15T09:00:00+00:00"),
        (datetime(2026, 7, 15, 8, 0, tzinfo=UTC), "2026-07-15T09:00:00+01:00"),
        (datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC), "2026-03-29T00:59:59+00:00"),
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "2026-03-29T02:00:00+01:00"),
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "2026-10-25T01:30:00+01:00"),
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "2026-10-25T01:30:00+00:00"),
    ],
)
def test_format_uk_uses_the_offset_in_force(instant: datetime, text: str) -> None:
    assert format_uk(instant) == text
    assert parse_fhir_datetime(text) == instant
    assert offset_matches_uk_dst(text)


@pytest.mark.parametrize(
    "text",
    [
        "2026-07-15T09:00:00+00:00",
        "2026-01-15T09:00:00+01:00",
        "2026-01-15T09:00:00+02:00",
        "2026-01-15T09:00:00",
    ],
)
def test_offsets_that_contradict_uk_dst_are_detected(text: str) -> None:
    assert not offset_matches_uk_dst(text)


def test_wall_clock_times_on_dst_days() -> None:
    assert uk_local(date(2026, 3, 30), time(9, 0)) == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    # 01:30 does not exist on the spring-forward day: it resolves forward to 02:30 BST.
    assert uk_local(date(2026, 3, 29), time(1, 30)) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert uk_local(date(2026, 10, 25), time(9, 0)) == datetime(2026, 10, 25, 9, 0, tzinfo=UTC)


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_uk(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="no offset"):
        parse_fhir_datetime("2026-01-01T09:00:00")
