"""Onboarding the real way: `slotsync registry build --icb` against the sandbox's ORD/SDS, then
`slotsync sync` on exactly that file (no edits), the real nightly flow over loopback HTTP."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from common.clock import SimulatedClock
from common.uktime import uk_day, uk_midnight
from connectors.registry import load_registry
from flows.cli import app
from sandbox.reference_data import reference_data_for
from sandbox.server import SandboxServer
from tests.flows.conftest import run_in_thread

AS_OF = datetime(2026, 3, 24, 2, 0, tzinfo=UTC)  # Tuesday 02:00 GMT


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(clock=SimulatedClock(AS_OF)) as server:
        yield server


def build_args(sandbox: SandboxServer, tmp_path: Path, output: Path) -> list[str]:
    base = sandbox.base_url
    return [
        "registry", "build", "--icb", "QRL", "-o", str(output),
        "--ord-url", f"{base}/ORD/2-0-0",
        "--sds-url", f"{base}/spine-directory/FHIR/R4",
        "--list-sizes", f"{base}/_reference/gp-reg-pat-prac-all.csv",
        "--nhs111-csv", f"{base}/_reference/gp-practices-111-booking.csv",
        "--hubs", str(tmp_path / "hubs.yaml"),
        "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip


def published(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(tmp_path / "published" / "dashboard.duckdb"), read_only=True)
    try:
        con.execute("use dashboard.marts")
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_sync_runs_unedited_on_a_built_registry_and_captures_every_practice(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    reference = reference_data_for(sandbox.state)
    (tmp_path / "hubs.yaml").write_text(reference.hub_file())
    registry_path = tmp_path / "registry.yaml"
    built = CliRunner().invoke(app, build_args(sandbox, tmp_path, registry_path))
    assert built.exit_code == 0, built.output
    registry = load_registry(registry_path)
    codes = {p.ods_code for p in registry.practices}
    # The build found the whole estate (every practice and hub the sandbox serves), nothing more.
    assert codes == {p.ods_code for p in sandbox.registry.practices}
    assert {p.kind for p in registry.practices} == {"practice", "hub"}

    # The CLI's sync calls asyncio.run itself: run it where no event loop is running.
    sync_args = [
        "sync", "--registry", str(registry_path), "--warehouse", str(tmp_path / "warehouse.duckdb"),
        "--data-dir", str(tmp_path), "--as-of", AS_OF.isoformat(),
    ]  # fmt: skip
    synced = run_in_thread(lambda: CliRunner().invoke(app, sync_args))
    assert synced.exit_code == 0, synced.output
    assert f"{len(codes)} practice(s) ok, 0 failed" in synced.output

    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        runs = con.execute("select practice_ods, status, slot_rows from meta.practice_run").fetchall()
    finally:
        con.close()
    assert {ods for ods, _, _ in runs} == codes
    assert all(status == "ok" and slot_rows > 0 for _, status, slot_rows in runs), runs

    # Captured means the warehouse agrees with the sandbox's ground truth, practice by practice.
    horizon_end = uk_midnight(uk_day(AS_OF) + timedelta(days=28))
    hubs = {p.ods_code for p in registry.practices if p.kind == "hub"}
    truth: Counter[tuple[str, Any]] = Counter(
        (row.practice_ods, uk_day(row.start_utc))
        for row in sandbox.state.ground_truth()
        if row.audience == "nhs111"
        and row.bookable
        and row.state == "free"
        and row.start_utc >= AS_OF
        and row.end_utc <= horizon_end
        and row.practice_ods not in hubs
    )
    observed = {
        (ods, day): free
        for ods, day, free in published(
            tmp_path, "select practice_ods, slot_day, nhs111_reserved_free from mart_111_quota_daily"
        )
        if free
    }
    assert truth and observed == dict(truth)
    freshness = dict(published(tmp_path, "select practice_ods, latest_status from mart_pipeline_freshness"))
    assert set(freshness) == codes and set(freshness.values()) == {"ok"}
