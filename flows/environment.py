"""Process environment defaults that must be in place before Prefect is imported.

Prefect reads its settings at import time. On a 2-core machine its ephemeral API server
takes 12-16 s to start against a 20 s default timeout, so we raise the timeouts, and turn
off telemetry (the machine has no internet and it only adds noise). Values already set by
the operator always win.

The server's services write in batches (SERVER_SETTINGS), whether the server is `slotsync
serve`'s or the ephemeral one a flow starts when no `PREFECT_API_URL` is set (an ad-hoc
`slotsync nightly`, the demo, the bench): at Prefect's defaults the ephemeral server of a
1,000-practice night used 60 CPU-s against the nightly's 105, on the same two cores.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Task-run records are written by the server's task-run recorder from the events the flow-run
# process sends. Prefect's default writes one event per transaction (batch size 1): about 10
# events a second on a busy 2-core machine against the ~150 an England night sends, while the
# in-memory broker holds 10,000 events per consumer and drops the rest ("Subscription queue
# is full"), losing task-run records on SQLite and PostgreSQL alike. With the recorder in
# batches the event persister (batches of 20) was the next to overflow, so it batches too
# (README, Scheduling: "SQLite or PostgreSQL"). The operator's environment wins over these.
SERVER_SETTINGS: Mapping[str, str] = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "500",
    # whole seconds: Prefect sleeps int(flush_interval) between flushes, so below 1 it spins
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "1",
}

PREFECT_DEFAULTS = {
    **SERVER_SETTINGS,
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
