"""The one error-classification table."""

from __future__ import annotations

import pytest

from connectors.gpconnect.errors import GpConnectError, classify
from connectors.http.errors import (
    ConfigurationError,
    Conflict,
    HttpError,
    NotFound,
    RateLimited,
    RequestRejected,
    TransientError,
)


@pytest.mark.parametrize(
    ("status", "code", "expected", "retryable"),
    [
        (502, None, TransientError, True),
        (503, None, TransientError, True),
        (504, None, TransientError, True),
        (429, None, RateLimited, True),
        (401, None, ConfigurationError, False),
        (403, "ACCESS DENIED", ConfigurationError, False),
        (400, "ASID_CHECK_FAILED", ConfigurationError, False),
        (400, "BAD_REQUEST", RequestRejected, False),
        (422, "INVALID_PARAMETER", RequestRejected, False),
        (409, "DUPLICATE_REJECTED", Conflict, False),
        (409, "FHIR_CONSTRAINT_VIOLATION", Conflict, False),
        (404, "NO_RECORD_FOUND", NotFound, False),
        (500, "INTERNAL_SERVER_ERROR", GpConnectError, False),
    ],
)
def test_classification(status: int, code: str | None, expected: type[HttpError], retryable: bool) -> None:
    error_class = classify(status, code)
    assert error_class is expected
    assert error_class.retryable is retryable


def test_messages_name_practice_interaction_status_and_next_step() -> None:
    error = ConfigurationError("JWT rejected", practice_ods="J82001", interaction="search slots", status=401)
    text = str(error)
    assert "J82001" in text and "search slots" in text and "HTTP 401" in text
    assert "Next step:" in text and "registry" in text
