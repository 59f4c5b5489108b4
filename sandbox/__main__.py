"""Run the sandbox estate standalone until Ctrl-C.

    python -m sandbox --port 8787 --start 2026-03-23T06:00:00+00:00 \
        --write-registry var/sandbox-registry.yaml

With `--start` the clock is simulated (move it with `POST /_sandbox/clock`); without it the
sandbox runs on the wall clock.
`--latency p50=1s,p95=3s` delays every GP Connect call like a provider (`sandbox.latency`).
Defaults come from the `SLOTSYNC_SANDBOX__*` settings.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from pathlib import Path
from types import FrameType

from common.clock import Clock, SimulatedClock, SystemClock
from common.config import get_settings
from common.uktime import parse_fhir_datetime
from sandbox.latency import parse_latency
from sandbox.server import SandboxServer


def main(argv: list[str] | None = None) -> None:
    defaults = get_settings().sandbox
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description="Run the sandbox GP Connect estate."
    )
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=defaults.port, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--start", help="start a simulated clock at this ISO 8601 instant (with offset)")
    parser.add_argument("--write-registry", type=Path, help="write the estate's registry YAML here")
    parser.add_argument("--latency", help="provider latency per GP Connect call, e.g. p50=1s,p95=3s")
    args = parser.parse_args(argv)
    try:
        latency = parse_latency(args.latency) if args.latency else None
    except ValueError as exc:
        parser.error(str(exc))
    clock: Clock = SimulatedClock(parse_fhir_datetime(args.start)) if args.start else SystemClock()
    # Service managers stop with SIGTERM: make it unwind like Ctrl-C so the port is released.
    signal.signal(signal.SIGTERM, _interrupt)
    with (
        contextlib.suppress(KeyboardInterrupt),
        SandboxServer(
            clock=clock, seed=args.seed, host=args.host, port=args.port, latency=latency
        ) as sandbox,
    ):
        if args.write_registry:
            sandbox.registry.write(args.write_registry)
        print(f"sandbox GP Connect estate on {sandbox.base_url}; Ctrl-C to stop", flush=True)
        threading.Event().wait()
    print("stopped", flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
