"""Soak: a simulated working day of release runs every 15 minutes while backfills load.

The nightly sync observes a few practices at 02:00; then the release flow runs every 15
minutes of core hours (08:00-18:30 UK, as deployed), each a real Prefect flow run at its
simulated instant, against a sandbox whose patients keep booking. Alongside, in another
thread, backfill runs keep loading the same warehouse (against a second sandbox of the same
estate with its own clock: the JWTs of a run must match its provider's clock). Proved: every
decision a run returned is in `audit.release_decision` (none lost, none left `attempting`);
no idempotency key and no slot is released or queued twice, in the audit or at the supplier;
every backfill completed; and the process's memory is flat: RSS at the end is within
RSS_BOUND_MIB of the RSS after warm-up.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from common.clock import SimulatedClock
from common.uktime import uk_local
from flows.release import release_unused_111
from flows.sync import backfill, nightly_sync
from sandbox.server import SandboxServer
from tests.flows.conftest import run_async
from tests.reliability import Result, record

DAY = date(2026, 3, 24)  # a Tuesday
NIGHTLY = uk_local(DAY, time(2, 0))
RELEASES = [uk_local(DAY, time(8, 0)) + timedelta(minutes=15 * i) for i in range(43)]  # 08:00-18:30
WARM_UP_RUNS = 8
MAX_BACKFILLS = 12  # back to back from the start, overlapping the first few hours of releases
RSS_BOUND_MIB = 96  # growth allowed after warm-up (DuckDB and Prefect caches settle by then)
DONE = ("released", "already_released", "queued", "already_queued")


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.fixture
def estates() -> Iterator[tuple[SandboxServer, SimulatedClock, SandboxServer, SimulatedClock]]:
    clock, backfill_clock = SimulatedClock(NIGHTLY), SimulatedClock(NIGHTLY)
    with SandboxServer(clock=clock) as live, SandboxServer(clock=backfill_clock) as other:
        yield live, clock, other, backfill_clock


@pytest.mark.slow
def test_a_day_of_releases_every_15_minutes_beside_backfills_loses_and_repeats_nothing(
    estates: tuple[SandboxServer, SimulatedClock, SandboxServer, SimulatedClock], tmp_path: Path
) -> None:
    live, clock, other, backfill_clock = estates
    with_111 = [p for p in live.registry.practices if p.accepts_111_booking and p.kind == "practice"]
    by_api = [p.ods_code for p in with_111 if p.release_policy.releaser == "sandbox"][:4]
    by_worklist = [p.ods_code for p in with_111 if p.release_policy.releaser == "worklist"][:2]
    practices = by_api + by_worklist
    assert {live.registry.get(o).release_policy.releaser for o in practices} == {"sandbox", "worklist"}
    registry_path, backfill_registry = tmp_path / "registry.yaml", tmp_path / "backfill-registry.yaml"
    live.registry.write(registry_path)
    other.registry.write(backfill_registry)
    paths = {"warehouse_path": str(tmp_path / "wh.duckdb"), "data_dir": str(tmp_path)}

    nightly = run_async(
        nightly_sync(
            registry_path=str(registry_path), as_of=NIGHTLY, horizon_days=2, practices=practices, **paths
        )
    )
    assert all(o["status"] == "ok" for o in nightly["outcomes"])

    stop = threading.Event()
    backfills: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def keep_backfilling() -> None:
        try:
            hour = 0
            while not stop.is_set() and hour < MAX_BACKFILLS:
                at = NIGHTLY + timedelta(minutes=30 + 20 * hour)
                backfill_clock.set(at)
                backfills.append(
                    run_async(
                        backfill(
                            registry_path=str(backfill_registry),
                            first_day=DAY + timedelta(days=1 + hour % 5),
                            last_day=DAY + timedelta(days=3 + hour % 5),
                            as_of=at,
                            practices=practices,
                            **paths,
                        )
                    )
                )
                hour += 1
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)

    background = threading.Thread(target=keep_backfilling, name="backfills")
    background.start()
    returned: list[dict[str, Any]] = []
    warm = end = 0.0
    try:
        for index, at in enumerate(RELEASES):
            clock.set(at)
            result = run_async(
                release_unused_111(registry_path=str(registry_path), as_of=at, practices=practices, **paths)
            )
            returned.extend(result["decisions"])
            if index + 1 == WARM_UP_RUNS:
                warm = rss_mib()
        end = rss_mib()
    finally:
        stop.set()
        background.join(timeout=600)
    assert not errors, errors
    assert backfills and all(o["status"] == "ok" for b in backfills for o in b["outcomes"])

    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        audit = con.execute(
            "select decision_id, idempotency_key, practice_ods, slot_id, outcome from audit.release_decision"
        ).fetchall()
        backfill_loads = con.execute(
            "select count(*) filter (where status = 'completed'), count(*) from meta.load_ledger "
            "where flow_name = 'backfill'"
        ).fetchall()[0]
    finally:
        con.close()

    # No lost audit record: every decision returned is stored, with its final outcome.
    stored = {row[0]: row[4] for row in audit}
    assert {d["decision_id"]: d["outcome"] for d in returned} == stored
    assert "attempting" not in stored.values()
    # No double release, in the audit ...
    done = [row for row in audit if row[4] in DONE]
    first_time = [row for row in done if not row[4].startswith("already")]
    assert first_time, "the day released nothing: the soak proves nothing"
    key_counts = Counter(row[1] for row in first_time)
    slot_counts = Counter((row[2], row[3]) for row in first_time)
    assert max(key_counts.values()) == 1 and max(slot_counts.values()) == 1
    # ... and at the supplier: the slots it released are exactly those the audit says.
    released_at_supplier = {
        (r.practice_ods, r.slot_id)
        for ods in practices
        for r in live.state.ground_truth(ods, first_day=DAY, last_day=DAY + timedelta(days=2))
        if r.released_at is not None
    }
    assert released_at_supplier == {(r[2], r[3]) for r in first_time if r[4] == "released"}
    assert backfill_loads[0] == backfill_loads[1] == len(backfills)
    # Memory flat after warm-up.
    growth = end - warm
    assert growth <= RSS_BOUND_MIB, f"RSS grew {growth:.0f} MiB after warm-up ({warm:.0f} -> {end:.0f})"

    runs = len(RELEASES) + len(backfills)
    record(
        Result(
            "soak",
            "a day of releases every 15 min beside backfills",
            runs,
            runs,
            len(returned) - len(stored),
            len(first_time) - len(key_counts),
            f"{len(RELEASES)} release runs, {len(backfills)} backfills; {len(stored)} audit records, "
            f"{len(first_time)} released/queued once each; RSS {warm:.0f} -> {end:.0f} MiB "
            f"(bound +{RSS_BOUND_MIB})",
            "tests/flows/test_soak.py::"
            "test_a_day_of_releases_every_15_minutes_beside_backfills_loses_and_repeats_nothing",
        )
    )
