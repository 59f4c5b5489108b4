"""The data-quality gate in real syncs: semantic body faults are quarantined, the rest publishes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from common.clock import SimulatedClock
from flows.cli import app
from flows.sync import nightly_sync
from sandbox import FaultRule
from sandbox.server import SandboxServer
from tests.flows.conftest import run_async
from warehouse.integrity import content_hash, table_hashes

AS_OF = datetime(2026, 3, 25, 2, 0, tzinfo=UTC)
# Sandbox body fault -> the expectation that must name it.
DEFECTS = {
    "end_before_start": "slot_start_before_end",
    "dangling_schedule": "slot_schedule_resolves",
    "duplicate_slot": "slot_id_unique",
    "dst_offset": "slot_offset_matches_uk_time",
    "outside_window": "slot_inside_search_window",
}


CLOCK = SimulatedClock(AS_OF)  # the second test moves it on a day


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(clock=CLOCK) as server:
        yield server


def sync(sandbox: SandboxServer, data_dir: Path, **kwargs: Any) -> dict[str, Any]:
    registry_path = data_dir / "registry.yaml"
    data_dir.mkdir(parents=True, exist_ok=True)
    sandbox.registry.write(registry_path)
    result: dict[str, Any] = run_async(
        nightly_sync(
            registry_path=str(registry_path),
            data_dir=str(data_dir),
            warehouse_path=str(data_dir / "wh.duckdb"),
            **kwargs,
        )
    )
    return result


def query(data_dir: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(data_dir / "wh.duckdb"), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def hashes(data_dir: Path) -> tuple[str, dict[str, str]]:
    con = duckdb.connect(str(data_dir / "wh.duckdb"), read_only=True)
    try:
        return content_hash(con), table_hashes(con)
    finally:
        con.close()


def practices(sandbox: SandboxServer, count: int) -> list[str]:
    return [p.ods_code for p in sandbox.registry.practices if p.kind == "practice"][:count]


def test_bad_batches_are_quarantined_the_rest_publish_and_a_re_run_promotes_them(
    sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    clean_dir = tmp_path_factory.mktemp("clean")
    sync(sandbox, clean_dir, as_of=AS_OF)
    clean = hashes(clean_dir)

    data_dir = tmp_path_factory.mktemp("faulty")
    victims = dict(zip(practices(sandbox, len(DEFECTS)), DEFECTS, strict=True))
    for ods, defect in victims.items():
        sandbox.state.faults.add(FaultRule(practice=ods, interaction="SEARCH_SLOTS", kind=defect))  # type: ignore[arg-type]
    try:
        result = sync(sandbox, data_dir, as_of=AS_OF)
    finally:
        sandbox.state.faults.clear()

    failed = {o["practice_ods"]: o for o in result["outcomes"] if o["status"] != "ok"}
    assert set(failed) == set(victims), "only the practices with bad data are held back"
    assert all(o["error_class"] == "QuarantinedBatch" for o in failed.values())
    quarantined = dict(
        query(
            data_dir,
            "select practice_ods, failed_expectations from meta.quarantine where resolved_at is null",
        )
    )
    for ods, defect in victims.items():
        assert DEFECTS[defect] in quarantined[ods], (defect, quarantined[ods])
    # Quarantined practices are not in history; the others are, as in a clean run.
    in_history = {r[0] for r in query(data_dir, "select distinct practice_ods from core.fct_slot_history")}
    assert not in_history & set(victims)
    assert len(in_history) == len(
        {r[0] for r in query(clean_dir, "select distinct practice_ods from core.fct_slot_history")}
    ) - len(victims)
    assert (
        query(
            data_dir,
            "select count(*) from staging.stg_gpconnect__slots where practice_ods = ?",
            next(iter(victims)),
        )[0][0]
        > 0
    ), "staging rows of a quarantined batch stay"
    # The dashboard's snapshot carries the quarantined batches and the checks.
    snapshot = duckdb.connect(str(data_dir / "published" / "dashboard.duckdb"), read_only=True)
    try:
        shown = snapshot.execute("select practice_ods from marts.mart_quarantined_batches").fetchall()
        checks = snapshot.execute("select count(*) from marts.mart_data_quality_checks").fetchall()
    finally:
        snapshot.close()
    assert {r[0] for r in shown} == set(victims) and checks[0][0] > 0
    assert (data_dir / "quality" / "data_docs" / "index.html").exists()

    runner = CliRunner()
    validate = runner.invoke(app, ["validate", "--warehouse", str(data_dir / "wh.duckdb")])
    assert validate.exit_code == 2, validate.output
    for ods, defect in victims.items():
        assert f"QUARANTINED {ods} load {result['load_id']}" in validate.output
        assert DEFECTS[defect] in validate.output
    assert "next step" in validate.output

    # The supplier fixed it: the re-run fetches only the quarantined practices and promotes them.
    rerun = sync(sandbox, data_dir, as_of=AS_OF, rerun_of=result["load_id"])
    assert {o["practice_ods"] for o in rerun["outcomes"]} == set(victims)
    assert all(o["status"] == "ok" for o in rerun["outcomes"])
    assert query(data_dir, "select distinct resolution from meta.quarantine") == [("promoted",)]
    validate = runner.invoke(app, ["validate", "--warehouse", str(data_dir / "wh.duckdb")])
    assert validate.exit_code == 0, validate.output
    after = hashes(data_dir)
    differing = {k for k in after[1] if after[1][k] != clean[1].get(k)}
    assert not differing, f"tables differ from a clean run: {sorted(differing)}"
    assert after[0] == clean[0]


def test_a_practice_returning_no_slots_after_returning_some_is_quarantined(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    empty, steady = practices(sandbox, 2)
    sync(sandbox, tmp_path, as_of=AS_OF, practices=[empty, steady])
    later = AS_OF + timedelta(days=1)
    CLOCK.set(later)
    sandbox.state.faults.add(FaultRule(practice=empty, interaction="SEARCH_SLOTS", kind="no_slots"))
    try:
        result = sync(sandbox, tmp_path, as_of=later, practices=[empty, steady], max_failed_fraction=1.0)
    finally:
        sandbox.state.faults.clear()
    assert {o["practice_ods"]: o["status"] for o in result["outcomes"]} == {empty: "failed", steady: "ok"}
    assert query(
        tmp_path, "select failed_expectations from meta.quarantine where practice_ods = ?", empty
    ) == [(["slot_count_continuity"],)]
    # Its history still shows the last good observation.
    checked = query(
        tmp_path, "select max(last_checked_at) from core.fct_slot_history where practice_ods = ?", empty
    )[0][0]
    assert checked == AS_OF
