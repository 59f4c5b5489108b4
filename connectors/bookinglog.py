"""Booking-log connector: what NHS 111 providers and hubs say they booked.

GP Connect cannot list a practice's appointments, but every booking organisation keeps a
record of the appointments it booked through GP Connect. This connector reads those
exports (JSON or CSV, one per booking organisation) and validates every row. Patient
references never leave this module in the clear: they are replaced by a keyed hash
(HMAC-SHA256 with a key from settings), so the warehouse can link an appointment to the
same patient without holding an identifier.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.clock import Clock, SystemClock
from common.config import HttpSettings
from common.uktime import parse_fhir_datetime
from connectors.gpconnect.client import GpConnectClient
from connectors.http.errors import HttpError, NotFound, ResponseInvalid
from connectors.http.retry import retrying
from connectors.http.transport import Caller, new_client, require_status, send_capped
from connectors.registry import ODS_ORG_PATTERN, ODS_PRACTICE_PATTERN, BookingOrganisation, Practice

INTERACTION = "read booking log"


class BookingLogEntry(BaseModel):
    """One appointment a booking organisation booked, with the patient pseudonymised."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    appointment_id: str = Field(min_length=1, max_length=64)
    practice_ods: str = Field(pattern=ODS_PRACTICE_PATTERN)
    slot_ids: tuple[str, ...] = Field(min_length=1)
    start: str
    end: str
    booked_at: datetime
    cancelled_at: datetime | None = None
    status: Literal["booked", "cancelled"]
    booking_org_ods: str = Field(pattern=ODS_ORG_PATTERN)
    patient_key: str | None = Field(default=None, description="keyed hash of the patient reference")

    @field_validator("start", "end")
    @classmethod
    def _uk_datetime(cls, value: str) -> str:
        parse_fhir_datetime(value)
        return value

    @field_validator("booked_at", "cancelled_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a UTC offset")
        return value

    @property
    def start_utc(self) -> datetime:
        return parse_fhir_datetime(self.start)

    @property
    def end_utc(self) -> datetime:
        return parse_fhir_datetime(self.end)


@dataclass(frozen=True)
class BookingLogExport:
    booking_org_ods: str
    fetched_at: datetime
    http_status: int
    body_bytes: int
    entries: tuple[BookingLogEntry, ...]


class BookingLogInvalid(ResponseInvalid):
    """An export whose rows do not validate; every bad row is listed."""


def patient_key(secret: str, practice_ods: str, patient_ref: str) -> str:
    """A keyed hash standing in for a patient reference (not reversible without the key).

    Scoped by practice, where the logical patient id lives, so the same patient gets the
    same key from a booking log and from a Read Appointment at that practice.
    """
    message = f"{practice_ods}|{patient_ref}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def parse_booking_log(
    body: bytes, *, organisation: BookingOrganisation, hash_secret: str, status: int = 200
) -> tuple[BookingLogEntry, ...]:
    """Validate an export; raise `BookingLogInvalid` naming every bad row and field."""
    rows = list(_rows(body, organisation, status))
    entries: list[BookingLogEntry] = []
    problems: list[str] = []
    for index, row in enumerate(rows, start=1):
        ref = row.get("patient_ref")
        data = {k: v for k, v in row.items() if k != "patient_ref"}
        if isinstance(data.get("slot_ids"), str):
            data["slot_ids"] = [s for s in data["slot_ids"].split(";") if s]
        for key in ("cancelled_at",):
            if data.get(key) in ("", None):
                data[key] = None
        if ref:
            data["patient_key"] = patient_key(hash_secret, str(data.get("practice_ods")), str(ref))
        try:
            entries.append(BookingLogEntry.model_validate(data))
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or "(row)"
                problems.append(f"row {index} field {field}: {err['msg']}")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; … {len(problems) - 10} more" if len(problems) > 10 else "")
        raise BookingLogInvalid(
            f"{len(problems)} invalid row(s) in the export: {shown}",
            practice_ods=organisation.ods_code,
            interaction=INTERACTION, subject=_subject(organisation),
            status=status,
            next_step=f"ask {organisation.name} to correct its booking export; nothing from it was loaded",
        )
    return tuple(entries)


