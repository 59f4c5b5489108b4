"""The sandbox's HTTP face: GP Connect per practice, plus supplier and sandbox control endpoints.

GP Connect lives under `/{ODS}/STU3/1/gpconnect`. Every request there goes through one
pipeline: resolve the interaction from the route and verb (and, for `PUT /Appointment`,
`Ssp-InteractionID`), count it, apply any planned fault, validate the Spine headers and the
JWT, then run the handler. Errors are OperationOutcomes with the Spine code in
`issue[0].details.coding[0]`.

Outside GP Connect (plain JSON, no Spine headers):

- `GET /_supplier/{ODS}/Slot/{id}` and `POST …/$release` (If-Match, idempotency key):
  supplier-side slot management, what a real releaser drives in EMIS or TPP, since GP
  Connect cannot change slots;
- `GET /_booking-orgs/{ODS}/bookings?format=json|csv`: a booking organisation's own export;
- `GET /_sandbox/ground-truth?practice=&from=&to=`: what really happened to every slot;
- `GET|POST /_sandbox/clock`, `GET|POST|DELETE /_sandbox/faults`,
  `GET|DELETE /_sandbox/requests`: driving a standalone sandbox remotely;
- `GET|DELETE /_sandbox/in-flight`: GP Connect requests in flight (max, mean), and the
  injected provider latency if any (`sandbox.latency`);
- `/ORD/2-0-0/...`, `/spine-directory/FHIR/R4/...`, `/_reference/...`: the estate as national
  reference data (see `reference_data`).
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from common.clock import SimulatedClock
from common.uktime import format_uk, parse_fhir_datetime, uk_day
from connectors.gpconnect.spine import FHIR_JSON, Interaction
from connectors.registry import Practice
from sandbox.appointment_requests import (
    if_match_version,
    parse_amendment,
    parse_appointment_range,
    parse_booking,
    parse_cancellation,
    parse_json_resource,
    parse_nhs_number_search,
)
from sandbox.diary import AppointmentRecord
from sandbox.errors import SandboxError, bad_request
from sandbox.faults import BODY_FAULTS, REDIRECT_LOCATION, FaultRule, mutate_bundle
from sandbox.fhir import PracticeRenderer, operation_outcome
from sandbox.latency import DEFAULT_LATENCY_SEED, LatencyModel, ProviderLatency
from sandbox.reference_data import reference_routes
from sandbox.slot_search import parse_slot_query
from sandbox.spine_checks import check_bearer_token, check_spine_headers
from sandbox.state import BookingLogRow, SandboxState, utc_iso

_DISCONNECT_POLL_S = 0.05
_PROXY_ERROR_PAGE = (
    b"<html><head><title>Service unavailable</title></head>"
    b"<body><h1>The service is temporarily unavailable</h1><p>Please try again later.</p></body></html>"
)


@dataclass(frozen=True)
class _Call:
    """One validated GP Connect request on its way to a handler."""

    request: Request
    practice: Practice
    interaction: Interaction
    path_id: str | None
    body: bytes


_Handler = Callable[["_GpConnect", _Call], Response]


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    interactions: tuple[Interaction, ...]
    handler: _Handler


def create_app(
    state: SandboxState, latency: LatencyModel | None = None, latency_seed: int = DEFAULT_LATENCY_SEED
) -> Starlette:
    """The ASGI app serving `state` (see the module docstring for the endpoints).

    `latency` delays every GP Connect request by a provider-like draw (`sandbox.latency`);
    with or without it, `GET /_sandbox/in-flight` reports the requests the estate had in flight.
    """
    gpconnect = _GpConnect(state)
    control = _Control(state)
    suppliers = {p.ods_code: p.clinical_system for p in state.registry.practices}
    return Starlette(
        middleware=[
            Middleware(ProviderLatency, latency=latency, supplier_of=suppliers.get, seed=latency_seed)
        ],
        routes=[
            Route("/_supplier/{ods}/Slot/{slot_id}", control.supplier_slot, methods=["GET"]),
            Route("/_supplier/{ods}/Slot/{slot_id}/$release", control.release_slot, methods=["POST"]),
            Route("/_booking-orgs/{org}/bookings", control.booking_log, methods=["GET"]),
            Route("/_sandbox/ground-truth", control.ground_truth, methods=["GET"]),
            Route("/_sandbox/clock", control.clock, methods=["GET", "POST"]),
            Route("/_sandbox/faults", control.faults, methods=["GET", "POST", "DELETE"]),
            Route("/_sandbox/requests", control.requests, methods=["GET", "DELETE"]),
            Route("/_sandbox/nhs111-reservations", control.nhs111_reservations, methods=["GET", "POST"]),
            *reference_routes(state),
            Route(
                "/{ods}/STU3/1/gpconnect/{path:path}",
                gpconnect.dispatch,
                methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
            ),
        ],
    )


def fhir_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body,
        status_code=status,
        headers={"Content-Type": FHIR_JSON, "Cache-Control": "no-store", **(headers or {})},
    )


def outcome_response(error: SandboxError, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps(operation_outcome(error.status, error.code, error.diagnostics))
    return fhir_response(body, error.status, headers)


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json", headers=headers)


def json_error(error: SandboxError) -> Response:
    return json_response({"error": error.code, "detail": error.diagnostics}, error.status)


class _GpConnect:
    """GP Connect 1.2.7 Appointment Management for every practice in the registry."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._renderers: dict[str, PracticeRenderer] = {}

    async def dispatch(self, request: Request) -> Response:
        state = self.state
        ods = request.path_params["ods"]
        try:
            practice = state.practice(ods)
            route, interaction, path_id = _resolve(request, request.path_params["path"])
        except SandboxError as error:
            return outcome_response(error)
        state.traffic.record(ods, interaction)
        # Read the body first: waiting for a disconnect below must not swallow it.
        body = await request.body()
        fault = state.faults.take(ods, interaction)
        if fault is not None:
            if fault.kind == "status":
                return _status_fault_response(fault)
            if fault.kind == "wrong_content_type":
                return Response(_PROXY_ERROR_PAGE, media_type="text/html")
            if fault.kind in ("latency", "stall"):
                await _sleep_unless_disconnected(request, fault.delay)
        try:
            check_spine_headers(request.headers, practice=practice, interaction=interaction)
            check_bearer_token(
                request.headers.get("authorization"), interaction=interaction, now=state.clock.now()
            )
            response = route.handler(self, _Call(request, practice, interaction, path_id, body))
        except SandboxError as error:
            response = outcome_response(error)
        if fault is not None and fault.kind in BODY_FAULTS and response.status_code == 200:
            return fhir_response(mutate_bundle(fault, bytes(response.body)), response.status_code)
        if fault is not None and fault.kind == "truncate":
            complete = bytes(response.body)
            return fhir_response(complete[: max(1, len(complete) * 2 // 3)], response.status_code)
        if fault is not None and fault.kind == "reset":
            return _AbortedResponse(response, state.faults.note_abort)
        if fault is not None and fault.kind == "trickle":
            return _TrickledResponse(response, request, fault.delay)
        if fault is not None and fault.kind == "redirect" and response.status_code == 200:
            # The real Bundle, but behind a 302 to another host: a client must load neither.
            return fhir_response(bytes(response.body), 302, {"Location": REDIRECT_LOCATION})
        return response

    def renderer(self, ods: str) -> PracticeRenderer:
        renderer = self._renderers.get(ods)
        if renderer is None:
            renderer = PracticeRenderer(self.state.profile(ods))
            self._renderers[ods] = renderer
        return renderer

    # -- handlers (run on the event loop, holding the state lock while reading records) --------

    def metadata(self, call: _Call) -> Response:
        statement = self.renderer(call.practice.ods_code).capability_statement()
        return fhir_response(orjson.dumps(statement))

    def search_slots(self, call: _Call) -> Response:
        query = parse_slot_query(call.request.query_params.multi_items())
        ods = call.practice.ods_code
        with self.state.lock:
            slots = self.state.search_slots(
                ods, query.start, query.end, org_types=query.org_types, ods_codes=query.ods_codes
            )
            return fhir_response(self.renderer(ods).slot_bundle(slots, query))

    def read_appointment(self, call: _Call) -> Response:
        ods = call.practice.ods_code
        with self.state.lock:
            appointment = self.state.appointment(ods, _required(call.path_id))
            return self._appointment_response(ods, appointment)

    def book_appointment(self, call: _Call) -> Response:
        booking = parse_booking(parse_json_resource(call.body))
        ods = call.practice.ods_code
        with self.state.lock:
            appointment = self.state.book_appointment(ods, booking)
            location = f"{_service_root(call.request, ods)}/Appointment/{appointment.appointment_id}"
            return self._appointment_response(ods, appointment, status=201, location=location)

    def update_appointment(self, call: _Call) -> Response:
        resource = parse_json_resource(call.body)
        if_match = if_match_version(call.request.headers.get("if-match"))
        if if_match is None:
            raise bad_request('If-Match: W/"<versionId>" is required to amend or cancel')
        ods, appointment_id = call.practice.ods_code, _required(call.path_id)
        state = self.state
        with state.lock:
            appointment = state.appointment_for_update(ods, appointment_id, if_match)
            current = self.renderer(ods).appointment(appointment)
            if call.interaction is Interaction.CANCEL_APPOINTMENT:
                reason = parse_cancellation(resource, current)
                state.cancel_appointment(ods, appointment_id, if_match=if_match, reason=reason)
            else:
                amendment = parse_amendment(resource, current)
                state.amend_appointment(
                    ods,
                    appointment_id,
                    if_match=if_match,
                    description=amendment.description,
                    comment=amendment.comment,
                )
            return self._appointment_response(ods, appointment)

    def patient_appointments(self, call: _Call) -> Response:
        ods = call.practice.ods_code
        with self.state.lock:
            today = uk_day(self.state.sync())
            first, last = parse_appointment_range(call.request.query_params.multi_items(), today)
            appointments = self.state.patient_appointments(ods, _required(call.path_id), first, last)
            renderer = self.renderer(ods)
            return fhir_response(renderer.resource_bundle([renderer.appointment(a) for a in appointments]))

    def find_patient(self, call: _Call) -> Response:
        nhs_number = parse_nhs_number_search(call.request.query_params.multi_items())
        ods = call.practice.ods_code
        with self.state.lock:
            patient = self.state.find_patient(ods, nhs_number)
            renderer = self.renderer(ods)
            return fhir_response(renderer.resource_bundle([renderer.patient(patient)] if patient else []))

    def _appointment_response(
        self, ods: str, appointment: AppointmentRecord, *, status: int = 200, location: str | None = None
    ) -> Response:
        version = self.state.appointment_version(appointment)
        headers = {"ETag": f'W/"{version}"'}
        if location:
            headers["Location"] = location
        return fhir_response(orjson.dumps(self.renderer(ods).appointment(appointment)), status, headers)


_ID = r"(?P<id>[A-Za-z0-9\-\.]{1,64})"
_ROUTES = (
    _Route("GET", re.compile("metadata"), (Interaction.METADATA,), _GpConnect.metadata),
    _Route("GET", re.compile("Slot"), (Interaction.SEARCH_SLOTS,), _GpConnect.search_slots),
    _Route(
        "GET", re.compile(f"Appointment/{_ID}"), (Interaction.READ_APPOINTMENT,), _GpConnect.read_appointment
    ),
    _Route("POST", re.compile("Appointment"), (Interaction.BOOK_APPOINTMENT,), _GpConnect.book_appointment),
    _Route(
        "PUT",
        re.compile(f"Appointment/{_ID}"),
        (Interaction.AMEND_APPOINTMENT, Interaction.CANCEL_APPOINTMENT),
        _GpConnect.update_appointment,
    ),
    _Route(
        "GET",
        re.compile(f"Patient/{_ID}/Appointment"),
        (Interaction.PATIENT_APPOINTMENTS,),
        _GpConnect.patient_appointments,
    ),
    _Route("GET", re.compile("Patient"), (Interaction.FIND_PATIENT,), _GpConnect.find_patient),
)


def _resolve(request: Request, path: str) -> tuple[_Route, Interaction, str | None]:
    """The route and interaction for a GP Connect path; amend vs cancel by Ssp-InteractionID."""
    matches = [(route, m) for route in _ROUTES if (m := route.pattern.fullmatch(path))]
    if not matches:
        raise SandboxError(501, "NOT_IMPLEMENTED", f"the sandbox does not implement /{path}")
    for route, match in matches:
        if route.method == request.method:
            # The header picks between interactions sharing a route (amend/cancel); when it
            # names none of them, header validation reports the mismatch.
            claimed = Interaction.from_urn(request.headers.get("ssp-interactionid", ""))
            interaction = (
                claimed if claimed is not None and claimed in route.interactions else route.interactions[0]
            )
            return route, interaction, match.groupdict().get("id")
    raise bad_request(f"{request.method} is not allowed on /{path}")


def _status_fault_response(fault: FaultRule) -> Response:
    """An injected error; throttling always says when to come back (1 s unless told)."""
    retry_after = fault.retry_after_s
    if retry_after is None and fault.status == 429:
        retry_after = 1.0
    headers = {"Retry-After": str(round(retry_after))} if retry_after is not None else None
    return outcome_response(
        SandboxError(fault.status, fault.error_code, "fault injected by the sandbox"), headers
    )


def _required(value: str | None) -> str:
    assert value is not None, "route pattern guarantees an id"
    return value


def _service_root(request: Request, ods: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/{ods}/STU3/1/gpconnect"


async def _sleep_unless_disconnected(request: Request, seconds: float) -> None:
    """Wait like a slow provider, but stop as soon as the client gives up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return
        await asyncio.sleep(min(_DISCONNECT_POLL_S, max(0.0, deadline - time.monotonic())))


class _AbortedResponse(Response):
    """Sends the status line, headers and part of the body, then drops the connection."""

    def __init__(self, complete: Response, on_abort: Callable[[], None]) -> None:
        super().__init__(bytes(complete.body), status_code=complete.status_code)
        self.raw_headers = complete.raw_headers
        self._on_abort = on_abort

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send(
            {"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True}
        )
        # Returning without the final body message makes the server close the connection.
        self._on_abort()


class _TrickledResponse(Response):
    """Sends the status line and headers, then the body one byte every `every_s` seconds.

    Each byte arrives well inside a read timeout, so only a total deadline ends the call;
    it stops as soon as the client gives up.
    """

    def __init__(self, complete: Response, request: Request, every_s: float) -> None:
        super().__init__(bytes(complete.body), status_code=complete.status_code)
        self.raw_headers = complete.raw_headers
        self._request = request
        self._every_s = every_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        for offset in range(len(self.body)):
            if await self._request.is_disconnected():
                return
            byte, more = self.body[offset : offset + 1], offset < len(self.body) - 1
            await send({"type": "http.response.body", "body": byte, "more_body": more})
            await _sleep_unless_disconnected(self._request, self._every_s)


class _Control:
    """Supplier-side slot management, booking-organisation exports and sandbox controls."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def supplier_slot(self, request: Request) -> Response:
        state = self.state
        try:
            with state.lock:
                slot = state.slot(request.path_params["ods"], request.path_params["slot_id"])
                version = state.slot_version(slot)
                body = {
                    "slot_id": slot.slot_id,
                    "practice_ods": slot.practice_ods,
                    "start": format_uk(slot.start),
                    "end": format_uk(slot.end),
                    "state": slot.state,
                    "bookable": slot.plan.bookable,
                    "restrictions": {"org_types": list(slot.org_types), "ods_codes": list(slot.ods_codes)},
                    "released_at": utc_iso(slot.released_at),
                    "version": version,
                }
        except SandboxError as error:
            return json_error(error)
        return json_response(body, headers={"ETag": f'W/"{version}"', "Cache-Control": "no-store"})

    async def release_slot(self, request: Request) -> Response:
        try:
            payload = _json_object(await request.body())
            key, reason = payload.get("idempotency_key"), payload.get("reason")
            if not isinstance(key, str) or not key or not isinstance(reason, str):
                raise SandboxError(400, "BAD_REQUEST", "body needs idempotency_key (non-empty) and reason")
            outcome = self.state.release_slot(
                request.path_params["ods"],
                request.path_params["slot_id"],
                if_match=if_match_version(request.headers.get("if-match")),
                idempotency_key=key,
                reason=reason,
            )
        except SandboxError as error:
            return json_error(error)
        body: dict[str, Any] = {"released": outcome.released, "version": outcome.version}
        if outcome.already_released:
            body["already_released"] = True
        return json_response(body, headers={"ETag": f'W/"{outcome.version}"'})

    async def booking_log(self, request: Request) -> Response:
        output = request.query_params.get("format", "json")
        if output not in ("json", "csv"):
            return json_error(SandboxError(400, "BAD_REQUEST", "format must be json or csv"))
        rows = [row.as_json() for row in self.state.booking_log(request.path_params["org"])]
        if output == "json":
            return json_response(rows)
        buffer = io.StringIO()
        fields = [field.name for field in dataclasses.fields(BookingLogRow)]
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {**row, "slot_ids": ";".join(row["slot_ids"]), "cancelled_at": row["cancelled_at"] or ""}
            )
        return Response(buffer.getvalue(), media_type="text/csv")

    async def ground_truth(self, request: Request) -> Response:
        params = request.query_params
        try:
            rows = self.state.ground_truth(
                params.get("practice"),
                first_day=_optional_date(params.get("from")),
                last_day=_optional_date(params.get("to")),
            )
        except SandboxError as error:
            return json_error(error)
        return json_response([row.as_json() for row in rows])

    async def clock(self, request: Request) -> Response:
        state = self.state
        if request.method == "POST":
            if not isinstance(state.clock, SimulatedClock):
                return json_error(
                    SandboxError(409, "CLOCK_NOT_SIMULATED", "the sandbox runs on the system clock")
                )
            try:
                payload = _json_object(await request.body())
                target = parse_fhir_datetime(str(payload.get("now")))
                state.clock.set(target)
            except SandboxError as error:
                return json_error(error)
            except ValueError as error:
                return json_error(SandboxError(400, "BAD_CLOCK_VALUE", str(error)))
        now = state.sync()
        return json_response(
            {
                "now": utc_iso(now),
                "simulated": isinstance(state.clock, SimulatedClock),
                "started_at": utc_iso(state.started_at),
                "seed": state.seed,
            }
        )

    async def faults(self, request: Request) -> Response:
        injector = self.state.faults
        if request.method == "DELETE":
            injector.clear()
            return Response(status_code=204)
        if request.method == "POST":
            try:
                rule = FaultRule.model_validate(_json_object(await request.body()))
            except SandboxError as error:
                return json_error(error)
            except ValidationError as error:
                return json_response(
                    {
                        "error": "INVALID_FAULT",
                        "detail": error.errors(include_url=False, include_context=False),
                    },
                    422,
                )
            return json_response({"id": injector.add(rule), **rule.model_dump()}, 201)
        return json_response(
            [{"id": i, "remaining": left, **rule.model_dump()} for i, rule, left in injector.active()]
        )

    async def nhs111_reservations(self, request: Request) -> Response:
        """POST {"practice": ODS, "enabled": false} switches its 111 reservations off; GET lists them."""
        if request.method == "POST":
            try:
                payload = _json_object(await request.body())
                ods, enabled = payload.get("practice"), payload.get("enabled")
                if not isinstance(ods, str) or not isinstance(enabled, bool):
                    raise SandboxError(400, "BAD_REQUEST", "body needs practice (ODS) and enabled (bool)")
                self.state.set_nhs111_reservations(ods, enabled=enabled)
            except SandboxError as error:
                return json_error(error)
        return json_response({"off": sorted(self.state.nhs111_reservations_off)})

    async def requests(self, request: Request) -> Response:
        traffic = self.state.traffic
        if request.method == "DELETE":
            traffic.reset()
            return Response(status_code=204)
        counts = traffic.counts()
        return json_response(
            {
                "total": sum(counts.values()),
                "counts": [
                    {"practice": practice, "interaction": interaction, "count": count}
                    for (practice, interaction), count in sorted(counts.items())
                ],
            }
        )


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise SandboxError(400, "BAD_REQUEST", f"body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise SandboxError(400, "BAD_REQUEST", "body must be a JSON object")
    return value


def _optional_date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise SandboxError(400, "BAD_REQUEST", f"{text!r} is not a date (yyyy-mm-dd)") from exc
