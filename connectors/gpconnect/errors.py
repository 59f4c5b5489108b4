"""What GP Connect adds to the generic HTTP error table: Spine codes, and its own class.

The error tree and the status table live in `connectors.http.errors`. Two things are GP
Connect's own:

- `GpConnectError`: an interaction failure no row of the table names (e.g. a 500 from the
  provider); not retried.
- SSP proxy errors: a 400 whose Spine code says the ASID or sharing agreement is wrong is a
  `ConfigurationError`, not a bad request. The client normalises the code (matched on the
  code, not the coding system).
"""

from __future__ import annotations

from connectors.http.errors import ConfigurationError, HttpError, classify_status


class GpConnectError(HttpError):
    """A failed GP Connect interaction that no row of the error table classifies."""


SSP_CONFIG_CODES = frozenset(
    {"ASID_CHECK_FAILED", "ACCESS_DENIED_SSL", "INVALID_ASID", "NO_RELATIONSHIP"}
)


def classify(status: int, spine_code: str | None) -> type[HttpError]:
    """The exception class for a GP Connect status and Spine code."""
    if status == 400 and (spine_code or "") in SSP_CONFIG_CODES:
        return ConfigurationError
    return classify_status(status, unclassified=GpConnectError)
