"""Operating slotsync: run states, summary artifacts, re-runs, backfills, status and windows.

Real sandbox over loopback HTTP and real Prefect flow runs (the session's test API); the
commands run through Typer's CliRunner (`rerun` in a worker thread, see `run_async`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from typer.testing import CliRunner

from common.clock import SimulatedClock
from flows.cli import app
from flows.operations import BACKFILL_STREAM, SCHEDULED_STREAM
from flows.sync import TooManyPracticesFailed, backfill, nightly_sync
from sandbox.faults import FaultRule
from sandbox.server import SandboxServer
from tests.flows.conftest import run_async, run_in_thread
from warehouse import load
from warehouse.integrity import table_hashes

AS_OF = datetime(2026, 3, 24, 2, 0, tzinfo=UTC)  # Tuesday 02:00 GMT
LATER = AS_OF + timedelta(hours=3)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(clock=SimulatedClock(AS_OF)) as server:
        yield server


@pytest.fixture
def registry_path(sandbox: SandboxServer, tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    sandbox.registry.write(path)
    return path


def practices(sandbox: SandboxServer, count: int) -> list[str]:
    return [p.ods_code for p in sandbox.registry.practices if p.kind == "practice"][:count]


def run_nightly(registry_path: Path, tmp_path: Path, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = run_async(
        nightly_sync(
            registry_path=str(registry_path),
            warehouse_path=str(tmp_path / "warehouse.duckdb"),
            data_dir=str(tmp_path),
            as_of=AS_OF,
            horizon_days=7,
            **kwargs,
        )
    )
    return result


def cli(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(app, list(args), input=input)


def query(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


async def latest_artifact(key: str) -> Any:
    async with get_client() as client:
        found = await client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    return found[0].data


def test_a_failed_practice_is_listed_then_rerun_alone_and_status_clears(
    sandbox: SandboxServer, registry_path: Path, tmp_path: Path
) -> None:
    chosen = practices(sandbox, 6)  # 1 of 6 failing is under the 20% threshold
    victim = chosen[1]
    sandbox.state.faults.add(FaultRule(practice=victim, kind="status", status=401))
    first = run_nightly(registry_path, tmp_path, practices=chosen)
    assert [o["practice_ods"] for o in first["outcomes"] if o["status"] == "failed"] == [victim]
    run_id = first["flow_run_id"]

    # The run completed and its artifacts list the failure.
    table = json.loads(run_async(latest_artifact("nightly-sync-practices")))
    assert {row["practice"]: row["status"] for row in table}[victim] == "failed"
    report = run_async(latest_artifact("nightly-sync-report"))
    assert "5 of 6 practices ok" in report and f"slotsync rerun {run_id}" in report

    warehouse = str(tmp_path / "warehouse.duckdb")
    shown = cli("status", "--warehouse", warehouse, "--as-of", LATER.isoformat())
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].startswith("42 practices: 5 fresh, 0 stale, 37 never synced, 1 with an open failure")
    assert any(line.startswith(victim) and "FAILED" in line for line in lines)
    assert "search free slots, HTTP 401, ConfigurationError" in shown.output
    assert "next step: fix the practice's registry entry" in shown.output
    assert f"re-run only what failed: slotsync rerun {run_id}" in shown.output
    assert cli("status", "--warehouse", warehouse, "--as-of", LATER.isoformat(), "--check").exit_code == 2

    sandbox.state.faults.clear()
    sandbox.state.traffic.reset()
    rerun = run_in_thread(lambda: cli("rerun", run_id))
    assert rerun.exit_code == 0, rerun.output
    assert f"{victim} ok:" in rerun.output and "in this process" in rerun.output
    assert sandbox.state.traffic.practices() == {victim}

    # Same observation instant, so the victim's units complete the original observation.
    (observed,) = query(
        tmp_path, f"select distinct observed_at from meta.sync_window where practice_ods = '{victim}'"
    )
    assert observed[0] == AS_OF
    after = cli("status", "--warehouse", warehouse, "--as-of", LATER.isoformat(), "--all")
    assert "0 with an open failure" in after.output
    victim_line = next(line for line in after.output.splitlines() if line.startswith(victim))
    assert "2026-03-24 02:00" in victim_line and victim_line.endswith(" ok")

    # A second re-run finds every planned unit complete and fetches nothing.
    sandbox.state.traffic.reset()
    again = run_async(
        nightly_sync(
            registry_path=str(registry_path),
            warehouse_path=warehouse,
            data_dir=str(tmp_path),
            as_of=AS_OF,
            rerun_of=run_id,
        )
    )
    assert again["outcomes"] == [] and again["skipped_practices"] == 6
    assert sandbox.state.traffic.practices() == set()


def test_too_many_failures_fail_the_run_but_keep_what_succeeded(
    sandbox: SandboxServer, registry_path: Path, tmp_path: Path
) -> None:
    chosen = practices(sandbox, 3)
    for ods in chosen[:2]:
        sandbox.state.faults.add(FaultRule(practice=ods, kind="status", status=403))
    with pytest.raises(TooManyPracticesFailed, match=r"2 of 3 practices failed \(more than 20%\)"):
        run_nightly(registry_path, tmp_path, practices=chosen)
    statuses = dict(query(tmp_path, "select practice_ods, status from meta.practice_run"))
    assert statuses == {chosen[0]: "failed", chosen[1]: "failed", chosen[2]: "ok"}
    assert query(tmp_path, "select status from meta.load_ledger") == [("completed",)]


def test_a_backfill_records_its_own_windows_and_leaves_the_scheduled_state(
    sandbox: SandboxServer, registry_path: Path, tmp_path: Path
) -> None:
    ods = practices(sandbox, 1)
    run_nightly(registry_path, tmp_path, practices=ods)
    warehouse = str(tmp_path / "warehouse.duckdb")
    before = cli("status", "--warehouse", warehouse, "--as-of", LATER.isoformat(), "--all").output

    result = run_async(
        backfill(
            registry_path=str(registry_path),
            first_day=date(2026, 4, 6),
            last_day=date(2026, 4, 12),
            warehouse_path=warehouse,
            data_dir=str(tmp_path),
            as_of=AS_OF,
            practices=ods,
        )
    )
    assert result["stream"] == BACKFILL_STREAM and result["outcomes"][0]["status"] == "ok"
    streams = dict(query(tmp_path, "select stream, min(window_start) from meta.sync_window group by all"))
    assert set(streams) == {SCHEDULED_STREAM, BACKFILL_STREAM}
    assert streams[BACKFILL_STREAM] == datetime(2026, 4, 6, tzinfo=UTC) - timedelta(hours=1)  # BST
    # Status (last sync, freshness, failures) reads the scheduled stream only.
    assert cli("status", "--warehouse", warehouse, "--as-of", LATER.isoformat(), "--all").output == before
    shown = cli("windows", "show", "--practice", ods[0], "--warehouse", warehouse)
    assert shown.exit_code == 0 and BACKFILL_STREAM in shown.output and " slots " in shown.output


def test_windows_reset_says_what_it_deletes_and_needs_confirmation(
    sandbox: SandboxServer, registry_path: Path, tmp_path: Path
) -> None:
    ods = practices(sandbox, 2)
    run_nightly(registry_path, tmp_path, practices=ods)
    warehouse = str(tmp_path / "warehouse.duckdb")
    count = f"select count(*) from meta.sync_window where practice_ods = '{ods[0]}'"
    units = query(tmp_path, count)[0][0]
    assert units > 0

    declined = cli("windows", "reset", "--practice", ods[0], "--warehouse", warehouse, input="n\n")
    assert declined.exit_code == 1
    assert f"This deletes {units} completed window unit(s) of practice {ods[0]}" in declined.output
    assert "Raw responses and staging rows are kept" in declined.output
    assert query(tmp_path, count)[0][0] == units

    done = cli("windows", "reset", "--practice", ods[0], "--warehouse", warehouse, "--yes")
    assert done.exit_code == 0 and f"deleted {units} window unit(s)" in done.output
    assert query(tmp_path, count)[0][0] == 0
    status = cli("status", "--warehouse", warehouse, "--as-of", LATER.isoformat()).output
    # Without its windows the practice has no usable sync any more; the other is untouched.
    assert any(line.startswith(ods[0]) and "never" in line for line in status.splitlines())
    assert not any(line.startswith(ods[1]) for line in status.splitlines())


def test_rerun_of_a_crashed_load_equals_a_clean_run(
    sandbox: SandboxServer, registry_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = practices(sandbox, 6)
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    run_nightly(registry_path, clean_dir, practices=chosen)

    real_load = load.load_practice_files

    def load_two_then_crash(con: Any, files: Any, **kwargs: Any) -> Any:
        real_load(con, files[:2], **kwargs)
        raise RuntimeError("simulated crash after two practices were loaded")

    monkeypatch.setattr(load, "load_practice_files", load_two_then_crash)
    crashed = run_async(
        nightly_sync(
            registry_path=str(registry_path),
            warehouse_path=str(tmp_path / "warehouse.duckdb"),
            data_dir=str(tmp_path),
            as_of=AS_OF,
            horizon_days=7,
            practices=chosen,
            return_state=True,
        )
    )
    assert crashed.is_failed()
    monkeypatch.setattr(load, "load_practice_files", real_load)

    sandbox.state.traffic.reset()
    repaired = run_async(
        nightly_sync(
            registry_path=str(registry_path),
            warehouse_path=str(tmp_path / "warehouse.duckdb"),
            data_dir=str(tmp_path),
            as_of=AS_OF,
            rerun_of=str(crashed.state_details.flow_run_id),
        )
    )
    # Two practices were loaded before the crash: only the other four are searched again.
    assert repaired["skipped_practices"] == 2 and len(repaired["outcomes"]) == 4
    searched = {ods for (ods, name) in sandbox.state.traffic.counts() if name == "SEARCH_SLOTS"}
    assert len(searched) == 4 and searched < set(chosen)
    assert hashes(tmp_path) == hashes(clean_dir)


def hashes(data_dir: Path) -> dict[str, str]:
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return table_hashes(con)
    finally:
        con.close()
