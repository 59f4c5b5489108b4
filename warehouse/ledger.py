"""The load ledger and what a load records besides slots: its registry, outcomes, bookings.

`meta.load_ledger` says which loads ran and how they ended; `meta.practice_run` holds every
practice's outcome of a load; the registry a load used becomes `core.dim_practice`; booking
logs and appointment reads are stored per load (re-running a load replaces its rows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import pyarrow as pa

from common.holder import Holder, this_process
from common.uktime import parse_fhir_datetime, uk_day
from connectors.bookinglog import AppointmentRead, BookingLogExport
from connectors.http.errors import HttpError
from connectors.registry import Registry
from warehouse.db import sql_text, transaction

_UTC = pa.timestamp("us", tz="UTC")


def new_load_id(flow_name: str, as_of: datetime, suffix: str) -> str:
    return f"{flow_name}-{as_of.strftime('%Y%m%dT%H%M%SZ')}-{suffix}"


def begin_load(
    con: duckdb.DuckDBPyConnection, load_id: str, *, flow_name: str, as_of: datetime, started_at: datetime,
    flow_run_id: str | None = None, holder: Holder | None = None,
) -> None:
    """Record the load as running, held by `holder` (default: this process), so a load its
    holder never ended (killed without cleanup) is recognisable later (common/holder.py)."""
    held_by = holder or this_process()
    con.execute(
        sql_text("ledger/begin_load.sql"),
        {"load_id": load_id, "flow_name": flow_name, "flow_run_id": flow_run_id,
         "as_of": as_of, "started_at": started_at, "holder_pid": held_by.pid,
         "holder_host": held_by.host, "holder_started": held_by.started},
    )

def fail_load(con: duckdb.DuckDBPyConnection, load_id: str, *, reason: str, at: datetime) -> None:
    """End a load still running as failed, with `reason` in words (a completed one stays)."""
    con.execute(sql_text("ledger/fail_load.sql"),
                {"load_id": load_id, "detail": reason, "completed_at": at})

def finish_load(
    con: duckdb.DuckDBPyConnection, load_id: str, *, status: str, completed_at: datetime, practices_ok: int,
    practices_failed: int, detail: str | None = None,
) -> None:
    con.execute(
        sql_text("ledger/finish_load.sql"),
        {"status": status, "completed_at": completed_at, "ok": practices_ok,
         "failed": practices_failed, "detail": detail, "load_id": load_id},
    )

def record_practice_runs(
    con: duckdb.DuckDBPyConnection, load_id: str, outcomes: Sequence[Mapping[str, Any]], *,
    finished_at: datetime,
) -> None:
    """Record every practice's outcome for a load in one transaction (one commit)."""
    columns = ("interaction", "http_status", "error_class", "message", "next_step")
    table = pa.table(
        {
            "load_id": pa.array([load_id] * len(outcomes), pa.string()),
            "practice_ods": pa.array([o["practice_ods"] for o in outcomes], pa.string()),
            "status": pa.array([o["status"] for o in outcomes], pa.string()),
            **{
                name: pa.array([o.get(name) for o in outcomes],
                               pa.int32() if name == "http_status" else pa.string())
                for name in columns
            },
            "responses": pa.array([o.get("responses", 0) for o in outcomes], pa.int32()),
            "slot_rows": pa.array([o.get("slot_rows", 0) for o in outcomes], pa.int32()),
            "finished_at": pa.array([finished_at] * len(outcomes), pa.timestamp("us", tz="UTC")),
        }
    )
    _replace_rows(con, "meta.practice_run", table, "practice_run_rows")

def _replace_rows(con: duckdb.DuckDBPyConnection, target: str, table: pa.Table, view: str) -> None:
    """Insert-or-replace an Arrow table into a keyed table in one transaction."""
    with transaction(con):
        con.register(view, table)
        con.execute(f"insert or replace into {target} by name select * from {view}")
        con.unregister(view)

def _load_day(con: duckdb.DuckDBPyConnection, load_id: str) -> date:
    row = con.execute(
        "select (as_of at time zone 'Europe/London')::date from meta.load_ledger where load_id = ?",
        [load_id],
    ).fetchone()
    return row[0] if row else uk_day(datetime.now(UTC))


