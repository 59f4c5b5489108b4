"""`slotsync bench`: slots per second from HTTP responses to typed warehouse rows.

One run does three things and reports them side by side:

1. **Fetch.** The sandbox estate runs in its own process (standalone mode, simulated clock
   pinned to `BENCH_START`, so the bytes are identical on every run) and `GpConnectClient`
   makes the real differential searches (`flows.sync.search_filters`) for every practice over
   a 28-day horizon. The response bytes stay in memory. Requests/s and MB/s include the
   sandbox's own cost of building the bundles: it is a measurement of this pair, not of httpx.
2. **Ingest (ours).** From those in-memory responses to typed rows in
   `staging.stg_gpconnect__slots` through the production code path, into a fresh warehouse:
   `write_landing_file` for each practice (what the fetch tasks do), then what the writer
   does with them: `Warehouse.load_practice_files` (raw metadata, slots, schedules,
   locations and practitioners, one transaction per practice) and
   `Warehouse.fold_slot_history` (the observation folded into `core.fct_slot_history`).
3. **The limit (DuckDB).** The same bundle bytes, written once as NDJSON (one bundle per
   line), read by DuckDB's own `read_json` with an explicit `columns` schema and
   `records=true`, `unnest(entry)` and flattened to the same typed columns in one
   `CREATE TABLE AS`.

Both ingest timings end with a `CHECKPOINT`, so each counts the work of getting its rows
into the database file. They alternate (ours first on even repetitions, the limit first on
odd ones) and the reported ratio is the median of the per-repetition ratios: on a small
noisy machine only ratios measured side by side in one process mean anything. A checksum
over the typed columns proves both paths produced the same rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import duckdb

from connectors.gpconnect.client import GpConnectClient, SlotSearchResponse
from connectors.gpconnect.windows import plan_windows
from connectors.registry import Practice, Registry, load_registry
from warehouse.db import connect, open_warehouse
from warehouse.landing import LandedResponse, landing_path, write_landing_file
from warehouse.loader import LandingFile, PracticeLoad, Warehouse, new_load_id
from warehouse.quality import validation_s_per_million_rows

BENCH_START = "2026-03-23T02:00:00+00:00"  # a Monday's nightly run; the horizon crosses BST
HORIZON_DAYS = 28
SANDBOX_SEED = 20261126
SANDBOX_STARTUP_TIMEOUT_S = 90.0
TARGET_RATIO = 0.5
# Landing files written at once, as by the sync's concurrent practice tasks.
LANDING_WRITERS = 8
JSON_SCHEMA_VERSION = 2  # 2: adds per-phase and CPU seconds and staging_ratio_vs_duckdb

_TYPED_COLUMNS = (
    "slot_id, schedule_id, start_at, end_at, start_text, end_text, status, delivery_channel, "
    "slot_type, version_id"
)
_SLOT_STRUCT = (
    'STRUCT(resourceType VARCHAR, id VARCHAR, meta STRUCT(versionId VARCHAR), '
    'schedule STRUCT(reference VARCHAR), status VARCHAR, start VARCHAR, "end" VARCHAR, '
    "serviceType STRUCT(text VARCHAR)[], extension STRUCT(url VARCHAR, valueCode VARCHAR)[])"
)
# DuckDB's own best: explicit columns AND records=true, newline-delimited, flatten in SQL.
# The expressions are those of warehouse/sql/models/staging/stg_gpconnect__slots.sql.
LIMIT_SQL = f"""
create table limit_slots as
with entries as (
    select unnest(entry).resource as r
    from read_json(
        $path,
        format = 'newline_delimited',
        records = true,
        maximum_object_size = 268435456,
        columns = {{'entry': 'STRUCT(resource {_SLOT_STRUCT})[]'}}
    )
)
select
    r.id as slot_id,
    nullif(regexp_extract(r.schedule.reference, '^Schedule/(.+)$', 1), '') as schedule_id,
    try_cast(r.start as timestamptz) as start_at,
    try_cast(r."end" as timestamptz) as end_at,
    r.start as start_text,
    r."end" as end_text,
    r.status,
    list_filter(
        r.extension,
        lambda x: x.url = 'https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-DeliveryChannel-2'
    )[1].valueCode as delivery_channel,
    r.serviceType[1].text as slot_type,
    r.meta.versionId as version_id
