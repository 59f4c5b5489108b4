"""Crash safety: kill -9 the warehouse writer anywhere; nothing partial shows, a re-run heals.

The writer runs in a child process (tests/flows/crash_child.py) loading a nightly
observation that a real flow landed. It is killed with SIGKILL, no cleanup, either by
itself on the n-th call of a chosen warehouse step or by this test after a seeded random
delay. Then: the warehouse opens (migrations and WAL replay included); the ledger does not
call the load completed unless it finished; every practice is fully in (all its units,
staging rows and completion marks) or fully out; no dashboard snapshot claims a load that
did not complete; and a re-run (`rerun_of`, or a plain run at the same instant) completes
with a content hash equal to a clean run's. In-process crash tests: test_idempotency.py.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from common.clock import SimulatedClock
from flows.operations import find_load
from flows.sync import nightly_sync
from sandbox.server import SandboxServer
from tests.flows.conftest import run_async
from tests.flows.crash_child import KILL_POINTS
from tests.reliability import Result, record
from warehouse.db import open_warehouse
from warehouse.integrity import table_hashes

CRASH_NOT_COUNTED = (
    "not counted row by row: every core and mart table of the healed warehouse "
    "hashes equal to a clean run's (asserted)"
)

AS_OF = datetime(2026, 3, 25, 2, 0, tzinfo=UTC)
PRACTICES = 8  # four transactions of two practices on the loader's four connections
ROOT = Path(__file__).resolve().parents[2]
SEEDS = (1, 2, 3, 4)
# Which call of each step dies. The four groups' transactions run at once on four
# connections (4 staging inserts each), so a kill there may find none, some or (for the
# last mark) most of them committed: each practice must still be fully in or fully out.
CHILD_VALIDATES_WITHOUT_BOOKINGS = "marts.mart_data_quality_checks"
NTH = {"_insert_staging": 11, "_mark_units_complete": 3, "_fold_round": 2}


@dataclass(frozen=True)
class Template:
    """A clean nightly run: its landed files are replayed by the crash children."""

    data_dir: Path
    load_id: str
    practices: list[str]
    units: dict[str, int]  # completed units per practice
    slot_rows: dict[str, int]
    table_hashes: dict[str, str]
    horizon_days: int
    window_days: int


def nightly(sandbox: SandboxServer, data_dir: Path, practices: list[str], **kwargs: Any) -> dict[str, Any]:
    registry_path = data_dir / "registry.yaml"
    sandbox.registry.write(registry_path)
    result: dict[str, Any] = run_async(
        nightly_sync(
            registry_path=str(registry_path),
            data_dir=str(data_dir),
            warehouse_path=str(data_dir / "wh.duckdb"),
            as_of=AS_OF,
            practices=practices,
            **kwargs,
        )
    )
    return result


def read(data_dir: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(data_dir / "wh.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def warehouse_tables(data_dir: Path) -> dict[str, str]:
    con = duckdb.connect(str(data_dir / "wh.duckdb"), read_only=True)
    try:
        return table_hashes(con)
    finally:
        con.close()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(clock=SimulatedClock(AS_OF)) as server:
        yield server


@pytest.fixture(scope="module")
def template(sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Template:
    data_dir = tmp_path_factory.mktemp("template")
    practices = [p.ods_code for p in sandbox.registry.practices[:PRACTICES]]
    result = nightly(sandbox, data_dir, practices)
    assert all(o["status"] == "ok" for o in result["outcomes"])
    con = duckdb.connect(str(data_dir / "wh.duckdb"), read_only=True)
    try:
        loaded = find_load(con, result["load_id"])
    finally:
        con.close()
    assert loaded is not None and loaded.plan is not None
    units = dict(read(data_dir, "select practice_ods, count(*) from meta.sync_window group by all"))
    rows = dict(
        read(data_dir, "select practice_ods, count(*) from staging.stg_gpconnect__slots group by all")
    )
    return Template(
        data_dir,
        result["load_id"],
        practices,
        units,
        rows,
        warehouse_tables(data_dir),
        loaded.plan.horizon_days,
        loaded.plan.window_days,
    )


def prepare(template: Template, data_dir: Path) -> None:
    """A fresh data dir holding the template's landed files (the fetch already happened)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(template.data_dir / "registry.yaml", data_dir / "registry.yaml")
    shutil.copytree(template.data_dir / "landing" / template.load_id, data_dir / "landing" / template.load_id)


