"""The bookings leg: booking-log exports confirmed with Read Appointment, pseudonymised."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from common.clock import SimulatedClock
from connectors.registry import Registry
from flows.sync import nightly_sync
from sandbox.faults import FaultRule
from sandbox.server import SandboxServer
from tests.flows.conftest import run_async

AS_OF = datetime(2026, 3, 26, 14, 0, tzinfo=UTC)  # Thursday afternoon: the day's bookings exist


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(clock=SimulatedClock(AS_OF)) as server:
        yield server


def sync(sandbox: SandboxServer, tmp_path: Path) -> dict[str, Any]:
    registry_path = tmp_path / "registry.yaml"
    sandbox.registry.write(registry_path)
    result: dict[str, Any] = run_async(
        nightly_sync(
            registry_path=str(registry_path),
            warehouse_path=str(tmp_path / "wh.duckdb"),
            data_dir=str(tmp_path),
            as_of=AS_OF,
            horizon_days=14,
        )
    )
    return result


def query(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_logged_bookings_are_confirmed_at_the_practice(sandbox: SandboxServer, tmp_path: Path) -> None:
    result = sync(sandbox, tmp_path)
    logs = result["booking_logs"]
    assert sorted(logs["organisations_ok"])[0] == "RYE" and len(logs["organisations_ok"]) == 6
    assert logs["failures"] == []

    since = AS_OF - timedelta(days=1)
    truth = {
        (row.practice_ods, row.appointment_id): row
        for row in sandbox.state.ground_truth()
        if row.appointment_id and row.booked_by_kind in ("nhs111", "hub") and row.end_utc >= since
    }
    facts = {
        (ods, appt): (org, confirmation, status)
        for ods, appt, org, confirmation, status in _facts_since(tmp_path, since)
    }
    assert truth, "the sandbox should have 111/hub bookings around the as-of time"
    assert set(truth) <= set(facts)
    for key, row in truth.items():
        org, confirmation, status = facts[key]
        assert org == row.booked_by_ods
        # The slot's latest booking is this appointment: booked now, or cancelled since.
        expected = "confirmed" if row.state == "booked" and row.cancelled_at is None else "cancelled"
        assert (confirmation, status) == (expected, "booked" if expected == "confirmed" else "cancelled")


def _facts_since(tmp_path: Path, since: datetime) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        return con.execute(
            "select practice_ods, appointment_id, booking_org_ods, confirmation, status "
            "from core.fct_appointment where end_at >= ?",
            [since],
        ).fetchall()
    finally:
        con.close()


def test_no_patient_identifier_reaches_the_warehouse(sandbox: SandboxServer, tmp_path: Path) -> None:
    sync(sandbox, tmp_path)
    logged = sandbox.state.booking_log("RYE")
    assert logged
    patient_refs = {row.patient_ref for row in logged}
    keys = {k for (k,) in query(tmp_path, "select distinct patient_key from raw.booking_log_entry")}
    assert keys and all(len(k) == 32 for k in keys)
    assert not patient_refs & keys
    # No column anywhere in the warehouse holds a sandbox patient reference or NHS number.
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        columns = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type = 'VARCHAR' and table_schema in ('raw','staging','core','marts')"
        ).fetchall()
        sample = sorted(patient_refs)[:5]
        for schema, table, column in columns:
            hits = con.execute(
                f'select count(*) from "{schema}"."{table}" where "{column}" in (select unnest(?))',
                [sample],
            ).fetchall()[0][0]
            assert hits == 0, f"{schema}.{table}.{column} holds a patient reference"
    finally:
        con.close()


def test_a_failing_export_does_not_fail_the_slot_sync(sandbox: SandboxServer, tmp_path: Path) -> None:
    good = sandbox.registry.booking_organisations[0]
    broken_url = good.booking_log_url.replace("_booking-orgs", "nowhere")
    broken = good.model_copy(update={"booking_log_url": broken_url})
    registry = Registry(
        practices=sandbox.registry.practices,
        booking_organisations=(broken, *sandbox.registry.booking_organisations[1:]),
    )
    registry_path = tmp_path / "registry.yaml"
    registry.write(registry_path)
    sandbox.state.faults.add(
        FaultRule(practice="*", interaction="READ_APPOINTMENT", kind="status", status=503, count=1)
    )
    result: dict[str, Any] = run_async(
        nightly_sync(
            registry_path=str(registry_path),
            warehouse_path=str(tmp_path / "wh.duckdb"),
            data_dir=str(tmp_path),
            as_of=AS_OF,
            horizon_days=14,
        )
    )
    assert all(o["status"] == "ok" for o in result["outcomes"])
    failures = result["booking_logs"]["failures"]
    assert len(failures) == 1 and "booking organisation RYE" in failures[0] and "HTTP 404" in failures[0]
    statuses = dict(query(tmp_path, "select booking_org_ods, status from meta.booking_log_fetch"))
    assert statuses["RYE"] == "failed" and list(statuses.values()).count("ok") == 5
