"""What every flow run shares: its settings, its clock, its run id and the writer slot.

The sync, validate, release and operations flows all use these; keeping them here (not in
one of the flows) means no flow imports another just for its plumbing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from filelock import AsyncFileLock, Timeout
from prefect import get_run_logger
from prefect.context import get_run_context

from common.config import Settings, get_settings
from common.files import private_dir

# How long a run waits for another run's write to finish before it gives up (the night's
# landing files stay on disk, so a re-run loses nothing). Loads of an England night hold
# the lock for a few minutes; a release run for seconds.
WRITER_WAIT_PATIENCE_S = 1800.0
WRITER_WAIT_LOG_EVERY_S = 30.0  # how often a waiting run says who it is waiting for


class WriterBusy(RuntimeError):
    """Another run kept the warehouse's writer lock longer than this run would wait."""


class FixedClock:
    """A clock pinned to the run's as-of instant, so a replayed run is deterministic."""

    def __init__(self, instant: datetime) -> None:
        self._instant = instant

    def now(self) -> datetime:
        return self._instant


@dataclass(frozen=True)
class WriterHolder:
    """Who holds a warehouse's writer lock: written beside it, read by whoever waits."""

    pid: int
    host: str
    since: str  # UTC, ISO 8601
    flow_run_id: str | None

    def describe(self) -> str:
        run = f", flow run {self.flow_run_id}" if self.flow_run_id else ""
        return f"pid {self.pid} on {self.host}{run}, since {self.since}"


def writer_lock_path(warehouse_path: Path) -> Path:
    return warehouse_path.with_name(warehouse_path.name + ".writer.lock")


def _holder_path(warehouse_path: Path) -> Path:
    return warehouse_path.with_name(warehouse_path.name + ".writer.holder")


def read_writer_holder(warehouse_path: Path) -> WriterHolder | None:
    """The last recorded holder, or None (never held, or unreadable)."""
    try:
        return WriterHolder(**orjson.loads(_holder_path(warehouse_path).read_bytes()))
    except (OSError, ValueError, TypeError):
        return None


@asynccontextmanager
async def writer_slot(
    settings: Settings, *, patience_s: float | None = None
) -> AsyncIterator[None]:
    """Hold the warehouse's writer lock: one DuckDB writer at a time across all runs.

    An OS file lock (flock) beside the warehouse file, not a Prefect concurrency slot: the
    kernel releases it the moment its holder's process ends, however it ends (a `kill -9`d
    sync used to leave a Prefect slot held for good), and taking it costs no API call (each
    Prefect slot acquisition after a burst of task runs waited about 2 s on the API).
    Deployment concurrency limits only stop runs of the same deployment overlapping; the
    nightly, intraday, backfill, release and re-run deployments all write the same file.
    """
    warehouse = settings.resolved_warehouse_path
    private_dir(warehouse.parent, settings.storage.dir_mode)
    lock = AsyncFileLock(writer_lock_path(warehouse), mode=settings.storage.file_mode,
                         preserve_lock_file=True)
    patience = WRITER_WAIT_PATIENCE_S if patience_s is None else patience_s
    waited = 0.0
    while True:
        step = min(WRITER_WAIT_LOG_EVERY_S, max(patience - waited, 0.0))
        try:
            await lock.acquire(timeout=step)
            break
        except Timeout:
            waited += step
            holder = read_writer_holder(warehouse)
            held_by = holder.describe() if holder else "a process that recorded no holder"
            if waited >= patience:
                raise WriterBusy(
                    f"the warehouse {warehouse} is being written by {held_by}; waited {waited:.0f} s. "
                    "This run's landing files are kept: re-run it (`slotsync rerun <load id>`) when "
                    "that run has finished, or stop that process if it is stuck"
                ) from None
            _log_waiting(warehouse, held_by, waited)
    try:
        _record_holder(settings)
        yield
    finally:
        await lock.release()


def _record_holder(settings: Settings) -> None:
    holder = WriterHolder(pid=os.getpid(), host=socket.gethostname(),
                          since=datetime.now(UTC).isoformat(timespec="seconds"),
                          flow_run_id=flow_run_id())
    path = _holder_path(settings.resolved_warehouse_path)
    # Written whole then renamed, so a reader never sees half a record.
    tmp = path.with_name(path.name + f".{os.getpid()}")
    tmp.write_bytes(orjson.dumps(asdict(holder)))
    os.chmod(tmp, settings.storage.file_mode)
    os.replace(tmp, path)


def _log_waiting(warehouse: Path, held_by: str, waited: float) -> None:
    message = "waiting %.0f s so far for the writer lock of %s, held by %s"
    with suppress(Exception):  # outside a run there is no run logger
        get_run_logger().info(message, waited, warehouse, held_by)
        return
    logging.getLogger(__name__).info(message, waited, warehouse, held_by)


def flow_run_id() -> str | None:
    """The id of the flow run we are in, or None outside a run."""
    try:
        context = get_run_context()
    except RuntimeError:
        return None
    flow_run = getattr(context, "flow_run", None)
    return str(flow_run.id) if flow_run else None


def settings_for(warehouse_path: str | None, data_dir: str | None) -> Settings:
    """The settings a run uses: the environment's, with these paths when given."""
    settings = get_settings()
    updates: dict[str, Any] = {}
    if data_dir:
        updates["data_dir"] = Path(data_dir)
    if warehouse_path:
        updates["warehouse_path"] = Path(warehouse_path)
    return settings.model_copy(update=updates) if updates else settings


