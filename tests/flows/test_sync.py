"""The slot sync flow end to end: real sandbox over loopback HTTP, real Prefect flow runs."""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prefect.context import TaskRunContext

from common.clock import SimulatedClock
from common.config import Settings, get_settings
from common.uktime import uk_day, uk_midnight
from flows import bookings, run_context, sync
from flows.sync import nightly_sync
from sandbox.faults import FaultRule
from sandbox.server import SandboxServer
from tests.flows.conftest import run_async

AS_OF = datetime(2026, 3, 24, 2, 0, tzinfo=UTC)  # Tuesday 02:00 GMT


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(clock=SimulatedClock(AS_OF)) as server:
        yield server


def run_nightly(sandbox: SandboxServer, tmp_path: Path, **kwargs: Any) -> dict[str, Any]:
    registry_path = tmp_path / "registry.yaml"
    sandbox.registry.write(registry_path)
    result: dict[str, Any] = run_async(
        nightly_sync(
            registry_path=str(registry_path),
            warehouse_path=str(tmp_path / "warehouse.duckdb"),
            data_dir=str(tmp_path),
            as_of=AS_OF,
            **kwargs,
        )
    )
    return result


def mart_rows(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(tmp_path / "published" / "dashboard.duckdb"), read_only=True)
    try:
        con.execute("use dashboard.marts")
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_nightly_sync_matches_the_sandbox_ground_truth(sandbox: SandboxServer, tmp_path: Path) -> None:
    result = run_nightly(sandbox, tmp_path)
    outcomes = result["outcomes"]
    assert len(outcomes) == 42 and all(o["status"] == "ok" for o in outcomes)
    assert sum(o["slot_rows"] for o in outcomes) > 50_000

    horizon_end = uk_midnight(uk_day(AS_OF) + timedelta(days=28))
    truth: Counter[tuple[str, Any]] = Counter(
        (row.practice_ods, uk_day(row.start_utc))
        for row in sandbox.state.ground_truth()
        if row.audience == "nhs111"
        and row.bookable
        and row.state == "free"
        and row.start_utc >= AS_OF
        and row.end_utc <= horizon_end
    )
    observed = {
        (ods, day): free
        for ods, day, free in mart_rows(
            tmp_path, "select practice_ods, slot_day, nhs111_reserved_free from mart_111_quota_daily"
        )
    }
    hubs = {p.ods_code for p in sandbox.registry.practices if p.kind == "hub"}
    expected = {key: n for key, n in truth.items() if key[0] not in hubs}
    assert expected, "the sandbox should hold free NHS 111 slots in the horizon"
    assert {k: v for k, v in observed.items() if v} == expected


