"""Crash-test child process: load one landed nightly observation, and die on cue (kill -9).

Run by tests/flows/test_crash_safety.py as `python -m tests.flows.crash_child SPEC_JSON`.
It does what the nightly flow's writer does (flows/sync.py: open the load, record its plan
and the registry, load the landing files, record outcomes, fold and build, finish, publish),
without Prefect, so killing it leaves no flow run or concurrency slot behind. With
`kill_at = "function:n"` it sends itself SIGKILL on the n-th call of that writer function,
the way the kernel's OOM killer or a pulled plug ends a process: no cleanup runs.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.registry import load_registry
from flows.operations import LoadPlan, record_plan
from warehouse import fold, ledger, load, models, publish
from warehouse.db import open_warehouse
from warehouse.loader import LandingFile, Warehouse
from warehouse.quality import validate_pending

KILL_POINTS = (
    "_insert_staging",  # inside a batch's transaction, rows half inserted
    "_mark_units_complete",  # the last statement before a batch's commit
    "_fold_round",  # folding slot history, one transaction per group of practices
    "build_models",  # after the fold, before the models' transaction
    "finish_load",  # everything built, the ledger not yet completed
    "publish",  # the load completed, before the dashboard snapshot is written
    "mart_tables",  # inside publish: the new snapshot file half written
)


def _arm(kill_at: str) -> None:
    name, _, nth = kill_at.partition(":")
    # The writer's steps are module functions (warehouse/load.py, fold.py, ...), looked up
    # at call time, so replacing one in its module intercepts every call.
    module = next(m for m in (load, fold, models, ledger, publish) if hasattr(m, name))
    real = getattr(module, name)
    calls = {"n": 0}

    def dying(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(module, name, dying)


def main(spec: dict[str, Any]) -> None:
    data_dir = Path(spec["data_dir"])
    load_id = spec["load_id"]
    as_of = datetime.fromisoformat(spec["as_of"])
    practices: list[str] = spec["practices"]
    if spec.get("kill_at"):
        _arm(spec["kill_at"])
    if spec.get("batch_bytes"):
        load.BATCH_BYTES = int(spec["batch_bytes"])
    con = open_warehouse(data_dir / "wh.duckdb")
    try:
        warehouse = Warehouse(con)
        warehouse.begin_load(load_id, flow_name="nightly_sync", as_of=as_of, started_at=as_of)
        record_plan(
            con,
            load_id,
            LoadPlan(
                "scheduled", "slots", as_of, spec["horizon_days"], spec["window_days"], tuple(practices)
            ),
        )
        warehouse.sync_registry(load_registry(data_dir / "registry.yaml"), load_id)
        print("loading", flush=True)
        files = [LandingFile(ods, data_dir / "landing" / load_id / f"{ods}.ndjson") for ods in practices]
        results = warehouse.load_practice_files(files, load_id=load_id)
        outcomes = [
            {"practice_ods": ods, "status": "ok", "responses": r.responses, "slot_rows": r.slot_rows}
            for ods, r in zip(practices, results, strict=True)
            if not isinstance(r, Exception)
        ]
        if len(outcomes) != len(practices):
            raise SystemExit(f"practices refused: {results}")
        # As the flow does: the data-quality gate judges the batches before the fold.
        report = validate_pending(con, data_dir=data_dir, validated_by=load_id)
        if report.quarantined:
            raise SystemExit(f"batches quarantined: {report.quarantined}")
        warehouse.record_practice_runs(load_id, outcomes, finished_at=as_of)
        warehouse.build_models(load_id)
        warehouse.finish_load(
            load_id, status="completed", completed_at=as_of, practices_ok=len(outcomes), practices_failed=0
        )
        warehouse.publish(data_dir / "published", load_id=load_id, as_of=as_of)
    finally:
        con.close()
    print("done", flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
