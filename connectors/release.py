"""Giving unused NHS 111 slots back to practices: one interface, two ways of doing it.

GP Connect can read slots but never change them, so releasing a 111 reservation is a
supplier-side action (the practice edits the slot's restriction in EMIS Web or SystmOne).
The release flow decides *which* slots to give back; a `SlotReleaser` carries it out:

- `SupplierApiReleaser` drives a supplier slot-management API (the sandbox's
  `/_supplier/{ODS}/Slot/{id}`). Each release sends the version seen at the live re-check
  as `If-Match`, so a slot that changed since then is refused rather than released, and a
  caller-chosen idempotency key, so a retried release is applied at most once.
- `WorkListReleaser` is for systems with no write API. It writes per-practice, per-UK-day
  instructions for practice staff (`<out_dir>/<YYYY-MM-DD>/<ODS>.csv` and `.md`). Requests
  and work-list rows carry the same decision id and idempotency key as the audit table.

Every outbound call goes through the shared HTTP layer (`connectors.http`: the size cap,
the one error table, the one retry policy). So a releaser fails the same way a GP Connect
call does, with the same generic error classes. `release` reports refusals and failures
as a `ReleaseResult` and does not raise them: a run records every decision's outcome.
`releaser_for` (one practice) and
`Releasers` (a whole run, one HTTP pool) pick the implementation from
`practice.release_policy.releaser`.
"""

from __future__ import annotations

import asyncio
import csv
import fcntl
import io
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import quote

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from common.clock import Clock, SystemClock
from common.config import HttpSettings, Settings
from common.uktime import format_uk, parse_fhir_datetime, to_uk, uk_day
from connectors.http.errors import ConfigurationError, HttpError, RequestRejected, ResponseInvalid
from connectors.http.retry import retrying
from connectors.http.transport import Caller, error_for, new_client, send_capped
from connectors.registry import Practice

log = logging.getLogger("slotsync.connectors.release")

RELEASE_SLOT = "release slot"
READ_SLOT = "read slot (supplier API)"


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


# ---------------------------------------------------------------------- supplier API


class _SupplierSlot(BaseModel):
    """The supplier API's slot body; unknown fields are ignored (lenient, like FHIR)."""

    model_config = ConfigDict(extra="ignore")

    slot_id: str
    practice_ods: str
    start: str
    end: str
    state: str
    bookable: bool = True
    restrictions: dict[str, list[str]] = {}
    version: str | None = None
    released_at: str | None = None


class _ReleaseReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    released: bool
    already_released: bool = False
    version: str | None = None


@dataclass
class _Attempts:
    """Counts one call's attempts across the retry loop, for the result and the logs."""

    count: int = 0