def child(template: Template, data_dir: Path, kill_at: str | None = None) -> subprocess.Popen[str]:
    spec = {
        "data_dir": str(data_dir),
        "load_id": template.load_id,
        "as_of": AS_OF.isoformat(),
        "practices": template.practices,
        "horizon_days": template.horizon_days,
        "window_days": template.window_days,
        "kill_at": kill_at,
        # One practice a batch (a batch is one transaction): kills land between commits too.
        "batch_bytes": 1,
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.flows.crash_child", json.dumps(spec)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def uninterrupted_seconds(template: Template, tmp_path_factory: pytest.TempPathFactory) -> float:
    """How long an uninterrupted child writes; also proves the child equals the real flow."""
    data_dir = tmp_path_factory.mktemp("child-clean")
    prepare(template, data_dir)
    proc = child(template, data_dir)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "loading"
    started = time.monotonic()
    out, err = proc.communicate(timeout=300)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0 and "done" in out, err
    assert read(data_dir, "select status from meta.load_ledger") == [("completed",)]
    assert (
        dict(read(data_dir, "select practice_ods, count(*) from staging.stg_gpconnect__slots group by all"))
        == template.slot_rows
    )
    return elapsed


def check_after_crash(template: Template, data_dir: Path) -> tuple[str, int]:
    """What must hold after any kill; returns (ledger status, practices fully in)."""
    open_warehouse(data_dir / "wh.duckdb").close()  # opens read-write: migrations, WAL replay
    ((status,),) = read(
        data_dir, "select status from meta.load_ledger where load_id = ?", [template.load_id]
    ) or [("never started",)]
    staged = dict(
        read(
            data_dir,
            "select practice_ods, count(*) from staging.stg_gpconnect__slots "
            "where observed_at = ? group by all",
            [AS_OF],
        )
    )
    units = dict(
        read(
            data_dir,
            "select practice_ods, count(*) from meta.sync_window where load_id = ? group by all",
            [template.load_id],
        )
    )
    raw = dict(
        read(
            data_dir,
            "select practice_ods, count(*) from raw.gpc_slot_search where load_id = ? group by all",
            [template.load_id],
        )
    )
    fully_in = 0
    for ods in template.practices:
        parts = (staged.get(ods, 0), units.get(ods, 0), raw.get(ods, 0))
        whole = (template.slot_rows[ods], template.units[ods], template.units[ods])
        assert parts in ((0, 0, 0), whole), f"practice {ods} is half loaded: {parts} of {whole}"
        fully_in += parts == whole
    if status != "completed":
        assert status in ("running", "never started"), status
        published = data_dir / "published" / "dashboard.duckdb"
        assert not published.exists(), "a snapshot was published for a load that never completed"
    else:
        assert fully_in == len(template.practices)
    return status, fully_in


def heal(sandbox: SandboxServer, template: Template, data_dir: Path, *, rerun: bool) -> str:
    """Re-run (`rerun_of` the crashed load, or a plain run at its instant); returns which.

    The child has no bookings leg (it cannot fetch), so a load it *completed* lacks the
    bookings a real run loads before completing; a `rerun_of` of a completed load rightly
    skips them, so such a load is healed by a plain run.
    """
    ((status,),) = read(data_dir, "select status from meta.load_ledger where load_id = ?", [template.load_id])
    rerun = rerun and status != "completed"
    kwargs = {"rerun_of": template.load_id} if rerun else {}
    result = nightly(sandbox, data_dir, template.practices, **kwargs)
    assert all(o["status"] == "ok" for o in result["outcomes"])
    # The child validates without the bookings leg (it cannot fetch), so its batches' results
    # lack the appointment suite a real run's have: that one mart is left out of the
    # comparison; every other core and mart table must equal the clean run's.
    tables = warehouse_tables(data_dir)
    differing = sorted(
        k
        for k in set(tables) | set(template.table_hashes)
        if k != CHILD_VALIDATES_WITHOUT_BOOKINGS and tables.get(k) != template.table_hashes.get(k)
    )
    assert not differing, f"the healed warehouse differs from a clean run: {differing}"
    return "`rerun`" if rerun else "a plain re-run"


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_kill_9_at_a_warehouse_step_then_a_re_run_equals_a_clean_run(
    sandbox: SandboxServer, template: Template, tmp_path: Path, kill_at: str
) -> None:
    prepare(template, tmp_path)
    proc = child(template, tmp_path, f"{kill_at}:{NTH.get(kill_at, 1)}")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -9, f"the child was not killed at {kill_at}: {err[-2000:]}"
    status, fully_in = check_after_crash(template, tmp_path)
    expected = "completed" if kill_at in ("publish", "mart_tables") else "running"
    assert status == expected, f"ledger says {status} after a kill in {kill_at}"
    if kill_at in ("_fold_round", "build_models", "finish_load", "publish", "mart_tables"):
        assert fully_in == len(template.practices), "every practice's transaction had committed"
    if kill_at == "mart_tables":  # the half-written snapshot never replaced a published one
        assert not (tmp_path / "published" / "dashboard.duckdb").exists()
    how = heal(sandbox, template, tmp_path, rerun=True)
    leftovers = sorted(p.name for p in (tmp_path / "published").glob(".dashboard-*.tmp*"))
    assert not leftovers, f"the re-run's publish removes a dead writer's half-written snapshot: {leftovers}"
    record(
        Result(
            "crash",
            f"kill -9 in {kill_at.strip('_')} (call {NTH.get(kill_at, 1)})",
            1,
            1,
            None,
            None,
            f"ledger '{status}', {fully_in}/{len(template.practices)} practices fully in, "
            f"none partly; {how} heals to the clean hash",
            "tests/flows/test_crash_safety.py::"
            "test_kill_9_at_a_warehouse_step_then_a_re_run_equals_a_clean_run",
            not_measured=CRASH_NOT_COUNTED,
        )
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_kill_9_after_a_random_delay_then_a_re_run_equals_a_clean_run(
    sandbox: SandboxServer, template: Template, uninterrupted_seconds: float, tmp_path: Path, seed: int
) -> None:
    prepare(template, tmp_path)
    proc = child(template, tmp_path)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "loading"
    time.sleep(random.Random(seed).uniform(0, uninterrupted_seconds))
    proc.kill()  # SIGKILL; a no-op if it already finished
    _, err = proc.communicate(timeout=300)
    assert proc.returncode in (-9, 0), err[-2000:]
    status, fully_in = check_after_crash(template, tmp_path)
    how = heal(sandbox, template, tmp_path, rerun=seed % 2 == 1)
    killed = proc.returncode == -9
    record(
        Result(
            "crash",
            f"kill -9 after a random delay (seed {seed})",
            int(killed),
            int(killed),
            None,
            None,
            f"{'killed' if killed else 'finished first'}: ledger '{status}', "
            f"{fully_in}/{len(template.practices)} practices fully in; "
            f"{how} heals to the clean hash",
            "tests/flows/test_crash_safety.py::"
            "test_kill_9_after_a_random_delay_then_a_re_run_equals_a_clean_run",
            not_measured=CRASH_NOT_COUNTED,
        )
    )
