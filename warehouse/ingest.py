"""The one writer sequence: load -> validate -> record -> models -> publish -> prune.

Both writers call `ingest`: a sync's `load_and_publish` with the load it fetched, and the
`validate` flow with no load (it re-judges what is pending and republishes). Every practice's
outcome is built once, here, from typed failures (`PracticeFailure`): the fetch failure the
flow brings, a refused landing file (`PracticeDataError`) or a quarantined batch, first one
wins. The report says what happened, including how long each step took.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from common.files import DIR_MODE, FILE_MODE
from connectors.bookinglog import AppointmentRead, BookingLogExport
from connectors.http.errors import HttpError
from warehouse import landing, ledger, load, models, publish
from warehouse.quality import BatchOutcome, ValidationReport, validate_pending

SEARCH_FREE_SLOTS = "search free slots"


@dataclass(frozen=True)
class PracticeFailure:
    """Why a practice failed in a load, as its `meta.practice_run` row and the summary say."""

    interaction: str
    error_class: str
    message: str
    next_step: str
    http_status: int | None = None

    @classmethod
    def from_fetch(cls, practice_ods: str, error: BaseException) -> PracticeFailure:
        """A slot search that failed: an HTTP error says what to do; anything else is a bug."""
        if isinstance(error, HttpError):
            return cls(error.interaction, error.error_class, str(error), error.next_step, error.status)
        return cls(
            SEARCH_FREE_SLOTS, type(error).__name__,
            f"practice {practice_ods}, {SEARCH_FREE_SLOTS}: {error!r}",
            "unexpected error: check the logs, then re-run the practice",
        )

    @classmethod
    def refused(cls, error: load.PracticeDataError) -> PracticeFailure:
        """A landing file the loader refused (nothing of it staged)."""
        return cls(SEARCH_FREE_SLOTS, type(error).__name__, str(error),
                   "raise the bad payload with the supplier, then re-run")

    @classmethod
    def quarantined(cls, practice_ods: str, load_id: str, batch: BatchOutcome) -> PracticeFailure:
        """A batch the data-quality expectations held back (kept, not published)."""
        return cls(
            "data quality", "QuarantinedBatch",
            f"practice {practice_ods}, load {load_id}: quarantined, not published: {batch.detail()}",
            "raise it with the supplier, then re-run; `slotsync validate` lists it",
        )


@dataclass(frozen=True)
class PracticeOutcome:
    """What happened to one practice in one run (also the summary table row)."""

    practice_ods: str
    status: str  # ok | failed
    responses: int = 0
    slot_rows: int = 0
    interaction: str | None = None
    http_status: int | None = None
    error_class: str | None = None
    message: str | None = None
    next_step: str | None = None
    landing_file: str | None = None

    @classmethod
    def fetched(
        cls, practice_ods: str, *, responses: int, landing_file: str | None,
        failure: PracticeFailure | None = None,
    ) -> PracticeOutcome:
        return cls(practice_ods, "ok", responses=responses, landing_file=landing_file).failed_with(failure)

    def failed_with(self, failure: PracticeFailure | None) -> PracticeOutcome:
        """This outcome failed for `failure`, unless it had already failed (the first wins)."""
        if failure is None or self.status == "failed":
            return self
        return replace(self, status="failed", **asdict(failure))


@dataclass(frozen=True)
class Bookings:
    """What a load fetched from booking logs and Read Appointment."""

    exports: Sequence[BookingLogExport] = ()
    failures: Sequence[HttpError] = ()
    reads: Sequence[AppointmentRead] = ()


@dataclass(frozen=True)
class LoadInput:
    """One load handed to the writer: its fetched practices and bookings."""

    load_id: str
    stream: str
    as_of: datetime
    fetched: Sequence[PracticeOutcome]
    skipped: Sequence[str] = ()  # re-runs: practices already complete, recorded as ok
    bookings: Bookings = Bookings()
    preloaded: Preloaded | None = None  # what a pipelined writer did while fetching went on


@dataclass
class Preloaded:
    """Practices of a load already loaded (and validated) while the fetch went on.

    A pipelined night (flows/landed_writer.py) loads landed practices in batches with
    `load_landed` and validates them; `ingest` then loads only the rest and merges these
    outcomes and verdicts into the load's report.
    """

    outcomes: dict[str, PracticeOutcome] = field(default_factory=dict)  # practice -> after loading
    refused: list[PracticeOutcome] = field(default_factory=list)
    validation: ValidationReport = field(default_factory=ValidationReport)
    bookings_loaded: bool = False
    bookings_loaded_after_s: float | None = None  # from the writer's start: validation began then
    batches: int = 0
    load_s: float = 0.0
    validate_s: float = 0.0
    fold_s: float = 0.0
    gate_setup_s: float | None = None  # GX's context made in a thread as the night started (None: not)


@dataclass(frozen=True)
class Places:
    """Where the writer reads and writes besides the warehouse."""

    data_dir: Path
    published_dir: Path
    landing_dir: Path
    raw_retention_days: int
    file_mode: int = FILE_MODE
    dir_mode: int = DIR_MODE
    models_memory_limit: str | None = None  # DuckDB's limit while the models build (None: the writer's)


@dataclass
class IngestReport:
    """What one `ingest` did."""

    validation: ValidationReport
    outcomes: list[PracticeOutcome] = field(default_factory=list)
    refused: list[PracticeOutcome] = field(default_factory=list)  # refused by the loader
    published: Path | None = None
    pruned: list[Path] = field(default_factory=list)
    phases_s: dict[str, float] = field(default_factory=dict)  # load, validate, models, publish


Validator = Callable[[duckdb.DuckDBPyConnection], ValidationReport]


def ingest(
    con: duckdb.DuckDBPyConnection,
    places: Places,
    *,
    now: Callable[[], datetime],
    new_load: LoadInput | None = None,
    validate: Validator | None = None,
) -> IngestReport:
    """Run the writer sequence on the writer's connection.

    With `new_load`: load its landing files and bookings, validate, record every practice's
    outcome, build the models, complete the load, publish it and prune the landing area.
    Without: validate what is pending and, when anything was judged, rebuild the models and
    republish the latest completed load. `validate` replaces the default validation (the
    flows run it as a Prefect task).
    """
    phases: dict[str, float] = {}
    clock = _Phases(phases)
    load_id = new_load.load_id if new_load is not None else None
    outcomes: list[PracticeOutcome] = []
    refused: list[PracticeOutcome] = []
    if new_load is not None:
        outcomes, refused = _load(con, new_load)
        clock.done("load")
    judge = validate or (lambda c: validate_pending(c, data_dir=places.data_dir, validated_by=load_id))
    validation = judge(con)
    pre = new_load.preloaded if new_load is not None else None
    if pre is not None:
        validation = merged_reports(pre.validation, validation)
        refused = pre.refused + refused
    report = IngestReport(validation, outcomes, refused, phases_s=phases)
    clock.done("validate")
    if pre is not None:
        # Writer time spent while fetching went on: the night's cost, not its tail.
        phases.update(load_while_fetching=round(pre.load_s, 2),
                      validate_while_fetching=round(pre.validate_s, 2),
                      fold_while_fetching=round(pre.fold_s, 2), batches_while_fetching=pre.batches)
        if pre.gate_setup_s is not None:  # else GX's start-up is inside a validate phase
            phases["gate_setup_while_fetching"] = round(pre.gate_setup_s, 2)
        if pre.bookings_loaded_after_s is not None:
            phases["bookings_loaded_after_s"] = round(pre.bookings_loaded_after_s, 2)
    if new_load is None:
        if report.validation.batches:
            models.build_models(con, memory_limit=places.models_memory_limit)
            latest = ledger.latest_completed_load(con)
            if latest is not None:
                report.published = publish.publish(
                    con, places.published_dir, load_id=latest[0], as_of=latest[1],
                    file_mode=places.file_mode, dir_mode=places.dir_mode,
                )
        return report
    quarantined = report.validation.for_load(new_load.load_id)
    report.outcomes = [
        o.failed_with(PracticeFailure.quarantined(o.practice_ods, new_load.load_id, batch))
        if (batch := quarantined.get(o.practice_ods)) is not None else o
        for o in report.outcomes
    ]
    _record(con, new_load, report.outcomes, now())
    models.build_models(con, new_load.load_id, memory_limit=places.models_memory_limit)
    clock.done("models")
    failed = sum(o.status != "ok" for o in report.outcomes)
    ledger.finish_load(
        con, new_load.load_id, status="completed", completed_at=now(),
        practices_ok=len(report.outcomes) - failed, practices_failed=failed,
    )
    report.published = publish.publish(
        con, places.published_dir, load_id=new_load.load_id, as_of=new_load.as_of,
        file_mode=places.file_mode, dir_mode=places.dir_mode,
    )
    clock.done("publish")
    # The landing files are the raw archive: drop completed loads' past retention.
    report.pruned = landing.prune_landing(con, places.landing_dir,
                                          retention_days=places.raw_retention_days, now=now())
    return report


def load_landed(
    con: duckdb.DuckDBPyConnection, load_id: str, stream: str, fetched: Sequence[PracticeOutcome]
) -> tuple[dict[str, PracticeOutcome], list[PracticeOutcome]]:
    """Load the landing files of `fetched` (batched; each practice all or nothing).

    Returns each landed practice's outcome after loading (its slot rows, or failed when its
    file was refused) and the refused ones.
    """
    landed = [o for o in fetched if o.landing_file]
    if not landed:  # e.g. the pipelined writer's step that loads only the bookings
        return {}, []
    results = load.load_practice_files(
        con, [load.LandingFile(o.practice_ods, Path(o.landing_file or "")) for o in landed],
        load_id=load_id, stream=stream,
    )
    by_practice: dict[str, PracticeOutcome] = {}
    refused: list[PracticeOutcome] = []
    for outcome, result in zip(landed, results, strict=True):
        if isinstance(result, load.PracticeDataError):
            by_practice[outcome.practice_ods] = outcome.failed_with(PracticeFailure.refused(result))
            refused.append(by_practice[outcome.practice_ods])
        else:
            by_practice[outcome.practice_ods] = replace(outcome, slot_rows=result.slot_rows)
    return by_practice, refused


def _load(
    con: duckdb.DuckDBPyConnection, new_load: LoadInput
) -> tuple[list[PracticeOutcome], list[PracticeOutcome]]:
    """Load the landed files not loaded while fetching, then the bookings."""
    done = new_load.preloaded.outcomes if new_load.preloaded is not None else {}
    by_practice, refused = load_landed(
        con, new_load.load_id, new_load.stream, [o for o in new_load.fetched if o.practice_ods not in done]
    )
    by_practice.update(done)
    if new_load.preloaded is None or not new_load.preloaded.bookings_loaded:
        load_bookings(con, new_load.load_id, new_load.as_of, new_load.bookings)
    return [by_practice.get(o.practice_ods, o) for o in new_load.fetched], refused


def load_bookings(con: duckdb.DuckDBPyConnection, load_id: str, as_of: datetime, bookings: Bookings) -> None:
    """The load's booking-log exports, their fetch failures and appointment reads (one transaction)."""
    ledger.load_bookings(con, load_id, observed_at=as_of, exports=bookings.exports,
                         fetch_failures=bookings.failures, reads=bookings.reads)


