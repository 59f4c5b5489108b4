"""Process environment defaults that must be in place before Prefect is imported.

Prefect reads its settings at import time. On a 2-core machine its ephemeral API server
takes 12-16 s to start against a 20 s default timeout, so we raise the timeouts, and turn
off telemetry (the machine has no internet and it only adds noise). Values already set by
the operator always win.
"""

from __future__ import annotations

import os

PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_UI_ENABLED": "false",
}


def prepare_prefect_environment(*, quiet: bool = False) -> None:
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if quiet:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
