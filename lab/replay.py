"""`slotsync replay`: the with/without-release replay, judged on what the pipeline controls.

One seeded sandbox world is replayed through the real flows at the deployed cadence
(flows/deployments.py: nightly 02:00, intraday hourly 08:00-18:00 on weekdays, release every
15 minutes 06:00-18:30 on weekdays, all Europe/London), and compared with:

- the sandbox's ground truth (lab/accuracy.py `evaluate`): accuracy of the marts;
- a twin of the same world in which nothing is released (`release_outcome`): release
  coverage, misses by cause, NHS 111 bookings displaced, requests for booked slots;
- the same world replayed with the flow's exact release requests (from the provider's
  request log, same instants, same If-Match and keys) at other rebook chances: the waste cut
  as a measured curve over the practice's demand for a released slot, which is an assumption
  of the simulation, not something the pipeline controls. The flow's requests do not depend
  on that chance (a released slot is no longer reserved, so never a candidate again, and every
  other slot's events are drawn per slot), and the replayed answers are checked against the
  logged ones (`replayed_status_mismatches` must be 0).

Judged days: `days` UK days starting the day after `start`; `start` only carries the
warm-up nightly sync (the first snapshot), and the day after the last judged day carries the
closing nightly that makes every judged slot final.
"""

from __future__ import annotations

import subprocess
import time as wallclock
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson

from common.clock import SimulatedClock
from common.uktime import uk_local
from connectors.registry import Registry
from lab.accuracy import evaluate, release_effect, release_outcome
from lab.demo import DEFAULT_START, DemoReport, ScheduledRun, replay
from sandbox.errors import SandboxError
from sandbox.simulation import REBOOK_AFTER_RELEASE_CHANCE
from sandbox.state import ReleaseRequestRecord, SandboxState

DEFAULT_REBOOK_RATES = (0.2, 0.5, 0.9)
DEFAULT_SEED = 20261126
# Judged-week bounds (README): coverage target and the non-cadence share of true bookings.
COVERAGE_TARGET = 0.95
NON_CADENCE_BOUND = 0.02


def cron_times(expression: str, day: date) -> list[time]:
    """Local times a 5-field cron (minute hour * * dow) fires on `day`; the subset we deploy."""
    minute, hour, dom, month, dow = expression.split()
    if dom != "*" or month != "*":
        raise ValueError(f"unsupported cron {expression!r}")
    if dow != "*" and day.isoweekday() % 7 not in _field(dow, 0, 6):
        return []
    return [time(h, m) for h in _field(hour, 0, 23) for m in _field(minute, 0, 59)]


