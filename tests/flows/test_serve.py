"""The single-machine stack end to end, as an operator uses it.

`slotsync serve` runs as a real subprocess: it starts a Prefect server (SQLite in a temporary
PREFECT_HOME) on a free 127.0.0.1 port, the work pool, the deployments and a process worker,
which runs every flow run in a further subprocess that reaches this test's sandbox over
HTTP. The test triggers the nightly deployment with one practice's endpoint failing, reads
the run's summary, restores the endpoint, repairs the run with `slotsync rerun`, and checks
that only that practice was fetched again. Every process is stopped even when it fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.deployments import arun_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from common.clock import SimulatedClock
from sandbox.faults import FaultRule
from sandbox.server import SandboxServer
from tests.flows.conftest import run_in_thread

CLI = [sys.executable, "-m", "flows.cli"]
AS_OF = datetime(2026, 3, 24, 2, 0, tzinfo=UTC)  # Tuesday 02:00 GMT
STARTUP_TIMEOUT_S = 300  # server + worker on a busy 2-core machine
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def on_server(api_url: str, work: Callable[[], Awaitable[T]]) -> T:
    """Run Prefect client code against the served API (not the test session's own)."""

    async def scoped() -> T:
        with temporary_settings({PREFECT_API_URL: api_url}):
            return await work()

    return run_in_thread(lambda: asyncio.run(scoped()))


def stop_serve(serve: subprocess.Popen[bytes], home: Path) -> None:
    """SIGTERM `slotsync serve` (SIGKILL its group after 90 s), then kill anything left under its
    PREFECT_HOME: server, worker and flow runs."""
    if serve.poll() is None:
        serve.send_signal(signal.SIGTERM)
    try:
        serve.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(serve.pid, signal.SIGKILL)
        serve.wait(timeout=10)
    for pid in processes_under(home):
        os.kill(pid, signal.SIGKILL)


def processes_under(prefect_home: Path) -> list[int]:
    """Live processes started with this PREFECT_HOME: server, worker, flow runs."""
    needle = f"PREFECT_HOME={prefect_home}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if (
                needle in (entry / "environ").read_bytes().split(b"\0")
                and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not condition():
        assert process.poll() is None, f"serve exited early:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"serve did not come up:\n{log.read_text()}"
        time.sleep(0.5)


@pytest.mark.slow
def test_serve_runs_the_nightly_deployment_and_rerun_fetches_only_the_failed_practice(
    tmp_path: Path,
) -> None:
    home = tmp_path / "prefect-home"
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(home), PREFECT_WORKER_QUERY_SECONDS="1")
    data_dir = tmp_path / "data"
    log = tmp_path / "serve.log"
    with SandboxServer(clock=SimulatedClock(AS_OF)) as sandbox:
        registry = tmp_path / "registry.yaml"
        sandbox.registry.write(registry)
        victim = sandbox.registry.practices[5].ods_code
        with log.open("wb") as output:
            serve = subprocess.Popen(
                [
                    *CLI,
                    "serve",
                    "--registry",
                    str(registry),
                    "--data-dir",
                    str(data_dir),
                    "--port",
                    str(port),
                    "--log-format",
                    "json",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        try:
            wait_until(lambda: "slotsync is serving" in log.read_text(), serve, log)
            configuration = on_server(api_url, read_configuration)
            assert configuration["nightly"] == (["0 2 * * *"], ["Europe/London"], False)
            assert configuration["intraday"] == (["0 8-18 * * 1-5"], ["Europe/London"], False)
            assert configuration["concurrency"] == {"nightly": 1, "intraday": 1, "backfill": 1}

            sandbox.state.faults.add(FaultRule(practice=victim, kind="status", status=401))

            async def nightly() -> Any:
                return await arun_deployment(
                    "nightly_sync/nightly",
                    parameters={"as_of": AS_OF.isoformat(), "horizon_days": 7},
                    timeout=STARTUP_TIMEOUT_S,
                    poll_interval=1,
                    as_subflow=False,
                )

            first = on_server(api_url, nightly)
            assert first.state.is_completed(), first.state
            table = json.loads(on_server(api_url, practice_table))
            assert {row["practice"] for row in table if row["status"] == "failed"} == {victim}
            assert sum(1 for row in table if row["status"] == "ok") == 41
            assert practice_runs(data_dir, str(first.id)) == {"failed": [victim], "ok": 41}
            # The flow-run process logged the failure as a JSON line with its run context.
            failure = next(
                json.loads(line)
                for line in log.read_text().splitlines()
                if line.startswith("{") and f'"practice_ods":"{victim}"' in line and '"WARNING"' in line
            )
            assert failure["interaction"] == "search free slots" and failure["status"] == 401
            assert failure["flow_run_id"] == str(first.id) and failure["load_id"].startswith("nightly_sync-")

            sandbox.state.faults.clear()
            sandbox.state.traffic.reset()
            rerun = subprocess.run(
                [*CLI, "rerun", str(first.id)],
                capture_output=True,
                text=True,
                timeout=STARTUP_TIMEOUT_S,
                env={**env, "PREFECT_API_URL": api_url},
            )
            assert rerun.returncode == 0, rerun.stdout + rerun.stderr
            assert "through its deployment" in rerun.stdout and f"{victim} ok:" in rerun.stdout
            assert sandbox.state.traffic.practices() == {victim}
        finally:
            stop_serve(serve, home)
    assert serve.returncode == 0, log.read_text()
    assert "deployments stay active" in log.read_text()
    deadline = time.monotonic() + 10
    while processes_under(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_under(home) == [], "serve left processes behind"


async def read_configuration() -> dict[str, Any]:
    async with get_client() as client:
        deployments = {
            name: await client.read_deployment_by_name(full)
            for name, full in (
                ("nightly", "nightly_sync/nightly"),
                ("intraday", "intraday_sync/intraday"),
                ("backfill", "backfill/backfill"),
            )
        }

    def schedules(name: str) -> tuple[list[str], list[str], bool]:
        d = deployments[name]
        return ([s.schedule.cron for s in d.schedules], [s.schedule.timezone for s in d.schedules], d.paused)

    return {
        "nightly": schedules("nightly"),
        "intraday": schedules("intraday"),
        "concurrency": {
            name: d.global_concurrency_limit.limit if d.global_concurrency_limit else None
            for name, d in deployments.items()
        },
    }


async def practice_table() -> Any:
    async with get_client() as client:
        (artifact,) = await client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["nightly-sync-practices"]))
        )
    return artifact.data


def practice_runs(data_dir: Path, flow_run_id: str) -> dict[str, Any]:
    """Outcomes the warehouse recorded for the load of that flow run."""
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "select r.practice_ods, r.status from meta.practice_run as r "
            "join meta.load_ledger as l using (load_id) where l.flow_run_id = ?",
            [flow_run_id],
        ).fetchall()
    finally:
        con.close()
    return {
        "failed": sorted(ods for ods, status in rows if status == "failed"),
        "ok": sum(1 for _, status in rows if status == "ok"),
    }
