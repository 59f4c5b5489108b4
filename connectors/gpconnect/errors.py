"""Every way a GP Connect call can fail, and the one table that decides what to do.

Exception tree::

    GpConnectError                 (practice, interaction, HTTP status, Spine code, next step)
    ├── TransientError             retried with backoff: 5xx from the SSP/provider, 408
    │   ├── RateLimited            429: retried after Retry-After (capped)
    │   ├── TransportFailure       connection refused/reset, timeouts, body cut short
    │   └── IncompleteResponse     a 2xx whose body is cut or not FHIR JSON (proxy pages)
    ├── ConfigurationError         401/403 and SSP ASID/party-key errors: fail the practice, fix config
    ├── RequestRejected            400/422: our request is wrong; never retried
    ├── Conflict                   409: DUPLICATE_REJECTED (slot taken) or stale If-Match; never retried
    ├── NotFound                   404: unknown practice/appointment
    └── ResponseInvalid            200 with a body we cannot accept (too big, not FHIR JSON)

`classify()` is the only place that maps a response to a class; the client's single retry
loop asks `error.retryable` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass


class GpConnectError(Exception):
    """A failed GP Connect interaction, with enough context to act on it."""

    retryable: bool = False
    default_next_step = "check the request and the provider's status, then re-run the practice"

    def __init__(
        self,
        message: str,
        *,
        practice_ods: str,
        interaction: str,
        status: int | None = None,
        spine_code: str | None = None,
        next_step: str | None = None,
        retry_after_s: float | None = None,
        subject: str | None = None,
    ) -> None:
        self.practice_ods = practice_ods
        self.interaction = interaction
        self.status = status
        self.spine_code = spine_code
        self.next_step = next_step or self.default_next_step
        self.retry_after_s = retry_after_s
        self.detail = message
        status_text = f"HTTP {status}" if status is not None else "no HTTP response"
        code_text = f" {spine_code}" if spine_code else ""
        who = subject or f"practice {practice_ods}"
        super().__init__(
            f"{who}, {interaction}: {status_text}{code_text}: {message}. "
            f"Next step: {self.next_step}"
        )

    @property
    def error_class(self) -> str:
        return type(self).__name__


class TransientError(GpConnectError):
    retryable = True
    default_next_step = "transient provider/Spine fault: re-run the practice later (slotsync rerun)"


class RateLimited(TransientError):
    default_next_step = "the provider is rate limiting us: lower http.max_requests_per_second"


class TransportFailure(TransientError):
    default_next_step = "network or provider unreachable: check the endpoint, then re-run"


class IncompleteResponse(TransientError):
    default_next_step = (
        "the provider (or a proxy) sent a cut or non-FHIR body; it was retried. If it persists, "
        "raise it with the supplier; nothing from it was loaded"
    )


class ConfigurationError(GpConnectError):
    default_next_step = (
        "fix the practice's registry entry (ASID, service root) or our Spine credentials/"
        "sharing agreement, then re-run the practice"
    )


class RequestRejected(GpConnectError):
    default_next_step = "the provider rejected our request as invalid: report it as a slotsync bug"


class Conflict(GpConnectError):
    default_next_step = "the resource changed under us: re-read (or re-search) and decide again"


class NotFound(GpConnectError):
    default_next_step = "check the ODS code/service root in the registry, or the resource id"


class ResponseInvalid(GpConnectError):
    default_next_step = (
        "the provider answered with data we cannot accept: the batch is kept out of the "
        "warehouse; raise it with the supplier and re-run once fixed"
    )


@dataclass(frozen=True)
class Rule:
    """One row of the classification table."""

    status: int | range
    spine_codes: frozenset[str] | None
    error: type[GpConnectError]

    def matches(self, status: int, spine_code: str | None) -> bool:
        status_ok = status in self.status if isinstance(self.status, range) else status == self.status
        codes_ok = self.spine_codes is None or (spine_code or "") in self.spine_codes
        return status_ok and codes_ok


_SSP_CONFIG_CODES = frozenset(
    {"ASID_CHECK_FAILED", "ACCESS_DENIED_SSL", "INVALID_ASID", "NO_RELATIONSHIP"}
)

# Ordered: first match wins. SSP proxy errors carry the HTTP status as the code and a
# display such as ASID_CHECK_FAILED_MESSAGESENDER_..., normalised by the client.
ERROR_TABLE: tuple[Rule, ...] = (
    Rule(429, None, RateLimited),
    Rule(408, None, TransientError),
    Rule(502, None, TransientError),
    Rule(503, None, TransientError),
    Rule(504, None, TransientError),
    Rule(400, _SSP_CONFIG_CODES, ConfigurationError),
    Rule(401, None, ConfigurationError),
    Rule(403, None, ConfigurationError),
    Rule(404, None, NotFound),
    Rule(409, None, Conflict),
    Rule(412, None, Conflict),
    Rule(400, None, RequestRejected),
    Rule(405, None, RequestRejected),
    Rule(415, None, RequestRejected),
    Rule(422, None, RequestRejected),
    Rule(range(500, 600), None, GpConnectError),
    Rule(range(400, 500), None, RequestRejected),
)


def classify(status: int, spine_code: str | None) -> type[GpConnectError]:
    """The exception class for an HTTP status and Spine code (match on code, not system)."""
    for rule in ERROR_TABLE:
        if rule.matches(status, spine_code):
            return rule.error
    return GpConnectError
