"""The lab's `slotsync` commands: `demo`, `bench` and `replay`.

They live here, not in `flows/cli.py`, so the product never imports the lab: `pyproject.toml`
declares `register` in the `slotsync.commands` entry-point group and the CLI adds what it finds.
Heavy libraries are imported inside the commands, as in the product CLI, so `--help` stays instant.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, date
from pathlib import Path
from typing import Annotated

import typer

from flows.environment import prepare_prefect_environment


def register(app: typer.Typer) -> None:
    """Add the lab's commands to the `slotsync` app."""
    app.command()(demo)
    app.command()(bench)
    app.command()(replay)


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def demo(
    data_dir: Annotated[Path, typer.Option(help="where the demo warehouse and files go")] = Path(
        "var/demo"
    ),
    days: Annotated[
        int, typer.Option(min=1, max=28, help="simulated days to replay (7: the longer week)")
    ] = 1,
    start: Annotated[str, typer.Option(help="first simulated day (YYYY-MM-DD)")] = "2026-03-23",
    seed: Annotated[int, typer.Option(help="sandbox random seed")] = 20261126,
    horizon_days: Annotated[
        int, typer.Option(min=1, max=90, help="days ahead each nightly sync reads (deployed: 28)")
    ] = 7,
) -> None:
    """Run the main job on the built-in sandbox estate: simulated days of syncs and releases."""
    # Set before anything reads the settings; a week ahead keeps the first run short.
    os.environ["SLOTSYNC_SYNC__HORIZON_DAYS"] = str(horizon_days)
    try:
        first_day = date.fromisoformat(start)
    except ValueError:
        raise _fail(f"--start {start!r} is not a date like 2026-03-23") from None
    # Said before the slow imports, so a newcomer sees at once what is happening.
    from lab.demo import CADENCE, demo_schedule, estimate_seconds, summary_lines

    schedule = demo_schedule(first_day, days)
    minutes = max(1, round(estimate_seconds(schedule) / 60))
    typer.echo(
        f"slotsync demo: replaying {days} simulated day(s) from {first_day:%a %d %b %Y} on a sandbox "
        f"estate of GP practices and hubs, {len(schedule)} scheduled runs; about {minutes} min on a "
        "quiet 2-core machine"
    )
    typer.echo(f"  cadence: {CADENCE}; the nightly reads {horizon_days} days ahead (deployed: 28)")
    prepare_prefect_environment(quiet=True)
    from lab.demo import run_demo

    began = time.monotonic()
    try:
        report = run_demo(data_dir, start=first_day, days=days, seed=seed)
    except KeyboardInterrupt:
        typer.echo("\ninterrupted: sandbox stopped, the warehouse keeps every completed load")
        raise typer.Exit(code=130) from None
    typer.echo("")
    for line in summary_lines(report):
        typer.echo(line)
    typer.echo(
        f"Replayed {report.runs} scheduled runs for {report.practices} practices and hubs in "
        f"{time.monotonic() - began:.0f} s; {report.failures} practice capture(s) failed."
    )
    assert report.ended_at is not None
    now = report.ended_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
    typer.echo(
        "The dashboard judges freshness at the simulated end of the replay (--now). Open it with:"
    )
    typer.echo(f"  {_launcher()} dashboard --data-dir {data_dir} --now {now}")
    typer.echo("  then browse http://127.0.0.1:8501")


def _launcher() -> str:
    """How this command was started, so a printed follow-up command runs as printed."""
    if os.environ.get("UV_INTERNAL__PARENT_INTERPRETER"):
        parent = Path(os.environ["UV_INTERNAL__PARENT_INTERPRETER"]).name
        return f"{parent} -m uv run slotsync"
    if os.environ.get("UV"):
        return "uv run slotsync"
    return "slotsync"


def bench(
    size: Annotated[
        str, typer.Option(help="small (a few practices, CI) | region (42-row estate) | england")
    ] = "small",
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the figures as JSON here")
    ] = None,
    repetitions: Annotated[
        int | None, typer.Option(min=1, help="ingest repetitions (default: 3 small, 5 region)")
    ] = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="parent for the scratch folder (default: system temp)")
    ] = None,
    practices: Annotated[
        int | None,
        typer.Option(min=1, help="england only: serve the first N practices' networks (default all 6,300)"),
    ] = None,
    latency: Annotated[
        str | None,
        typer.Option(help="also run the nightly with provider latency, e.g. p50=1s,p95=3s (or emis:p50=...)"),
    ] = None,
    latency_in_flight: Annotated[
        int | None,
        typer.Option(min=1, help="the latency night's calls in flight, per host and overall"),
    ] = None,
    growth: Annotated[
        str | None,
        typer.Option(help="england only: just the nightly at each size, e.g. 300,1000,3000,6300 practices"),
    ] = None,
) -> None:
    """Benchmark: ingest vs DuckDB's read_json and a naive baseline, the nightly run end to end."""
    prepare_prefect_environment(quiet=True)
    from lab.bench import BenchSize, format_report, run_bench, write_json

    try:
        chosen = BenchSize(size)
    except ValueError:
        raise _fail(f"--size must be one of: {', '.join(s.value for s in BenchSize)}") from None
    if growth is not None:
        _growth(chosen, growth, latency=latency, work_dir=work_dir, json_path=json_path, practices=practices)
        return
    try:
        report = run_bench(
            chosen, repetitions=repetitions, work_dir=work_dir, practices=practices, latency=latency,
            latency_in_flight=latency_in_flight, progress=lambda line: typer.echo(line, err=True),
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    typer.echo(format_report(report))
    if json_path is not None:
        write_json(report, json_path)
        typer.echo(f"figures written to {json_path}")


def _growth(
    size: object, sizes: str, *, latency: str | None, work_dir: Path | None, json_path: Path | None,
    practices: int | None,
) -> None:
    from lab.bench import BenchSize
    from lab.bench_growth import format_growth, parse_sizes, run_growth, write_json

    if size != BenchSize.england or practices is not None:
        raise _fail("--growth runs on --size england and takes its sizes itself (drop --practices)")
    try:
        data = run_growth(parse_sizes(sizes), work_dir=work_dir, latency=latency,
                          progress=lambda line: typer.echo(line, err=True))
    except ValueError as exc:
        raise _fail(str(exc)) from None
    typer.echo(format_growth(data))
    if json_path is not None:
        write_json(data, json_path)
        typer.echo(f"figures written to {json_path}")


def replay(
    days: Annotated[int, typer.Option(min=1, max=28, help="judged days (+ warm-up, closing night)")],
    json_path: Annotated[Path, typer.Option("--json", help="where to write the figures")],
    rebook_rates: Annotated[
        str, typer.Option(help="practice's chance of rebooking a released slot, e.g. 0.2,0.5,0.9")
    ] = "0.2,0.5,0.9",
    data_dir: Annotated[Path, typer.Option(help="where the replay's warehouse goes")] = Path("var/replay"),
) -> None:
    """With/without-release replay at the deployed cadence: coverage, displacement, accuracy."""
    prepare_prefect_environment(quiet=True)
    from lab.replay import bound_failures, parse_rates, run_replay, write_json

    try:
        rates = parse_rates(rebook_rates)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    result = run_replay(
        data_dir, days=days, rebook_rates=rates, progress=lambda line: typer.echo(line, err=True)
    )
    write_json(result, json_path)
    typer.echo(f"figures written to {json_path}")
    failed = bound_failures(result)
    for name in failed:
        typer.secho(f"bound not met: {name}", fg=typer.colors.YELLOW, err=True)
    if failed:
        raise typer.Exit(code=2)
