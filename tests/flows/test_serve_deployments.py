"""The deployments `slotsync serve` applies: London-time schedules, no overlaps, optional flows."""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec
from importlib.util import find_spec
from pathlib import Path
from types import ModuleType

import pytest
from prefect import flow
from prefect.deployments.runner import RunnerDeployment

from flows.deployments import slotsync_deployments


def deployments(tmp_path: Path) -> dict[str, RunnerDeployment]:
    return {
        d.full_name: d
        for d in slotsync_deployments(registry_path=tmp_path / "registry.yaml", data_dir=tmp_path / "data")
    }


def test_sync_deployments_run_on_london_time_and_never_overlap(tmp_path: Path) -> None:
    found = deployments(tmp_path)
    nightly, intraday, backfill = (
        found[name] for name in ("nightly_sync/nightly", "intraday_sync/intraday", "backfill/backfill")
    )
    assert nightly.entrypoint == "flows.sync.nightly_sync"
    schedules = {
        name: [(s.schedule.cron, s.schedule.timezone) for s in d.schedules]
        for name, d in (("nightly", nightly), ("intraday", intraday), ("backfill", backfill))
    }
    assert schedules == {
        "nightly": [("0 2 * * *", "Europe/London")],
        "intraday": [("0 8-18 * * 1-5", "Europe/London")],
        "backfill": [],
    }
    strategies = {
        name: (d.concurrency_limit, d.concurrency_options.collision_strategy.value)
        for name, d in (("nightly", nightly), ("intraday", intraday), ("backfill", backfill))
    }
    assert strategies == {
        "nightly": (1, "ENQUEUE"),
        "intraday": (1, "CANCEL_NEW"),
        "backfill": (1, "ENQUEUE"),
    }
    assert nightly.parameters == {
        "registry_path": str((tmp_path / "registry.yaml").resolve()),
        "data_dir": str((tmp_path / "data").resolve()),
    }
    assert nightly.paused is False and nightly.work_pool_name == "slotsync"


def test_the_registry_is_refreshed_monthly_on_london_time(tmp_path: Path) -> None:
    refresh = deployments(tmp_path)["registry_refresh/registry-refresh"]
    assert refresh.entrypoint == "flows.registry_refresh.registry_refresh"
    assert [(s.schedule.cron, s.schedule.timezone) for s in refresh.schedules] == [
        ("0 6 15 * *", "Europe/London")
    ]
    assert (refresh.concurrency_limit, refresh.concurrency_options.collision_strategy.value) == (1, "ENQUEUE")
    # It rebuilds the file the syncs read and records sizes in the warehouse they write.
    assert refresh.parameters == {
        "registry_path": str((tmp_path / "registry.yaml").resolve()),
        "data_dir": str((tmp_path / "data").resolve()),
    }
    assert refresh.paused is False and refresh.work_pool_name == "slotsync"


def test_the_release_deployment_exists_exactly_when_its_flow_does(tmp_path: Path) -> None:
    release = deployments(tmp_path).get("release_unused_111/core-hours")
    assert (release is not None) == (find_spec("flows.release") is not None)
    if release is not None:
        crons = [(s.schedule.cron, s.schedule.timezone) for s in release.schedules]
        assert crons == [("*/15 6-17 * * 1-5", "Europe/London"), ("0,15,30 18 * * 1-5", "Europe/London")]


def test_validate_is_deployed_to_run_after_each_completed_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    @flow(name="validate")
    def validate(warehouse_path: str | None = None, data_dir: str | None = None) -> None:
        """Stands in for the flow another issue is building."""

    module = ModuleType("flows.validate")
    module.__spec__ = ModuleSpec("flows.validate", loader=None)
    module.validate = validate  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "flows.validate", module)
    after_sync = deployments(tmp_path)["validate/after-sync"]
    assert after_sync.schedules == []
    (trigger,) = after_sync.triggers
    assert trigger.expect == {"prefect.flow-run.Completed"}
    assert after_sync.parameters == {"data_dir": str((tmp_path / "data").resolve())}
