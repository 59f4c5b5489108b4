"""A load never stays `running` after its process ends in any way we control.

`_sync` (flows/sync.py) is wrapped in `@ends_load_on_exit` and names its load with
`guard_load` as soon as it knows the id. If the run then stops before the load completes (an
exception anywhere, an asyncio cancellation, SIGTERM: Prefect cancels a flow run by signal,
and its SIGTERM bridge raises inside the run), the load is ended `failed` with the reason in
words before the exception goes on. That write needs only the warehouse file, never the
Prefect API, and waits at most `LEDGER_WRITE_PATIENCE_S` for DuckDB's lock; if it still cannot
write, it logs why and lets the original error through. A process killed outright (SIGKILL,
the OOM killer) runs no cleanup: the holder recorded by `begin_load` lets
`slotsync status --check` report that load instead (flows/operations.py, common/holder.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

from tenacity import stop_after_delay

from warehouse import ledger
from warehouse.db import connect

# How long the failure path waits for the warehouse lock (another writer may hold it).
LEDGER_WRITE_PATIENCE_S = 5.0
REASON_CHARS = 300

P = ParamSpec("P")
T = TypeVar("T")
_GUARDED: ContextVar[list[tuple[Path, str]] | None] = ContextVar("slotsync_guarded_loads", default=None)
log = logging.getLogger("slotsync.flows.load_guard")


def guard_load(warehouse_path: Path, load_id: str) -> None:
    """From now on, `load_id` is ended failed if the guarded run stops before completing it."""
    loads = _GUARDED.get()
    if loads is None:
        raise RuntimeError("guard_load is only meaningful inside an @ends_load_on_exit function")
    loads.append((warehouse_path, load_id))


def ends_load_on_exit(function: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Wrap a run: the loads it names with `guard_load` never outlive it as `running`."""

    @functools.wraps(function)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        loads: list[tuple[Path, str]] = []
        token = _GUARDED.set(loads)
        stopped_by: list[int] = []
        try:
            with _sigterm_cancels(stopped_by):
                return await function(*args, **kwargs)
        except BaseException as exc:
            reason = stop_reason(exc, signalled=bool(stopped_by))
            for warehouse_path, load_id in loads:
                end_load_failed(warehouse_path, load_id, reason)
            raise
        finally:
            _GUARDED.reset(token)

    return guarded


def stop_reason(exc: BaseException, *, signalled: bool = False) -> str:
    """Why the run stopped, in words, for the ledger's detail."""
    if signalled or type(exc).__name__ == "TerminationSignal":  # Prefect's SIGTERM bridge
        return ("stopped by SIGTERM (the run was cancelled or its process told to stop) before "
                "the load completed")
    if isinstance(exc, asyncio.CancelledError):
        # Prefect's bridge raises SIGTERM in the event loop, which then cancels the run's task.
        return ("cancelled (a flow-run cancellation or SIGTERM to its process) before the load "
                "completed")
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C) before the load completed"
    text = " ".join(str(exc).split())
    if len(text) > REASON_CHARS:
        text = text[:REASON_CHARS] + "..."
    return f"stopped by an error before the load completed: {type(exc).__name__}: {text}".rstrip(": ")


def end_load_failed(warehouse_path: Path, load_id: str, reason: str) -> bool:
    """Mark the load failed; any failure to do so is logged, never raised."""
    try:
        # warehouse.db.connect's own lock retries, with this path's shorter patience.
        con = connect.retry_with(stop=stop_after_delay(LEDGER_WRITE_PATIENCE_S))(warehouse_path)
        try:
            ledger.fail_load(con, load_id, reason=reason, at=datetime.now(UTC))
        finally:
            con.close()
    except Exception as exc:  # the original error matters more than this one
        log.error(
            "load %s stopped (%s) but could not be marked failed in %s: %r. `slotsync status --check` "
            "reports it while its process is gone", load_id, reason, warehouse_path, exc,
        )
        return False
    log.warning("load %s ended failed: %s", load_id, reason)
    return True


@contextmanager
def _sigterm_cancels(stopped_by: list[int]) -> Iterator[None]:
    """Outside Prefect (which installs its own bridge), SIGTERM cancels the running task, so
    the failure path runs instead of the process dying on the spot."""
    try:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            raise ValueError("not ours to handle")

        def cancel() -> None:
            stopped_by.append(signal.SIGTERM)
            task.cancel("SIGTERM")

        loop.add_signal_handler(signal.SIGTERM, cancel)
    except (ValueError, RuntimeError, NotImplementedError):
        yield  # not the main thread, not a Unix loop, or someone else handles SIGTERM
        return
    try:
        yield
    finally:
        with suppress(ValueError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
