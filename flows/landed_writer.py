"""The pipelined writer: loads and validates landed practices while the fetch goes on.

A night used to fetch every practice, then load, validate, fold and publish: while fetching
the writer's core idled, while writing the network did. Now each practice's fetch task hands
its landed outcome to `LandedWriter.landed` (a bounded queue: when the writer falls behind,
fetching waits rather than piling up), and the writer, a coroutine of the flow's event loop,
takes whole batches of `sync.write_batch_practices` practices off the queue. For each batch
it takes the writer lock, opens the warehouse, loads the batch's landing files
(`warehouse.ingest.load_landed`: each practice all or nothing), validates the practices
loaded so far (`flows.validate.judge_pending`, Data Docs left for the end) and folds those it
judged into slot history (`warehouse.fold`, which skips quarantined batches), in a thread so the
fetch's event loop keeps running; then it closes the warehouse and lets the lock go, so other
deployments can write between batches.

Validation waits for the bookings leg: the appointment expectations judge the appointment
reads of the batch's observation, so a batch validated before they are loaded would be judged
on none. Until the bookings are handed over (`bookings_fetched`), batches are only loaded;
from then on, loaded practices are validated once about a validation group of staged slots
(`warehouse.quality.VALIDATE_GROUP_ROWS`) waits: the gate's cost per call is mostly fixed, so
loading in small batches keeps the writer close behind the fetch while validating in large
ones keeps the gate cheap. A run without a bookings leg validates from the first batch.

The gate's one-off start-up (GX's import and the project's suites, ~5-10 s) runs in a thread
as the writer starts, while the first practices are fetched and the writer has nothing to
write; it is timed apart (`gate_setup_while_fetching`), and the first validation waits for it
if it has not finished. Only a night of more than two writer batches does so: a shorter one
validates after its fetch anyway, and an import beside a short fetch only slows the fetch
(300 practices, measured once: its fetch took 20.8 s instead of about 11 s).

What is left when fetching ends (a last, partial batch, what is not yet validated and folded,
the models, publishing) is the writer sequence as before (`warehouse.ingest.ingest` with `Preloaded`).
Crash safety is the loader's: a practice is fully written or untouched, its units are marked
complete in the same transaction, so a re-run of a load that died mid-night fetches and loads
only what is missing, and the next validation judges any batch left pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import datetime

from common.config import Settings
from flows.run_context import writer_slot
from flows.validate import judge_pending
from warehouse import fold
from warehouse.db import open_warehouse
from warehouse.ingest import (
    Bookings,
    PracticeOutcome,
    Preloaded,
    load_bookings,
    load_landed,
    merged_reports,
)
from warehouse.quality import VALIDATE_GROUP_ROWS
from warehouse.quality_suites import gx_context


class LandedWriter:
    """Loads landed practices of one load in batches while their fetch goes on."""

    validate_rows = VALIDATE_GROUP_ROWS  # staged slots that make a validation worth its fixed cost

    def __init__(self, settings: Settings, *, load_id: str, stream: str, as_of: datetime,
                 with_bookings: bool, practices: int | None = None) -> None:
        self._settings = settings
        self._load_id = load_id
        self._stream = stream
        self._as_of = as_of
        self._batch = settings.sync.write_batch_practices
        # Room for one batch being written and one filling: fetching waits beyond that.
        self._queue: asyncio.Queue[PracticeOutcome | Bookings | None] = asyncio.Queue(maxsize=2 * self._batch)
        self._task: asyncio.Task[None] | None = None
        self._gate_setup: asyncio.Task[None] | None = None
        # Practices this night will hand over (None: unknown, taken as many).
        self._early_gate = practices is None or practices > 2 * self._batch
        self._stopping = False
        self._may_validate = not with_bookings
        self._unvalidated: list[str] = []  # loaded practices waiting to be validated
        self._unvalidated_rows = 0
        self.preloaded = Preloaded()
        self._started = time.perf_counter()

    async def __aenter__(self) -> LandedWriter:
        if self._early_gate:
            self._gate_setup = asyncio.create_task(asyncio.to_thread(self._prepare_gate),
                                                   name=f"gate-setup-{self._load_id}")
        self._task = asyncio.create_task(self._run(), name=f"landed-writer-{self._load_id}")
        return self

    def _prepare_gate(self) -> None:
        """Make the GX context the night's validations use, before the first needs it."""
        began = time.perf_counter()
        # A failure here is the first validation's to report (it makes the context again).
        with contextlib.suppress(Exception):
            gx_context(self._settings.data_dir)
        self.preloaded.gate_setup_s = time.perf_counter() - began

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        task = self._task
        if task is None:
            return
        if self._gate_setup is not None:  # a thread cannot be stopped: let it end
            await asyncio.gather(self._gate_setup, return_exceptions=True)
        if exc_type is not None:
            # The fetch failed or the run was cancelled: write no further batch, but let the
            # one in its thread finish (a thread cannot be stopped, and it holds the warehouse).
            self._stopping = True
            with contextlib.suppress(Exception):
                await self._put(None)
            await asyncio.gather(task, return_exceptions=True)
            return
        await self._put(None)
        await task  # a writer failure surfaces here, as the run's failure

    async def landed(self, outcome: PracticeOutcome) -> None:
        """Hand one practice's fetch outcome to the writer (waits while the queue is full)."""
        if outcome.landing_file:
            await self._put(outcome)

    async def bookings_fetched(self, bookings: Bookings) -> None:
        """Hand over the bookings leg: loaded with the next batch, which validates from then on."""
        await self._put(bookings)

    async def _put(self, item: PracticeOutcome | Bookings | None) -> None:
        assert self._task is not None, "use LandedWriter as an async context manager"
        put = asyncio.ensure_future(self._queue.put(item))
        await asyncio.wait({put, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():  # the writer died: its error stops this fetch too
            put.cancel()
            self._task.result()
            raise RuntimeError(f"load {self._load_id}: the pipelined writer stopped")

    async def _run(self) -> None:
        waiting: list[PracticeOutcome] = []
        while True:
            item = await self._queue.get()
            if item is None:
                return  # fetching ended: the rest (under a batch) is the writer sequence's
            if isinstance(item, Bookings):
                if not self._stopping:
                    await self._write([], item)
                continue
            waiting.append(item)
            if len(waiting) >= self._batch and not self._stopping:
                batch, waiting = waiting[: self._batch], waiting[self._batch:]
                await self._write(batch, None)

    async def _write(self, batch: Sequence[PracticeOutcome], bookings: Bookings | None) -> None:
        async with writer_slot(self._settings):
            await asyncio.to_thread(self._load_and_validate, batch, bookings)

    def _load_and_validate(self, batch: Sequence[PracticeOutcome], bookings: Bookings | None) -> None:
        settings = self._settings
        pre = self.preloaded
        con = open_warehouse(settings.resolved_warehouse_path, memory_limit=settings.sync.writer_memory_limit,
                             file_mode=settings.storage.file_mode, dir_mode=settings.storage.dir_mode)
        try:
            began = time.perf_counter()
            loaded, refused = load_landed(con, self._load_id, self._stream, batch)
            if bookings is not None:
                load_bookings(con, self._load_id, self._as_of, bookings)
                pre.bookings_loaded = True
                pre.bookings_loaded_after_s = time.perf_counter() - self._started
                self._may_validate = True
            loaded_at = time.perf_counter()
            ok = {ods: o for ods, o in loaded.items() if o.status == "ok"}
            self._unvalidated += list(ok)
            self._unvalidated_rows += sum(o.slot_rows for o in ok.values())
            report = None
            if self._may_validate and self._unvalidated and self._unvalidated_rows >= self.validate_rows:
                judged = sorted(self._unvalidated)
                report = judge_pending(con, settings.data_dir, validated_by=self._load_id,
                                       practices=judged, build_docs=False)
                self._unvalidated, self._unvalidated_rows = [], 0
            validated_at = time.perf_counter()
            if report is not None:
                # Judged practices fold now (the fold skips quarantined batches): the slot
                # history's share of the night is done before the fetch ends.
                fold.fold_slot_history(con, practices=judged)
            folded_at = time.perf_counter()
        finally:
            con.close()
        pre.outcomes.update(loaded)
        pre.refused.extend(refused)
        if report is not None:
            pre.validation = merged_reports(pre.validation, report)
        pre.batches += 1 if batch else 0  # the bookings' own step is not a batch
        pre.load_s += loaded_at - began
        pre.validate_s += validated_at - loaded_at
        pre.fold_s += folded_at - validated_at
