"""Re-runs change nothing: a double run and a crash-then-re-run give the clean run's content."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from common.clock import SimulatedClock
from flows.sync import nightly_sync
from sandbox.server import SandboxServer
from tests.flows.conftest import run_async
from warehouse import fold
from warehouse import load as loader
from warehouse.integrity import content_hash, table_hashes

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
        nightly_sync(
            registry_path=str(registry_path),
            data_dir=str(data_dir),
            warehouse_path=str(data_dir / "wh.duckdb"),
            as_of=AS_OF,
        )
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
    sandbox: SandboxServer,
    tmp_path: Path,
    clean_run: tuple[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Batches of about four practices, one transaction each; the 4th dies before its commit.
    monkeypatch.setattr(loader, "BATCH_BYTES", 10 * 1024 * 1024)
    real_mark = loader._mark_units_complete
    calls = {"n": 0}
    batch_sizes: list[int] = []

    def crash_on_the_4th(con: Any, practices: Any, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        batch_sizes.append(len(practices))
        if calls["n"] == 4:
            raise RuntimeError("simulated crash in the middle of a load's transaction")
        real_mark(con, practices, *args, **kwargs)

    monkeypatch.setattr(loader, "_mark_units_complete", crash_on_the_4th)
    with pytest.raises(RuntimeError, match="simulated crash"):
        sync(sandbox, tmp_path)
    monkeypatch.setattr(loader, "_mark_units_complete", real_mark)

    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        status = con.execute("select status from meta.load_ledger").fetchall()
        staged = con.execute(
            "select count(distinct practice_ods) from staging.stg_gpconnect__slots"
        ).fetchall()
        units = con.execute(
            "select count(distinct practice_ods), count(*) filter (where folded_at is not null) "
            "from meta.sync_window"
        ).fetchall()
    finally:
        con.close()
    # The error ended the load failed (flows/load_guard.py): never completed, never left running.
    assert status == [("failed",)], "the crashed load must not look completed"
    # Every practice is either fully written (staging and its units) or not at all, and the
    # batch that crashed left nothing.
    assert len(batch_sizes) == 4 and max(batch_sizes[:3]) > 1, batch_sizes
    assert staged[0][0] == units[0][0] == sum(batch_sizes[:3]), "committed batches only, none half-way"
    assert units[0][1] == 0, "the fold runs once per load, after every practice is loaded"

    sync(sandbox, tmp_path)
    after = hashes(tmp_path)
    differing = {k for k in after[1] if after[1][k] != clean_run[1].get(k)}
    assert not differing, f"tables differ from a clean run: {sorted(differing)}"
    assert after[0] == clean_run[0]


def test_a_crash_between_loading_and_folding_is_healed_by_the_next_load(
    sandbox: SandboxServer,
    tmp_path: Path,
    clean_run: tuple[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every practice's staging is committed, then the fold dies half-way through its rounds.
    real_round = fold._fold_round
    calls = {"n": 0}

    def crash_in_the_second_round(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash while folding slot history")
        real_round(*args, **kwargs)

    monkeypatch.setattr(fold, "_fold_round", crash_in_the_second_round)
    with pytest.raises(RuntimeError, match="simulated crash"):
        sync(sandbox, tmp_path)
    monkeypatch.setattr(fold, "_fold_round", real_round)

    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        staged = con.execute(
            "select count(distinct practice_ods) from staging.stg_gpconnect__slots"
        ).fetchall()
        history = con.execute("select count(*) from core.fct_slot_history").fetchall()
        pending = con.execute("select count(*) from meta.sync_window where folded_at is null").fetchall()
    finally:
        con.close()
    assert staged == [(42,)]
    # Practices are folded in groups, one transaction each: the failed group left nothing.
    assert history[0][0] < 60_000
    assert pending[0][0] > 0

    sync(sandbox, tmp_path)
    after = hashes(tmp_path)
    differing = {k for k in after[1] if after[1][k] != clean_run[1].get(k)}
    assert not differing, f"tables differ from a clean run: {sorted(differing)}"
    assert after[0] == clean_run[0]
