"""NHS 111 configuration drift, found in SQL over real nightly syncs of the sandbox.

Three nightlies of a handful of practices that accept NHS 111 booking: before the first, none
drifts; one practice's 111 reservations are switched off in the sandbox before the second, which
opens one episode for it alone (with evidence, cause and owner, in `slotsync status` text and
JSON); the third night keeps the same episode (same since-when) without opening a new one. The
delivery of the message itself is tested against a real server in tests/flows/test_alerts.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from common.clock import SimulatedClock
from flows.alert_messages import drift_message
from flows.cli import app
from flows.drift import episode_event_id, open_drift
from flows.sync import nightly_sync
from sandbox.server import SandboxServer
from tests.flows.conftest import run_async

FIRST_NIGHT = datetime(2026, 3, 24, 2, 0, tzinfo=UTC)  # Tuesday 02:00 GMT


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(FIRST_NIGHT)


@pytest.fixture
def sandbox(clock: SimulatedClock) -> Iterator[SandboxServer]:
    with SandboxServer(clock=clock) as server:
        yield server


def nightly(sandbox: SandboxServer, clock: SimulatedClock, tmp_path: Path, night: int,
            chosen: list[str]) -> dict[str, Any]:
    as_of = FIRST_NIGHT + timedelta(days=night)
    clock.set(as_of)
    registry = tmp_path / "registry.yaml"
    sandbox.registry.write(registry)
    result: dict[str, Any] = run_async(nightly_sync(
        registry_path=str(registry), warehouse_path=str(tmp_path / "warehouse.duckdb"),
        data_dir=str(tmp_path), as_of=as_of, horizon_days=7, practices=chosen,
    ))
    return result


def findings(tmp_path: Path) -> list[Any]:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        return open_drift(con)
    finally:
        con.close()


@pytest.mark.slow
def test_drift_one_finding_per_practice_per_episode(
    sandbox: SandboxServer, clock: SimulatedClock, tmp_path: Path
) -> None:
    chosen = [p.ods_code for p in sandbox.registry.practices
              if p.kind == "practice" and p.accepts_111_booking and p.nhs111_provider_ods][:4]
    assert len(chosen) == 4
    victim = chosen[0]

    nightly(sandbox, clock, tmp_path, 0, chosen)
    assert findings(tmp_path) == [], "a healthy estate has no drift"

    sandbox.state.set_nhs111_reservations(victim, enabled=False)
    nightly(sandbox, clock, tmp_path, 1, chosen)
    opened = findings(tmp_path)
    assert [d.finding.practice_ods for d in opened] == [victim]
    first = opened[0]
    assert first.finding.kind == "NO_RESERVED_111_SLOTS"
    assert first.is_new_episode
    assert first.finding.since == FIRST_NIGHT + timedelta(days=1)
    assert "0 reserved for 111" in first.finding.evidence
    assert "practice" in first.finding.who_fixes
    subject, body = drift_message(first.finding)
    assert victim in subject and "Since: " in body and "Who fixes it: practice" in body

    warehouse = str(tmp_path / "warehouse.duckdb")
    later = (FIRST_NIGHT + timedelta(days=1, hours=3)).isoformat()
    text = CliRunner().invoke(app, ["status", "--warehouse", warehouse, "--as-of", later])
    assert f"NHS 111 DRIFT {victim} (NO_RESERVED_111_SLOTS)" in text.output, text.output
    shown = CliRunner().invoke(app, ["status", "--warehouse", warehouse, "--as-of", later, "--json"])
    records = {r["practice_ods"]: r for r in map(json.loads, shown.output.splitlines())}
    assert records[victim]["nhs111_drift"]["since"] == first.finding.since.isoformat()
    assert all(records[o]["nhs111_drift"] is None for o in chosen[1:])
    assert CliRunner().invoke(app, ["status", "--warehouse", warehouse, "--as-of", later,
                                    "--check"]).exit_code == 2

    nightly(sandbox, clock, tmp_path, 2, chosen)
    lasting = findings(tmp_path)
    assert [d.finding.practice_ods for d in lasting] == [victim]
    assert not lasting[0].is_new_episode, "the episode is told once, not every night"
    assert lasting[0].finding.since == first.finding.since
    assert episode_event_id(lasting[0].finding) == episode_event_id(first.finding)
