"""The retry policy: the one place that decides how often and how long to retry.

Every outbound call slotsync makes (GP Connect interactions, booking-log exports, the
supplier slot-release API) runs inside `retrying(...)`. What is retryable is decided by the
error table in `connectors.http.errors` (`HttpError.retryable`); how long to wait is
exponential backoff with jitter, capped, or the server's `Retry-After` when it sent one.

A `Retry-After` longer than `http.retry_after_cap_s`, or than what is left of the caller's
budget (`deadline`), is not slept on at all: waiting a capped 120 s and asking again only
holds the run for an answer the provider already said it will not give in time. The call
fails at once with a `RateLimited` that names the requested wait. Backoff never sleeps past
`deadline` either, and a retry due once it has passed fails as `PracticeBudgetExceeded`
(`send_capped` bounds each attempt by what is left of it the same way).
"""

from __future__ import annotations

import time

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from common.config import HttpSettings
from connectors.http.errors import HttpError, PracticeBudgetExceeded, RateLimited


def retrying(http: HttpSettings, *, deadline: float | None = None) -> AsyncRetrying:
    """An async retry loop configured from settings: `async for attempt in retrying(...)`.

    `deadline` (a `time.monotonic()` instant) is when the caller's budget runs out.
    """
    backoff = wait_exponential_jitter(initial=http.backoff_initial_s, max=http.backoff_max_s)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, http.retry_after_cap_s)
        if deadline is not None:
            # Never sleep past the budget: the next attempt then fails at once as over budget.
            return max(0.0, min(float(backoff(state)), deadline - time.monotonic()))
        return float(backoff(state))

    def should_retry(exc: BaseException) -> bool:
        if not (isinstance(exc, HttpError) and exc.retryable):
            return False
        if deadline is not None and time.monotonic() >= deadline:
            raise PracticeBudgetExceeded.after(
                http.practice_budget_s, practice_ods=exc.practice_ods, interaction=exc.interaction,
                subject=exc.subject, last=exc,
            ) from exc
        if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
            refused = _refused_wait(exc.retry_after_s, http.retry_after_cap_s, deadline)
            if refused:
                # Raised from the retry decision so it leaves the loop at once, unslept.
                refusal = RateLimited(
                    f"the provider asked us to wait {exc.retry_after_s:g} s (Retry-After), "
                    f"beyond {refused}; not waited",
                    practice_ods=exc.practice_ods,
                    interaction=exc.interaction,
                    status=exc.status,
                    code=exc.code,
                    retry_after_s=exc.retry_after_s,
                    subject=exc.subject,
                    next_step=f"re-run the practice (slotsync rerun) once {exc.retry_after_s:g} s "
                    "have passed; the other practices were not held for it",
                )
                refusal.retryable = False  # still RateLimited by class; this one is final
                raise refusal from exc
        return True

    return AsyncRetrying(
        stop=stop_after_attempt(http.max_attempts),
        wait=wait,
        retry=retry_if_exception(should_retry),
        reraise=True,
    )


def _refused_wait(wait_s: float, cap_s: float, deadline: float | None) -> str | None:
    """Why a requested wait will not be slept on, or None when it will."""
    if wait_s > cap_s:
        return f"the {cap_s:g} s cap (http.retry_after_cap_s)"
    if deadline is not None:
        remaining = deadline - time.monotonic()
        if wait_s > remaining:
            return f"the practice's remaining budget of {max(remaining, 0.0):.0f} s"
    return None

