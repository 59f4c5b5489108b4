"""The slotsync deployments: what runs when, on which work pool, and how runs may overlap.

Schedules are cron in Europe/London; Prefect's cron defaults to UTC, which would move every
run by an hour during British Summer Time.

| deployment | schedule (Europe/London) | when a run is still going |
|---|---|---|
| `nightly_sync/nightly` | 02:00 daily | the new run waits (ENQUEUE): re-runs queue behind it |
| `intraday_sync/intraday` | 10:00 and 15:00, Monday to Friday | the new run is cancelled |
| `backfill/backfill` | none: operators run it with `first_day`/`last_day` | waits |
| `release_unused_111/core-hours` | every 15 min 06:00-18:30 Mon-Fri (with `flows.release`) | cancelled |
| `validate/after-sync` | after each completed sync run (with `flows.validate`) | waits |
| `registry_refresh/registry-refresh` | 06:00 on the 15th of each month | waits |

`concurrency_limit=1` stops runs of one deployment overlapping; the nightly, intraday and
backfill deployments all write the same DuckDB file, which the writer lock
(flows/run_context.py) serialises. Flows are deployed by module path
(`flows.sync.nightly_sync`), so a process worker on any machine with slotsync installed
imports them directly: no code storage and no image.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect import Flow, get_client
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy, State
from prefect.deployments import arun_deployment
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron, Schedule
from prefect.settings import PREFECT_API_URL
from prefect.types.entrypoint import EntrypointType

from flows.registry_refresh import registry_refresh
from flows.sync import backfill, intraday_sync, nightly_sync

WORK_POOL = "slotsync"
TIMEZONE = "Europe/London"
TAGS = ["slotsync"]
NIGHTLY_CRON = "0 2 * * *"
# Hourly in core hours: a slot's last snapshot is then within an hour of its start, which
# bounds the bookings GP Connect never shows us (see the README's accuracy notes).
INTRADAY_CRON = "0 8-18 * * 1-5"
# GP core hours are 08:00-18:30 on weekdays. Releases start two hours earlier: the default
# policy gives a slot back 120 minutes before it starts, so the 08:00 slots fall due at 06:00
# (the release flow re-checks each candidate live, so it needs no fresher snapshot).
CORE_HOURS_EVERY_15_MIN = ("*/15 6-17 * * 1-5", "0,15,30 18 * * 1-5")
# Monthly, after NHS Digital's list-size extract for the month is out (early in the month)
# and after that night's 02:00 sync has finished with the old registry.
REGISTRY_REFRESH_CRON = "0 6 15 * *"
SYNC_FLOWS = ("nightly_sync", "intraday_sync")
SyncFlow = Flow[..., Coroutine[Any, Any, dict[str, Any]]]
RERUNNABLE_FLOWS: dict[str, SyncFlow] = {
    "nightly_sync": nightly_sync, "intraday_sync": intraday_sync, "backfill": backfill,
}

# Flows other issues are building: deployed only when their module exists.
RELEASE_FLOW = ("flows.release", "release_unused_111")
VALIDATE_FLOW = ("flows.validate", "validate")

WAIT = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
SKIP = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)


def slotsync_deployments(
    *, registry_path: Path, data_dir: Path, warehouse_path: Path | None = None
) -> list[RunnerDeployment]:
    """Every deployment, with the paths its runs use as default parameters.

    Paths are made absolute and the worker runs flows from the current directory, so a
    deployed run sees the same `.env` and relative settings as `slotsync sync` here.
    """
    defaults: dict[str, Any] = {
        "registry_path": str(registry_path.resolve()),
        "data_dir": str(data_dir.resolve()),
        "warehouse_path": str(warehouse_path.resolve()) if warehouse_path else None,
    }
    job_variables = {"working_dir": str(Path.cwd())}

    def deployment(
        flow: Flow[..., Any], name: str, schedules: list[Schedule], overlap: ConcurrencyLimitConfig,
        **options: Any,
    ) -> RunnerDeployment:
        accepted = set(flow.parameters.properties)
        return RunnerDeployment.from_flow(
            flow, name=name, schedules=schedules, concurrency_limit=overlap, paused=False,
            parameters={k: v for k, v in defaults.items() if k in accepted and v is not None},
            tags=TAGS, work_pool_name=WORK_POOL, job_variables=job_variables,
            entrypoint_type=EntrypointType.MODULE_PATH, **options,
        )

    deployments = [
        deployment(nightly_sync, "nightly", [Cron(NIGHTLY_CRON, timezone=TIMEZONE)], WAIT),
        deployment(intraday_sync, "intraday", [Cron(INTRADAY_CRON, timezone=TIMEZONE)], SKIP),
        deployment(backfill, "backfill", [], WAIT),
        deployment(
            registry_refresh, "registry-refresh", [Cron(REGISTRY_REFRESH_CRON, timezone=TIMEZONE)], WAIT
        ),
    ]
    release = optional_flow(*RELEASE_FLOW)
    if release is not None:
        deployments.append(deployment(
            release, "core-hours",
            [Cron(cron, timezone=TIMEZONE) for cron in CORE_HOURS_EVERY_15_MIN], SKIP,
        ))
    validate = optional_flow(*VALIDATE_FLOW)
    if validate is not None:
        deployments.append(deployment(validate, "after-sync", [], WAIT, triggers=[after_sync_trigger()]))
    return deployments


def optional_flow(module: str, attribute: str) -> Flow[..., Any] | None:
    """The flow `module.attribute` if that module is installed (built by another issue)."""
    if find_spec(module) is None:
        return None
    found = getattr(import_module(module), attribute, None)
    if not isinstance(found, Flow):
        raise RuntimeError(f"{module} exists but has no flow named {attribute}; the deployment needs it")
    return found


def after_sync_trigger() -> DeploymentEventTrigger:
    """Run once each time a nightly or intraday sync run completes."""
    return DeploymentEventTrigger(
        expect={"prefect.flow-run.Completed"},
        match_related={"prefect.resource.role": "flow", "prefect.resource.name": list(SYNC_FLOWS)},
    )


@dataclass(frozen=True)
class Rerun:
    """A re-run that was started (and, when waited for, finished)."""

    original_id: str
    flow_run_id: str
    flow_name: str
    state_type: str | None  # COMPLETED, FAILED, ... or None when not waited for
    message: str | None
    parameters: dict[str, Any]
    deployment_id: str | None


async def rerun_flow_run(flow_run_id: str, *, wait: bool = True, timeout_s: float | None = None) -> Rerun:
    """Re-run only what failed in a sync or backfill flow run.

    The new run gets the original's parameters plus `rerun_of`, so it observes at the
    original instant and fetches only the units the warehouse has no completed row for.
    A run from a deployment is re-run through that deployment (its work pool, its
    concurrency limit: a re-run queues behind a running nightly); a local run, in-process.
    """
    api = PREFECT_API_URL.value() or "the local Prefect API"
    async with get_client() as client:
        try:
            original = await client.read_flow_run(UUID(flow_run_id))
        except (ValueError, ObjectNotFound):
            raise LookupError(
                f"no flow run {flow_run_id} on {api}. Next step: copy the id from `slotsync status` "
                "or the run's page, and point PREFECT_API_URL at the server that ran it"
            ) from None
        flow_name = (await client.read_flow(original.flow_id)).name
    flow = RERUNNABLE_FLOWS.get(flow_name)
    if flow is None:
        raise LookupError(f"flow run {flow_run_id} is a {flow_name} run; only "
                          f"{', '.join(RERUNNABLE_FLOWS)} runs can be re-run this way")
    parameters = {**original.parameters, "rerun_of": str(original.id)}
    if original.deployment_id is not None:
        run = await arun_deployment(
            original.deployment_id, parameters=parameters, timeout=timeout_s if wait else 0,
            as_subflow=False, flow_run_name=f"rerun-of-{original.name}", tags=["rerun"],
        )
        state = run.state if wait else None
        return Rerun(flow_run_id, str(run.id), flow_name, state.type.value if state else None,
                     state.message if state else None, parameters, str(original.deployment_id))
    # Prefect's overloads cannot see `return_state` through `**parameters`.
    local = cast("State[dict[str, Any]]", await flow(**parameters, return_state=True))
    return Rerun(flow_run_id, str(local.state_details.flow_run_id), flow_name, local.type.value,
                 local.message, parameters, None)