def _registry_rows(registry: Registry, load_id: str) -> pa.Table:
    """The registry as core.dim_practice rows (quota 0 for hubs: they have no 111 quota)."""
    rows = [
        (p.ods_code, p.name, p.kind, p.list_size, p.clinical_system, p.accepts_111_booking,
         p.nhs111_provider_ods, list(p.booking_hubs), p.sub_icb_code, p.icb_code, p.region_code,
         p.pcn_code, p.nhs111_quota if p.kind == "practice" else 0, load_id)
        for p in registry.practices
    ]
    return pa.table(
        {name: [row[i] for row in rows] for i, name in enumerate(
            ["practice_ods", "practice_name", "kind", "list_size", "clinical_system",
             "accepts_111_booking", "nhs111_provider_ods", "booking_hubs", "sub_icb_code",
             "icb_code", "region_code", "pcn_code", "nhs111_daily_quota", "load_id"])}
    )


def record_list_sizes(con: duckdb.DuckDBPyConnection, registry: Registry, source_id: str, day: date) -> int:
    """Keep a refreshed registry's list sizes as in force from `day` (UK) in
    core.practice_list_size, without touching core.dim_practice (the next load's registry);
    returns how many practices' sizes changed. `source_id` is recorded as the row's load_id."""
    with transaction(con):
        con.register("registry_rows", _registry_rows(registry, source_id))
        con.execute(sql_text("ledger/record_list_sizes.sql"), {"day": day})
        con.unregister("registry_rows")
    on_day = con.execute(
        "select count(*) from core.practice_list_size where valid_from = ? and load_id = ?", [day, source_id]
    ).fetchall()[0][0]
    return int(on_day)


def sync_registry(con: duckdb.DuckDBPyConnection, registry: Registry, load_id: str) -> None:
    """Replace core.dim_practice with the registry used by this load, and keep its list sizes
    as of the load's day in core.practice_list_size (so past days keep their quota)."""
    table = _registry_rows(registry, load_id)
    organisations = pa.table(
        {
            "ods_code": [o.ods_code for o in registry.booking_organisations],
            "name": [o.name for o in registry.booking_organisations],
            "kind": [o.kind for o in registry.booking_organisations],
            "booking_log_format": [o.booking_log_format for o in registry.booking_organisations],
            "load_id": [load_id] * len(registry.booking_organisations),
        },
        schema=pa.schema([(name, pa.string()) for name in
                          ("ods_code", "name", "kind", "booking_log_format", "load_id")]),
    )
    with transaction(con):
        con.execute("delete from core.dim_practice")
        con.register("registry_rows", table)
        # By name: V009 renamed and appended columns, so positions differ from the registry order.
        con.execute("insert into core.dim_practice by name select * from registry_rows")
        # Sizes in force from the load's UK day (today for a load not in the ledger).
        con.execute(
            sql_text("ledger/record_list_sizes.sql"),
            {"day": _load_day(con, load_id)},
        )
        con.unregister("registry_rows")
        con.execute("delete from core.dim_booking_organisation")
        con.register("organisation_rows", organisations)
        con.execute("insert into core.dim_booking_organisation select * from organisation_rows")
        con.unregister("organisation_rows")