def merged_reports(first: ValidationReport, then: ValidationReport) -> ValidationReport:
    """One report of a load's validations: those while fetching, then the final one."""
    rows = dict(first.rows)
    for frame, n in then.rows.items():
        rows[frame] = rows.get(frame, 0) + n
    return ValidationReport(
        batches=[*first.batches, *then.batches], rows=rows, extract_s=first.extract_s + then.extract_s,
        validate_s=first.validate_s + then.validate_s, data_docs=then.data_docs or first.data_docs,
    )


def _record(
    con: duckdb.DuckDBPyConnection, new_load: LoadInput, outcomes: Sequence[PracticeOutcome],
    finished_at: datetime,
) -> None:
    # A re-run records the practices it found complete as ok (nothing fetched), so even a
    # repaired crashed load shows every practice's outcome at its instant.
    skipped: list[dict[str, Any]] = [{"practice_ods": ods, "status": "ok"} for ods in new_load.skipped]
    ledger.record_practice_runs(
        con, new_load.load_id, [asdict(o) for o in outcomes] + skipped, finished_at=finished_at
    )


class _Phases:
    """Seconds spent in each step of the sequence, written into the report as they end."""

    def __init__(self, phases: dict[str, float]) -> None:
        self._phases = phases
        self._began = time.perf_counter()

    def done(self, name: str) -> None:
        self._phases[name] = round(time.perf_counter() - self._began, 2)
        self._began = time.perf_counter()
