"""The warehouse's writer lock (flows/run_context.py): one writer, and never held by the dead.

A sync killed with SIGKILL while it writes must not stop the next run with the same Prefect
home (with a Prefect global concurrency slot, it did: every later run waited on the dead run's
slot). A writer that is alive keeps the lock, and whoever waits for it is told who holds it.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from common.clock import SimulatedClock
from common.config import get_settings
from flows.run_context import WriterBusy, read_writer_holder, writer_lock_path, writer_slot
from sandbox.server import SandboxServer
from tests.flows.conftest import run_async
from tests.reliability import Result, record
from warehouse.integrity import table_hashes

ROOT = Path(__file__).resolve().parents[2]
AS_OF = datetime(2026, 3, 24, 2, 0, tzinfo=UTC)


def _settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    return get_settings().model_copy(update={"data_dir": tmp_path, "warehouse_path": tmp_path / "w.duckdb"})


def _holding_child(tmp_path: Path) -> subprocess.Popen[str]:
    """A process that takes the writer lock, says so, and sleeps until killed."""
    code = textwrap.dedent(f"""
        import asyncio, sys
        from pathlib import Path
        from common.config import get_settings
        from flows.run_context import writer_slot

        async def main():
            settings = get_settings().model_copy(update={{
                "data_dir": Path({str(tmp_path)!r}), "warehouse_path": Path({str(tmp_path / "w.duckdb")!r})}})
            async with writer_slot(settings):
                print("held", flush=True)
                await asyncio.sleep(600)

        asyncio.run(main())
    """)
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_live_writer_keeps_the_lock_and_the_waiter_is_told_who_holds_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    child = _holding_child(tmp_path)
    try:
        async def take() -> None:
            async with writer_slot(settings, patience_s=1.0):
                pass

        with pytest.raises(WriterBusy, match=rf"pid {child.pid} on .*since 20\d\d-.*re-run it"):
            run_async(take())
        holder = read_writer_holder(settings.resolved_warehouse_path)
        assert holder is not None and holder.pid == child.pid
    finally:
        child.kill()
        child.wait()
    # Its holder dead, the lock is free at once: no lease to expire, no slot to free by hand.
    began = time.monotonic()

    async def take_now() -> str:
        async with writer_slot(settings, patience_s=0.0):
            return "took it"

    assert run_async(take_now()) == "took it"
    assert time.monotonic() - began < 2
    assert oct(writer_lock_path(settings.resolved_warehouse_path).stat().st_mode & 0o777) == oct(
        settings.storage.file_mode
    )


def test_runs_in_one_process_take_turns(tmp_path: Path) -> None:
    import asyncio

    settings = _settings(tmp_path)
    inside: list[int] = []
    overlaps: list[int] = []

    async def write(index: int) -> None:
        async with writer_slot(settings):
            inside.append(index)
            if len(inside) > 1:
                overlaps.append(index)
            await asyncio.sleep(0.05)
            inside.remove(index)

    async def all_of_them() -> None:
        await asyncio.gather(*(write(i) for i in range(4)))

    run_async(all_of_them())
    assert overlaps == []


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(clock=SimulatedClock(AS_OF)) as server:
        yield server


def _sync(registry: Path, warehouse: Path, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "sync", "--registry", str(registry), "--warehouse",
         str(warehouse), "--as-of", AS_OF.isoformat()],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )


def _held_by_someone(lock: Path) -> bool:
    """True while another process holds the flock (probed without blocking)."""
    if not lock.exists():
        return False
    with lock.open("rb") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(probe, fcntl.LOCK_UN)
        return False


def test_a_sync_killed_while_writing_does_not_hold_up_the_next_one_with_the_same_prefect_home(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    registry = tmp_path / "registry.yaml"
    sandbox.registry.write(registry)
    warehouse = tmp_path / "data" / "warehouse.duckdb"
    home = tmp_path / "prefect-home"  # one Prefect home for both runs, as on a real machine
    lock = writer_lock_path(warehouse)
    first = _sync(registry, warehouse, home)
    try:
        deadline = time.monotonic() + 180
        while not _held_by_someone(lock):
            assert first.poll() is None, "the first sync ended before it was killed"
            assert time.monotonic() < deadline, "the first sync never took the writer lock"
            time.sleep(0.01)
        holder = read_writer_holder(warehouse)
        os.killpg(first.pid, signal.SIGKILL)  # the sync and its Prefect server: no cleanup
        first.wait()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert holder is not None and holder.pid == first.pid

    began = time.monotonic()
    second = _run_to_end(_sync(registry, warehouse, home))
    elapsed = time.monotonic() - began
    assert second.returncode == 0 and "practice(s) ok, 0 failed" in second.stdout, second.stdout[-3000:]
    ledger = _read(warehouse, "select status from meta.load_ledger order by started_at")
    statuses = [status for (status,) in ledger]
    assert statuses[-1] == "completed", statuses

    # The practices' data after the kill and the re-run equals a clean run's, table by table.
    clean_warehouse = tmp_path / "clean" / "warehouse.duckdb"
    clean = _run_to_end(_sync(registry, clean_warehouse, tmp_path / "clean-prefect-home"))
    assert clean.returncode == 0, clean.stdout[-3000:]
    healed, expected = _hashes(warehouse), _hashes(clean_warehouse)
    differing = sorted(t for t in expected if healed.get(t) != expected[t])
    assert differing == [], differing
    (duplicates,) = _read(warehouse, "select count(*) - count(distinct (practice_ods, slot_id)) "
                                     "from core.fct_slot_history")[0]
    record(Result(
        "crash",
        "kill -9 of a whole sync while it holds the writer lock, then the next sync (same Prefect home)",
        1, 1, 0, duplicates,
        f"the lock died with its holder (pid {holder.pid}); the next sync took it at once and "
        f"completed in {elapsed:.0f} s; every core and mart table hashes equal to a clean run's",
        "tests/flows/test_run_context.py::"
        "test_a_sync_killed_while_writing_does_not_hold_up_the_next_one_with_the_same_prefect_home",
    ))
    assert duplicates == 0


def _run_to_end(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        output, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(process.args, process.returncode, output, "")


def _read(warehouse: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _hashes(warehouse: Path) -> dict[str, str]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return table_hashes(con)
    finally:
        con.close()