def load_bookings(
    con: duckdb.DuckDBPyConnection,
    load_id: str,
    *,
    observed_at: datetime,
    exports: Sequence[BookingLogExport],
    fetch_failures: Sequence[HttpError],
    reads: Sequence[AppointmentRead],
) -> None:
    """Store booking-log exports, fetch outcomes and appointment reads in one transaction.

    Re-running a load replaces that load's rows, so it is idempotent.
    """
    entries = [(export, entry) for export in exports for entry in export.entries]
    entry_table = pa.table(
        {
            "load_id": pa.array([load_id] * len(entries), pa.string()),
            "booking_org_ods": pa.array([x.booking_org_ods for x, _ in entries], pa.string()),
            "observed_at": pa.array([observed_at] * len(entries), _UTC),
            "fetched_at": pa.array([x.fetched_at for x, _ in entries], _UTC),
            "appointment_id": pa.array([e.appointment_id for _, e in entries], pa.string()),
            "practice_ods": pa.array([e.practice_ods for _, e in entries], pa.string()),
            "slot_ids": pa.array([list(e.slot_ids) for _, e in entries], pa.list_(pa.string())),
            "start_text": pa.array([e.start for _, e in entries], pa.string()),
            "end_text": pa.array([e.end for _, e in entries], pa.string()),
            "start_at": pa.array([e.start_utc for _, e in entries], _UTC),
            "end_at": pa.array([e.end_utc for _, e in entries], _UTC),
            "booked_at": pa.array([e.booked_at for _, e in entries], _UTC),
            "cancelled_at": pa.array([e.cancelled_at for _, e in entries], _UTC),
            "status": pa.array([e.status for _, e in entries], pa.string()),
            "patient_key": pa.array([e.patient_key for _, e in entries], pa.string()),
        }
    )
    read_table = pa.table(
        {
            "load_id": pa.array([load_id] * len(reads), pa.string()),
            "practice_ods": pa.array([r.practice_ods for r in reads], pa.string()),
            "appointment_id": pa.array([r.appointment_id for r in reads], pa.string()),
            "observed_at": pa.array([observed_at] * len(reads), _UTC),
            "fetched_at": pa.array([r.fetched_at for r in reads], _UTC),
            "outcome": pa.array([r.outcome for r in reads], pa.string()),
            "http_status": pa.array([r.http_status for r in reads], pa.int32()),
            "status": pa.array([r.status for r in reads], pa.string()),
            "version_id": pa.array([r.version_id for r in reads], pa.string()),
            "start_text": pa.array([r.start for r in reads], pa.string()),
            "end_text": pa.array([r.end for r in reads], pa.string()),
            "start_at": pa.array([_utc_or_none(r.start) for r in reads], _UTC),
            "end_at": pa.array([_utc_or_none(r.end) for r in reads], _UTC),
            "slot_ids": pa.array([list(r.slot_ids) for r in reads], pa.list_(pa.string())),
            "booking_org_ods": pa.array([r.booking_org_ods for r in reads], pa.string()),
            "patient_key": pa.array([r.patient_key for r in reads], pa.string()),
            "created_text": pa.array([r.created for r in reads], pa.string()),
            "error": pa.array([r.error for r in reads], pa.string()),
        }
    )
    fetches = [
        (x.booking_org_ods, "ok", x.fetched_at, x.http_status, x.body_bytes, len(x.entries), None, None)
        for x in exports
    ] + [
        (f.practice_ods, "failed", None, f.status, None, 0, str(f), f.next_step)
        for f in fetch_failures
    ]
    fetch_table = pa.table(
        {
            "load_id": pa.array([load_id] * len(fetches), pa.string()),
            "booking_org_ods": pa.array([f[0] for f in fetches], pa.string()),
            "status": pa.array([f[1] for f in fetches], pa.string()),
            "fetched_at": pa.array([f[2] for f in fetches], _UTC),
            "http_status": pa.array([f[3] for f in fetches], pa.int32()),
            "body_bytes": pa.array([f[4] for f in fetches], pa.int64()),
            "entries": pa.array([f[5] for f in fetches], pa.int32()),
            "message": pa.array([f[6] for f in fetches], pa.string()),
            "next_step": pa.array([f[7] for f in fetches], pa.string()),
        }
    )
    with transaction(con):
        for table in ("raw.booking_log_entry", "raw.gpc_appointment_read", "meta.booking_log_fetch"):
            con.execute(f"delete from {table} where load_id = ?", [load_id])
        for name, arrow in (("raw.booking_log_entry", entry_table),
                            ("raw.gpc_appointment_read", read_table),
                            ("meta.booking_log_fetch", fetch_table)):
            con.register("incoming_rows", arrow)
            con.execute(f"insert into {name} by name select * from incoming_rows")
            con.unregister("incoming_rows")


def latest_completed_load(con: duckdb.DuckDBPyConnection) -> tuple[str, datetime] | None:
    """The newest completed load (by observation instant): what a republish publishes."""
    rows = con.execute(sql_text("ledger/latest_completed_load.sql")).fetchall()
    return (str(rows[0][0]), rows[0][1]) if rows else None


def _utc_or_none(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_fhir_datetime(text)
    except ValueError:
        return None
