"""The retry policy: the one place that decides how often and how long to retry.

Every outbound call slotsync makes (GP Connect interactions, booking-log exports, the
supplier slot-release API) runs inside `retrying(...)`. What is retryable is decided by the
error table in `connectors.http.errors` (`HttpError.retryable`); how long to wait is
exponential backoff with jitter, capped, or the server's `Retry-After` when it sent one.
"""

from __future__ import annotations

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from common.config import HttpSettings
from connectors.http.errors import HttpError, RateLimited


def retrying(http: HttpSettings) -> AsyncRetrying:
    """An async retry loop configured from settings: `async for attempt in retrying(...)`."""
    backoff = wait_exponential_jitter(initial=http.backoff_initial_s, max=http.backoff_max_s)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, http.retry_after_cap_s)
        return float(backoff(state))

    return AsyncRetrying(
        stop=stop_after_attempt(http.max_attempts),
        wait=wait,
        retry=retry_if_exception(lambda exc: isinstance(exc, HttpError) and exc.retryable),
        reraise=True,
    )
