"""The bookings leg of a sync: what booking organisations booked, confirmed at the practice.

1. `fetch_booking_logs`, one task per booking organisation (or per group of them, past
   `sync.max_tasks_per_leg`, flows/task_groups.py): each export validated and pseudonymised
   by the connector.
2. `confirm_bookings`: Read Appointment at the practice for every logged appointment that
   ends after the look-back point (past appointments cannot change any more), concurrently
   through the shared, rate-limited GP Connect client.
The writer stores both with the slots; a failing export never fails the slot sync.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from common.clock import Clock
from connectors.bookinglog import (
    AppointmentRead,
    BookingLogClient,
    BookingLogEntry,
    BookingLogExport,
    confirm_booking,
)
from connectors.gpconnect.client import GpConnectClient
from connectors.http.errors import HttpError
from connectors.registry import BookingOrganisation, Registry
from flows.task_groups import run_in_groups

CONFIRM_LOOKBACK = timedelta(days=1)


@dataclass
class BookingsResult:
    exports: list[BookingLogExport] = field(default_factory=list)
    failures: list[HttpError] = field(default_factory=list)
    reads: list[AppointmentRead] = field(default_factory=list)


@task(name="fetch-booking-logs", cache_policy=NO_CACHE, task_run_name="booking-log-{label}")
async def fetch_booking_logs(
    label: str, organisations: list[BookingOrganisation], client: BookingLogClient,
    in_flight: asyncio.Semaphore,
) -> list[BookingLogExport | HttpError]:
    """One task's share of the booking organisations (flows/task_groups.py), each export alone."""

    async def one(organisation: BookingOrganisation) -> BookingLogExport | HttpError:
        async with in_flight:
            return await fetch_booking_log(organisation, client)

    return list(await asyncio.gather(*(one(organisation) for organisation in organisations)))


async def fetch_booking_log(
    organisation: BookingOrganisation, client: BookingLogClient
) -> BookingLogExport | HttpError:
    try:
        return await client.fetch(organisation)
    except HttpError as exc:
        get_run_logger().warning("%s", exc)
        return exc


def entries_to_confirm(
    exports: list[BookingLogExport], registry: Registry, observed_at: datetime,
    practices: set[str] | None = None,
) -> list[BookingLogEntry]:
    """Logged appointments still worth reading back, each once, at known practices."""
    known = {ods for ods in registry.by_ods() if practices is None or ods in practices}
    since = observed_at - CONFIRM_LOOKBACK
    chosen: dict[tuple[str, str], BookingLogEntry] = {}
    for export in exports:
        for entry in export.entries:
            if entry.practice_ods in known and entry.end_utc >= since:
                chosen.setdefault((entry.practice_ods, entry.appointment_id), entry)
    return [chosen[key] for key in sorted(chosen)]


@task(name="confirm-bookings", cache_policy=NO_CACHE)
async def confirm_bookings(
    entries: list[BookingLogEntry], registry: Registry, client: GpConnectClient,
    hash_secret: str, clock: Clock,
) -> list[AppointmentRead]:
    practices = registry.by_ods()
    return list(
        await asyncio.gather(
            *(
                confirm_booking(client, practices[e.practice_ods], e, hash_secret=hash_secret, clock=clock)
                for e in entries
            )
        )
    )


async def collect_bookings(
    registry: Registry,
    gp_client: GpConnectClient,
    log_client: BookingLogClient,
    *,
    hash_secret: str,
    clock: Clock,
    observed_at: datetime,
    practices: set[str] | None = None,
    concurrency: int = 32,
    max_tasks: int = 200,
) -> BookingsResult:
    result = BookingsResult()
    # Bounded like the practices' fetches: at England scale 1,266 exports requested at once
    # queued in httpx's pool, whose bookkeeping grows with every waiting request, and stalled
    # the event loop (and so every slot search) for minutes.
    in_flight = asyncio.Semaphore(concurrency)

    async def fetch_group(label: str, group: list[BookingOrganisation]) -> list[BookingLogExport | HttpError]:
        return await fetch_booking_logs(label, group, log_client, in_flight)

    fetched = await run_in_groups(
        registry.booking_organisations, max_tasks=max_tasks, items_in_flight=concurrency,
        code=lambda organisation: organisation.ods_code, run_group=fetch_group,
    )
    for item in fetched:
        if isinstance(item, HttpError):
            result.failures.append(item)
        else:
            result.exports.append(item)
    entries = entries_to_confirm(result.exports, registry, observed_at, practices)
    if entries:
        result.reads = await confirm_bookings(entries, registry, gp_client, hash_secret, clock)
    return result
