"""`slotsync bench`: slots per second from HTTP responses to typed warehouse rows, and at scale.

One run measures, side by side in the same run:

1. **Fetch.** The sandbox estate runs in its own process (standalone mode, simulated clock
   pinned to `BENCH_START`, so the bytes are identical on every run) and `GpConnectClient`
   makes the real differential searches (`connectors.gpconnect.searches.search_filters`) for
   every practice over a 28-day horizon. The response bytes stay in memory. Requests/s and MB/s include the
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
   `CREATE TABLE AS`. Its `maximum_object_size` follows its largest line by the loader's own
   rule (`warehouse.load.object_buffer_bytes`, which the loader applies to its largest file):
   DuckDB reads a file in parallel only when it is larger than that buffer, so a limit with
   a buffer larger than the file (256 MiB before schema 5) was measured on one thread.

4. **The naive baseline and its FHIR-minded peer.** A sample of the same responses (at least
   `NAIVE_SAMPLE_SLOTS` slots): the naive baseline parses each response with orjson and
   inserts one row per Slot, all in ONE transaction (what a careful naive user writes: not one
   auto-commit per row, which mostly measures DuckDB's per-commit cost); the peer parses each
   Slot into a `fhir.resources` STU3 model first, same inserts, one transaction.
   `speedup_vs_naive` is ours over the naive baseline in slots/s; wall and CPU of each reported.
5. **End to end** (`lab/bench_flow.py`, in its own process; `peak_rss_tree_mib` is the
   sampled peak of the summed RSS of that process and every descendant, Prefect's temporary
   API server included; the sandbox runs apart and is reported apart): the
   real `nightly_sync` flow over the whole estate of the size, HTTP responses to published
   marts, and the same flow shape with no-op tasks for Prefect's overhead per task.
6. **Dashboard reads**: the dashboards' own mart reads (`dashboards.data`) on the snapshot the
   nightly run published; p95 over every read.

Both ingest timings end with a `CHECKPOINT`, so each counts the work of getting its rows
into the database file. They alternate (ours first on even repetitions, the limit first on
odd ones) and the reported ratio is the median of the per-repetition ratios: on a small
noisy machine only ratios measured side by side in one process mean anything. A checksum
over the typed columns proves both paths produced the same rows.

`--size england` serves the England-scale estate (`sandbox/england.py`) from the
pre-rendered sandbox (`sandbox/prerendered.py`), whose own CPU, render time and
memory are reported separately. The side-by-side ingest (steps 1-4) runs on a region-sized
sample of it (whole networks), held in memory; the nightly run streams, as production does:
fetch, landing files, batched loads. `--practices N` serves only the first N practices'
networks, for a shorter run; the capacity model then extrapolates to all of England and says so.

7. **With provider latency** (`--latency p50=1s,p95=3s`, `lab/bench_latency.py`): the nightly
   run again against a sandbox that delays each GP Connect call (`sandbox/latency.py`), its
   wall time against the capacity model's prediction (`lab/bench_capacity.py`, formula there)
   and the calls the sandbox had in flight against the settings' limits
   (`--latency-in-flight N` sets this night's per-host and overall limits to N).

`--growth 300,1000,3000,6300` (`lab/bench_growth.py`) runs only the nightly, at each size, for
how wall, CPU and peak memory grow. The child processes live in `lab/bench_processes.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import duckdb
import orjson

from connectors.gpconnect.client import GpConnectClient, SlotSearchResponse
from connectors.gpconnect.windows import plan_windows
from connectors.registry import Practice, Registry
from lab.bench_capacity import capacity_model_from, england_calls_per_night
from lab.bench_gate import gate_s_per_million_rows
from lab.bench_latency import format_latency, latency_night
from lab.bench_processes import (
    BENCH_START,
    HORIZON_DAYS,
    RSS_SAMPLE_S,
    SANDBOX_SEED,
    StandaloneSandbox,
    run_nightly,
)
from sandbox.england import ENGLAND_PRACTICES, sample_estate
from sandbox.latency import parse_latency
from warehouse.db import connect, open_warehouse
from warehouse.landing import LandedResponse, landing_path, write_landing_file
from warehouse.load import object_buffer_bytes
from warehouse.loader import LandingFile, PracticeLoad, Warehouse, new_load_id

DELIVERY_CHANNEL_URL = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-DeliveryChannel-2"
TARGET_RATIO = 0.8  # issue 22 (from 0.5)
# Landing files written at once, as by the sync's concurrent practice tasks.
LANDING_WRITERS = 8
# 2: per-phase and CPU seconds and staging_ratio_vs_duckdb. 3: the nightly run end to end,
# naive baseline, orchestration overhead, mart query p95, sandbox cost, capacity model.
# 5: the limit reads in parallel (maximum_object_size from the largest line, not 256 MiB).
JSON_SCHEMA_VERSION = 5
TARGET_SPEEDUP_VS_NAIVE = 10.0
TARGET_PEAK_RSS_MIB = 2048.0
TARGET_MART_QUERY_P95_S = 1.0
# Issue 22: the England night end to end, the writer's work after its last fetch, and the
# gate's cost per million staged slots on that night.
TARGET_ENGLAND_WALL_S = 360.0
TARGET_AFTER_FETCH_S = 60.0
TARGET_VALIDATION_S_PER_MILLION = 1.0
NAIVE_SAMPLE_SLOTS = 2_000  # row-by-row inserts run at a few hundred rows/s: keep it seconds
ENGLAND_INGEST_SAMPLE = 37  # practices (whole networks) for the side-by-side ingest, region-sized
MART_QUERY_ROUNDS = 5
ENGLAND_ROWS = 7_550  # practices and hubs

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
        maximum_object_size = $maximum_object_size,
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
    estate: str = "live"  # live: the simulated sandbox; england: the pre-rendered England estate
    noop_tasks: int = 200  # no-op practice tasks for the orchestration overhead


PLANS: dict[BenchSize, SizePlan] = {
    BenchSize.small: SizePlan("3 practices and 1 hub of the sandbox estate (CI)", 3, 1, 3, noop_tasks=50),
    BenchSize.region: SizePlan("the built-in 42-row sandbox estate (37 practices, 5 hubs)", None, None, 5),
    BenchSize.england: SizePlan(
        "the England-scale estate (6,300 practices, 1,250 hubs), pre-rendered sandbox", None, None, 3,
        estate="england", noop_tasks=500,
    ),
}


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
    peak_rss_mib: float = 0.0  # this process (it holds the ingest sample's responses)
    sandbox_peak_rss_mib: float | None = None
    sandbox_cpu_s: float | None = None
    sandbox_cost: dict[str, Any] | None = None  # the pre-rendered sandbox's own account
    wall_s: float = 0.0
    work_dir: str = ""
    naive: IngestRun | None = None
    naive_error: str | None = None
    fhir_peer: IngestRun | None = None
    fhir_peer_error: str | None = None
    nightly_peak_rss_tree_mib: float | None = None  # sampled sum over the nightly's process tree
    nightly_tree_max_processes: int | None = None
    nightly: dict[str, Any] | None = None  # lab/bench_flow.py's figures
    nightly_peak_rss_mib: float | None = None
    estate_practices: int = 0  # practices and hubs the nightly run synced
    england_calls: int = 0  # slot searches a full England night makes (capacity model)
    mart_reads_s: dict[str, list[float]] = field(default_factory=dict)
    latency_night: dict[str, Any] | None = None  # lab/bench_latency.py: the night with provider latency
    limit_object_bytes: int | None = None  # the limit's read_json maximum_object_size

    @property
    def slots(self) -> int:
        return self.ours[0].slots if self.ours else 0

    @property
    def speedup_vs_naive(self) -> float | None:
        if self.naive is None or not self.ours or self.naive.slots_per_s <= 0:
            return None
        return statistics.median(o.slots_per_s for o in self.ours) / self.naive.slots_per_s

    @property
    def mart_query_p95_s(self) -> float | None:
        timings = sorted(t for reads in self.mart_reads_s.values() for t in reads)
        if not timings:
            return None
        return timings[min(len(timings) - 1, math.ceil(0.95 * len(timings)) - 1)]

    @property
    def ratios(self) -> list[float]:
        return [o.slots_per_s / lim.slots_per_s for o, lim in zip(self.ours, self.limit, strict=True)]

    def as_json(self) -> dict[str, Any]:
        fetch = self.fetch
        ratio = statistics.median(self.ratios)
        nightly = self.nightly or {}
        speedup = self.speedup_vs_naive
        p95 = self.mart_query_p95_s
        nightly_rss = self.nightly_peak_rss_mib
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "size": self.size,
            "commit": _git_commit(),
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "description": self.plan.description,
            # The nightly run, end to end: the scale figures.
            "estate_practices": self.estate_practices,
            "slots": nightly.get("slots"),
            "nightly_responses": nightly.get("responses"),
            "nightly_wall_s": nightly.get("wall_s"),
            "nightly_fetch_s": nightly.get("fetch_s"),
            "nightly_load_publish_s": nightly.get("load_publish_s"),
            "nightly_writer_phases_s": nightly.get("writer_phases_s"),
            "nightly_slots_per_s": _per_s(nightly.get("slots"), nightly.get("wall_s")),
            "nightly_responses_per_s": _per_s(nightly.get("responses"), nightly.get("fetch_s")),
            "nightly_practices_failed": nightly.get("practices_failed"),
            "nightly_appointment_reads": nightly.get("appointment_reads"),
            "nightly_landing_bytes": nightly.get("landing_bytes"),
            "nightly_warehouse_bytes": nightly.get("warehouse_bytes"),
            "nightly_cpu_s": nightly.get("cpu_s"),
            "nightly_rss_peak_fetch_mib": nightly.get("rss_peak_fetch_mib"),
            "nightly_rss_peak_load_publish_mib": nightly.get("rss_peak_load_publish_mib"),
            # The nightly process alone (its own ru_maxrss), and the sampled peak of the summed
            # RSS of its whole tree: it, Prefect's temporary API server, every child. The
            # target applies to the tree; the sandbox (a separate process) is reported apart.
            "peak_rss_mib": round(nightly_rss, 1) if nightly_rss is not None else None,
            "peak_rss_tree_mib": (
                None if self.nightly_peak_rss_tree_mib is None else round(self.nightly_peak_rss_tree_mib, 1)
            ),
            "peak_rss_tree_max_processes": self.nightly_tree_max_processes,
            "peak_rss_tree_sample_s": RSS_SAMPLE_S,
            "target_peak_rss_mib": TARGET_PEAK_RSS_MIB,
            "orchestration_overhead_ms_per_task": (self.nightly or {}).get("orchestration", {}).get(
                "ms_per_task"
            ),
            "orchestration": nightly.get("orchestration"),
            "mart_query_p95_s": round(p95, 4) if p95 is not None else None,
            "target_mart_query_p95_s": TARGET_MART_QUERY_P95_S,
            "mart_reads_median_s": {
                name: round(statistics.median(times), 4) for name, times in self.mart_reads_s.items()
            },
            "sandbox": self.sandbox_cost,
            "capacity_model": capacity_model(self),
            "latency_night": self.latency_night,
            # The side-by-side ingest, on the sample below.
            "practices": self.practices,
            "ingest_slots": self.slots,
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
            "speedup_vs_naive": round(speedup, 1) if speedup is not None else None,
            "target_speedup_vs_naive": TARGET_SPEEDUP_VS_NAIVE,
            "naive_slots": self.naive.slots if self.naive else None,
            "naive_s": round(self.naive.seconds, 3) if self.naive else None,
            "naive_slots_per_s": round(self.naive.slots_per_s) if self.naive else None,
            "naive_error": self.naive_error,
            "naive_label": NAIVE_LABEL,
            "naive_cpu_s": round(self.naive.cpu_s, 3) if self.naive else None,
            "fhir_peer_label": FHIR_PEER_LABEL,
            "fhir_peer_slots": self.fhir_peer.slots if self.fhir_peer else None,
            "fhir_peer_s": round(self.fhir_peer.seconds, 3) if self.fhir_peer else None,
            "fhir_peer_cpu_s": round(self.fhir_peer.cpu_s, 3) if self.fhir_peer else None,
            "fhir_peer_slots_per_s": round(self.fhir_peer.slots_per_s) if self.fhir_peer else None,
            "fhir_peer_error": self.fhir_peer_error,
            "speedup_vs_fhir_peer": (
                round(statistics.median(o.slots_per_s for o in self.ours) / self.fhir_peer.slots_per_s, 1)
                if self.fhir_peer and self.ours and self.fhir_peer.slots_per_s > 0 else None
            ),
            "ours_s_median": _median([o.seconds for o in self.ours]),
            "limit_s_median": _median([r.seconds for r in self.limit]),
            "limit_maximum_object_size": self.limit_object_bytes,
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
            "bench_peak_rss_mib": round(self.peak_rss_mib, 1),
            "sandbox_peak_rss_mib": (
                round(self.sandbox_peak_rss_mib, 1) if self.sandbox_peak_rss_mib is not None else None
            ),
            "sandbox_cpu_s": round(self.sandbox_cpu_s, 2) if self.sandbox_cpu_s is not None else None,
            "wall_s": round(self.wall_s, 2),
            # The real gate's cost on this run's own data: the nightly writer's validate phase
            # over the slot rows it loaded; beside it the same gate (`validate_pending` with Data
            # Docs) over a synthetic night of one million staged slots in a migrated warehouse.
            "validation_s_per_million_rows": _validation_per_million(nightly),
            # GX's one-off start-up (import, suites), made in a thread as the night starts,
            # once per night whatever its size: apart, and counted in the figure beside it.
            "validation_gate_setup_s": (
                (nightly.get("writer_phases_s") or {}).get("gate_setup_while_fetching")
            ),
            "validation_s_per_million_rows_with_setup": _validation_per_million(nightly, with_setup=True),
            "validation_gate_synthetic_s_per_million_rows": gate_s_per_million_rows(),
            "start": BENCH_START,
            "horizon_days": HORIZON_DAYS,
            "machine": machine_info(),
        }


# ---------------------------------------------------------------------- fetch


def select_practices(registry: Registry, plan: SizePlan) -> list[Practice]:
    """The rows the side-by-side ingest fetches (for england: a region-sized sample of networks)."""
    if plan.estate == "england":
        return list(sample_estate(registry, ENGLAND_INGEST_SAMPLE).practices)
    practices = [p for p in registry.practices if p.kind == "practice"]
    hubs = [p for p in registry.practices if p.kind == "hub"]
    return practices[: plan.practices] + hubs[: plan.hubs]


async def fetch_estate(
    registry: Registry, practices: Sequence[Practice], start: datetime, horizon_days: int
) -> FetchResult:
    """The nightly run's searches (every window x every differential filter), bytes kept."""
    from common.config import get_settings
    from connectors.gpconnect.searches import search_filters
    from flows.run_context import FixedClock

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