def _rows(body: bytes, organisation: BookingOrganisation, status: int) -> Iterable[Mapping[str, Any]]:
    try:
        if organisation.booking_log_format == "json":
            value = orjson.loads(body)
            if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
                raise ValueError("expected a JSON array of objects")
            return value
        return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BookingLogInvalid(
            f"export is not valid {organisation.booking_log_format.upper()}: {exc}",
            practice_ods=organisation.ods_code,
            interaction=INTERACTION, subject=_subject(organisation),
            status=status,
            next_step=f"check that {organisation.booking_log_url} serves the "
            f"{organisation.booking_log_format} export",
        ) from exc


class BookingLogClient:
    """Fetches booking organisations' exports through the shared HTTP layer.

    Like every outbound client: the size cap (`http.max_response_bytes`), the one error
    table, `Retry-After` as seconds or an HTTP-date, and the one retry policy.
    """

    def __init__(
        self, http: HttpSettings, *, hash_secret: str, clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = http
        self._secret = hash_secret
        self._clock = clock or SystemClock()
        self._client = new_client(http, transport=transport)

    async def __aenter__(self) -> BookingLogClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._client.aclose()

    async def fetch(self, organisation: BookingOrganisation) -> BookingLogExport:
        async for attempt in retrying(self._http):
            with attempt:
                response = await self._get(organisation)
        body = response.content
        entries = parse_booking_log(
            body, organisation=organisation, hash_secret=self._secret, status=response.status_code
        )
        return BookingLogExport(
            booking_org_ods=organisation.ods_code, fetched_at=self._clock.now(),
            http_status=response.status_code, body_bytes=len(body), entries=entries,
        )

    async def _get(self, organisation: BookingOrganisation) -> httpx.Response:
        caller = Caller(organisation.ods_code, INTERACTION, _subject(organisation))
        response = await send_capped(
            self._client, self._http, caller, "GET", organisation.booking_log_url
        )
        require_status(response, caller)  # only a 200 is an export; a 3xx is never loaded
        return response


def _subject(organisation: BookingOrganisation) -> str:
    return f"booking organisation {organisation.ods_code} ({organisation.name})"


@dataclass(frozen=True)
class AppointmentRead:
    """The practice's answer to Read Appointment for one logged booking (pseudonymised)."""

    practice_ods: str
    appointment_id: str
    fetched_at: datetime
    outcome: Literal["found", "not_found", "failed"]
    http_status: int | None = None
    status: str | None = None
    version_id: str | None = None
    start: str | None = None
    end: str | None = None
    slot_ids: tuple[str, ...] = ()
    booking_org_ods: str | None = None
    patient_key: str | None = None
    created: str | None = None
    error: str | None = None


async def confirm_booking(
    client: GpConnectClient, practice: Practice, entry: BookingLogEntry, *, hash_secret: str,
    clock: Clock,
) -> AppointmentRead:
    """Read a logged appointment back from the practice that holds it."""
    try:
        appointment = await client.read_appointment(practice, entry.appointment_id)
    except NotFound as exc:
        return AppointmentRead(practice.ods_code, entry.appointment_id, clock.now(), "not_found",
                               http_status=exc.status, error=str(exc))
    except HttpError as exc:
        return AppointmentRead(practice.ods_code, entry.appointment_id, clock.now(), "failed",
                               http_status=exc.status, error=str(exc))
    patient = appointment.patient_id
    return AppointmentRead(
        practice_ods=practice.ods_code,
        appointment_id=appointment.id,
        fetched_at=clock.now(),
        outcome="found",
        http_status=200,
        status=appointment.status,
        version_id=appointment.meta.versionId,
        start=appointment.start,
        end=appointment.end,
        slot_ids=tuple(appointment.slot_ids),
        booking_org_ods=appointment.booking_org_ods,
        patient_key=patient_key(hash_secret, practice.ods_code, patient) if patient else None,
        created=appointment.created,
    )
