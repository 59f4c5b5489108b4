"""What every flow run shares: its settings, its clock, its run id and the writer slot.

The sync, validate, release and operations flows all use these; keeping them here (not in
one of the flows) means no flow imports another just for its plumbing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from prefect import get_client, get_run_logger
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError, concurrency
from prefect.context import get_run_context
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from common.config import Settings, get_settings

WRITER_LIMIT = "duckdb-writer"  # global concurrency limit: one DuckDB writer at a time
# How long a run keeps asking a busy Prefect API for the writer slot (503s while the API's
# database is locked) before it fails: the night's landing files are already on disk.
WRITER_SLOT_PATIENCE_S = 900.0
WRITER_SLOT_WAIT = wait_exponential_jitter(initial=2, max=60)

class FixedClock:
    """A clock pinned to the run's as-of instant, so a replayed run is deterministic."""

    def __init__(self, instant: datetime) -> None:
        self._instant = instant

    def now(self) -> datetime:
        return self._instant


@asynccontextmanager
async def writer_slot() -> AsyncIterator[None]:
    """Hold the `duckdb-writer` slot: one DuckDB writer at a time across all runs.

    Deployment concurrency limits only stop runs of the same deployment overlapping; the
    nightly, intraday, backfill and re-run deployments all write the same file.
    """
    async with AsyncExitStack() as stack:
        # The Prefect client retries a 503 a few times; an England night's event flood can keep
        # the API's database locked for longer, and losing a fetched night to it is the worst
        # outcome, so the slot is asked for again with backoff (and the wait is logged).
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_api_unavailable), stop=stop_after_delay(WRITER_SLOT_PATIENCE_S),
            wait=WRITER_SLOT_WAIT, reraise=True, before_sleep=_log_slot_retry,
        ):
            with attempt:
                await ensure_writer_limit()
                # A transient API blip while renewing the lease must not kill a long load.
                await stack.enter_async_context(
                    concurrency(WRITER_LIMIT, occupy=1, strict=True, raise_on_lease_renewal_failure=False)
                )
        yield


def _api_unavailable(exc: BaseException) -> bool:
    """A Prefect API answer worth asking again: unavailable, overloaded or unreachable."""
    cause = exc.__cause__ if isinstance(exc, ConcurrencySlotAcquisitionError) else exc
    if isinstance(cause, httpx.HTTPStatusError):  # PrefectHTTPStatusError too
        return cause.response.status_code in (429, 502, 503, 504)
    return isinstance(cause, httpx.TransportError)


def _log_slot_retry(state: Any) -> None:
    with suppress(Exception):  # outside a run there is no run logger
        get_run_logger().warning(
            "the Prefect API could not grant the %s slot (%s); asking again in %.0f s",
            WRITER_LIMIT, state.outcome.exception() if state.outcome else "no answer",
            state.next_action.sleep if state.next_action else 0,
        )


async def ensure_writer_limit() -> None:
    """Create the writer limit (1 slot) if missing; an operator's existing setting is kept."""
    async with get_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(WRITER_LIMIT)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another run created it first
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=WRITER_LIMIT, limit=1)
                )


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