from entries
where r.resourceType = 'Slot'
"""


class BenchSize(StrEnum):
    small = "small"
    region = "region"
    england = "england"


@dataclass(frozen=True)
class SizePlan:
    """Which registry rows to fetch and how many ingest repetitions to run."""

    description: str
    practices: int | None  # None = every practice in the estate
    hubs: int | None
    repetitions: int


PLANS: dict[BenchSize, SizePlan] = {
    BenchSize.small: SizePlan("3 practices and 1 hub of the sandbox estate (CI)", 3, 1, 3),
    BenchSize.region: SizePlan("the built-in 42-row sandbox estate (37 practices, 5 hubs)", None, None, 5),
}


class BenchNotImplemented(ValueError):
    """A size the bench cannot run yet."""


@dataclass(frozen=True)
class PracticeBatch:
    """One practice's responses, exactly what `fetch_practice` would land."""

    practice_ods: str
    responses: tuple[LandedResponse, ...]


@dataclass(frozen=True)
class FetchResult:
    registry: Registry
    batches: tuple[PracticeBatch, ...]
    seconds: float
    observed_at: datetime
    client_cpu_s: float  # this process's CPU time while fetching; the rest is waiting on the sandbox

    @property
    def responses(self) -> int:
        return sum(len(b.responses) for b in self.batches)

    @property
    def bytes(self) -> int:
        return sum(len(r.response.body) for b in self.batches for r in b.responses)


@dataclass(frozen=True)
class IngestRun:
    slots: int
    seconds: float
    checksum: tuple[int, int] | None = None
    phases: dict[str, float] = field(default_factory=dict)  # ours: where the seconds went
    cpu_s: float = 0.0  # CPU time of this process (every thread) over the same span

    @property
    def slots_per_s(self) -> float:
        return self.slots / self.seconds if self.seconds > 0 else 0.0


@dataclass
class BenchReport:
    size: str
    plan: SizePlan
    practices: int
    fetch: FetchResult
    ours: list[IngestRun] = field(default_factory=list)
    limit: list[IngestRun] = field(default_factory=list)
    rows_match: bool = False
    peak_rss_mib: float = 0.0
    sandbox_peak_rss_mib: float | None = None
    wall_s: float = 0.0
    work_dir: str = ""

    @property
    def slots(self) -> int:
        return self.ours[0].slots if self.ours else 0

    @property
    def ratios(self) -> list[float]:
        return [o.slots_per_s / lim.slots_per_s for o, lim in zip(self.ours, self.limit, strict=True)]

    def as_json(self) -> dict[str, Any]:
        fetch = self.fetch
        ratio = statistics.median(self.ratios)
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "size": self.size,
            "description": self.plan.description,
            "practices": self.practices,
            "slots": self.slots,
            "responses": fetch.responses,
            "bytes": fetch.bytes,
            "fetch_s": round(fetch.seconds, 3),
            "http_req_per_s": round(fetch.responses / fetch.seconds, 1),
            "http_mb_per_s": round(fetch.bytes / 1e6 / fetch.seconds, 2),
            "fetch_client_cpu_s": round(fetch.client_cpu_s, 3),
            "ingest_slots_per_s": round(statistics.median(o.slots_per_s for o in self.ours)),
            "duckdb_limit_slots_per_s": round(statistics.median(r.slots_per_s for r in self.limit)),
            "ingest_ratio_vs_duckdb": round(ratio, 3),
            # The same without the slot-history fold: responses to typed staging rows only.
            "staging_ratio_vs_duckdb": round(statistics.median(
                lim.seconds / (o.seconds - o.phases.get("fold", 0.0))
                for o, lim in zip(self.ours, self.limit, strict=True)
            ), 3) if self.ours else None,
            "target_ratio": TARGET_RATIO,
            "meets_target": ratio >= TARGET_RATIO,
            "speedup_vs_naive": None,
            "rows_match": self.rows_match,
            "repetitions": [
                {"ours_s": round(o.seconds, 4), "limit_s": round(lim.seconds, 4),
                 "ratio": round(r, 3), "ours_phases_s": o.phases, "ours_cpu_s": round(o.cpu_s, 3),
                 "limit_cpu_s": round(lim.cpu_s, 3)}
                for o, lim, r in zip(self.ours, self.limit, self.ratios, strict=True)
            ],
            "ours_cpu_s_median": round(statistics.median(o.cpu_s for o in self.ours), 3),
            "limit_cpu_s_median": round(statistics.median(r.cpu_s for r in self.limit), 3),
            "ours_phases_median_s": {
                name: round(statistics.median(o.phases[name] for o in self.ours), 4)
                for name in (self.ours[0].phases if self.ours else {})
            },
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "sandbox_peak_rss_mib": (
                round(self.sandbox_peak_rss_mib, 1) if self.sandbox_peak_rss_mib is not None else None
            ),
            "wall_s": round(self.wall_s, 2),
            "validation_s_per_million_rows": validation_s_per_million_rows(),
            "start": BENCH_START,
            "horizon_days": HORIZON_DAYS,
            "machine": machine_info(),
        }


