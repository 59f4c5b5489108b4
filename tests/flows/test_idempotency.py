"""Re-runs change nothing: a double run and a crash-then-re-run give the clean run's content."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from connectors.clock import SimulatedClock
from connectors.sandbox.server import SandboxServer
from flows.sync import nightly_sync
from tests.flows.conftest import run_async
from warehouse.integrity import content_hash, table_hashes
from warehouse.loader import Warehouse

AS_OF = datetime(2026, 3, 25, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(clock=SimulatedClock(AS_OF)) as server:
        yield server


def sync(sandbox: SandboxServer, data_dir: Path) -> dict[str, Any]:
    registry_path = data_dir / "registry.yaml"
    data_dir.mkdir(parents=True, exist_ok=True)
    sandbox.registry.write(registry_path)
    result: dict[str, Any] = run_async(
        nightly_sync(registry_path=str(registry_path), data_dir=str(data_dir),
                     warehouse_path=str(data_dir / "wh.duckdb"), as_of=AS_OF)
    )
    return result


def hashes(data_dir: Path) -> tuple[str, dict[str, str]]:
    con = duckdb.connect(str(data_dir / "wh.duckdb"), read_only=True)
    try:
        return content_hash(con), table_hashes(con)
    finally:
        con.close()


@pytest.fixture(scope="module")
def clean_run(sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    data_dir = tmp_path_factory.mktemp("clean")
    sync(sandbox, data_dir)
    return hashes(data_dir)


def test_running_the_same_sync_twice_changes_nothing(
    sandbox: SandboxServer, tmp_path: Path, clean_run: tuple[str, dict[str, str]]
) -> None:
    sync(sandbox, tmp_path)
    first = hashes(tmp_path)
    sync(sandbox, tmp_path)
    second = hashes(tmp_path)
    differing = {k for k in second[1] if second[1][k] != first[1].get(k)}
    assert not differing, f"tables changed on the second run: {sorted(differing)}"
    assert second[0] == first[0] == clean_run[0]
    assert int(first[1]["core.fct_slot_history"].split(":")[0]) > 10_000


def test_a_crash_mid_write_then_a_re_run_equals_a_clean_run(
    sandbox: SandboxServer, tmp_path: Path, clean_run: tuple[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_apply = Warehouse.apply_observation
    calls = {"n": 0}

    def crash_on_the_25th(self: Warehouse, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 25:
            raise RuntimeError("simulated crash in the middle of a practice's transaction")
        real_apply(self, *args, **kwargs)

    monkeypatch.setattr(Warehouse, "apply_observation", crash_on_the_25th)
    with pytest.raises(RuntimeError, match="simulated crash"):
        sync(sandbox, tmp_path)
    monkeypatch.setattr(Warehouse, "apply_observation", real_apply)

    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        status = con.execute("select status from meta.load_ledger").fetchall()
        partial = con.execute("select count(distinct practice_ods) from core.fct_slot_history").fetchall()
    finally:
        con.close()
    assert status == [("running",)], "the crashed load must not look completed"
    assert 0 < partial[0][0] < 42, "some practices committed before the crash, none half-way"

    sync(sandbox, tmp_path)
    after = hashes(tmp_path)
    differing = {k for k in after[1] if after[1][k] != clean_run[1].get(k)}
    assert not differing, f"tables differ from a clean run: {sorted(differing)}"
    assert after[0] == clean_run[0]
