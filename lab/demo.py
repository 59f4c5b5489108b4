"""The demo: a simulated period on the built-in sandbox estate, replayed through the flows.

One `SimulatedClock` drives both the sandbox (booking activity) and the pipeline (JWTs,
windows, as-of times). The replay visits each scheduled run in time order, all at
Europe/London wall-clock times, on the deployed cadence (flows/deployments.py): the nightly
sync at 02:00 and the intraday sync every hour 08:00-18:00 on weekdays; the release of unused
NHS 111 slots runs every hour 07:00-17:00 on weekdays (deployed: every 15 minutes from 06:00), each
handing back what falls due before its next run. Each is
the real Prefect flow run at that instant, so the replay is deterministic. A twin of the same
seeded world, which nobody releases slots in, runs alongside so the demo can say how much
NHS 111 capacity the release flow saved in the sandbox (ground truth, demo only).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from time import monotonic
from typing import Any

from common.clock import SimulatedClock
from common.uktime import UK, uk_day, uk_local
from lab.accuracy import ReleaseEffect

DEFAULT_START = date(2026, 3, 23)  # a Monday; the week crosses the spring DST change
NIGHTLY_AT = time(2, 0)
# What the intraday deployment runs (flows/deployments.py INTRADAY_CRON "0 8-18 * * 1-5"):
# every hour of core hours, which keeps every slot's last snapshot within an hour of its start,
# so the demo's figures mean what the README's do.
HOURLY_INTRADAY = tuple(time(hour, 0) for hour in range(8, 19))
# A light two-a-day cadence, `replay_schedule`'s default for schedule tests; the demo and the
# accuracy replay use HOURLY_INTRADAY.
INTRADAY_AT = (time(10, 0), time(15, 0))
# The deployment releases every 15 minutes; hourly keeps the demo short, and with a 2-hour
# lead every slot is still released at least an hour before it starts.
DEMO_RELEASE_AT = tuple(time(hour, 0) for hour in range(7, 18))
CADENCE = (
    "nightly sync at 02:00 every day and intraday sync every hour 08:00-18:00 Mon-Fri (as "
    "deployed); release of unused NHS 111 slots every hour 07:00-17:00 Mon-Fri (deployed: every "
    "15 minutes in core hours)"
)
# Rough cost of one replayed run on a quiet 2-core machine, for the opening estimate: means of
# a fresh-clone run at bf6b08b (nightly 27.6/6.7 s, intraday 4.4-8.7 s, release 0.2-5.9 s),
# 145 s in all.
SECONDS_PER_RUN = {"nightly_sync": 17.2, "intraday_sync": 6.0, "release_unused_111": 3.2}


RUN_WORDS = {
    "nightly_sync": "nightly sync",
    "intraday_sync": "intraday sync",
    "release_unused_111": "release check",
}
# Release outcomes that hand a slot back (through the supplier's API or the work-list).
GIVEN_BACK = frozenset({"released", "already_released", "queued", "already_queued"})


@dataclass(frozen=True, order=True)
class ScheduledRun:
    at: datetime
    flow_name: str


def replay_schedule(
    start: date,
    days: int,
    intraday_at: tuple[time, ...] = INTRADAY_AT,
    release_at: tuple[time, ...] = (),
) -> Iterator[ScheduledRun]:
    """Every scheduled run in [start, start + days), in time order, at UK wall-clock times."""
    for offset in range(days):
        day = start + timedelta(days=offset)
        yield ScheduledRun(uk_local(day, NIGHTLY_AT), "nightly_sync")
        if day.isoweekday() <= 5:
            for at in intraday_at:
                yield ScheduledRun(uk_local(day, at), "intraday_sync")
            for at in release_at:
                yield ScheduledRun(uk_local(day, at), "release_unused_111")


def estimate_seconds(schedule: list[ScheduledRun]) -> float:
    """About how long the replay takes on a quiet 2-core machine (sandbox start included)."""
    return 10.0 + sum(SECONDS_PER_RUN.get(run.flow_name, 3.0) for run in schedule)


def demo_schedule(start: date, days: int) -> list[ScheduledRun]:
    """The replayed days on the deployed cadence, closed by the next night's nightly sync: it
    sees the last day's evening (hub) slots start, so that day's outcomes are settled."""
    runs = sorted(replay_schedule(start, days, HOURLY_INTRADAY, DEMO_RELEASE_AT))
    return [*runs, ScheduledRun(uk_local(start + timedelta(days=days), NIGHTLY_AT), "nightly_sync")]


@dataclass
class DemoReport:
    data_dir: Path
    warehouse: Path
    runs: int = 0
    practices: int = 0
    failures: int = 0
    slot_rows: int = 0
    release_outcomes: dict[str, int] = field(default_factory=dict)
    last_load_id: str | None = None
    failed_practices: set[str] = field(default_factory=set)
    effect: ReleaseEffect | None = None
    first_day: date | None = None
    last_day: date | None = None
    ended_at: datetime | None = None


def replay(
    clock: SimulatedClock,
    schedule: list[ScheduledRun],
    *,
    data_dir: Path,
    registry_path: Path,
    report: DemoReport,
    progress: Callable[[str], None] = print,
) -> None:
    """Run each scheduled flow at its instant, moving the shared clock first."""
    from flows.release import release_unused_111
    from flows.sync import intraday_sync, nightly_sync

    flows: dict[str, Any] = {
        "nightly_sync": nightly_sync,
        "intraday_sync": intraday_sync,
        "release_unused_111": release_unused_111,
    }
    gaps = release_gaps(schedule)
    for index, run in enumerate(schedule):
        clock.set(run.at)
        began = monotonic()
        options: dict[str, Any] = {}
        if run.flow_name == "release_unused_111":
            options["due_within_minutes"] = gaps[index]
        result: dict[str, Any] = asyncio.run(
            flows[run.flow_name](
                registry_path=str(registry_path),
                warehouse_path=str(report.warehouse),
                data_dir=str(data_dir),
                as_of=run.at,
                **options,
            )
        )
        report.runs += 1
        step = f"[{report.runs}/{len(schedule)}]"
        when = f"  {step:>9} {run.at.astimezone(UK):%a %d %b %H:%M} {RUN_WORDS[run.flow_name]:<15}"
        if run.flow_name == "release_unused_111":
            for outcome, count in result["outcomes"].items():
                report.release_outcomes[outcome] = report.release_outcomes.get(outcome, 0) + count
            given = sum(v for k, v in result["outcomes"].items() if k in GIVEN_BACK)
            summary = f"{given} slots given back to practices" if given else "nothing due"
            progress(f"{when} {summary}, {monotonic() - began:4.1f} s")
            continue
        failed = [o for o in result["outcomes"] if o["status"] != "ok"]
        rows = sum(o["slot_rows"] for o in result["outcomes"])
        report.failures += len(failed)
        report.failed_practices.update(o["practice_ods"] for o in failed)
        report.slot_rows += rows
        report.last_load_id = result["load_id"]
        progress(
            f"{when} {len(result['outcomes']) - len(failed)}/{len(result['outcomes'])} practices "
            f"captured, {rows:>7,} slot rows, {monotonic() - began:4.1f} s"
        )


def release_gaps(schedule: list[ScheduledRun]) -> dict[int, int]:
    """Schedule index of each release run -> minutes to the next release run that day.

    The release flow hands back every slot due before its next run (`due_within_minutes`), as
    the deployment does with its 15-minute cadence; the day's last run uses that cadence.
    """
    from flows.release import RELEASE_EVERY

    releases = [(i, run.at) for i, run in enumerate(schedule) if run.flow_name == "release_unused_111"]
    gaps: dict[int, int] = {}
    for (index, at), following in zip(releases, [*releases[1:], None], strict=True):
        same_day = following is not None and uk_day(following[1]) == uk_day(at)
        gap = (following[1] - at) if same_day and following is not None else RELEASE_EVERY
        gaps[index] = int(gap.total_seconds() // 60)
    return gaps


def run_demo(
    data_dir: Path,
    *,
    start: date = DEFAULT_START,
    days: int = 1,
    seed: int = 20261126,
    progress: Callable[[str], None] = print,
) -> DemoReport:
    """Start the sandbox, replay `days` of scheduled runs, and stop everything again."""
    from common.config import get_settings
    from lab.accuracy import release_effect
    from sandbox.server import SandboxServer
    from sandbox.state import SandboxState

    data_dir.mkdir(parents=True, exist_ok=True)
    schedule = demo_schedule(start, days)
    report_days = (start, start + timedelta(days=days - 1))
    first = schedule[0].at - timedelta(hours=1)
    clock, twin_clock = SimulatedClock(first), SimulatedClock(first)
    report = DemoReport(
        data_dir=data_dir, warehouse=data_dir / "warehouse.duckdb",
        first_day=report_days[0], last_day=report_days[1],
    )
    with SandboxServer(clock=clock, seed=seed, host=get_settings().sandbox.host) as sandbox:
        registry_path = data_dir / "sandbox-registry.yaml"
        sandbox.registry.write(registry_path)
        report.practices = len(sandbox.registry.practices)
        progress(f"  sandbox estate up: {report.practices} practices and hubs")
        replay(clock, schedule, data_dir=data_dir, registry_path=registry_path,
               report=report, progress=progress)
        # The same seeded world with nobody releasing anything, for comparison.
        twin = SandboxState(sandbox.registry, clock=twin_clock, seed=seed)
        end = schedule[-1].at
        report.ended_at = end
        twin_clock.set(end)
        report.effect = release_effect(sandbox.state, twin, start, start + timedelta(days=days - 1), end)
    return report


def summary_lines(report: DemoReport) -> list[str]:
    """The demo's summary for a commissioner, in plain English.

    Every observed figure is read by name from the metrics layer (`dashboards.figures`) on the
    published snapshot, for the replayed days and judged at the replay's end, so it equals the
    dashboard's figure of the same name. The sandbox's ground truth (what really happened in the
    simulated world, which no real deployment can know) is labelled as such, with the assumption
    it rests on.
    """
    from common.uktime import UK as UK_ZONE
    from dashboards import data, figures, filters
    from sandbox.simulation import REBOOK_AFTER_RELEASE_CHANCE

    snapshot = report.data_dir / "published" / data.SNAPSHOT_FILE
    # The period the dashboard opens on, so the first screen shows these very numbers.
    catalogue = data.read_catalogue(snapshot)
    publication = data.read_publication(snapshot)
    assert catalogue.first_day is not None and catalogue.last_day is not None
    first_day, last_day = filters.default_period(
        catalogue.first_day, catalogue.last_day, publication.as_of.astimezone(UK_ZONE).date()
    )
    scope = figures.Scope(first_day, last_day)
    values = figures.read_all(scope, snapshot=snapshot, at=report.ended_at)
    label = figures.LABELS

    def count(name: str) -> str:
        value = values.get(name)
        return "n/a" if value is None else f"{int(value):,}"  # type: ignore[arg-type]

    def rate(name: str) -> str:
        value = values.get(name)
        return "n/a (nothing to divide by)" if value is None else f"{float(value):.1%}"  # type: ignore[arg-type]

    period = (
        f"{first_day:%a %d %b %Y}"
        if first_day == last_day
        else f"{first_day:%a %d %b} to {last_day:%a %d %b %Y}"
    )
    lines = [
        f"What the dashboard opens on, {period} (observed by the pipeline; later days are slots "
        "already offered, not finished):"
    ]
    if values.get("core_days"):
        lines += [
            f"  {label['nhs111_offered_core_days']}: {count('nhs111_offered_core_days')} against a quota of "
            f"{count('nhs111_quota')} ({count('nhs111_shortfall_slots')} slots short in total)",
            f"  {label['practices_below_quota']}: {count('practices_below_quota')} of "
            f"{count('practices')} practices on at least one weekday; "
            f"{count('practices_not_set_up_for_111')} practices are not set up for 111 booking",
        ]
    else:
        lines.append("  NHS 111 quota: no core days (Monday to Friday) in this period, so no quota applies")
    lines += [
        f"  {label['nhs111_utilisation']}: {rate('nhs111_utilisation')} of reserved 111 slots were "
        f"booked by 111 (up to {rate('nhs111_utilisation_upper')} if every slot checked too early "
        "to tell was booked)",
        f"  {label['practice_utilisation']}: {rate('practice_utilisation')} (up to "
        f"{rate('practice_utilisation_upper')}); {count('practice_unused')} practice slots went unused",
        f"  {label['hub_utilisation']}: {rate('hub_utilisation')} (up to {rate('hub_utilisation_upper')}: "
        f"{count('hub_unknown')} of {count('hub_offered')} hub slots were last checked too early to tell)",
        f"  {label['released']}: {count('released')} unused 111 slots given back to practices; then "
        f"booked {count('released_then_booked')}, unused {count('released_unused')}, outcome not known "
        f"yet {count('released_unknown')}",
        f"  {label['practices_fresh']}: {count('practices_fresh')} of {count('registry_practices')}; "
        f"{label['practices_failed'].lower()}: {count('practices_failed')}",
    ]
    effect = report.effect
    if effect is not None:
        lines += [
            "Sandbox ground truth (the simulated world's own record; a real deployment cannot see this):",
            f"  of {effect.reserved:,} reserved 111 slots that started, {effect.unused_without:,} would "
            f"have gone unused without releasing and {effect.unused_with:,} did with it",
            f"  this rests on an assumption: the sandbox books a released slot again with chance "
            f"{REBOOK_AFTER_RELEASE_CHANCE:.0%} (REBOOK_AFTER_RELEASE_CHANCE); with a different real "
            "rebooking rate the saving differs, so it is not a forecast",
            f"  the simulated practices booked {effect.released_then_booked:,} of the {effect.released:,} "
            f"released slots that started; the pipeline saw {count('released_then_booked')} of "
            f"{count('released')} as booked. {_gap_words(effect, values)}",
        ]
    return lines


def _gap_words(effect: ReleaseEffect, values: dict[str, Any]) -> str:
    """Why the observed release figures and the sandbox's truth differ, in words."""
    observed = values.get("released_then_booked")
    if observed is None:
        return "The snapshot has no release figures to compare."
    if int(observed) == effect.released_then_booked and values.get("released") == effect.released:
        return "They agree."
    return (
        "They differ because the truth counts released slots that had started by the end of the "
        "replay, while the dashboard counts releases by the day of the slot; and a slot booked "
        "after its last check is 'outcome not known yet', not booked, until a later capture sees it."
    )
