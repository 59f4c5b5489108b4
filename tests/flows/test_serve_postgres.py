"""`slotsync serve --database postgresql+asyncpg://...` with an England-sized night of task runs.

A throwaway PostgreSQL cluster on a loopback port (tests/support/postgres.py: initdb in a temp
dir, pg_ctl, removed after) backs the Prefect server that `slotsync serve` starts after
migrating it. A flow with 7,550 task runs (tests/flows/england_sized_flow.py) runs through
the server and the process worker; the test then counts the task-run rows in PostgreSQL
itself (none lost, all Completed) and counts the events the server dropped. Its numbers are
a row of RELIABILITY.md (tests/reliability.py); its wall time is also printed (run with -s).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prefect.deployments import arun_deployment
from prefect.deployments.runner import RunnerDeployment
from prefect.types.entrypoint import EntrypointType

from common.clock import SimulatedClock
from flows.deployments import WORK_POOL
from sandbox.server import SandboxServer
from tests.flows.conftest import run_in_thread
from tests.flows.england_sized_flow import ENGLAND_TASK_RUNS, england_sized_night
from tests.flows.test_serve import CLI, free_port, on_server, stop_serve, wait_until
from tests.reliability import Result, record
from tests.support.postgres import throwaway_cluster

RUN_TIMEOUT_S = 1200


@pytest.mark.slow
def test_postgres_backed_serve_runs_an_england_sized_night_without_losing_task_runs(tmp_path: Path) -> None:
    with throwaway_cluster("prefect") as cluster:
        home, port = tmp_path / "prefect-home", free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
        env.update(PREFECT_HOME=str(home), PREFECT_WORKER_QUERY_SECONDS="1",
                   # as in production the alert automations are on, so the server's triggers
                   # service reads every event too (nothing listens there: none should fire)
                   SLOTSYNC_ALERTS__SLACK_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/alerts")
        registry = tmp_path / "registry.yaml"  # serve deploys the syncs too; they are not run here
        with SandboxServer(clock=SimulatedClock(datetime(2026, 3, 24, 2, tzinfo=UTC))) as sandbox:
            sandbox.registry.write(registry)
        log = tmp_path / "serve.log"
        with log.open("wb") as output:
            serve = subprocess.Popen(
                [*CLI, "serve", "--registry", str(registry), "--data-dir", str(tmp_path / "data"),
                 "--port", str(port), "--database", cluster.url("postgresql+asyncpg")],
                stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        try:
            wait_until(lambda: "slotsync is serving" in log.read_text(), serve, log)
            text = log.read_text()
            assert "migrations applied" in text and cluster.password not in text, text
            assert "alert 'slotsync: " in text, text  # the automations were applied

            async def run_night() -> Any:
                deployment = RunnerDeployment.from_flow(
                    england_sized_night, name="england", work_pool_name=WORK_POOL,
                    job_variables={"working_dir": str(Path.cwd())},
                    entrypoint_type=EntrypointType.MODULE_PATH,
                )
                await deployment.apply(work_pool_name=WORK_POOL)
                return await arun_deployment("england_sized_night/england", timeout=RUN_TIMEOUT_S,
                                             poll_interval=2, as_subflow=False)

            began = time.monotonic()
            run = on_server(api_url, run_night)
            elapsed = time.monotonic() - began
            assert run.state.is_completed(), (run.state, log.read_text()[-3000:])

            # Task runs are recorded from events, asynchronously: give the recorder a moment.
            rows: dict[str, int] = {}
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                # In a thread of its own: after the browser tests, Playwright's sync API leaves an
                # event loop running in this thread.
                rows = run_in_thread(
                    lambda: asyncio.run(task_run_rows(cluster.url("postgresql"), str(run.id)))
                )
                if rows.get("COMPLETED", 0) >= ENGLAND_TASK_RUNS:
                    break
                time.sleep(2)
            dropped = log.read_text().count("Subscription queue is full, dropping message")
            recorded = sum(rows.values())
            record(Result(
                "soak", "an England night's task runs through Prefect on PostgreSQL",
                ENGLAND_TASK_RUNS, rows.get("COMPLETED", 0),
                max(ENGLAND_TASK_RUNS - recorded, 0), max(recorded - ENGLAND_TASK_RUNS, 0),
                f"`slotsync serve --database postgresql+asyncpg://...`, server and worker: "
                f"{recorded} task-run records, {dropped} events dropped, run {elapsed:.0f} s",
                "tests/flows/test_serve_postgres.py::"
                "test_postgres_backed_serve_runs_an_england_sized_night_without_losing_task_runs",
            ))
            assert rows == {"COMPLETED": ENGLAND_TASK_RUNS}, rows
            assert dropped == 0, f"the server dropped {dropped} event(s)"
            print(f"\n{ENGLAND_TASK_RUNS} task runs through PostgreSQL-backed Prefect in {elapsed:.0f} s")
        finally:
            stop_serve(serve, home)


async def task_run_rows(dsn: str, flow_run_id: str) -> dict[str, int]:
    """Task-run rows of the run in Prefect's own PostgreSQL tables, by state type."""
    con = await asyncpg.connect(dsn)
    try:
        found = await con.fetch(
            "select state_type::text as state, count(*) as n from task_run "
            "where flow_run_id = $1::uuid group by 1", flow_run_id,
        )
    finally:
        await con.close()
    return {row["state"]: row["n"] for row in found}