def test_an_unauthorised_practice_fails_alone_with_an_actionable_message(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    victim = sandbox.registry.practices[3].ods_code
    sandbox.state.faults.add(FaultRule(practice=victim, kind="status", status=401))
    result = run_nightly(sandbox, tmp_path)
    failed = [o for o in result["outcomes"] if o["status"] != "ok"]
    assert [o["practice_ods"] for o in failed] == [victim]
    message = failed[0]["message"]
    assert victim in message and "search free slots" in message and "HTTP 401" in message
    assert "Next step" in message and failed[0]["error_class"] == "ConfigurationError"
    # Configuration errors are not retried: one request per planned search, no more.
    statuses = dict(mart_rows(tmp_path, "select practice_ods, latest_status from mart_pipeline_freshness"))
    assert statuses[victim] == "failed"
    assert sum(1 for s in statuses.values() if s == "ok") == 41


def test_transient_faults_are_retried_without_duplicate_rows(sandbox: SandboxServer, tmp_path: Path) -> None:
    victim = sandbox.registry.practices[0].ods_code
    sandbox.state.faults.add(FaultRule(practice=victim, kind="status", status=503, count=2))
    sandbox.state.faults.add(
        FaultRule(practice=victim, kind="status", status=429, retry_after_s=0.2, count=1)
    )
    result = run_nightly(sandbox, tmp_path, practices=[victim])
    assert [o["status"] for o in result["outcomes"]] == ["ok"]
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        total, distinct = con.execute(
            "select count(*), count(distinct (filter_key, window_start, slot_id)) "
            "from staging.stg_gpconnect__slots"
        ).fetchall()[0]
    finally:
        con.close()
    assert total == distinct > 0


def test_a_sync_builds_schedule_location_and_practitioner_dimensions(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    run_nightly(sandbox, tmp_path)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:

        def scalar(sql: str) -> Any:
            return con.execute(sql).fetchall()[0][0]

        practices = scalar("select count(distinct practice_ods) from core.fct_slot_history")
        assert practices == 42
        for table in ("dim_schedule", "dim_location", "dim_practitioner"):
            assert scalar(f"select count(distinct practice_ods) from core.{table}") == practices, table
        # Latest row per (practice, id): the keys are unique.
        for table, key in (
            ("dim_schedule", "schedule_id"),
            ("dim_location", "location_id"),
            ("dim_practitioner", "practitioner_id"),
        ):
            duplicates = scalar(f"select count(*) - count(distinct (practice_ods, {key})) from core.{table}")
            assert duplicates == 0, table
        # Referential integrity: slot -> schedule -> location (and practitioner when named).
        assert (
            scalar(
                "select count(*) from core.fct_slot_history as h anti join core.dim_schedule as s "
                "using (practice_ods, schedule_id)"
            )
            == 0
        )
        assert (
            scalar(
                "select count(*) from staging.stg_gpconnect__slots as h anti join core.dim_schedule as s "
                "using (practice_ods, schedule_id)"
            )
            == 0
        )
        assert (
            scalar(
                "select count(*) from core.dim_schedule as s anti join core.dim_location as l "
                "using (practice_ods, location_id)"
            )
            == 0
        )
        assert scalar("select count(*) from core.dim_schedule where location_id is null") == 0
        assert (
            scalar(
                "select count(*) from core.dim_schedule as s anti join core.dim_practitioner as p "
                "using (practice_ods, practitioner_id) where s.practitioner_id is not null"
            )
            == 0
        )
        # What the dimensions carry: a session name, a job role, identifiers; no staff names.
        assert scalar("select count(*) from core.dim_schedule where service_category is null") == 0
        assert scalar("select count(*) from core.dim_schedule where practitioner_role_code is null") == 0
        assert scalar("select count(*) from core.dim_practitioner where sds_user_id is null") == 0
        assert scalar("select count(*) from core.dim_location where location_name is null") == 0
        columns = {
            c
            for (c,) in con.execute(
                "select column_name from information_schema.columns where table_name = 'dim_practitioner'"
            ).fetchall()
        }
        assert not columns & {"name", "family", "given", "gender", "practitioner_name"}
    finally:
        con.close()


def test_a_huge_retry_after_fails_its_practice_at_once_and_holds_no_one_else(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Six practices, so one failure stays under the run's failed-practice threshold.
    victim, *healthy = (p.ods_code for p in sandbox.registry.practices[:6])
    sandbox.state.faults.add(
        FaultRule(practice=victim, kind="status", status=429, retry_after_s=86400)
    )
    started = datetime.now(UTC)
    result = run_nightly(sandbox, tmp_path, practices=[victim, *healthy])
    assert (datetime.now(UTC) - started).total_seconds() < 100, "the 86400 s wait was not slept on"
    outcomes = {o["practice_ods"]: o for o in result["outcomes"]}
    assert all(outcomes[ods]["status"] == "ok" and outcomes[ods]["slot_rows"] > 0 for ods in healthy)
    failed = outcomes[victim]
    assert failed["status"] != "ok" and failed["error_class"] == "RateLimited"
    assert "wait 86400 s (Retry-After)" in failed["message"]


def test_the_data_folder_and_its_files_are_owner_only_whatever_the_umask(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)  # an existing folder is tightened too
    previous = os.umask(0o022)
    try:
        result = run_nightly(sandbox, data_dir, practices=[sandbox.registry.practices[0].ods_code])
    finally:
        os.umask(previous)
    assert [o["status"] for o in result["outcomes"]] == ["ok"]

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    landing = list((data_dir / "landing").rglob("*.ndjson"))
    assert landing, "the sync landed its responses"
    assert mode(data_dir) == 0o700
    assert {mode(p) for p in (data_dir / "landing").rglob("*") if p.is_dir()} == {0o700}
    assert mode(data_dir / "landing") == mode(data_dir / "published") == 0o700
    assert {mode(p) for p in landing} == {0o600}
    assert mode(data_dir / "warehouse.duckdb") == 0o600
    assert mode(data_dir / "published" / "dashboard.duckdb") == 0o600


def test_an_estate_over_the_task_cap_shares_its_practices_out_and_each_still_fails_alone(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 42 practices and hubs, at most 4 fetch tasks and 4 booking-log tasks (flows/task_groups.py).
    monkeypatch.setenv("SLOTSYNC_SYNC__MAX_TASKS_PER_LEG", "4")
    get_settings.cache_clear()
    monkeypatch.setattr(run_context, "get_settings", lambda: Settings())  # this test's cap only
    victim = sandbox.registry.practices[3].ods_code
    sandbox.state.faults.add(FaultRule(practice=victim, kind="status", status=401))
    fetched_in: dict[str, str] = {}
    exported_in: dict[str, str] = {}
    fetch_one, export_one = sync.fetch_practice, bookings.fetch_booking_log

    async def spy_fetch(practice: Any, *args: Any, **kwargs: Any) -> Any:
        fetched_in[practice.ods_code] = TaskRunContext.get().task_run.name  # type: ignore[union-attr]
        return await fetch_one(practice, *args, **kwargs)

    async def spy_export(organisation: Any, client: Any) -> Any:
        exported_in[organisation.ods_code] = TaskRunContext.get().task_run.name  # type: ignore[union-attr]
        return await export_one(organisation, client)

    monkeypatch.setattr(sync, "fetch_practice", spy_fetch)
    monkeypatch.setattr(bookings, "fetch_booking_log", spy_export)
    result = run_nightly(sandbox, tmp_path)

    codes = [p.ods_code for p in sandbox.registry.practices]
    assert [o["practice_ods"] for o in result["outcomes"]] == codes  # registry order, each once
    assert sorted(fetched_in) == sorted(codes)
    runs = sorted(set(fetched_in.values()))
    # 42 in 4 contiguous groups of 11: named by their first and last practice.
    assert runs == sorted(f"fetch-{codes[i]}-to-{codes[min(i + 10, 41)]}" for i in range(0, 42, 11))
    organisations = [o.ods_code for o in sandbox.registry.booking_organisations]
    assert sorted(exported_in) == sorted(organisations)
    assert len(organisations) == 6  # in 3 groups of 2: 4 groups could not be of equal size
    assert sorted(set(exported_in.values())) == sorted(
        f"booking-log-{organisations[i]}-to-{organisations[i + 1]}" for i in range(0, 6, 2)
    )
    failed = [o for o in result["outcomes"] if o["status"] != "ok"]
    assert [o["practice_ods"] for o in failed] == [victim]
    assert failed[0]["error_class"] == "ConfigurationError"
    statuses = dict(mart_rows(tmp_path, "select practice_ods, latest_status from mart_pipeline_freshness"))
    assert statuses[victim] == "failed" and sum(s == "ok" for s in statuses.values()) == 41
