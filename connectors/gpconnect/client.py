"""A small typed GP Connect Appointment Management client: one method per interaction.

One `httpx.AsyncClient` (pooled, HTTP keep-alive, gzip) serves a whole run. Every request
gets fresh Spine headers and a fresh JWT from the injected clock. Failures are classified by
`errors.classify`; retries happen only in `_send`, driven by tenacity, so retry counts never
multiply across layers. Slot search returns the response *bytes*: bundles are flattened in
DuckDB SQL, not parsed slot by slot in Python.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from pydantic import ValidationError

from common.clock import Clock, SystemClock
from common.config import ConsumerIdentity, HttpSettings
from connectors.gpconnect.errors import classify
from connectors.gpconnect.models import Appointment, OperationOutcome
from connectors.gpconnect.spine import FHIR_JSON, Interaction, SearchFilter, spine_headers
from connectors.gpconnect.windows import SearchWindow
from connectors.http.errors import HttpError, IncompleteResponse, ResponseInvalid
from connectors.http.limits import Limiter
from connectors.http.retry import retrying
from connectors.http.transport import Caller, error_for, new_client, send_capped
from connectors.registry import Practice

log = logging.getLogger("slotsync.connectors.gpconnect")


@dataclass(frozen=True)
class SlotSearchResponse:
    """One slot search as fetched: the body bytes plus where and when they came from."""

    practice_ods: str
    filter_key: str
    window: SearchWindow
    fetched_at: datetime
    http_status: int
    trace_id: str
    body: bytes


class GpConnectClient:
    """Consumer for GP Connect Appointment Management 1.2.7.

    Use as an async context manager; share one instance across all practices of a run.
    """

    def __init__(
        self,
        http: HttpSettings,
        consumer: ConsumerIdentity,
        *,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = http
        self._consumer = consumer
        self._clock = clock or SystemClock()
        self._limiter = Limiter(
            http.per_host_concurrency, http.overall_concurrency, http.max_requests_per_second
        )
        self._client = new_client(
            http, transport=transport, headers={"Accept-Encoding": "gzip"}, spine_tls=True
        )
        self.attempts: dict[str, int] = defaultdict(int)
        self._deadlines: dict[str, float] = {}

    async def __aenter__(self) -> GpConnectClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def practice_deadline(self, practice: Practice) -> float:
        """When `practice`'s budget (`http.practice_budget_s`) runs out: a `time.monotonic()`
        instant, fixed by the first ask in this client's life (one run). Pass it to the calls
        that share the budget, retries included."""
        return self._deadlines.setdefault(
            practice.ods_code, time.monotonic() + self._http.practice_budget_s
        )

    # ---------------------------------------------------------------- interactions

    async def capability_statement(self, practice: Practice) -> dict[str, Any]:
        response = await self._send(practice, Interaction.METADATA, "GET", "/metadata")
        return self._json_object(practice, Interaction.METADATA, response)

    async def search_free_slots(
        self,
        practice: Practice,
        window: SearchWindow,
        search_filter: SearchFilter,
        *,
        deadline: float | None = None,
    ) -> SlotSearchResponse:
        """Free slots in one window as seen by one searchFilter, as raw bundle bytes.

        `deadline` (see `practice_deadline`) bounds the search, retries included.
        """
        params: list[tuple[str, str]] = [
            ("status", "free"),
            ("start", window.start_param),
            ("end", window.end_param),
            ("_include", "Slot:schedule"),
            ("_include:recurse", "Schedule:actor:Practitioner"),
            ("_include:recurse", "Schedule:actor:Location"),
            ("_include:recurse", "Location:managingOrganization"),
            *search_filter.params(),
        ]
        response = await self._send(
            practice, Interaction.SEARCH_SLOTS, "GET", "/Slot", params=params, deadline=deadline
        )
        body = response.content
        return SlotSearchResponse(
            practice_ods=practice.ods_code,
            filter_key=search_filter.key,
            window=window,
            fetched_at=self._clock.now(),
            http_status=response.status_code,
            trace_id=response.request.headers["Ssp-TraceID"],
            body=body,
        )

    async def read_appointment(self, practice: Practice, appointment_id: str) -> Appointment:
        response = await self._send(
            practice, Interaction.READ_APPOINTMENT, "GET", f"/Appointment/{appointment_id}"
        )
        return self._model(practice, Interaction.READ_APPOINTMENT, response, Appointment)

    async def patient_appointments(
        self, practice: Practice, patient_id: str, start: date, end: date
    ) -> list[Appointment]:
        response = await self._send(
            practice,
            Interaction.PATIENT_APPOINTMENTS,
            "GET",
            f"/Patient/{patient_id}/Appointment",
            params=[("start", f"ge{start.isoformat()}"), ("start", f"le{end.isoformat()}")],
        )
        bundle = self._json_object(practice, Interaction.PATIENT_APPOINTMENTS, response)
        entries = bundle.get("entry") or []
        return [
            Appointment.model_validate(entry["resource"])
            for entry in entries
            if isinstance(entry, Mapping)
            and isinstance(entry.get("resource"), Mapping)
            and entry["resource"].get("resourceType") == "Appointment"
        ]

    async def book_appointment(
        self, practice: Practice, appointment: Mapping[str, Any]
    ) -> Appointment:
        response = await self._send(
            practice, Interaction.BOOK_APPOINTMENT, "POST", "/Appointment", json_body=appointment
        )
        return self._model(practice, Interaction.BOOK_APPOINTMENT, response, Appointment)

    async def amend_appointment(
        self, practice: Practice, appointment: Mapping[str, Any], version_id: str
    ) -> Appointment:
        return await self._update(practice, Interaction.AMEND_APPOINTMENT, appointment, version_id)

    async def cancel_appointment(
        self, practice: Practice, appointment: Mapping[str, Any], version_id: str
    ) -> Appointment:
        return await self._update(practice, Interaction.CANCEL_APPOINTMENT, appointment, version_id)

    async def _update(
        self,
        practice: Practice,
        interaction: Interaction,
        appointment: Mapping[str, Any],
        version_id: str,
    ) -> Appointment:
        response = await self._send(
            practice,
            interaction,
            "PUT",
            f"/Appointment/{appointment['id']}",
            json_body=appointment,
            extra_headers={"If-Match": f'W/"{version_id}"'},
        )
        return self._model(practice, interaction, response, Appointment)

    # ---------------------------------------------------------------- transport

    def _url(self, practice: Practice, path: str) -> str:
        root = practice.service_root
        if self._http.ssp_prefix:
            root = f"{self._http.ssp_prefix.rstrip('/')}/{root}"
        return root + path

    async def _send(
        self,
        practice: Practice,
        interaction: Interaction,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        json_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> httpx.Response:
        """Send one interaction, retrying only what the error table calls retryable."""
        host = urlsplit(practice.service_root).netloc
        async for attempt in retrying(self._http, deadline=deadline):
            with attempt:
                self.attempts[practice.ods_code] += 1
                return await self._attempt(
                    practice, interaction, method, path, host, params, json_body, extra_headers,
                    deadline,
                )
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    async def _attempt(
        self,
        practice: Practice,
        interaction: Interaction,
        method: str,
        path: str,
        host: str,
        params: list[tuple[str, str]] | None,
        json_body: Mapping[str, Any] | None,
        extra_headers: Mapping[str, str] | None,
        deadline: float | None,
    ) -> httpx.Response:
        headers = spine_headers(
            self._consumer,
            provider_asid=practice.provider_asid,
            interaction=interaction,
            audience=practice.service_root,
            issued_at=self._clock.now(),
        )
        if extra_headers:
            headers.update(extra_headers)
        content: bytes | None = None
        if json_body is not None:
            headers["Content-Type"] = FHIR_JSON
            content = orjson.dumps(json_body)
        async with self._limiter.slot(host):
            response = await send_capped(
                self._client, self._http, _caller(practice, interaction), method,
                self._url(practice, path), deadline=deadline, params=params, headers=headers,
                content=content,
            )
        log.debug(
            "gpconnect call",
            extra={
                "practice_ods": practice.ods_code,
                "interaction": interaction.label,
                "trace_id": headers["Ssp-TraceID"],
                "status": response.status_code,
            },
        )
        # Only the interaction's own success status is data: a 3xx (even with a FHIR Bundle)
        # or a 204 is classified by the one error table and never loaded.
        if response.status_code != _SUCCESS.get(interaction, 200):
            raise self._error(practice, interaction, response)
        _require_complete_fhir_json(practice, interaction, response)
        _refuse_operation_outcome(practice, interaction, response)
        return response

    def _error(
        self, practice: Practice, interaction: Interaction, response: httpx.Response
    ) -> HttpError:
        spine_code, diagnostics = _spine_code(response)
        return error_for(
            response, _caller(practice, interaction),
            classify(response.status_code, spine_code), code=spine_code, detail=diagnostics,
        )

    def _json_object(
        self, practice: Practice, interaction: Interaction, response: httpx.Response
    ) -> dict[str, Any]:
        try:
            value = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise ResponseInvalid(
                f"body is not valid JSON ({exc})",
                practice_ods=practice.ods_code,
                interaction=interaction.label,
                status=response.status_code,
            ) from exc
        if not isinstance(value, dict):
            raise ResponseInvalid(
                "body is not a JSON object",
                practice_ods=practice.ods_code,
                interaction=interaction.label,
                status=response.status_code,
            )
        return value

    def _model(
        self,
        practice: Practice,
        interaction: Interaction,
        response: httpx.Response,
        model: type[Appointment],
    ) -> Appointment:
        payload = self._json_object(practice, interaction, response)
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            raise ResponseInvalid(
                f"{model.__name__} does not validate: {exc.errors()[0]['msg']} at "
                f"{'.'.join(str(p) for p in exc.errors()[0]['loc'])}",
                practice_ods=practice.ods_code,
                interaction=interaction.label,
                status=response.status_code,
            ) from exc


# Book answers 201 Created (GP Connect 1.2.7); every other interaction 200.
_SUCCESS = {Interaction.BOOK_APPOINTMENT: 201}


def _require_complete_fhir_json(
    practice: Practice, interaction: Interaction, response: httpx.Response
) -> None:
    """A cheap structural check on every success: a cut or non-JSON body is never data.

    Proxies answer with HTML pages and connections drop mid-body; both are worth a retry,
    and a body that stays broken fails the practice instead of reaching the warehouse.
    """
    content_type = response.headers.get("content-type", "")
    stripped = response.content.strip()
    problem = None
    if "json" not in content_type.lower():
        problem = f"content type {content_type or '(none)'!r} is not FHIR JSON"
    elif not (stripped.startswith(b"{") and stripped.endswith(b"}")):
        problem = f"body is not a complete JSON object ({len(response.content)} bytes)"
    if problem:
        raise IncompleteResponse(
            problem, practice_ods=practice.ods_code, interaction=interaction.label,
            status=response.status_code,
        )


def _spine_code(response: httpx.Response) -> tuple[str | None, str | None]:
    """The Spine code of an OperationOutcome (ignoring the coding system) and its issues'
    codes and diagnostics in words (`OperationOutcome.summary`)."""
    outcome = _operation_outcome(response.content)
    return (outcome.spine_code, outcome.summary()) if outcome else (None, None)


def _operation_outcome(body: bytes) -> OperationOutcome | None:
    try:
        return OperationOutcome.model_validate_json(body)
    except ValueError:
        return None


def _refuse_operation_outcome(
    practice: Practice, interaction: Interaction, response: httpx.Response
) -> None:
    """A success status whose body is an OperationOutcome is the provider's error, not data.

    A substring test first (C speed, no parse): only a body naming OperationOutcome anywhere
    is parsed, and a Bundle that merely carries one as an entry is let through.
    """
    if b"OperationOutcome" not in response.content:
        return
    outcome = _operation_outcome(response.content)
    if outcome is None:
        return
    expected = "a Bundle" if interaction is Interaction.SEARCH_SLOTS else "the resource"
    raise ResponseInvalid(
        f"the provider answered with an OperationOutcome instead of {expected}"
        f" ({outcome.summary() or 'no issue code or diagnostics'})",
        practice_ods=practice.ods_code, interaction=interaction.label,
        status=response.status_code, code=outcome.spine_code,
        next_step="the provider reported an error with a success status; nothing of it was "
                  "loaded. Raise the issue above with the supplier, then re-run the practice",
    )


def _caller(practice: Practice, interaction: Interaction) -> Caller:
    return Caller(practice.ods_code, interaction.label)


def new_trace_id() -> str:
    return str(uuid.uuid4())