def limit_object_bytes(ndjson: Path) -> int:
    """The limit's maximum_object_size: the loader's rule applied to its largest line."""
    with ndjson.open("rb") as handle:
        largest = max((len(line) for line in handle), default=0)
    return object_buffer_bytes(largest)


def ingest_limit(run_dir: Path, ndjson: Path, *, checksum: bool, object_bytes: int) -> IngestRun:
    """DuckDB's own read_json on the same bytes (`object_bytes`: its maximum_object_size, from
    limit_object_bytes), into a table of a fresh database file."""
    con = connect(run_dir / "limit.duckdb")
    try:
        began, cpu = time.perf_counter(), time.process_time()
        con.execute(LIMIT_SQL, {"path": str(ndjson), "maximum_object_size": object_bytes})
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


NAIVE_LABEL = "naive: orjson parse per response, one INSERT per row, all in one transaction"
FHIR_PEER_LABEL = "FHIR-minded: fhir.resources STU3 Slot per resource, one INSERT per row, one transaction"
_NAIVE_TABLE = (
    "create table {name} (slot_id varchar, schedule_id varchar, start_at timestamptz, "
    "end_at timestamptz, start_text varchar, end_text varchar, status varchar, "
    "delivery_channel varchar, slot_type varchar, version_id varchar)"
)


