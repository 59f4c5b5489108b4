"""The pipelined night: batches loaded and validated while fetching goes on write what a
sequential night writes; a writer failure mid-night fails the run, and a re-run repairs it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

import flows.landed_writer
import flows.sync
from common.clock import SimulatedClock
from common.config import Settings
from sandbox import FaultRule
from sandbox.server import SandboxServer
from tests.flows.conftest import run_async
from tests.reliability import Result, record
from warehouse.integrity import content_hash, table_hashes

AS_OF = datetime(2026, 3, 25, 2, 0, tzinfo=UTC)
BATCH = 4  # practices per pipelined batch: the 42-practice estate makes ten of them
SEQUENTIAL = 100_000  # no batch ever fills: everything is loaded after the fetch, as before
DEFECTS = {"end_before_start": "slot_start_before_end", "duplicate_slot": "slot_id_unique"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(clock=SimulatedClock(AS_OF)) as server:
        yield server


def sync(sandbox: SandboxServer, data_dir: Path, monkeypatch: pytest.MonkeyPatch, batch: int,
         **kwargs: Any) -> dict[str, Any]:
    real = flows.sync.settings_for

    def with_batch(warehouse_path: str | None, data: str | None) -> Settings:
        settings = real(warehouse_path, data)
        return settings.model_copy(
            update={"sync": settings.sync.model_copy(update={"write_batch_practices": batch})})

    monkeypatch.setattr(flows.sync, "settings_for", with_batch)
    # Validate every two batches or so (a practice stages ~5,000 slots), not per 2 M slots.
    monkeypatch.setattr(flows.landed_writer.LandedWriter, "validate_rows", 30_000)
    registry_path = data_dir / "registry.yaml"
    data_dir.mkdir(parents=True, exist_ok=True)
    sandbox.registry.write(registry_path)
    result: dict[str, Any] = run_async(flows.sync.nightly_sync(
        registry_path=str(registry_path), data_dir=str(data_dir),
        warehouse_path=str(data_dir / "wh.duckdb"), as_of=AS_OF, **kwargs,
    ))
    return result


def hashes(data_dir: Path) -> tuple[str, dict[str, str]]:
    con = duckdb.connect(str(data_dir / "wh.duckdb"), read_only=True)
    try:
        return content_hash(con), table_hashes(con)
    finally:
        con.close()


def query(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(data_dir / "wh.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


FRESHNESS = "marts.mart_pipeline_freshness"


def freshness(data_dir: Path) -> list[tuple[Any, ...]]:
    """The freshness mart with load ids (which differ between any two runs) taken out."""
    return query(data_dir, f"""
        select * exclude (latest_load_id, last_completed_at)
               replace (replace(latest_error, latest_load_id, '<load>') as latest_error)
        from {FRESHNESS} order by practice_ods""")


def outcomes(result: dict[str, Any]) -> dict[str, tuple[str, str | None, int]]:
    return {o["practice_ods"]: (o["status"], o["error_class"], o["slot_rows"]) for o in result["outcomes"]}


@pytest.fixture
def with_defects(sandbox: SandboxServer) -> Iterator[dict[str, str]]:
    victims = dict(zip(
        [p.ods_code for p in sandbox.registry.practices if p.kind == "practice"][-len(DEFECTS):],
        DEFECTS, strict=True,
    ))
    for ods, defect in victims.items():
        sandbox.state.faults.add(FaultRule(practice=ods, interaction="SEARCH_SLOTS", kind=defect))  # type: ignore[arg-type]
    try:
        yield victims
    finally:
        sandbox.state.faults.clear()


def test_a_pipelined_night_writes_what_a_sequential_night_writes(
    sandbox: SandboxServer, with_defects: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sequential = sync(sandbox, tmp_path / "sequential", monkeypatch, SEQUENTIAL)
    pipelined = sync(sandbox, tmp_path / "pipelined", monkeypatch, BATCH)

    assert sequential["writer_phases_s"]["batches_while_fetching"] == 0
    phases = pipelined["writer_phases_s"]
    practices = len(pipelined["outcomes"])
    # Every full batch was written while fetching went on (the last, partial one after it).
    assert phases["batches_while_fetching"] >= practices // BATCH - 2, phases
    assert phases["load_while_fetching"] > 0 and phases["validate_while_fetching"] > 0, phases
    assert phases["fold_while_fetching"] > 0, phases
    # GX's context was made in a thread as the night started, not by the first validation;
    # a night of at most two writer batches makes it when it first validates, after its fetch.
    assert phases["gate_setup_while_fetching"] > 0, phases
    assert "gate_setup_while_fetching" not in sequential["writer_phases_s"]
    # Same outcome per practice (the defective ones quarantined), same content everywhere.
    assert outcomes(pipelined) == outcomes(sequential)
    failed = {ods for ods, (status, _, _) in outcomes(pipelined).items() if status != "ok"}
    assert failed == set(with_defects)
    differing = {k for k, v in hashes(tmp_path / "pipelined")[1].items()
                 if v != hashes(tmp_path / "sequential")[1].get(k)}
    # The freshness mart quotes each quarantined practice's message, which names its load.
    assert differing <= {FRESHNESS}, f"tables differ from the sequential night: {sorted(differing)}"
    assert freshness(tmp_path / "pipelined") == freshness(tmp_path / "sequential")
    # Each batch was judged once, including the appointment checks (bookings loaded first).
    for data_dir in (tmp_path / "pipelined", tmp_path / "sequential"):
        judged = query(data_dir, "select count(*), count(distinct practice_ods) from meta.quality_batch")
        assert judged[0][0] == judged[0][1] == practices - sum(
            1 for status, error, _ in outcomes(pipelined).values() if error not in (None, "QuarantinedBatch"))
    appointment_rows = "select sum(rows_checked) from meta.quality_result where suite = 'appointments'"
    assert query(tmp_path / "pipelined", appointment_rows) == query(tmp_path / "sequential", appointment_rows)
    assert query(tmp_path / "pipelined", appointment_rows)[0][0] > 0
    assert (tmp_path / "pipelined" / "quality" / "data_docs" / "index.html").exists()


def test_a_writer_failure_mid_night_fails_the_run_and_a_re_run_repairs_it(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clean = tmp_path / "clean"
    sync(sandbox, clean, monkeypatch, SEQUENTIAL)

    real = flows.landed_writer.load_landed
    calls = {"n": 0}

    def fails_on_the_third_batch(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated writer failure while fetching")
        return real(*args, **kwargs)

    monkeypatch.setattr(flows.landed_writer, "load_landed", fails_on_the_third_batch)
    night = tmp_path / "night"
    with pytest.raises(RuntimeError, match="simulated writer failure"):
        sync(sandbox, night, monkeypatch, BATCH)
    monkeypatch.setattr(flows.landed_writer, "load_landed", real)
    # The failure stopped the fetch: the practices still in flight were cancelled, not
    # left to fail one by one against a closed client.
    assert not [r for r in caplog.records if "client has been closed" in r.getMessage()]
    ((load_id, status),) = query(night, "select load_id, status from meta.load_ledger")
    assert status == "failed"
    # The two batches written before the failure stay, whole; nothing of the third.
    loaded = query(night, "select count(distinct practice_ods) from meta.sync_window")[0][0]
    assert loaded == 2 * BATCH

    repaired = sync(sandbox, night, monkeypatch, BATCH, rerun_of=load_id)
    # The re-run fetched only the practices the failed night had not written.
    assert repaired["skipped_practices"] == 2 * BATCH
    assert repaired["outcomes"] and all(o["status"] == "ok" for o in repaired["outcomes"])
    differing = {k for k, v in hashes(night)[1].items() if v != hashes(clean)[1].get(k)}
    assert not differing, f"tables differ from a clean run: {sorted(differing)}"
    assert hashes(night)[0] == hashes(clean)[0]
    ((duplicates,),) = query(night, "select count(*) - count(distinct (practice_ods, slot_id)) "
                                    "from core.fct_slot_history")
    record(Result(
        "crash",
        "the pipelined writer fails on its 3rd batch while fetching goes on, then a re-run",
        1, 1, 0, duplicates,
        f"the run failed with the writer's error and cancelled the fetch; the {2 * BATCH} practices "
        f"of the first two batches stayed whole; the re-run fetched the other "
        f"{len(repaired['outcomes'])} and every core and mart table hashes equal to a clean run's",
        "tests/flows/test_landed_writer.py::"
        "test_a_writer_failure_mid_night_fails_the_run_and_a_re_run_repairs_it",
    ))
    assert duplicates == 0
