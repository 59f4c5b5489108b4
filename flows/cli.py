"""The `slotsync` command line.

Heavy libraries (Prefect ~3 s, Great Expectations ~5 s) are imported inside the commands
that need them, so `slotsync --help` stays instant. Exit codes: 0 success, 1 a fatal
error (bad input, nothing done), 2 a run that completed but with failed practices.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Any

import typer

from connectors.registry import RegistryError, load_registry, registry_from_nhs_csv
from flows.environment import prepare_prefect_environment

app = typer.Typer(
    help="slotsync: keep a true view of GP appointment capacity and give unused NHS 111 slots back.",
    no_args_is_help=True,
    add_completion=False,
)
registry_app = typer.Typer(help="Validate or generate practice registry files.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@app.command()
def demo(
    data_dir: Annotated[Path, typer.Option(help="where the demo warehouse and files go")] = Path(
        "var/demo"
    ),
    days: Annotated[int, typer.Option(min=1, max=28, help="simulated days to replay")] = 7,
    start: Annotated[str, typer.Option(help="first simulated day (YYYY-MM-DD)")] = "2026-03-23",
    seed: Annotated[int, typer.Option(help="sandbox random seed")] = 20261126,
) -> None:
    """Run the main job on the built-in sandbox estate: a simulated week of syncs."""
    prepare_prefect_environment(quiet=True)
    from flows.demo import run_demo

    try:
        first_day = date.fromisoformat(start)
    except ValueError:
        raise _fail(f"--start {start!r} is not a date like 2026-03-23") from None
    typer.echo(f"slotsync demo: replaying {days} simulated day(s) from {first_day} (seed {seed})")
    began = time.monotonic()
    try:
        report = run_demo(data_dir, start=first_day, days=days, seed=seed)
    except KeyboardInterrupt:
        typer.echo("\ninterrupted: sandbox stopped, the warehouse keeps every completed load")
        raise typer.Exit(code=130) from None
    typer.echo("")
    typer.echo("summary")
    typer.echo(f"  practices and hubs synced : {report.practices}")
    typer.echo(f"  scheduled runs replayed   : {report.runs}")
    typer.echo(f"  slot rows loaded          : {report.slot_rows:,}")
    typer.echo(f"  practice failures         : {report.failures}")
    typer.echo(f"  warehouse                 : {report.warehouse}")
    typer.echo(f"  wall time                 : {time.monotonic() - began:.0f} s")
    typer.echo(f"open the dashboard with     : slotsync dashboard --data-dir {data_dir}")


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="interface to bind; loopback by default")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0 = any free port)")] = 8080,
    registry_out: Annotated[Path, typer.Option(help="where to write the estate's registry")] = Path(
        "var/sandbox-registry.yaml"
    ),
    seed: Annotated[int, typer.Option(help="sandbox random seed")] = 20261126,
) -> None:
    """Serve the sandbox GP Connect estate standalone (wall clock) until Ctrl-C."""
    from connectors.clock import SystemClock
    from connectors.sandbox.server import SandboxServer

    with SandboxServer(clock=SystemClock(), seed=seed, host=host, port=port) as server:
        server.registry.write(registry_out)
        typer.echo(f"sandbox serving {len(server.registry.practices)} practices at {server.base_url}")
        typer.echo(f"registry written to {registry_out}; sync it with:")
        typer.echo(f"  slotsync sync --registry {registry_out} --warehouse var/warehouse.duckdb")
        typer.echo("Ctrl-C to stop")
        stop = False

        def _stop(*_: Any) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        try:
            while not stop:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    typer.echo("sandbox stopped")


@app.command()
def sync(
    registry: Annotated[Path, typer.Option(help="practice registry YAML")],
    warehouse: Annotated[Path, typer.Option(help="DuckDB warehouse file")],
    data_dir: Annotated[Path | None, typer.Option(help="landing/published folder root")] = None,
    intraday: Annotated[bool, typer.Option(help="refresh only the next few days")] = False,
    practice: Annotated[list[str] | None, typer.Option(help="only these ODS codes")] = None,
    as_of: Annotated[str | None, typer.Option(help="ISO instant to run as (default: now)")] = None,
) -> None:
    """Run the slot sync once against whatever endpoints the registry names."""
    try:
        load_registry(registry)
    except RegistryError as exc:
        raise _fail(str(exc)) from None
    instant: datetime | None = None
    if as_of:
        instant = datetime.fromisoformat(as_of)
        if instant.tzinfo is None:
            raise _fail("--as-of needs an offset, e.g. 2026-03-29T02:00:00+01:00")
    prepare_prefect_environment()
    from flows.sync import intraday_sync, nightly_sync

    kwargs: dict[str, Any] = {
        "registry_path": str(registry), "warehouse_path": str(warehouse),
        "data_dir": str(data_dir or warehouse.parent), "as_of": instant, "practices": practice,
    }
    result = asyncio.run(intraday_sync(**kwargs) if intraday else nightly_sync(**kwargs))
    failed = [o for o in result["outcomes"] if o["status"] != "ok"]
    typer.echo(
        f"load {result['load_id']}: {len(result['outcomes']) - len(failed)} practice(s) ok, "
        f"{len(failed)} failed, {sum(o['slot_rows'] for o in result['outcomes']):,} slot rows"
    )
    for outcome in failed:
        typer.secho(f"  FAILED {outcome['message']}", fg=typer.colors.YELLOW)
    if failed:
        raise typer.Exit(code=2)


@app.command()
def dashboard(
    data_dir: Annotated[Path, typer.Option(help="data dir whose published/ snapshot to show")] = Path(
        "var/demo"
    ),
    port: Annotated[int, typer.Option(help="port for the dashboard")] = 8501,
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
) -> None:
    """Serve the CCG/ICB dashboard (reads the published marts snapshot only)."""
    spec = find_spec("dashboards.app")
    if spec is None or spec.origin is None:
        raise _fail("dashboards.app is not installed with this package")
    env = {**os.environ, "SLOTSYNC_DATA_DIR": str(data_dir)}
    command = [
        sys.executable, "-m", "streamlit", "run", spec.origin, "--server.headless", "true",
        "--server.address", host, "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
    ]
    typer.echo(f"dashboard on http://{host}:{port} (Ctrl-C to stop)")
    with contextlib.suppress(KeyboardInterrupt):
        subprocess.run(command, env=env, check=False)


@registry_app.command("validate")
def registry_validate(path: Path) -> None:
    """Check a registry file and list every problem with its row and field."""
    try:
        registry = load_registry(path)
    except RegistryError as exc:
        raise _fail(str(exc)) from None
    kinds = {k: sum(1 for p in registry.practices if p.kind == k) for k in ("practice", "hub")}
    typer.echo(f"{path}: {kinds['practice']} practices and {kinds['hub']} hubs, all valid")


@registry_app.command("from-csv")
def registry_from_csv(
    csv_path: Path,
    output: Annotated[Path, typer.Option("--output", "-o", help="registry YAML to write")],
    service_root_template: Annotated[
        str, typer.Option(help="service root with {ods}, e.g. https://host/{ods}/STU3/1/gpconnect")
    ],
    nhs111_provider: Annotated[str | None, typer.Option(help="111 provider ODS for all rows")] = None,
) -> None:
    """Generate a registry from an NHS Digital practice list CSV."""
    try:
        registry = registry_from_nhs_csv(
            csv_path.read_text(encoding="utf-8-sig"), source=str(csv_path),
            service_root_template=service_root_template, nhs111_provider_ods=nhs111_provider,
        )
    except (RegistryError, OSError) as exc:
        raise _fail(str(exc)) from None
    registry.write(output)
    typer.echo(f"wrote {len(registry.practices)} practices to {output}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
