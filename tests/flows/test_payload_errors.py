"""A provider's bad payload fails only its practice, in our words, through a real nightly run.

The sandbox answers one practice's slot searches with `Bundle.entry` as an object and
another's with an OperationOutcome sent as HTTP 200 (sandbox/faults.py); the run completes
for everyone else, and each victim's failure names the practice, the interaction, the
element at fault or the supplier's issue code and diagnostics, and what to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.clock import SimulatedClock
from flows.sync import nightly_sync
from sandbox.faults import FaultRule
from sandbox.server import SandboxServer
from tests.flows.conftest import run_async

AS_OF = datetime(2026, 3, 24, 2, 0, tzinfo=UTC)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(clock=SimulatedClock(AS_OF)) as server:
        yield server


def test_wrong_shapes_and_outcomes_fail_their_practice_in_our_words(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    chosen = [p.ods_code for p in sandbox.registry.practices if p.kind == "practice"][:3]
    shaped, outcome, fine = chosen
    for ods, kind in ((shaped, "entry_object"), (outcome, "outcome_ok")):
        sandbox.state.faults.add(FaultRule(practice=ods, interaction="SEARCH_SLOTS", kind=kind))
    registry = tmp_path / "registry.yaml"
    sandbox.registry.write(registry)
    result = run_async(nightly_sync(
        registry_path=str(registry), warehouse_path=str(tmp_path / "warehouse.duckdb"),
        data_dir=str(tmp_path), as_of=AS_OF, horizon_days=2, practices=chosen,
        max_failed_fraction=1.0,
    ))
    by_ods = {o["practice_ods"]: o for o in result["outcomes"]}
    assert by_ods[fine]["status"] == "ok" and by_ods[fine]["slot_rows"] > 0
    bad_shape = by_ods[shaped]
    assert bad_shape["status"] == "failed" and bad_shape["error_class"] == "PracticeDataError"
    assert bad_shape["message"].startswith(f"practice {shaped}, search free slots: Bundle.entry must be "
                                           "an array, got an object (response ")
    assert "raise it with the supplier" in bad_shape["message"] and "auto_detect" not in bad_shape["message"]
    told = by_ods[outcome]
    assert (told["status"], told["error_class"], told["http_status"]) == ("failed", "ResponseInvalid", 200)
    assert told["message"].startswith(
        f"practice {outcome}, search free slots: HTTP 200: the provider answered with an "
        "OperationOutcome instead of a Bundle (processing: Slot search failed: the appointment "
        "book is being rebuilt). Next step: ")
