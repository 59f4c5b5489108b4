"""Every way an outbound HTTP call can fail, and the one table that decides what to do.

Exception tree::

    HttpError                      (who, interaction, HTTP status, error code, next step)
    ├── TransientError             retried with backoff: 502/503/504 and 408
    │   ├── RateLimited            429: retried after Retry-After (capped)
    │   ├── TransportFailure       connection refused/reset, timeouts, body cut short
    │   │   └── RequestDeadlineExceeded  no whole answer within http.request_deadline_s (trickle)
    │   └── IncompleteResponse     a 2xx whose body is cut or not the promised JSON (proxy pages)
    ├── ConfigurationError         401/403 (and a client's own config codes): fix config
    ├── RequestRejected            400/405/415/422 and other 4xx: our request is wrong; never retried
    ├── Conflict                   409/412: the resource changed under us; never retried
    ├── NotFound                   404: unknown practice/resource
    ├── Redirected                 any 3xx: never followed, never loaded (even with a FHIR body)
    ├── PracticeBudgetExceeded     the caller's budget (http.practice_budget_s) ran out; final
    └── ResponseInvalid            a success with a body we cannot accept (too big, invalid)
        └── UnexpectedStatus       a 1xx/2xx other than the interaction's one success status

`classify_status()` is the only place that maps a status to a class; a client may look at its
own error codes first (GP Connect's Spine codes: `connectors.gpconnect.errors`) and names the
class for an unclassified failure (`HttpError` unless it says otherwise). The retry loop asks
`error.retryable` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass


class HttpError(Exception):
    """A failed outbound interaction, with enough context to act on it."""

    retryable: bool = False
    default_next_step = "check the request and the provider's status, then re-run the practice"

    def __init__(
        self,
        message: str,
        *,
        practice_ods: str,
        interaction: str,
        status: int | None = None,
        code: str | None = None,
        next_step: str | None = None,
        retry_after_s: float | None = None,
        subject: str | None = None,
    ) -> None:
        self.practice_ods = practice_ods
        self.interaction = interaction
        self.status = status
        self.code = code
        self.next_step = next_step or self.default_next_step
        self.retry_after_s = retry_after_s
        self.subject = subject
        self.detail = message
        status_text = f"HTTP {status}" if status is not None else "no HTTP response"
        code_text = f" {code}" if code else ""
        who = subject or f"practice {practice_ods}"
        super().__init__(
            f"{who}, {interaction}: {status_text}{code_text}: {message}. "
            f"Next step: {self.next_step}"
        )

    @property
    def spine_code(self) -> str | None:
        """The error code under GP Connect's name for it (a Spine code on GP Connect calls)."""
        return self.code

    @property
    def error_class(self) -> str:
        return type(self).__name__


class TransientError(HttpError):
    retryable = True
    default_next_step = "transient provider/Spine fault: re-run the practice later (slotsync rerun)"


class RateLimited(TransientError):
    default_next_step = "the provider is rate limiting us: lower http.max_requests_per_second"


class TransportFailure(TransientError):
    default_next_step = "network or provider unreachable: check the endpoint, then re-run"


class RequestDeadlineExceeded(TransportFailure):
    """No complete answer (connect, headers and the whole body) within `http.request_deadline_s`.

    The read timeout restarts with every byte, so only this catches a provider that trickles.
    """

    default_next_step = (
        "the provider answered too slowly (a body trickled or stalled past http.request_deadline_s); "
        "it was retried. If it persists, raise it with the supplier, then re-run the practice"
    )


class IncompleteResponse(TransientError):
    default_next_step = (
        "the provider (or a proxy) sent a cut or non-FHIR body; it was retried. If it persists, "
        "raise it with the supplier; nothing from it was loaded"
    )


class ConfigurationError(HttpError):
    default_next_step = (
        "fix the practice's registry entry (ASID, service root) or our Spine credentials/"
        "sharing agreement, then re-run the practice"
    )


class RequestRejected(HttpError):
    default_next_step = "the provider rejected our request as invalid: report it as a slotsync bug"


class Conflict(HttpError):
    default_next_step = "the resource changed under us: re-read (or re-search) and decide again"


class NotFound(HttpError):
    default_next_step = "check the ODS code/service root in the registry, or the resource id"


class ResponseInvalid(HttpError):
    default_next_step = (
        "the provider answered with data we cannot accept: the batch is kept out of the "
        "warehouse; raise it with the supplier and re-run once fixed"
    )


class UnexpectedStatus(ResponseInvalid):
    """A non-error status that is not this interaction's success (e.g. 203, 204, 206)."""


class Redirected(HttpError):
    """A 3xx. A redirect could send the bearer JWT to another host, and a 3xx body is
    never the answer we asked for, so it is neither followed nor loaded."""

    default_next_step = (
        "the provider redirected us; redirects are never followed: confirm the service root "
        "with the supplier and correct the registry, then re-run the practice"
    )


class PracticeBudgetExceeded(HttpError):
    """The caller's budget for one practice (all its calls in a run, retries included) ran out.

    Not retried: the budget is what keeps one slow provider from holding the whole run.
    """

    default_next_step = (
        "the provider was too slow for the practice's budget (http.practice_budget_s); the other "
        "practices were not held. Re-run the practice later (slotsync rerun); raise it with the "
        "supplier if it persists"
    )

    @classmethod
    def after(
        cls,
        budget_s: float,
        *,
        practice_ods: str,
        interaction: str,
        subject: str | None = None,
        last: HttpError | None = None,
    ) -> PracticeBudgetExceeded:
        """The error for a budget that ran out (after `last`, when a retry was due)."""
        because = f" (last attempt: {last.error_class}: {last.detail})" if last is not None else ""
        return cls(
            f"the {budget_s:g} s budget for its calls in this run (http.practice_budget_s) "
            f"ran out{because}",
            practice_ods=practice_ods,
            interaction=interaction,
            subject=subject,
            status=last.status if last is not None else None,
        )


@dataclass(frozen=True)
class Rule:
    """One row of the classification table: a status (or range) and its class."""

    status: int | range
    error: type[HttpError] | None  # None: the client's class for an unclassified failure

    def matches(self, status: int) -> bool:
        return status in self.status if isinstance(self.status, range) else status == self.status


# Ordered: first match wins.
ERROR_TABLE: tuple[Rule, ...] = (
    Rule(429, RateLimited),
    Rule(408, TransientError),
    Rule(502, TransientError),
    Rule(503, TransientError),
    Rule(504, TransientError),
    Rule(401, ConfigurationError),
    Rule(403, ConfigurationError),
    Rule(404, NotFound),
    Rule(409, Conflict),
    Rule(412, Conflict),
    Rule(400, RequestRejected),
    Rule(405, RequestRejected),
    Rule(415, RequestRejected),
    Rule(422, RequestRejected),
    Rule(range(500, 600), None),
    Rule(range(400, 500), RequestRejected),
    Rule(range(300, 400), Redirected),
    Rule(range(100, 300), UnexpectedStatus),
)


def classify_status(status: int, unclassified: type[HttpError] = HttpError) -> type[HttpError]:
    """The exception class for an HTTP status; `unclassified` for other 5xx and unknown codes.

    Only call it for a status that is not the interaction's success: every 1xx-3xx lands in
    a class here, so nothing but the expected status is ever treated as data.
    """
    for rule in ERROR_TABLE:
        if rule.matches(status):
            return rule.error or unclassified
    return unclassified
