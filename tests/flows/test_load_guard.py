"""A load never stays `running` after its process ends in a way we control, and
`slotsync status --check` reports one left running by a process that died outright.

Real child processes (tests/flows/load_child.py) begin a load and are stopped from outside:
SIGTERM, outside Prefect and inside a Prefect flow (how Prefect cancels a run), must end the
load `failed`; SIGKILL runs no cleanup, so status names the load, its dead process and the
re-run. Real nightly flows against the sandbox with an error injected after the load began
must end it `failed` with the error in words.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from common.clock import SimulatedClock
from common.holder import Holder, holder_state, this_process
from flows import sync
from flows.cli import app
from flows.load_guard import LEDGER_WRITE_PATIENCE_S
from sandbox.server import SandboxServer
from tests.flows.conftest import run_async
from warehouse.db import migrations, open_warehouse

ROOT = Path(__file__).resolve().parents[2]
AS_OF = datetime(2026, 3, 24, 2, 0, tzinfo=UTC)


def ledger(warehouse: Path) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(
            "select load_id, status, detail, holder_pid from meta.load_ledger order by started_at"
        ).fetchall()
    finally:
        con.close()


@pytest.fixture
def child_env() -> dict[str, str]:
    # The Prefect mode reaches the session's test API; both read the repository's packages.
    return {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": str(PREFECT_API_URL.value())}


@pytest.fixture
def start_child(child_env: dict[str, str]) -> Iterator[Any]:
    children: list[subprocess.Popen[str]] = []

    def start(mode: str, warehouse: Path, load_id: str) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.flows.load_child", mode, str(warehouse), load_id],
            cwd=ROOT, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        children.append(child)
        assert child.stdout is not None
        line = child.stdout.readline()  # blocks until the load has begun (or the child died)
        assert line.strip() == "begun", child.communicate(timeout=30)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)


def status(warehouse: Path, *extra: str) -> Any:
    return CliRunner().invoke(app, ["status", "--warehouse", str(warehouse), "--check", *extra])


def test_a_live_holder_is_running_and_a_killed_one_fails_the_check_naming_the_load(
    tmp_path: Path, start_child: Any
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    child = start_child("plain", warehouse, "nightly_sync-kill9")
    alive = status(warehouse)
    assert alive.exit_code == 0, alive.output
    assert (f"load nightly_sync-kill9 (nightly_sync) running since 2026-03-24 02:00 UTC, "
            f"process {child.pid} is alive") in alive.output
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert ledger(warehouse)[0][:2] == ("nightly_sync-kill9", "running")  # no cleanup ran
    dead = status(warehouse)
    assert dead.exit_code == 2, dead.output
    (line,) = [text for text in dead.output.splitlines() if "nightly_sync-kill9" in text]
    assert line == (f"LOAD LEFT RUNNING nightly_sync-kill9 (nightly_sync) since 2026-03-24 02:00 UTC: "
                    f"its process {child.pid} on {this_process().host} is gone. "
                    "Next step: slotsync rerun nightly_sync-kill9")
    as_json = status(warehouse, "--json")
    assert as_json.exit_code == 2 and "LOAD LEFT RUNNING nightly_sync-kill9" in as_json.stderr


SIGTERM_REASON = "stopped by SIGTERM"
CANCEL_REASON = "cancelled (a flow-run cancellation or SIGTERM to its process)"


@pytest.mark.parametrize(("mode", "reasons"), [
    ("plain", (SIGTERM_REASON,)),
    # Prefect's bridge raises where the main thread is: mostly in the event loop, which then
    # cancels the run's task; in the run's own code if it was running at that instant.
    ("prefect", (CANCEL_REASON, SIGTERM_REASON)),
])
def test_sigterm_ends_the_load_failed(
    tmp_path: Path, start_child: Any, mode: str, reasons: tuple[str, ...]
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    child = start_child(mode, warehouse, f"nightly_sync-term-{mode}")
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60 + LEDGER_WRITE_PATIENCE_S)
    assert child.returncode != 0
    ((load_id, state, detail, pid),) = ledger(warehouse)
    assert (load_id, state, pid) == (f"nightly_sync-term-{mode}", "failed", child.pid), err
    assert detail.startswith(reasons) and detail.endswith("before the load completed"), (detail, err)
    assert status(warehouse).exit_code == 0  # nothing left running


def test_a_holder_on_another_host_cannot_be_checked(tmp_path: Path) -> None:
    here = this_process()
    assert holder_state(Holder(here.pid, "another-host", here.started)) == "elsewhere"
    assert holder_state(here) == "alive"
    assert holder_state(Holder(here.pid, here.host, "other-boot:1")) == "gone"  # pid reused


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(clock=SimulatedClock(AS_OF)) as server:
        yield server


def boom(*args: Any, **kwargs: Any) -> Any:
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("where", ["fetch_practice", "load_and_publish"])
def test_an_error_after_begin_load_ends_the_load_failed_with_the_reason(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    registry = tmp_path / "registry.yaml"
    sandbox.registry.write(registry)
    monkeypatch.setattr(sync, where, boom)
    ods = [p.ods_code for p in sandbox.registry.practices if p.kind == "practice"][:2]
    with pytest.raises(OSError, match="No space left"):
        run_async(sync.nightly_sync(
            registry_path=str(registry), warehouse_path=str(tmp_path / "warehouse.duckdb"),
            data_dir=str(tmp_path), as_of=AS_OF, horizon_days=2, practices=ods,
        ))
    ((_, state, detail, pid),) = ledger(tmp_path / "warehouse.duckdb")
    assert (state, pid) == ("failed", os.getpid())
    assert detail == ("stopped by an error before the load completed: OSError: "
                      "[Errno 28] No space left on device")


def test_a_load_begun_before_holders_were_recorded_loads_and_cannot_be_checked(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    for migration in migrations():
        if migration.version < 10:  # the warehouse as it was before V010
            con.execute(migration.sql)
            con.execute("insert into meta.schema_version values (?, ?, now())",
                        [migration.version, migration.name])
    con.execute("insert into meta.load_ledger (load_id, flow_name, as_of, started_at, status) "
                "values ('nightly_sync-old', 'nightly_sync', $t, $t, 'running')", {"t": AS_OF})
    con.close()
    expected = ("load nightly_sync-old (nightly_sync) running since 2026-03-24 02:00 UTC; its process "
                "was not recorded (begun before migration V010), cannot check")
    before = status(warehouse)  # read-only: V010 not applied yet
    assert before.exit_code == 0 and expected in before.output, before.output
    open_warehouse(warehouse).close()  # the next writer applies V010; the old row keeps no holder
    after = status(warehouse)
    assert after.exit_code == 0 and expected in after.output, after.output
    assert ledger(warehouse) == [("nightly_sync-old", "running", None, None)]