def _field(text: str, low: int, high: int) -> list[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if body == "*":
            first, last = low, high
        elif "-" in body:
            first_text, last_text = body.split("-")
            first, last = int(first_text), int(last_text)
        else:
            first = last = int(body)
        values.update(range(first, last + 1, step))
    return sorted(values)


def deployed_schedule(start: date, days: int) -> list[ScheduledRun]:
    """Warm-up nightly on `start`, every deployed run on the judged days, closing nightly."""
    from flows.deployments import CORE_HOURS_EVERY_15_MIN, INTRADAY_CRON, NIGHTLY_CRON

    def runs(day: date, cron: str, flow_name: str) -> Iterator[ScheduledRun]:
        for at in cron_times(cron, day):
            yield ScheduledRun(uk_local(day, at), flow_name)

    schedule = list(runs(start, NIGHTLY_CRON, "nightly_sync"))
    for offset in range(1, days + 1):
        day = start + timedelta(days=offset)
        schedule += runs(day, NIGHTLY_CRON, "nightly_sync")
        schedule += runs(day, INTRADAY_CRON, "intraday_sync")
        for cron in CORE_HOURS_EVERY_15_MIN:
            schedule += runs(day, cron, "release_unused_111")
    schedule += runs(start + timedelta(days=days + 1), NIGHTLY_CRON, "nightly_sync")
    # A sync and a release at one instant: the sync first, as the release reads its snapshot.
    order = {"nightly_sync": 0, "intraday_sync": 1, "release_unused_111": 2}
    return sorted(schedule, key=lambda r: (r.at, order[r.flow_name]))


def replay_requests(
    registry: Registry, seed: int, started_at: datetime, requests: list[ReleaseRequestRecord],
    rebook_chance: float, end: datetime,
) -> tuple[SandboxState, int]:
    """A fresh world at `rebook_chance` given the same release requests; (state, mismatches)."""
    clock = SimulatedClock(started_at)
    state = SandboxState(registry, clock=clock, seed=seed, rebook_after_release_chance=rebook_chance)
    mismatches = 0
    for request in requests:
        clock.set(request.at)
        try:
            state.release_slot(request.practice_ods, request.slot_id, if_match=request.if_match,
                               idempotency_key=request.idempotency_key, reason=request.reason)
            status = 200
        except SandboxError as error:
            status = error.status
        mismatches += status != request.status
    clock.set(end)
    state.sync()
    return state, mismatches


def _decisions(warehouse: Path) -> dict[tuple[str, str], list[tuple[str, datetime]]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "select practice_ods, slot_id, outcome, decided_at from audit.release_decision "
            "where not dry_run order by decided_at"
        ).fetchall()
    finally:
        con.close()
    decisions: dict[tuple[str, str], list[tuple[str, datetime]]] = defaultdict(list)
    for ods, slot_id, outcome, decided_at in rows:
        decisions[(ods, slot_id)].append((outcome, decided_at))
    return dict(decisions)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_replay(
    data_dir: Path,
    *,
    days: int,
    rebook_rates: tuple[float, ...] = DEFAULT_REBOOK_RATES,
    start: date = DEFAULT_START,
    seed: int = DEFAULT_SEED,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Replay, evaluate and return the figures `slotsync replay --json` writes."""
    from sandbox.server import SandboxServer

    data_dir.mkdir(parents=True, exist_ok=True)
    began = wallclock.monotonic()
    schedule = deployed_schedule(start, days)
    first_judged, last_judged = start + timedelta(days=1), start + timedelta(days=days)
    first = schedule[0].at - timedelta(hours=1)
    clock, twin_clock = SimulatedClock(first), SimulatedClock(first)
    report = DemoReport(data_dir=data_dir, warehouse=data_dir / "warehouse.duckdb")
    with SandboxServer(clock=clock, seed=seed, rebook_after_release_chance=REBOOK_AFTER_RELEASE_CHANCE) \
            as sandbox:
        registry_path = data_dir / "sandbox-registry.yaml"
        sandbox.registry.write(registry_path)
        replay(clock, schedule, data_dir=data_dir, registry_path=registry_path, report=report,
               progress=progress)
        end = schedule[-1].at
        world = sandbox.state
        accuracy = evaluate(world, report.warehouse, first_judged, last_judged)
        twin = SandboxState(sandbox.registry, clock=twin_clock, seed=seed)
        twin_clock.set(end)
        outcome = release_outcome(world, twin, sandbox.registry, _decisions(report.warehouse),
                                  first_judged, last_judged, end)
        requests = list(world.release_requests)
        curve: dict[str, dict[str, Any]] = {}
        mismatches = 0
        for rate in rebook_rates:
            treated, wrong = replay_requests(sandbox.registry, seed, first, requests, rate, end)
            mismatches += wrong
            effect = release_effect(treated, twin, first_judged, last_judged, end)
            curve[f"{rate:.2f}"] = {
                "waste_cut": round(effect.cut, 4),
                "unused_without": effect.unused_without,
                "unused_with": effect.unused_with,
                "reserved": effect.reserved,
                "released": effect.released,
                "released_then_booked": effect.released_then_booked,
            }
    figures = accuracy.as_json()
    return {
        "command": f"slotsync replay --days {days} --rebook-rates "
                   + ",".join(f"{r:g}" for r in rebook_rates),
        "commit": _commit(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "days": days,
        "first_judged_day": first_judged.isoformat(),
        "last_judged_day": last_judged.isoformat(),
        "scheduled_runs": report.runs,
        "sync_failures": report.failures,
        "wall_s": round(wallclock.monotonic() - began, 1),
        "release_decisions": dict(sorted(report.release_outcomes.items())),
        "release_coverage": round(outcome.coverage, 4),
        "release_coverage_target": COVERAGE_TARGET,
        "reserved_unused_without_release": outcome.unused_without,
        "released_in_time": outcome.released_in_time,
        "queued_in_time": outcome.queued_in_time,
        "release_misses_by_cause": dict(sorted(outcome.misses_by_cause.items())),
        "nhs111_displaced": {
            "count": outcome.displaced,
            "share_of_111_demand": round(outcome.displaced_share, 4),
            "nhs111_bookings_without_release": outcome.nhs111_bookings_without,
            "nhs111_bookings_with_release": outcome.nhs111_bookings_with,
            "release_policies": outcome.policies,
        },
        "release_requests": outcome.release_requests,
        "booked_release_requests": outcome.booked_release_requests,
        "waste_cut_by_rebook_rate": curve,
        "waste_cut_assumption": "rebook rate = the chance the practice books a slot the flow released "
                                "(the sandbox's simulated demand, not measured); the cut is measured at "
                                "each rate by replaying the flow's own release requests",
        "replayed_status_mismatches": mismatches,
        "nhs111_utilisation_exact_days": figures["nhs111_utilisation_exact_days"],
        "nhs111_utilisation_days": figures["nhs111_utilisation_days"],
        "unexplained_booked_differences": figures["unexplained_booked_differences"],
        "phantom_slots": figures["phantom_slots"],
        "missing_mart_days": figures["missing_mart_days"],
        "booked_error_total": figures["booked_error_total"],
        "non_cadence_share_of_booked": round(
            figures["non_cadence_differences"] / figures["booked_truth"], 4
        ) if figures["booked_truth"] else 0.0,
        "accuracy": figures,
    }


def bound_failures(result: dict[str, Any]) -> list[str]:
    """The judged bounds a replay result breaks (empty when it meets them all)."""
    checks = {
        f"release_coverage {result['release_coverage']} >= {COVERAGE_TARGET}":
            result["release_coverage"] >= COVERAGE_TARGET,
        "booked_release_requests == 0": result["booked_release_requests"] == 0,
        "phantom_slots == 0": result["phantom_slots"] == 0,
        "missing_mart_days == 0": result["missing_mart_days"] == 0,
        "unexplained_booked_differences == 0": result["unexplained_booked_differences"] == 0,
        "nhs111_utilisation_exact_days == nhs111_utilisation_days":
            result["nhs111_utilisation_exact_days"] == result["nhs111_utilisation_days"],
        f"non-cadence differences <= {NON_CADENCE_BOUND:.0%} of true bookings":
            result["non_cadence_share_of_booked"] <= NON_CADENCE_BOUND,
        "sync_failures == 0": result["sync_failures"] == 0,
        "replayed_status_mismatches == 0": result["replayed_status_mismatches"] == 0,
    }
    return [name for name, ok in checks.items() if not ok]


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


def parse_rates(text: str) -> tuple[float, ...]:
    """`0.2,0.5,0.9` -> (0.2, 0.5, 0.9); a clear ValueError for anything else."""
    try:
        rates = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--rebook-rates {text!r} is not a comma-separated list of numbers") from None
    if not rates or any(not 0.0 <= r <= 1.0 for r in rates):
        raise ValueError(f"--rebook-rates {text!r}: give one or more chances between 0 and 1")
    return rates
