"""A sandbox GP Connect 1.2.7 provider estate that the pipeline and tests talk to over HTTP.

- `SandboxServer`: runs the estate on a loopback port (context manager).
- `SandboxState`: the simulated practices, their books and booking activity (Python API).
- `southern_hampshire_estate` / `rehome`: the built-in demo registry, or any registry
  pointed at a running sandbox.
- `FaultRule`: planned failures (status codes, latency, resets, truncation, stalls).
"""

from sandbox.estate import DEFAULT_SEED, NHS111_PROVIDER_ODS, rehome, southern_hampshire_estate
from sandbox.faults import FaultRule
from sandbox.server import SandboxServer
from sandbox.state import BookingLogRow, GroundTruthRow, SandboxState

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
