"""`SupplierApiReleaser`: releases slots through a supplier slot-management API.

Each release sends the version seen at the live re-check as `If-Match`, so a slot that
changed since then is refused rather than released, and a caller-chosen idempotency key,
so a retried release is applied at most once. Every call goes through `connectors.http`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from urllib.parse import quote

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from common.clock import Clock, SystemClock
from common.config import HttpSettings
from common.uktime import parse_fhir_datetime
from connectors.http.errors import ConfigurationError, HttpError, RequestRejected, ResponseInvalid
from connectors.http.retry import retrying
from connectors.http.transport import Caller, error_for, new_client, send_capped
from connectors.registry import Practice
from connectors.release.model import (
    RELEASE_SLOT,
    ReleaseOutcome,
    ReleaseRequest,
    ReleaseResult,
    SlotState,
    check_practice,
    new_result,
)

READ_SLOT = "read slot (supplier API)"


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
        check_practice(practice, request)
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
        return new_result(
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
        # Only a 200 is an answer; a 3xx or 204 is classified by the one error table.
        if response.status_code != 200:
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
