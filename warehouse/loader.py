"""`Warehouse`: the writer's operations on one open connection, in one place.

A thin facade over the modules that do the work, for callers that hold one object for a
load (tests, the bench, the crash-test child):

- warehouse/load.py: landing files -> raw metadata and staging
- warehouse/fold.py: complete observations -> slot history
- warehouse/models.py: the models, in the order their SQL references say
- warehouse/publish.py: the dashboard snapshot
- warehouse/landing.py: the raw archive (read a body back, prune)
- warehouse/ledger.py: the load ledger, practice outcomes, registry and bookings
- warehouse/ingest.py: the whole writer sequence the flows run
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from connectors.bookinglog import AppointmentRead, BookingLogExport
from connectors.http.errors import HttpError
from connectors.registry import Registry
from warehouse import fold, landing, ledger, load, models, publish
from warehouse.ledger import new_load_id
from warehouse.load import LandingFile, PracticeDataError, PracticeLoad

__all__ = ["LandingFile", "PracticeDataError", "PracticeLoad", "Warehouse", "new_load_id"]


class Warehouse:
    """Write operations on an open warehouse connection (the only writer)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def begin_load(
        self, load_id: str, *, flow_name: str, as_of: datetime, started_at: datetime,
        flow_run_id: str | None = None,
    ) -> None:
        ledger.begin_load(self.con, load_id, flow_name=flow_name, as_of=as_of,
                          started_at=started_at, flow_run_id=flow_run_id)

    def finish_load(
        self, load_id: str, *, status: str, completed_at: datetime, practices_ok: int,
        practices_failed: int, detail: str | None = None,
    ) -> None:
        ledger.finish_load(self.con, load_id, status=status, completed_at=completed_at,
                           practices_ok=practices_ok, practices_failed=practices_failed, detail=detail)

    def record_practice_runs(
        self, load_id: str, outcomes: Sequence[Mapping[str, Any]], *, finished_at: datetime
    ) -> None:
        ledger.record_practice_runs(self.con, load_id, outcomes, finished_at=finished_at)

    def sync_registry(self, registry: Registry, load_id: str) -> None:
        ledger.sync_registry(self.con, registry, load_id)

    def load_bookings(
        self, load_id: str, *, observed_at: datetime, exports: Sequence[BookingLogExport],
        fetch_failures: Sequence[HttpError], reads: Sequence[AppointmentRead],
    ) -> None:
        ledger.load_bookings(self.con, load_id, observed_at=observed_at, exports=exports,
                             fetch_failures=fetch_failures, reads=reads)

    def load_practice_file(
        self, path: Path, *, load_id: str, practice_ods: str, stream: str = "slots"
    ) -> PracticeLoad:
        return load.load_practice_file(self.con, path, load_id=load_id, practice_ods=practice_ods,
                                       stream=stream)

    def load_practice_files(
        self, files: Sequence[LandingFile], *, load_id: str, stream: str = "slots",
        threads: int | None = None,
    ) -> list[PracticeLoad | PracticeDataError]:
        return load.load_practice_files(self.con, files, load_id=load_id, stream=stream, threads=threads)

    def fold_slot_history(self, threads: int | None = None, practices: Sequence[str] | None = None) -> int:
        return fold.fold_slot_history(self.con, threads, practices)

    def build_models(self, load_id: str | None = None) -> None:
        models.build_models(self.con, load_id)

    def mart_tables(self) -> list[str]:
        return models.mart_tables(self.con)

    def publish(self, published_dir: Path, *, load_id: str, as_of: datetime) -> Path:
        return publish.publish(self.con, published_dir, load_id=load_id, as_of=as_of)

    def raw_body(
        self, load_id: str, practice_ods: str, filter_key: str, window_start: datetime,
        *, landing_dir: Path | None = None,
    ) -> bytes:
        return landing.raw_body(self.con, load_id, practice_ods, filter_key, window_start,
                                landing_dir=landing_dir)

    def prune_landing(self, landing_dir: Path, *, retention_days: int, now: datetime) -> list[Path]:
        return landing.prune_landing(self.con, landing_dir, retention_days=retention_days, now=now)
