"""What a release is, whichever way it is carried out: the request, the outcome, the result,
the `SlotReleaser` interface, and the one place a `ReleaseResult` is made and logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import TracebackType
from typing import Protocol, Self

from connectors.registry import Practice

log = logging.getLogger("slotsync.connectors.release")

RELEASE_SLOT = "release slot"


class ReleaseOutcome(StrEnum):
    """What happened to one release request (stored as text in the audit table)."""

    RELEASED = "released"
    ALREADY_RELEASED = "already_released"  # the supplier had seen this key: no second release
    QUEUED = "queued"  # work-list row written, waiting for practice staff
    ALREADY_QUEUED = "already_queued"  # the key was already on the work-list: nothing written
    REFUSED_BOOKED = "refused_booked"  # someone booked it (or the practice removed it)
    REFUSED_VERSION = "refused_version"  # the slot changed since the live re-check
    REFUSED_STARTED = "refused_started"
    REFUSED_NOT_RESTRICTED = "refused_not_restricted"
    FAILED = "failed"  # could not get an answer; the same request may be sent again

    @property
    def done(self) -> bool:
        """True when the slot is released, or staff have been told to release it."""
        return self in _DONE

    @property
    def refused(self) -> bool:
        """The supplier said no. Sending the same request again will not help: decide again."""
        return self.value.startswith("refused_")


_DONE = frozenset(
    {
        ReleaseOutcome.RELEASED,
        ReleaseOutcome.ALREADY_RELEASED,
        ReleaseOutcome.QUEUED,
        ReleaseOutcome.ALREADY_QUEUED,
    }
)


@dataclass(frozen=True)
class ReleaseRequest:
    """One decision to give a reserved slot back, as the release flow made it.

    `idempotency_key` is chosen by the caller: one per slot and policy window. Sending the
    same key again, after a lost response or in a re-run, never releases or queues the slot
    twice. `expected_version` is the supplier version seen at the live re-check
    (`SlotReleaser.current_state`). The supplier API needs it, and the work-list does not.
    """

    practice_ods: str
    slot_id: str
    slot_start: datetime
    slot_end: datetime
    idempotency_key: str
    decision_id: str
    reason: str
    decided_at: datetime
    policy_name: str
    lead_minutes: int
    expected_version: str | None = None
    slot_type: str | None = None
    session: str | None = None

    def __post_init__(self) -> None:
        for name in ("slot_start", "slot_end", "decided_at"):
            value: datetime = getattr(self, name)
            if value.tzinfo is None:
                raise ValueError(f"ReleaseRequest.{name} must be timezone-aware, got {value!r}")
            # Frozen: normalise to UTC through object.__setattr__, once, at construction.
            object.__setattr__(self, name, value.astimezone(UTC))
        if self.slot_end <= self.slot_start:
            raise ValueError(f"slot {self.slot_id}: end {self.slot_end} is not after start {self.slot_start}")
        for name in ("practice_ods", "slot_id", "idempotency_key", "decision_id"):
            if not getattr(self, name).strip():
                raise ValueError(f"ReleaseRequest.{name} must not be empty")
        if self.lead_minutes < 0:
            raise ValueError("ReleaseRequest.lead_minutes must not be negative")


@dataclass(frozen=True)
class SlotState:
    """A slot as the supplier sees it now (restrictions are invisible to GP Connect)."""

    practice_ods: str
    slot_id: str
    version: str
    state: str  # free | booked | removed
    bookable: bool
    start: datetime  # aware UTC
    end: datetime
    org_types: tuple[str, ...]
    ods_codes: tuple[str, ...]
    released_at: datetime | None

    @property
    def free(self) -> bool:
        return self.state == "free"

    @property
    def restricted(self) -> bool:
        return bool(self.org_types or self.ods_codes)


@dataclass(frozen=True)
class ReleaseResult:
    """The outcome of one `ReleaseRequest`, with what the audit table needs to explain it."""

    request: ReleaseRequest
    outcome: ReleaseOutcome
    releaser: str
    completed_at: datetime
    version_before: str | None = None
    version_after: str | None = None
    http_status: int | None = None
    attempts: int = 0
    message: str | None = None  # refusal/failure text: practice, interaction, status, next step
    error_class: str | None = None
    location: str | None = None  # the work-list file, for queued outcomes

    @property
    def practice_ods(self) -> str:
        return self.request.practice_ods

    @property
    def slot_id(self) -> str:
        return self.request.slot_id

    @property
    def idempotency_key(self) -> str:
        return self.request.idempotency_key


class SlotReleaser(Protocol):
    """Gives reserved slots back to a practice; use as an async context manager."""

    @property
    def name(self) -> str: ...

    async def current_state(self, practice: Practice, slot_id: str) -> SlotState | None:
        """The supplier's view of a slot now, or None when the system has no API to ask.

        Raises a `connectors.http.errors.HttpError` subclass when the supplier cannot answer
        (e.g. `NotFound`).
        """
        ...

    async def release(self, practice: Practice, request: ReleaseRequest) -> ReleaseResult:
        """Release (or queue the release of) one slot; refusals and failures are results."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...




def check_practice(practice: Practice, request: ReleaseRequest) -> None:
    """Refuse a request passed with the wrong practice (a caller bug, not a release outcome)."""
    if request.practice_ods != practice.ods_code:
        raise ValueError(
            f"release request for {request.practice_ods} passed with practice {practice.ods_code}"
        )


def new_result(
    releaser: str,
    request: ReleaseRequest,
    outcome: ReleaseOutcome,
    completed_at: datetime,
    *,
    attempts: int = 0,
    http_status: int | None = None,
    version_after: str | None = None,
    message: str | None = None,
    error_class: str | None = None,
    location: str | None = None,
) -> ReleaseResult:
    """The one place a `ReleaseResult` is made, and logged, for either releaser."""
    result = ReleaseResult(
        request=request,
        outcome=outcome,
        releaser=releaser,
        completed_at=completed_at,
        version_before=request.expected_version,
        version_after=version_after,
        http_status=http_status,
        attempts=attempts,
        message=message,
        error_class=error_class,
        location=location,
    )
    _log_result(result)
    return result


def _log_result(result: ReleaseResult) -> None:
    level = logging.WARNING if result.outcome is ReleaseOutcome.FAILED else logging.INFO
    log.log(
        level,
        "slot release %s",
        result.outcome.value,
        extra={
            "practice_ods": result.practice_ods,
            "slot_id": result.slot_id,
            "decision_id": result.request.decision_id,
            "idempotency_key": result.idempotency_key,
            "releaser": result.releaser,
            "attempts": result.attempts,
            "status": result.http_status,
        },
    )