def _slot_resources(bodies: Sequence[bytes], budget_slots: int) -> Iterator[dict[str, Any]]:
    """Slot resources of `bodies`, in order, until at least `budget_slots` were given."""
    given = 0
    for body in bodies:
        if given >= budget_slots:
            return
        for entry in orjson.loads(body).get("entry") or []:
            raw = entry.get("resource") or {}
            if raw.get("resourceType") == "Slot":
                given += 1
                yield raw


def _naive_row(raw: dict[str, Any]) -> list[Any]:
    channel = next((x.get("valueCode") for x in raw.get("extension") or []
                    if x.get("url") == DELIVERY_CHANNEL_URL), None)
    service = raw.get("serviceType") or []
    return [raw.get("id"), ((raw.get("schedule") or {}).get("reference") or "").removeprefix("Schedule/")
            or None, raw.get("start"), raw.get("end"), raw.get("start"), raw.get("end"), raw.get("status"),
            channel, service[0].get("text") if service else None, (raw.get("meta") or {}).get("versionId")]


def _fhir_row(raw: dict[str, Any]) -> list[Any]:
    from fhir.resources.STU3.slot import Slot  # the bench group's dependency, not the pipeline's

    slot = Slot.model_validate(raw)
    channel = next((x.valueCode for x in slot.extension or [] if x.url == DELIVERY_CHANNEL_URL), None)
    reference = slot.schedule.reference or ""
    return [slot.id, reference.removeprefix("Schedule/") or None, slot.start, slot.end,
            raw.get("start"), raw.get("end"), slot.status, channel,
            slot.serviceType[0].text if slot.serviceType else None,
            slot.meta.versionId if slot.meta else None]


