"""A sandbox GP Connect 1.2.7 provider estate that the pipeline and tests talk to over HTTP.

- `SandboxServer`: runs the estate on a loopback port (context manager).
- `SandboxState`: the simulated practices, their books and booking activity (Python API).
- `southern_hampshire_estate` / `rehome`: the built-in demo registry, or any registry
  pointed at a running sandbox.
- `FaultRule`: planned failures (status codes, latency, resets, truncation, stalls).

The names are imported on first use (PEP 562): `slotsync` loads `sandbox.commands` for every
command it runs, and the server's web stack and JWT checks are too heavy to pay for in, say,
`slotsync registry from-csv`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.estate import DEFAULT_SEED, NHS111_PROVIDER_ODS, rehome, southern_hampshire_estate
    from sandbox.faults import FaultRule
    from sandbox.server import SandboxServer
    from sandbox.state import BookingLogRow, GroundTruthRow, SandboxState

_HOMES = {
    "DEFAULT_SEED": "sandbox.estate",
    "NHS111_PROVIDER_ODS": "sandbox.estate",
    "rehome": "sandbox.estate",
    "southern_hampshire_estate": "sandbox.estate",
    "FaultRule": "sandbox.faults",
    "SandboxServer": "sandbox.server",
    "BookingLogRow": "sandbox.state",
    "GroundTruthRow": "sandbox.state",
    "SandboxState": "sandbox.state",
}

__all__ = [
    "DEFAULT_SEED",
    "NHS111_PROVIDER_ODS",
    "BookingLogRow",
    "FaultRule",
    "GroundTruthRow",
    "SandboxServer",
    "SandboxState",
    "rehome",
    "southern_hampshire_estate",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value