# ---------------------------------------------------------------------- fetch


class StandaloneSandbox:
    """`python -m connectors.sandbox` in its own process (its own GIL), on a free port."""

    def __init__(self, work_dir: Path, *, start: str = BENCH_START, seed: int = SANDBOX_SEED) -> None:
        self.registry_path = work_dir / "sandbox-registry.yaml"
        self.log_path = work_dir / "sandbox.log"
        self._start = start
        self._seed = seed
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Registry:
        command = [
            sys.executable, "-m", "connectors.sandbox", "--port", "0", "--start", self._start,
            "--seed", str(self._seed), "--write-registry", str(self.registry_path),
        ]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + SANDBOX_STARTUP_TIMEOUT_S
        while b"sandbox GP Connect estate on " not in self.log_path.read_bytes():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(
                    "the standalone sandbox did not start; its output:\n"
                    + self.log_path.read_text(errors="replace")[-2000:]
                )
            time.sleep(0.05)
        return load_registry(self.registry_path)

    def __exit__(self, *exc_info: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()  # SIGTERM unwinds like Ctrl-C and releases the port
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def select_practices(registry: Registry, plan: SizePlan) -> list[Practice]:
    practices = [p for p in registry.practices if p.kind == "practice"]
    hubs = [p for p in registry.practices if p.kind == "hub"]
    return practices[: plan.practices] + hubs[: plan.hubs]


async def fetch_estate(
    registry: Registry, practices: Sequence[Practice], start: datetime, horizon_days: int
) -> FetchResult:
    """The nightly run's searches (every window x every differential filter), bytes kept."""
    from connectors.config import get_settings
    from flows.sync import FixedClock, search_filters

    settings = get_settings()
    windows = plan_windows(start, horizon_days, settings.sync.window_days)

    async def one_practice(client: GpConnectClient, practice: Practice) -> PracticeBatch:
        jobs = [(role, window, sf) for window in windows for role, sf in search_filters(practice)]
        results: list[SlotSearchResponse] = await asyncio.gather(
            *(client.search_free_slots(practice, window, sf) for _, window, sf in jobs)
        )
        return PracticeBatch(
            practice.ods_code,
            tuple(LandedResponse(r, role) for (role, _, _), r in zip(jobs, results, strict=True)),
        )

    async with GpConnectClient(settings.http, settings.consumer, clock=FixedClock(start)) as client:
        began, cpu = time.perf_counter(), time.process_time()
        batches = await asyncio.gather(*(one_practice(client, p) for p in practices))
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    return FetchResult(registry, tuple(batches), seconds, start.replace(microsecond=0), cpu)


# ---------------------------------------------------------------------- ingest


def write_bundles_ndjson(path: Path, batches: Sequence[PracticeBatch]) -> None:
    """The limit's input: the same bundle bytes, one bundle per line."""
    with path.open("wb") as handle:
        for batch in batches:
            for landed in batch.responses:
                handle.write(landed.response.body.replace(b"\r", b" ").replace(b"\n", b" ") + b"\n")


def _checksum(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, int]:
    """(rows, order-independent sum of row hashes) over the typed slot columns."""
    count, total = con.execute(
        f"select count(*), coalesce(sum(hash({_TYPED_COLUMNS})::hugeint), 0) from {table}"
    ).fetchall()[0]
    return int(count), int(total)


def ingest_ours(run_dir: Path, fetch: FetchResult, *, checksum: bool) -> IngestRun:
    """The production path into a fresh warehouse: land each practice, load them, fold.

    Set-up (not timed) is what `run_slot_sync` does before fetching: create and migrate the
    warehouse, open the load in the ledger and record the registry, which later loader steps
    read (e.g. which searches make an observation complete).
    """
    observed_at = fetch.observed_at
    con = open_warehouse(run_dir / "warehouse.duckdb")
    try:
        warehouse = Warehouse(con)
        load_id = new_load_id("bench", observed_at, run_dir.name)
        warehouse.begin_load(load_id, flow_name="bench", as_of=observed_at, started_at=observed_at)
        warehouse.sync_registry(fetch.registry, load_id)
        landing_dir = run_dir / "landing"
        phases: dict[str, float] = {}
        began = mark = time.perf_counter()
        cpu = time.process_time()

        def phase(name: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            phases[name] = round(now - mark, 4)
            mark = now

        def land(batch: PracticeBatch) -> LandingFile:
            path = landing_path(landing_dir, load_id, batch.practice_ods)
            write_landing_file(path, load_id=load_id, observed_at=observed_at, responses=batch.responses)
            return LandingFile(batch.practice_ods, path)

        # The sync's practice tasks land their files concurrently, each in a thread.
        with ThreadPoolExecutor(LANDING_WRITERS) as pool:
            files = list(pool.map(land, fetch.batches))
        phase("landing")
        results = warehouse.load_practice_files(files, load_id=load_id)
        phase("load")
        warehouse.fold_slot_history()
        phase("fold")
        con.execute("CHECKPOINT")
        phase("checkpoint")
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        refused = [r for r in results if not isinstance(r, PracticeLoad)]
        if refused:
            raise RuntimeError(f"the bench's own responses were refused: {refused[0]}")
        slots = sum(r.slot_rows for r in results if isinstance(r, PracticeLoad))
        total = _checksum(con, "staging.stg_gpconnect__slots") if checksum else None
    finally:
        con.close()
    return IngestRun(slots, seconds, total, phases, cpu)


def ingest_limit(run_dir: Path, ndjson: Path, *, checksum: bool) -> IngestRun:
    """DuckDB's own read_json on the same bytes, into a table of a fresh database file."""
    con = connect(run_dir / "limit.duckdb")
    try:
        began, cpu = time.perf_counter(), time.process_time()
        con.execute(LIMIT_SQL, {"path": str(ndjson)})
        con.execute("CHECKPOINT")
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        slots = int(con.execute("select count(*) from limit_slots").fetchall()[0][0])
        total = _checksum(con, "limit_slots") if checksum else None
    finally:
        con.close()
    return IngestRun(slots, seconds, total, cpu_s=cpu)


# ---------------------------------------------------------------------- run


def _rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def run_bench(
    size: BenchSize,
    *,
    repetitions: int | None = None,
    work_dir: Path | None = None,
    progress: Callable[[str], None] = print,
) -> BenchReport:
    """Fetch once, then measure ours and the limit `repetitions` times, side by side."""
    if size not in PLANS:
        raise BenchNotImplemented(
            f"--size {size.value} is not implemented yet: it needs the England-scale estate and "
            "a fetch that spills responses to disk; use --size small or --size region"
        )
    plan = PLANS[size]
    reps = repetitions or plan.repetitions
    if reps < 1:
        raise ValueError("repetitions must be at least 1")
    began = time.perf_counter()
    start = datetime.fromisoformat(BENCH_START)
    with tempfile.TemporaryDirectory(prefix="slotsync-bench-", dir=work_dir) as tmp:
        root = Path(tmp)
        progress(f"starting the sandbox estate in its own process (simulated start {BENCH_START})")
        with StandaloneSandbox(root) as registry:
            practices = select_practices(registry, plan)
            progress(f"fetching {len(practices)} practice(s), {HORIZON_DAYS}-day horizon")
            fetch = asyncio.run(fetch_estate(registry, practices, start, HORIZON_DAYS))
        sandbox_rss = _rss_mib(resource.RUSAGE_CHILDREN)
        report = BenchReport(size.value, plan, len(practices), fetch, work_dir=str(root))
        ndjson = root / "bundles.ndjson"
        write_bundles_ndjson(ndjson, fetch.batches)
        progress("warm-up (not reported): one run of each")
        for warm in ("ours", "limit"):
            run_dir = root / f"warmup-{warm}"
            run_dir.mkdir()
            if warm == "ours":
                ingest_ours(run_dir, fetch, checksum=False)
            else:
                ingest_limit(run_dir, ndjson, checksum=False)
            shutil.rmtree(run_dir)
        for rep in range(reps):
            run_dir = root / f"rep{rep:02d}"
            run_dir.mkdir()
            first = rep == 0
            if rep % 2 == 0:
                ours = ingest_ours(run_dir, fetch, checksum=first)
                limit = ingest_limit(run_dir, ndjson, checksum=first)
            else:
                limit = ingest_limit(run_dir, ndjson, checksum=first)
                ours = ingest_ours(run_dir, fetch, checksum=first)
            if first:
                report.rows_match = ours.checksum == limit.checksum
            report.ours.append(ours)
            report.limit.append(limit)
            progress(
                f"  rep {rep + 1}/{reps}: ours {ours.slots_per_s:,.0f} slots/s, "
                f"limit {limit.slots_per_s:,.0f} slots/s, ratio {ours.slots_per_s / limit.slots_per_s:.2f}"
            )
            shutil.rmtree(run_dir)  # keep the disk footprint to one repetition at a time
    report.sandbox_peak_rss_mib = sandbox_rss
    report.peak_rss_mib = _rss_mib(resource.RUSAGE_SELF)
    report.wall_s = time.perf_counter() - began
    return report


def format_report(report: BenchReport) -> str:
    data = report.as_json()
    lines = [
        f"slotsync bench --size {data['size']}: {data['description']}",
        f"  {data['practices']} practice(s), {data['responses']} responses, "
        f"{data['bytes'] / 1e6:.1f} MB of bundles, {data['slots']:,} slots",
        "",
        "fetch (1 run; sandbox in its own process, its bundle-building cost included)",
        f"  {data['responses']} requests in {data['fetch_s']:.2f} s = {data['http_req_per_s']:.1f} req/s, "
        f"{data['http_mb_per_s']:.1f} MB/s; client CPU {data['fetch_client_cpu_s']:.2f} s of the "
        f"{data['fetch_s']:.2f} s (the rest is waiting for the sandbox)",
        "",
        "ingest, responses in memory -> typed rows (slots/s; each line measured side by side)",
        f"  {'rep':>5}  {'ours s':>8}  {'ours slots/s':>13}  {'limit s':>8}  {'limit slots/s':>14}"
        f"  {'ratio':>6}",
    ]
    for i, (ours, limit, ratio) in enumerate(
        zip(report.ours, report.limit, report.ratios, strict=True), start=1
    ):
        lines.append(
            f"  {i:>5}  {ours.seconds:>8.3f}  {ours.slots_per_s:>13,.0f}  {limit.seconds:>8.3f}  "
            f"{limit.slots_per_s:>14,.0f}  {ratio:>6.2f}"
        )
    lines += [
        f"  {'median':>5}  {'':>8}  {data['ingest_slots_per_s']:>13,}  {'':>8}  "
        f"{data['duckdb_limit_slots_per_s']:>14,}  {data['ingest_ratio_vs_duckdb']:>6.2f}",
        "  ours, median s per phase: " + ", ".join(
            f"{name} {seconds:.3f}" for name, seconds in data["ours_phases_median_s"].items()
        ),
        f"  CPU s (all threads), median: ours {data['ours_cpu_s_median']:.3f}, "
        f"limit {data['limit_cpu_s_median']:.3f}",
        "",
        f"ingest_ratio_vs_duckdb {data['ingest_ratio_vs_duckdb']:.2f} (target >= {TARGET_RATIO:.2f}: "
        f"{'met' if data['meets_target'] else 'NOT met'}); without the slot-history fold "
        f"{data['staging_ratio_vs_duckdb']:.2f}; typed rows identical: "
        f"{'yes' if data['rows_match'] else 'NO'}",
        f"peak RSS {data['peak_rss_mib']:.0f} MiB (sandbox process {data['sandbox_peak_rss_mib']:.0f} MiB); "
        f"wall {data['wall_s']:.1f} s",
    ]
    return "\n".join(lines)


def write_json(report: BenchReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.as_json(), indent=2) + "\n", encoding="utf-8")


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_mib: int | None = None
    with contextlib.suppress(ValueError, OSError):
        memory_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_mib": memory_mib,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "platform": platform.platform(),
    }