def ingest_naive(
    run_dir: Path, bodies: Sequence[bytes], *, budget_slots: int, fhir_models: bool = False
) -> IngestRun:
    """A baseline a careful naive user would write: parse each Slot, insert it, commit ONCE.

    `fhir_models=False`: plain dict access after `orjson.loads` (`NAIVE_LABEL`);
    `fhir_models=True`: every Slot through a `fhir.resources` model first (`FHIR_PEER_LABEL`).
    Bodies are taken in order until at least `budget_slots` slots have been inserted.
    """
    to_row = _fhir_row if fhir_models else _naive_row
    name = "fhir_slots" if fhir_models else "naive_slots"
    if fhir_models:  # imported before the clock starts, as a user's module would
        from fhir.resources.STU3.slot import Slot  # noqa: F401
    con = connect(run_dir / f"{name}.duckdb")
    try:
        con.execute(_NAIVE_TABLE.format(name=name))
        slots = 0
        began, cpu = time.perf_counter(), time.process_time()
        # The baseline writes its own BEGIN/COMMIT, as a user would; not the warehouse helper.
        con.execute("begin transaction")
        for raw in _slot_resources(bodies, budget_slots):
            con.execute(f"insert into {name} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", to_row(raw))
            slots += 1
        con.execute("commit")
        con.execute("CHECKPOINT")
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    finally:
        con.close()
    return IngestRun(slots, seconds, cpu_s=cpu)