class SupplierApiReleaser:
    """Releases slots through a supplier slot-management API (the sandbox's `/_supplier`).

    One pooled `httpx.AsyncClient` serves every practice. Share one instance across a run
    and close it at the end.
    """

    name = "supplier_api"

    def __init__(
        self,
        http: HttpSettings,
        *,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = http
        self._clock = clock or SystemClock()
        # No Spine client certificate or SSP prefix here: this API is the supplier's own
        # endpoint, not a GP Connect interaction routed through the Spine.
        self._client = new_client(http, transport=transport, headers={"Accept": "application/json"})

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def current_state(self, practice: Practice, slot_id: str) -> SlotState:
        response = await self._send(practice, READ_SLOT, "GET", _slot_url(practice, slot_id), _Attempts())
        try:
            body = _SupplierSlot.model_validate_json(response.content)
            version = body.version or _etag_version(response.headers.get("etag"))
            if version is None:
                raise ValueError("no version in the body or the ETag")
            return SlotState(
                practice_ods=body.practice_ods,
                slot_id=body.slot_id,
                version=version,
                state=body.state,
                bookable=body.bookable,
                start=parse_fhir_datetime(body.start),
                end=parse_fhir_datetime(body.end),
                org_types=tuple(body.restrictions.get("org_types", ())),
                ods_codes=tuple(body.restrictions.get("ods_codes", ())),
                released_at=parse_fhir_datetime(body.released_at) if body.released_at else None,
            )
        except (ValidationError, ValueError) as exc:
            raise ResponseInvalid(
                f"slot body is not usable: {_first_error(exc)}",
                practice_ods=practice.ods_code,
                interaction=READ_SLOT,
                status=response.status_code,
            ) from exc

    async def release(self, practice: Practice, request: ReleaseRequest) -> ReleaseResult:
        _check_practice(practice, request)
        attempts = _Attempts()
        if request.expected_version is None:
            # Releasing without If-Match would give back a slot nobody re-checked, so we
            # refuse locally and make no HTTP call.
            error: HttpError = RequestRejected(
                "no expected version: re-check the slot with current_state() first",
                practice_ods=practice.ods_code,
                interaction=RELEASE_SLOT,
                next_step="pass the version from the live re-check as expected_version",
            )
            return self._result(request, ReleaseOutcome.FAILED, attempts, error=error)
        try:
            url = _slot_url(practice, request.slot_id) + "/$release"
            response = await self._send(
                practice,
                RELEASE_SLOT,
                "POST",
                url,
                attempts,
                headers={
                    "If-Match": f'W/"{request.expected_version}"',
                    "Content-Type": "application/json",
                },
                content=orjson.dumps({"idempotency_key": request.idempotency_key, "reason": request.reason}),
            )
            reply = _parse_release_reply(practice, response)
        except HttpError as exc:
            return self._result(request, _refusal(exc) or ReleaseOutcome.FAILED, attempts, error=exc)
        outcome = ReleaseOutcome.ALREADY_RELEASED if reply.already_released else ReleaseOutcome.RELEASED
        return self._result(
            request,
            outcome,
            attempts,
            status=response.status_code,
            version_after=reply.version or _etag_version(response.headers.get("etag")),
        )

    def _result(
        self,
        request: ReleaseRequest,
        outcome: ReleaseOutcome,
        attempts: _Attempts,
        *,
        error: HttpError | None = None,
        status: int | None = None,
        version_after: str | None = None,
    ) -> ReleaseResult:
        return _result(
            self.name, request, outcome, self._clock.now(),
            attempts=attempts.count,
            http_status=error.status if error is not None else status,
            version_after=version_after,
            message=str(error) if error is not None else None,
            error_class=error.error_class if error is not None else None,
        )

    async def _send(
        self,
        practice: Practice,
        interaction: str,
        method: str,
        url: str,
        attempts: _Attempts,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """One call, retried only when the error table calls the failure retryable.

        Retrying a POST is safe here. The idempotency key travels with every attempt, so
        if an earlier attempt was applied but its response was lost, the supplier answers
        "already released" instead of releasing the slot again.
        """
        async for attempt in retrying(self._http):
            with attempt:
                attempts.count += 1
                return await self._attempt(practice, interaction, method, url, headers, content)
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    async def _attempt(
        self,
        practice: Practice,
        interaction: str,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        content: bytes | None,
    ) -> httpx.Response:
        caller = Caller(practice.ods_code, interaction)
        response = await send_capped(
            self._client, self._http, caller, method, url, headers=headers, content=content
        )
        if response.status_code >= 400:
            raise _supplier_error(caller, response)
        return response


def supplier_api_root(practice: Practice) -> str:
    """Where a practice's supplier slot API lives: configured, or derived from the service root."""
    configured = practice.release_policy.supplier_api_root
    if configured:
        return configured
    suffix = f"/{practice.ods_code}/STU3/1/gpconnect"
    if not practice.service_root.endswith(suffix):
        raise ConfigurationError(
            f"service root {practice.service_root} does not end in {suffix}, so the supplier API "
            "root cannot be derived",
            practice_ods=practice.ods_code,
            interaction=RELEASE_SLOT,
            next_step="set release_policy.supplier_api_root in the registry, or use releaser: worklist",
        )
    return practice.service_root[: -len(suffix)]


def _slot_url(practice: Practice, slot_id: str) -> str:
    return f"{supplier_api_root(practice)}/_supplier/{practice.ods_code}/Slot/{quote(slot_id, safe='')}"


def _supplier_error(caller: Caller, response: httpx.Response) -> HttpError:
    """Classify a supplier error (`{"error", "detail"}`) with the one HTTP error table."""
    code: str | None = None
    detail: str | None = None
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict):
        code = payload.get("error") if isinstance(payload.get("error"), str) else None
        detail = payload.get("detail") if isinstance(payload.get("detail"), str) else None
    return error_for(response, caller, code=code, detail=detail)


# 409 and 412 mean one thing on this API whatever the code says. 422 is split by code, and
# any other 422 (a malformed request) stays a failure.
_REFUSED_BY_STATUS = {409: ReleaseOutcome.REFUSED_BOOKED, 412: ReleaseOutcome.REFUSED_VERSION}
_REFUSED_422 = {
    "SLOT_STARTED": ReleaseOutcome.REFUSED_STARTED,
    "NOT_RESTRICTED": ReleaseOutcome.REFUSED_NOT_RESTRICTED,
}


def _refusal(error: HttpError) -> ReleaseOutcome | None:
    """The refused_* outcome for a definite "no" from the supplier, else None (a failure)."""
    if error.retryable or error.status is None:
        return None
    if error.status == 422:
        return _REFUSED_422.get(error.code or "")
    return _REFUSED_BY_STATUS.get(error.status)


def _parse_release_reply(practice: Practice, response: httpx.Response) -> _ReleaseReply:
    try:
        reply = _ReleaseReply.model_validate_json(response.content)
    except ValidationError as exc:
        raise ResponseInvalid(
            f"release answer is not usable: {_first_error(exc)}",
            practice_ods=practice.ods_code,
            interaction=RELEASE_SLOT,
            status=response.status_code,
        ) from exc
    if not reply.released:
        raise ResponseInvalid(
            "the supplier answered 200 but released=false",
            practice_ods=practice.ods_code,
            interaction=RELEASE_SLOT,
            status=response.status_code,
            next_step="check the slot in the practice system and raise it with the supplier",
        )
    return reply


def _etag_version(etag: str | None) -> str | None:
    """`W/"123"` → `123` (versions are opaque strings)."""
    if not etag:
        return None
    value = etag.strip()
    value = value.removeprefix("W/")
    return value.strip('"') or None


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{first['msg']} at {'.'.join(str(p) for p in first['loc']) or '(body)'}"
    return str(exc)


# ---------------------------------------------------------------------- work-list

WORKLIST_COLUMNS = (
    "idempotency_key",
    "decision_id",
    "practice_ods",
    "slot_id",
    "slot_start_uk",
    "slot_end_uk",
    "slot_start_utc",
    "slot_end_utc",
    "slot_type",
    "session",
    "expected_version",
    "policy_name",
    "lead_minutes",
    "reason",
    "decided_at_utc",
    "queued_at_utc",
)
# Free text that reaches the CSV from providers or config. Staff may open the file in a
# spreadsheet, so a leading formula character is neutralised.
_FREE_TEXT_COLUMNS = frozenset({"slot_type", "session", "policy_name", "reason"})
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

_INSTRUCTION = {
    "EMIS Web": "In EMIS Web (Appointments), open each slot below and remove the NHS 111 "
    "organisation-group restriction, or book a practice patient into it.",
    "SystmOne": "In SystmOne, open each slot below and remove the NHS 111 booking rule "
    "(rota / slot type), or book a practice patient into it.",
}
_INSTRUCTION_OTHER = (
    "In your clinical system, remove the NHS 111 restriction from each slot below, or book a "
    "practice patient into it."
)


class WorkListReleaser:
    """Writes release instructions for practice staff where the system has no write API.

    For each request, one row is appended to `<out_dir>/<UK date of slot>/<ODS>.csv` (the
    header is written once). The matching `<ODS>.md`, a readable list sorted by UK start
    time, is then rebuilt from the CSV. A key already in the CSV is not written again: the
    result is `already_queued`. Writes hold an `fcntl` lock on `<ODS>.lock` and replace
    files atomically, so two processes can queue for the same practice and day. No patient
    data is written.
    """

    name = "worklist"

    def __init__(self, out_dir: Path, *, clock: Clock | None = None) -> None:
        self.out_dir = out_dir
        self._clock = clock or SystemClock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Nothing to close: every write opens, locks and closes its own files."""

    async def current_state(self, practice: Practice, slot_id: str) -> None:
        """There is no supplier API to ask. The caller relies on the GP Connect re-check."""
        return None

    def paths(self, practice_ods: str, day: date) -> tuple[Path, Path]:
        """The CSV and Markdown work-list files for one practice and UK day."""
        folder = self.out_dir / day.isoformat()
        return folder / f"{practice_ods}.csv", folder / f"{practice_ods}.md"

    async def release(self, practice: Practice, request: ReleaseRequest) -> ReleaseResult:
        _check_practice(practice, request)
        now = self._clock.now()
        csv_path, _ = self.paths(practice.ods_code, uk_day(request.slot_start))
        if request.slot_start <= now:
            # Staff cannot act on a slot that has started, so it is not put on the list.
            return self._result(
                request,
                ReleaseOutcome.REFUSED_STARTED,
                now,
                message=f"practice {practice.ods_code}, {RELEASE_SLOT} (work-list): slot "
                f"{request.slot_id} started at {format_uk(request.slot_start)}; not queued",
            )
        try:
            # File locks block, so the write runs off the event loop.
            written = await asyncio.to_thread(self._write, practice, request, now)
        except OSError as exc:
            return self._result(
                request,
                ReleaseOutcome.FAILED,
                now,
                message=f"practice {practice.ods_code}, {RELEASE_SLOT} (work-list): cannot write "
                f"{csv_path}: {exc.strerror or exc}. Next step: make the work-list directory "
                "writable, then re-run (the same key is never written twice)",
                error_class=type(exc).__name__,
            )
        outcome = ReleaseOutcome.QUEUED if written else ReleaseOutcome.ALREADY_QUEUED
        return self._result(request, outcome, now, location=str(csv_path))

    def _result(
        self,
        request: ReleaseRequest,
        outcome: ReleaseOutcome,
        now: datetime,
        *,
        message: str | None = None,
        error_class: str | None = None,
        location: str | None = None,
    ) -> ReleaseResult:
        return _result(
            self.name, request, outcome, now,
            message=message, error_class=error_class, location=location,
        )

    def _write(self, practice: Practice, request: ReleaseRequest, now: datetime) -> bool:
        """Append the request's row unless its key is there; True when a row was written."""
        csv_path, md_path = self.paths(practice.ods_code, uk_day(request.slot_start))
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(csv_path.with_suffix(".lock")):
            rows = _read_rows(csv_path)
            if any(row.get("idempotency_key") == request.idempotency_key for row in rows):
                return False
            rows.append(_worklist_row(request, now))
            _atomic_write(csv_path, _csv_text(rows))
            _atomic_write(md_path, _markdown(practice, uk_day(request.slot_start), rows))
            return True


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive `flock` held for the block.

    The lock file is left on disk: deleting it while another writer waits on it would let
    two writers in at once.
    """
    with lock_path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file in the same directory, fsync, then rename it into place.

    A reader sees the old file or the new one, never a partial file.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _read_rows(csv_path: Path) -> list[dict[str, str]]:
    try:
        with csv_path.open(encoding="utf-8", newline="") as handle:
            return [dict(row) for row in csv.DictReader(handle)]
    except FileNotFoundError:
        return []


def _worklist_row(request: ReleaseRequest, now: datetime) -> dict[str, str]:
    row = {
        "idempotency_key": request.idempotency_key,
        "decision_id": request.decision_id,
        "practice_ods": request.practice_ods,
        "slot_id": request.slot_id,
        "slot_start_uk": format_uk(request.slot_start),
        "slot_end_uk": format_uk(request.slot_end),
        "slot_start_utc": _utc_text(request.slot_start),
        "slot_end_utc": _utc_text(request.slot_end),
        "slot_type": request.slot_type or "",
        "session": request.session or "",
        "expected_version": request.expected_version or "",
        "policy_name": request.policy_name,
        "lead_minutes": str(request.lead_minutes),
        "reason": request.reason,
        "decided_at_utc": _utc_text(request.decided_at),
        "queued_at_utc": _utc_text(now),
    }
    for column in _FREE_TEXT_COLUMNS:
        if row[column].startswith(_FORMULA_PREFIXES):
            row[column] = "'" + row[column]
    return row


def _csv_text(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=WORKLIST_COLUMNS, extrasaction="ignore", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _markdown(practice: Practice, day: date, rows: list[dict[str, str]]) -> str:
    ordered = sorted(rows, key=lambda r: (r["slot_start_utc"], r["slot_id"]))
    instruction = _INSTRUCTION.get(practice.clinical_system, _INSTRUCTION_OTHER)
    lines = [
        f"# NHS 111 slots to give back: {_md(practice.name)} ({practice.ods_code})",
        "",
        f"**{day.strftime('%A %d %B %Y')}**. These slots are reserved for NHS 111 and are still "
        "unbooked close to their start time.",
        "",
        instruction,
        "If a slot has already been booked, leave it as it is.",
        "",
        "| Start (UK time) | End | Slot type | Session | Slot id | Decision id | Idempotency key |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in ordered:
        start = to_uk(datetime.fromisoformat(row["slot_start_uk"]))
        end = to_uk(datetime.fromisoformat(row["slot_end_uk"]))
        cells = (
            f"{start:%H:%M} {start.tzname()}",
            f"{end:%H:%M} {end.tzname()}",
            row.get("slot_type", ""),
            row.get("session", ""),
            row["slot_id"],
            row["decision_id"],
            row["idempotency_key"],
        )
        lines.append("| " + " | ".join(_md(cell) for cell in cells) + " |")
    lines += ["", f"{len(ordered)} slot(s). Generated by slotsync from {practice.ods_code}.csv.", ""]
    return "\n".join(lines)


def _md(text: str) -> str:
    """Plain text for a Markdown table cell: a stray `|` or `*` must not break the layout."""
    flat = " ".join(text.split())
    return "".join(f"\\{ch}" if ch in "\\`*_[]<>|#" else ch for ch in flat) or " "


def _utc_text(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------- choosing one


def releaser_for(
    practice: Practice,
    settings: Settings,
    out_dir: Path,
    *,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SlotReleaser:
    """A new releaser for one practice, chosen by `practice.release_policy.releaser`.

    For a whole run use `Releasers`, which shares one releaser (and HTTP pool) per kind.
    """
    kind = practice.release_policy.releaser
    if kind == "sandbox":
        return SupplierApiReleaser(settings.http, clock=clock, transport=transport)
    if kind == "worklist":
        return WorkListReleaser(out_dir, clock=clock)
    raise ValueError(f"practice {practice.ods_code}: unknown releaser {kind!r}")


@dataclass
class Releasers:
    """The releasers of one run: at most one per kind, so all supplier calls share a pool."""

    settings: Settings
    out_dir: Path
    clock: Clock | None = None
    transport: httpx.AsyncBaseTransport | None = None
    _by_kind: dict[str, SlotReleaser] = field(default_factory=dict, init=False, repr=False)

    def for_practice(self, practice: Practice) -> SlotReleaser:
        kind = practice.release_policy.releaser
        if kind not in self._by_kind:
            self._by_kind[kind] = releaser_for(
                practice, self.settings, self.out_dir, clock=self.clock, transport=self.transport
            )
        return self._by_kind[kind]

    async def aclose(self) -> None:
        releasers, self._by_kind = list(self._by_kind.values()), {}
        for releaser in releasers:
            await releaser.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


# ---------------------------------------------------------------------- shared


def _check_practice(practice: Practice, request: ReleaseRequest) -> None:
    if request.practice_ods != practice.ods_code:
        raise ValueError(
            f"release request for {request.practice_ods} passed with practice {practice.ods_code}"
        )


def _result(
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
