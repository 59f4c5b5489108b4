"""`Retry-After` parsing and the one status table of the shared HTTP layer."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from connectors.http.errors import (
    HttpError,
    NotFound,
    RateLimited,
    RequestRejected,
    TransientError,
    classify_status,
)
from connectors.http.transport import retry_after_seconds

NOW = 1_780_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        ("0", 0.0),
        ("-5", 0.0),
        (formatdate(NOW + 45, usegmt=True), 45.0),
        (formatdate(NOW - 45, usegmt=True), 0.0),
        ("Wed, 21 Oct 2015 07:28:00 -0000", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value, now=NOW) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [(429, RateLimited), (503, TransientError), (404, NotFound), (500, HttpError), (418, RequestRejected)],
)
def test_one_status_table(status: int, expected: type[HttpError]) -> None:
    assert classify_status(status) is expected