def time_mart_reads(snapshot: Path, rounds: int) -> dict[str, list[float]]:
    """Seconds per read for every read the dashboard pages make, `rounds` times each.

    The bench sits above the dashboards here only to time their own reads (`dashboards.data`):
    what a page waits for is the figure, so the queries must be the pages' queries.
    """
    from dashboards import data

    reads: dict[str, Callable[[], object]] = {
        "publication": lambda: data.read_publication(snapshot),
        "catalogue": lambda: data.read_catalogue(snapshot),
    }
    for name in data.MARTS:
        reads[name] = lambda name=name: data.read_mart(name, snapshot)  # type: ignore[misc]
    timings: dict[str, list[float]] = {name: [] for name in reads}
    for _ in range(rounds):
        for name, read in reads.items():
            began = time.perf_counter()
            read()
            timings[name].append(time.perf_counter() - began)
    return timings


def capacity_model(report: BenchReport) -> dict[str, Any] | None:
    return capacity_model_from(
        report.nightly, england_searches=report.england_calls, measured_on_england=(
            report.size == BenchSize.england.value and report.estate_practices >= ENGLAND_ROWS
        ), estate_rows=report.estate_practices,
    )


def _git_commit() -> str:
    """The short commit the bench ran on (names its committed JSON: reports/bench/)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def _validation_per_million(nightly: dict[str, Any], *, with_setup: bool = False) -> float | None:
    """The gate's seconds per million slots of the night; `with_setup` adds GX's start-up."""
    phases = nightly.get("writer_phases_s") or {}
    seconds = phases.get("validate")
    slots = nightly.get("slots")
    if not isinstance(seconds, int | float) or not isinstance(slots, int) or slots <= 0:
        return None
    # A pipelined night validates most batches while fetching goes on: that is gate cost too.
    seconds += phases.get("validate_while_fetching") or 0.0
    if with_setup:  # made apart as the night started; when not, it is inside a validate phase
        seconds += phases.get("gate_setup_while_fetching") or 0.0
    return round(seconds / slots * 1e6, 3)


def _per_s(count: object, seconds: object) -> float | None:
    if not isinstance(count, int | float) or not isinstance(seconds, int | float) or seconds <= 0:
        return None
    return round(count / seconds, 1)


def run_bench(
    size: BenchSize,
    *,
    repetitions: int | None = None,
    work_dir: Path | None = None,
    practices: int | None = None,
    latency: str | None = None,
    latency_in_flight: int | None = None,
    progress: Callable[[str], None] = print,
) -> BenchReport:
    """Fetch a sample once and measure ours, the limit and the naive baseline side by side;
    run the nightly flow over the whole estate of the size; time the dashboard's reads.
    With `latency` (`p50=1s,p95=3s`), run the nightly again with that provider latency."""
    plan = PLANS[size]
    if latency is not None:
        parse_latency(latency)  # a bad spec fails before anything starts
    if practices is not None and plan.estate != "england":
        raise ValueError("--practices applies to --size england only")
    reps = repetitions or plan.repetitions
    if reps < 1:
        raise ValueError("repetitions must be at least 1")
    began = time.perf_counter()
    start = datetime.fromisoformat(BENCH_START)
    england_practices = (practices or ENGLAND_PRACTICES) if plan.estate == "england" else None
    with tempfile.TemporaryDirectory(prefix="slotsync-bench-", dir=work_dir) as tmp:
        root = Path(tmp)
        progress(f"starting the {plan.estate} sandbox estate in its own process (simulated {BENCH_START})")
        sandbox = StandaloneSandbox(root, england_practices=england_practices)
        with sandbox as registry:
            chosen = select_practices(registry, plan)
            progress(f"fetching {len(chosen)} row(s) for the side-by-side ingest, {HORIZON_DAYS}-day horizon")
            fetch = asyncio.run(fetch_estate(registry, chosen, start, HORIZON_DAYS))
            report = BenchReport(size.value, plan, len(chosen), fetch, work_dir=str(root))
            nightly_rows = None if plan.practices is None else [p.ods_code for p in chosen]
            report.estate_practices = len(nightly_rows or registry.practices)
            progress(f"nightly sync, end to end, of {report.estate_practices:,} practices and hubs "
                     "(its own process)")
            figures, usage, tree = run_nightly(root, sandbox.registry_path, nightly_rows, plan.noop_tasks)
            report.nightly_peak_rss_tree_mib = tree["peak_mib"] or None
            report.nightly_tree_max_processes = int(tree["max_processes"]) or None
            report.nightly = {**figures["nightly"], "orchestration": figures["orchestration"]}
            report.nightly_peak_rss_mib = usage.ru_maxrss / 1024 if usage else None
            report.sandbox_cost = sandbox.stats()
        if sandbox.usage is not None:
            report.sandbox_peak_rss_mib = sandbox.usage.ru_maxrss / 1024
            report.sandbox_cpu_s = sandbox.usage.ru_utime + sandbox.usage.ru_stime
        report.england_calls = england_calls_per_night(start, HORIZON_DAYS, SANDBOX_SEED)
        if latency is not None and report.nightly is not None:
            report.latency_night = latency_night(
                root / "latency", spec=latency, zero_latency=report.nightly, nightly_rows=nightly_rows,
                england_practices=england_practices, start=start, horizon_days=HORIZON_DAYS,
                in_flight_limit=latency_in_flight, progress=progress,
            )
            shutil.rmtree(root / "latency", ignore_errors=True)
        published = Path(str((report.nightly or {}).get("published") or ""))
        if published.is_file():
            progress("dashboard reads on the published snapshot")
            report.mart_reads_s = time_mart_reads(published, MART_QUERY_ROUNDS)
        shutil.rmtree(root / "nightly", ignore_errors=True)  # landing files: England's are ~17 GB
        ndjson = root / "bundles.ndjson"
        write_bundles_ndjson(ndjson, fetch.batches)
        report.limit_object_bytes = object_bytes = limit_object_bytes(ndjson)
        progress("warm-up (not reported): one run of each")
        for warm in ("ours", "limit"):
            run_dir = root / f"warmup-{warm}"
            run_dir.mkdir()
            if warm == "ours":
                ingest_ours(run_dir, fetch, checksum=False)
            else:
                ingest_limit(run_dir, ndjson, checksum=False, object_bytes=object_bytes)
            shutil.rmtree(run_dir)
        for rep in range(reps):
            run_dir = root / f"rep{rep:02d}"
            run_dir.mkdir()
            first = rep == 0
            if rep % 2 == 0:
                ours = ingest_ours(run_dir, fetch, checksum=first)
                limit = ingest_limit(run_dir, ndjson, checksum=first, object_bytes=object_bytes)
            else:
                limit = ingest_limit(run_dir, ndjson, checksum=first, object_bytes=object_bytes)
                ours = ingest_ours(run_dir, fetch, checksum=first)
            if first:
                report.rows_match = ours.checksum == limit.checksum
                report.naive, report.naive_error = _naive(run_dir, fetch, progress, fhir_models=False)
                report.fhir_peer, report.fhir_peer_error = _naive(run_dir, fetch, progress, fhir_models=True)
            report.ours.append(ours)
            report.limit.append(limit)
            progress(
                f"  rep {rep + 1}/{reps}: ours {ours.slots_per_s:,.0f} slots/s, "
                f"limit {limit.slots_per_s:,.0f} slots/s, ratio {ours.slots_per_s / limit.slots_per_s:.2f}"
            )
            shutil.rmtree(run_dir)  # keep the disk footprint to one repetition at a time
    report.peak_rss_mib = _rss_mib(resource.RUSAGE_SELF)
    report.wall_s = time.perf_counter() - began
    return report


def _naive(
    run_dir: Path, fetch: FetchResult, progress: Callable[[str], None], *, fhir_models: bool
) -> tuple[IngestRun | None, str | None]:
    bodies = [landed.response.body for batch in fetch.batches for landed in batch.responses]
    try:
        naive = ingest_naive(run_dir, bodies, budget_slots=NAIVE_SAMPLE_SLOTS, fhir_models=fhir_models)
    except Exception as exc:  # the baseline is a reference point: report why it is missing
        return None, f"{type(exc).__name__}: {str(exc)[:300]}"
    label = FHIR_PEER_LABEL if fhir_models else NAIVE_LABEL
    progress(f"  {label}: {naive.slots:,} slots in {naive.seconds:.2f} s ({naive.slots_per_s:,.0f}/s)")
    return naive, None


def format_report(report: BenchReport) -> str:
    data = report.as_json()
    lines = [
        f"slotsync bench --size {data['size']}: {data['description']}",
        "",
        f"side-by-side ingest sample: {data['practices']} row(s), {data['responses']} responses, "
        f"{data['bytes'] / 1e6:.1f} MB of bundles, {data['ingest_slots']:,} slots; fetched at "
        f"{data['http_req_per_s']:.1f} req/s, {data['http_mb_per_s']:.1f} MB/s (client CPU "
        f"{data['fetch_client_cpu_s']:.2f} s of {data['fetch_s']:.2f} s)",
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
        "",
    ]
    rows: list[tuple[str, str, str]] = []

    def row(metric: str, value: object, target: str = "", fmt: str = "{}") -> None:
        rows.append((metric, "n/a" if value is None else fmt.format(value), target))

    row("nightly: practices and hubs", data["estate_practices"], fmt="{:,}")
    row("nightly: slots (HTTP responses to published marts)", data["slots"], fmt="{:,}")
    row("nightly: responses", data["nightly_responses"], fmt="{:,}")
    row("nightly: wall s (fetch + load and publish)", data["nightly_wall_s"], fmt="{:,.1f}")
    row("nightly: of which fetching s", data["nightly_fetch_s"], fmt="{:,.1f}")
    phases = data.get("nightly_writer_phases_s") or {}
    row("  writer s: " + (" / ".join(phases) or "by step"),
        " / ".join(f"{v:,.1f}" for v in phases.values()) or None)
    row("nightly: slots/s end to end", data["nightly_slots_per_s"], fmt="{:,.0f}")
    row("nightly: responses/s while fetching", data["nightly_responses_per_s"], fmt="{:,.1f}")
    row("nightly: practices failed", data["nightly_practices_failed"])
    row("peak_rss_tree_mib (nightly + Prefect server + children)", data["peak_rss_tree_mib"],
        f"< {TARGET_PEAK_RSS_MIB:.0f}", "{:,.0f}")
    row("peak_rss_mib (nightly process alone)", data["peak_rss_mib"], fmt="{:,.0f}")
    row("  sampled peak while fetching / loading, MiB",
        None if data["nightly_rss_peak_fetch_mib"] is None else
        f"{data['nightly_rss_peak_fetch_mib']:,.0f} / {data['nightly_rss_peak_load_publish_mib'] or 0:,.0f}")
    row("ingest_ratio_vs_duckdb", data["ingest_ratio_vs_duckdb"], f">= {TARGET_RATIO}", "{:.2f}")
    row("staging_ratio_vs_duckdb (no fold)", data["staging_ratio_vs_duckdb"], "", "{:.2f}")
    row("typed rows identical to the limit's", "yes" if data["rows_match"] else "NO")
    row("speedup_vs_naive", data["speedup_vs_naive"], f">= {TARGET_SPEEDUP_VS_NAIVE:.0f}", "{:,.1f}")
    row("naive slots/s (" + NAIVE_LABEL + ")", data["naive_slots_per_s"], fmt="{:,}")
    row("FHIR-minded peer slots/s (fhir.resources, one transaction)", data["fhir_peer_slots_per_s"],
        fmt="{:,}")
    row("orchestration_overhead_ms_per_task", data["orchestration_overhead_ms_per_task"], fmt="{:.2f}")
    row("validation_s_per_million_rows", data["validation_s_per_million_rows"])
    row("  GX's start-up once a night s / the gate with it, s per million",
        None if data["validation_gate_setup_s"] is None else
        f"{data['validation_gate_setup_s']:.1f} / {data['validation_s_per_million_rows_with_setup']}")
    row("mart_query_p95_s", data["mart_query_p95_s"], f"< {TARGET_MART_QUERY_P95_S:.0f}", "{:.3f}")
    row("sandbox process: CPU s / peak RSS MiB",
        None if data["sandbox_cpu_s"] is None else
        f"{data['sandbox_cpu_s']:.1f} / {data['sandbox_peak_rss_mib'] or 0:.0f}")
    row("bench process peak RSS MiB", data["bench_peak_rss_mib"], fmt="{:,.0f}")
    row("wall_s (whole bench)", data["wall_s"], fmt="{:,.1f}")
    width = max(len(r[0]) for r in rows)
    lines += [f"  {'metric':<{width}}  {'value':>14}  target", f"  {'-' * width}  {'-' * 14}  ------"]
    lines += [f"  {m:<{width}}  {v:>14}  {t}" for m, v, t in rows]
    if data["naive_error"]:
        lines.append(f"  naive baseline failed: {data['naive_error']}")
    model = data["capacity_model"]
    if model:
        lines += [
            "",
            f"capacity model, full England night: {model['calls_per_night']:,} calls ({model['basis']}); "
            f"our ceiling {model['our_ceiling_calls_per_s']:.0f} calls/s, load and publish "
            f"{model['load_publish_s']:.0f} s",
            "  wall minutes by provider latency (p50) and calls in flight: "
            + "; ".join(
                f"{r['latency_p50_s']:g} s x {r['concurrency']}: {r['wall_s'] / 60:.0f}"
                for r in model["rows"]
            ),
        ]
    if data["latency_night"]:
        lines += format_latency(data["latency_night"])
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
