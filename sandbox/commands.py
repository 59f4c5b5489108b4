"""The sandbox's `slotsync sandbox` command: serve the fake estate standalone.

Declared in the `slotsync.commands` entry-point group (`pyproject.toml`) so the product CLI
never imports the sandbox; it adds the command when the sandbox is installed.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    """Add `sandbox` to the `slotsync` app."""
    app.command()(sandbox)


def sandbox(
    host: Annotated[str, typer.Option(help="interface to bind; loopback by default")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0 = any free port)")] = 8080,
    registry_out: Annotated[Path, typer.Option(help="where to write the estate's registry")] = Path(
        "var/sandbox-registry.yaml"
    ),
    seed: Annotated[int, typer.Option(help="sandbox random seed")] = 20261126,
) -> None:
    """Serve the sandbox GP Connect estate standalone (wall clock) until Ctrl-C."""
    from common.clock import SystemClock
    from sandbox.server import SandboxServer

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
