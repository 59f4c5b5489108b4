"""Fault injection: one practice misbehaves, the run completes and nobody else is touched.

Every case arms the sandbox's fault switches (sandbox/faults.py) for one victim
practice's slot searches and runs the real nightly flow over a few practices. For each: the
run completes; the victim is retried to a clean result, or fails alone with a clear error;
every other practice's rows in staging, core and marts are exactly a clean run's (content
hashes per practice); no slot row is duplicated. Each case records its numbers for
RELIABILITY.md (tests/reliability.py).

The semantically wrong payloads (end before start, a missing schedule, a duplicate slot id,
offsets contradicting UK DST) are asserted as the pipeline handles them today; quarantine
via the #5 data-quality gate is the expected handling once it lands.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from common.clock import SimulatedClock
from common.config import get_settings
from flows.sync import nightly_sync
from sandbox.faults import FaultRule
from sandbox.server import SandboxServer
from tests.flows.conftest import run_async
from tests.reliability import Result, record
from warehouse.integrity import practice_table_hashes

AS_OF = datetime(2026, 3, 24, 2, 0, tzinfo=UTC)  # Tuesday 02:00 GMT; the horizon crosses DST
PRACTICES = 4  # the first few practices of the estate: the victim is the first
HTTP_ENV = {
    # Fast retries and a short read timeout, so stalls and storms take seconds, not minutes;
    # not so short that a busy 2-core machine times out healthy calls (booking logs too).
    "SLOTSYNC_HTTP__TIMEOUT_S": "5",
    "SLOTSYNC_HTTP__BACKOFF_INITIAL_S": "0.05",
    "SLOTSYNC_HTTP__BACKOFF_MAX_S": "0.2",
    "SLOTSYNC_HTTP__RETRY_AFTER_CAP_S": "1",
    "SLOTSYNC_HTTP__MAX_RESPONSE_BYTES": str(4 * 1024 * 1024),
}
SLOT_KEY = "practice_ods, filter_key, window_start, observed_at, slot_id"


@dataclass(frozen=True)
class Snapshot:
    outcomes: dict[str, dict[str, Any]]
    others: dict[str, str]  # per-table content hashes of the practices that were not faulted
    victim: dict[str, str]
    slot_rows: dict[str, int]  # staged slot rows per practice
    duplicate_rows: int  # slots twice in core history, plus staged entries the provider did not send twice
    staged_duplicates: int  # staged entries sharing a (unit, slot id), whatever the cause
    landing_files: set[str]
    victim_searches: int  # slot searches the sandbox received for the victim in this run
    published: dict[str, str]  # content hashes of the other practices in the published snapshot
    wall_s: float  # the whole nightly run, start to finish
    victim_smallest_body: int | None  # bytes of the victim's smallest slot-search body


@pytest.fixture(scope="module")
def fast_http() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in HTTP_ENV.items():
            patch.setenv(name, value)
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def sandbox(fast_http: None) -> Iterator[SandboxServer]:
    with SandboxServer(clock=SimulatedClock(AS_OF)) as server:
        yield server


def codes(sandbox: SandboxServer) -> list[str]:
    return [p.ods_code for p in sandbox.registry.practices[:PRACTICES]]


def run_and_snapshot(sandbox: SandboxServer, data_dir: Path) -> Snapshot:
    data_dir.mkdir(parents=True, exist_ok=True)
    registry_path = data_dir / "registry.yaml"
    sandbox.registry.write(registry_path)
    practices = codes(sandbox)
    sandbox.state.traffic.reset()
    started = time.monotonic()
    result: dict[str, Any] = run_async(
        nightly_sync(
            registry_path=str(registry_path),
            data_dir=str(data_dir),
            warehouse_path=str(data_dir / "wh.duckdb"),
            as_of=AS_OF,
            practices=practices,
            max_failed_fraction=0.5,
        )
    )
    wall_s = time.monotonic() - started
    # The booking-log leg must have worked too, or other practices' rows differ for that reason.
    assert not result["booking_logs"]["failures"], result["booking_logs"]["failures"]
    con = duckdb.connect(str(data_dir / "wh.duckdb"), read_only=True)
    try:
        slot_rows = dict(
            con.execute(
                "select practice_ods, count(*) from staging.stg_gpconnect__slots group by all"
            ).fetchall()
        )
        staged_duplicates = con.execute(
            f"select count(*) - count(distinct ({SLOT_KEY})) from staging.stg_gpconnect__slots"
        ).fetchall()[0][0]
        history_duplicates = con.execute(
            "select count(*) - count(distinct (practice_ods, slot_id)) from core.fct_slot_history"
        ).fetchall()[0][0]
        return Snapshot(
            outcomes={o["practice_ods"]: o for o in result["outcomes"]},
            others=practice_table_hashes(con, practices[1:]),
            victim=practice_table_hashes(con, practices[:1]),
            slot_rows={ods: slot_rows.get(ods, 0) for ods in practices},
            duplicate_rows=history_duplicates,
            staged_duplicates=staged_duplicates,
            landing_files={p.stem for p in (data_dir / "landing").rglob("*.ndjson")},
            victim_searches=sandbox.state.traffic.counts().get((practices[0], "SEARCH_SLOTS"), 0),
            published=_published_hashes(result["published"], practices[1:]),
            wall_s=wall_s,
            victim_smallest_body=con.execute(
                "select min(body_bytes) from raw.gpc_slot_search where practice_ods = ?", practices[:1]
            ).fetchall()[0][0],
        )
    finally:
        con.close()


def _published_hashes(path: str | None, practices: list[str]) -> dict[str, str]:
    """What this run published for `practices` (the dashboard snapshot); empty if nothing was."""
    if not path:
        return {}
    con = duckdb.connect(path, read_only=True)
    try:
        return practice_table_hashes(con, practices, schemas=("marts",))
    finally:
        con.close()


@pytest.fixture(scope="module")
def clean(sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    snapshot = run_and_snapshot(sandbox, tmp_path_factory.mktemp("clean"))
    assert all(o["status"] == "ok" for o in snapshot.outcomes.values())
    assert all(n > 0 for n in snapshot.slot_rows.values()), snapshot.slot_rows
    assert snapshot.duplicate_rows == 0
    return snapshot


def lost_rows(clean: Snapshot, faulted: Snapshot, practices: list[str]) -> int:
    """Slot rows of `practices` that a clean run staged and the faulted run did not."""
    return sum(max(0, clean.slot_rows[ods] - faulted.slot_rows[ods]) for ods in practices)


def arm(sandbox: SandboxServer, victim: str, rules: list[dict[str, Any]]) -> list[int]:
    sandbox.state.faults.clear()
    return [
        sandbox.state.faults.add(FaultRule(practice=victim, interaction="SEARCH_SLOTS", **fields))
        for fields in rules
    ]


def inject(
    sandbox: SandboxServer, tmp_path: Path, clean: Snapshot, *more: dict[str, Any], **fields: Any
) -> tuple[str, Snapshot, int]:
    """Run with the fault (and any `more` rules) armed on the victim; checks what must hold for
    every fault. Each rule must fire at least once."""
    victim = codes(sandbox)[0]
    rule_ids = arm(sandbox, victim, [fields, *more])
    try:
        faulted = run_and_snapshot(sandbox, tmp_path)
    finally:
        fired = [sandbox.state.faults.injected(rule_id) for rule_id in rule_ids]
        sandbox.state.faults.clear()
    assert all(n > 0 for n in fired), f"a fault never fired: {fired}"
    injected = sum(fired)
    others = codes(sandbox)[1:]
    assert all(faulted.outcomes[o]["status"] == "ok" for o in others)
    assert faulted.others == clean.others, "a fault at one practice changed another's rows"
    assert faulted.published and faulted.published == clean.published, "others not published intact"
    assert lost_rows(clean, faulted, others) == 0
    assert faulted.duplicate_rows == 0
    if fields["kind"] != "duplicate_slot":
        assert faulted.staged_duplicates == 0
    return victim, faulted, injected


# -- transport and protocol faults: retried to a clean result ---------------------------------

# Each value: the fault rules armed, in order (a 5xx burst is one rule per status).
RETRIED: dict[str, list[dict[str, Any]]] = {
    # Over the 5 s read timeout (HTTP_ENV), so each delayed search times out and is retried.
    "latency spike (7 s, over the 5 s read timeout)": [{"kind": "latency", "delay_s": 7, "count": 2}],
    "5xx burst (502, 503 and 504)": [
        {"kind": "status", "status": 502, "count": 2},
        {"kind": "status", "status": 503, "count": 1},
        {"kind": "status", "status": 504, "count": 1},
    ],
    "429 storm with Retry-After": [{"kind": "status", "status": 429, "retry_after_s": 1, "count": 6}],
    "connection reset mid-body": [{"kind": "reset", "count": 3}],
    "truncated JSON (transient)": [{"kind": "truncate", "count": 3}],
    "read timeout on a stalled server": [{"kind": "stall", "delay_s": 30, "count": 2}],
}


@pytest.mark.parametrize("fault", list(RETRIED))
def test_transient_faults_are_retried_to_a_clean_result(
    sandbox: SandboxServer, tmp_path: Path, clean: Snapshot, fault: str
) -> None:
    first, *more = RETRIED[fault]
    victim, faulted, injected = inject(sandbox, tmp_path, clean, *more, **first)
    assert faulted.outcomes[victim]["status"] == "ok", faulted.outcomes[victim]
    assert faulted.victim == clean.victim, "the retried practice's rows differ from a clean run"
    # Every faulted search was sent again: the provider saw that many more searches.
    retries = faulted.victim_searches - clean.victim_searches
    assert retries >= injected, f"{retries} retries for {injected} faulted searches"
    record(
        Result(
            "fault",
            fault,
            injected,
            injected,
            lost_rows(clean, faulted, codes(sandbox)),
            faulted.duplicate_rows,
            f"retried (connectors/http/retry.py): {retries} retries counted",
            "tests/flows/test_fault_injection.py::test_transient_faults_are_retried_to_a_clean_result",
        )
    )


# -- faults that never heal: the victim fails alone, with a clear error -----------------------

REFUSED: dict[str, tuple[dict[str, Any], str, str]] = {
    "truncated JSON (persistent)": ({"kind": "truncate"}, "IncompleteResponse", "not a complete JSON"),
    "wrong content type (HTML proxy page)": (
        {"kind": "wrong_content_type"},
        "IncompleteResponse",
        "is not FHIR JSON",
    ),
    "oversized response (8 MiB over a 4 MiB cap)": (
        {"kind": "oversize"},
        "ResponseInvalid",
        "max_response_bytes",
    ),
    "5xx that never clears (500)": ({"kind": "status", "status": 500}, "GpConnectError", "HTTP 500"),
}


@pytest.mark.parametrize("fault", list(REFUSED))
def test_persistent_faults_fail_the_practice_alone_with_a_clear_error(
    sandbox: SandboxServer, tmp_path: Path, clean: Snapshot, fault: str
) -> None:
    fields, error_class, words = REFUSED[fault]
    victim, faulted, injected = inject(sandbox, tmp_path, clean, **fields)
    outcome = faulted.outcomes[victim]
    assert outcome["status"] == "failed" and outcome["error_class"] == error_class, outcome
    assert victim in outcome["message"] and words in outcome["message"], outcome["message"]
    assert "Next step" in outcome["message"]
    # Nothing of a refused response reaches the warehouse.
    assert faulted.slot_rows[victim] == 0
    record(
        Result(
            "fault",
            fault,
            injected,
            injected,
            lost_rows(clean, faulted, codes(sandbox)[1:]),
            faulted.duplicate_rows,
            f"practice failed alone: {error_class}, re-run later",
            "tests/flows/test_fault_injection.py::"
            "test_persistent_faults_fail_the_practice_alone_with_a_clear_error",
        )
    )


# -- schema drift: unknown elements ignored, missing optional elements tolerated --------------


def test_unknown_elements_are_ignored(sandbox: SandboxServer, tmp_path: Path, clean: Snapshot) -> None:
    victim, faulted, injected = inject(sandbox, tmp_path, clean, kind="schema_extra")
    assert faulted.outcomes[victim]["status"] == "ok"
    assert faulted.victim == clean.victim, "unknown elements changed what was loaded"
    record(
        Result(
            "fault",
            "schema drift: unknown elements and extensions",
            injected,
            injected,
            lost_rows(clean, faulted, codes(sandbox)),
            faulted.duplicate_rows,
            "ignored; rows identical to a clean run",
            "tests/flows/test_fault_injection.py::test_unknown_elements_are_ignored",
        )
    )


def test_missing_optional_elements_lose_no_slot(
    sandbox: SandboxServer, tmp_path: Path, clean: Snapshot
) -> None:
    victim, faulted, injected = inject(sandbox, tmp_path, clean, kind="schema_missing")
    assert faulted.outcomes[victim]["status"] == "ok"
    assert faulted.slot_rows[victim] == clean.slot_rows[victim], "a slot was dropped"
    record(
        Result(
            "fault",
            "schema drift: optional elements missing",
            injected,
            injected,
            lost_rows(clean, faulted, codes(sandbox)),
            faulted.duplicate_rows,
            "loaded; missing attributes are NULL, every slot kept",
            "tests/flows/test_fault_injection.py::test_missing_optional_elements_lose_no_slot",
        )
    )


# -- semantically wrong data: quarantined by the data-quality gate (warehouse/quality.py) ----


@dataclass(frozen=True)
class Semantic:
    kind: str
    expectation: str  # the GX expectation that must name the defect


def _quarantined(victim: str, faulted: Snapshot, clean: Snapshot, expectation: str) -> None:
    """Refused for publishing, named, and kept: every staged row stays for the re-run."""
    outcome = faulted.outcomes[victim]
    assert outcome["status"] == "failed" and outcome["error_class"] == "QuarantinedBatch", outcome
    assert victim in outcome["message"] and expectation in outcome["message"], outcome["message"]
    # Nothing lost: the slots the provider sent are all staged (a repeated entry twice).
    assert faulted.slot_rows[victim] >= clean.slot_rows[victim]
    assert victim in faulted.landing_files, "the quarantined payload is kept as received"
    # Nothing published: none of the victim's core or mart rows come from this load.
    published = {k: v for k, v in faulted.victim.items() if not k.startswith("staging.")}
    assert published != {k: v for k, v in clean.victim.items() if not k.startswith("staging.")}


SEMANTIC: dict[str, Semantic] = {
    "slot ends before it starts": Semantic("end_before_start", "slot_start_before_end"),
    "slot references a missing schedule": Semantic("dangling_schedule", "slot_schedule_resolves"),
    "duplicate slot id in one bundle": Semantic("duplicate_slot", "slot_id_unique"),
    "offsets contradicting UK DST": Semantic("dst_offset", "slot_offset_matches_uk_time"),
}


@pytest.mark.parametrize("fault", list(SEMANTIC))
def test_semantically_wrong_data_never_touches_other_practices(
    sandbox: SandboxServer, tmp_path: Path, clean: Snapshot, fault: str
) -> None:
    case = SEMANTIC[fault]
    victim, faulted, injected = inject(sandbox, tmp_path, clean, kind=case.kind)
    _quarantined(victim, faulted, clean, case.expectation)
    record(
        Result(
            "fault",
            fault,
            injected,
            injected,
            lost_rows(clean, faulted, codes(sandbox)[1:]),
            faulted.duplicate_rows,
            f"quarantined by the data-quality gate ({case.expectation}); kept, not published",
            "tests/flows/test_fault_injection.py::test_semantically_wrong_data_never_touches_other_practices",
        )
    )


# -- hostile providers: slow or evasive answers cannot hold the run (#18) ---------------------


@pytest.fixture
def http_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Override `http.*` settings for one test (on top of HTTP_ENV)."""

    def override(**values: float) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"SLOTSYNC_HTTP__{name.upper()}", str(value))
        get_settings.cache_clear()

    yield override
    get_settings.cache_clear()


def _failed_alone(victim: str, faulted: Snapshot, error_class: str, *words: str) -> str:
    """The victim failed with `error_class` and a one-line message; nothing of it was loaded."""
    outcome = faulted.outcomes[victim]
    assert outcome["status"] == "failed" and outcome["error_class"] == error_class, outcome
    message: str = outcome["message"]
    assert "\n" not in message and victim in message and "Next step" in message, message
    assert all(word in message for word in words), message
    assert faulted.slot_rows[victim] == 0 and victim not in faulted.landing_files
    return message


TRICKLE_BYTE_EVERY_S = 1.0  # inside the 5 s read timeout: each byte restarts it
REQUEST_DEADLINE_S = 4.0
PRACTICE_BUDGET_S = 10.0
# Slack over a clean run for the victim's budget: a loaded 2-core machine, the trickle's end.
RUN_SLACK_S = 45.0


def test_a_trickling_provider_fails_its_practice_within_the_budget(
    sandbox: SandboxServer, tmp_path: Path, clean: Snapshot, http_env: Callable[..., None]
) -> None:
    http_env(request_deadline_s=REQUEST_DEADLINE_S, practice_budget_s=PRACTICE_BUDGET_S)
    victim, faulted, injected = inject(
        sandbox, tmp_path, clean, kind="trickle", delay_s=TRICKLE_BYTE_EVERY_S
    )
    _failed_alone(victim, faulted, "PracticeBudgetExceeded", "http.practice_budget_s")
    # Unbounded, each trickled search would take one second per byte of its bundle.
    smallest_body = clean.victim_smallest_body
    assert smallest_body is not None
    assert smallest_body * TRICKLE_BYTE_EVERY_S > 10 * (PRACTICE_BUDGET_S + RUN_SLACK_S)
    over_clean = faulted.wall_s - clean.wall_s
    assert over_clean < PRACTICE_BUDGET_S + RUN_SLACK_S, f"the run took {over_clean:.0f} s longer"
    # Retried on the request deadline until the budget, not the attempts, ended it.
    assert faulted.victim_searches > clean.victim_searches
    record(
        Result(
            "fault",
            f"trickled body (a byte every {TRICKLE_BYTE_EVERY_S:g} s, a {REQUEST_DEADLINE_S:g} s "
            f"request deadline, a {PRACTICE_BUDGET_S:g} s practice budget)",
            injected,
            injected,
            lost_rows(clean, faulted, codes(sandbox)[1:]),
            faulted.duplicate_rows,
            f"practice failed alone: PracticeBudgetExceeded after {faulted.victim_searches} "
            f"requests ({clean.victim_searches} searches, retried on the deadline); run "
            f"{faulted.wall_s:.0f} s (clean {clean.wall_s:.0f} s), a whole trickled body "
            f"≥ {smallest_body * TRICKLE_BYTE_EVERY_S:,.0f} s; others published intact",
            "tests/flows/test_fault_injection.py::test_a_trickling_provider_fails_its_practice_within_the_budget",
        )
    )


def test_a_day_long_retry_after_fails_its_practice_at_once(
    sandbox: SandboxServer, tmp_path: Path, clean: Snapshot, http_env: Callable[..., None]
) -> None:
    # The cap allows a day, so only the practice's budget refuses the wait.
    http_env(retry_after_cap_s=100_000, practice_budget_s=60)
    victim, faulted, injected = inject(
        sandbox, tmp_path, clean, kind="status", status=429, retry_after_s=86400
    )
    _failed_alone(
        victim, faulted, "RateLimited", "wait 86400 s (Retry-After)", "remaining budget", "HTTP 429"
    )
    assert faulted.victim_searches == clean.victim_searches, "a refused wait is never asked again"
    over_clean = faulted.wall_s - clean.wall_s
    assert over_clean < RUN_SLACK_S, f"the run took {over_clean:.0f} s longer: it slept"
    record(
        Result(
            "fault",
            "429 with Retry-After: 86400 (a day, beyond the practice budget)",
            injected,
            injected,
            lost_rows(clean, faulted, codes(sandbox)[1:]),
            faulted.duplicate_rows,
            f"practice failed at once: RateLimited naming the 86400 s wait, never slept; run "
            f"{faulted.wall_s:.0f} s (clean {clean.wall_s:.0f} s); others published intact",
            "tests/flows/test_fault_injection.py::test_a_day_long_retry_after_fails_its_practice_at_once",
        )
    )


def test_a_redirect_carrying_a_fhir_bundle_is_neither_followed_nor_loaded(
    sandbox: SandboxServer, tmp_path: Path, clean: Snapshot
) -> None:
    victim, faulted, injected = inject(sandbox, tmp_path, clean, kind="redirect")
    _failed_alone(victim, faulted, "Redirected", "HTTP 302", "elsewhere.invalid (another host)")
    assert faulted.victim_searches == clean.victim_searches, "a redirect is not retried"
    record(
        Result(
            "fault",
            "302 redirect to another host with a FHIR Bundle body",
            injected,
            injected,
            lost_rows(clean, faulted, codes(sandbox)[1:]),
            faulted.duplicate_rows,
            "practice failed alone: Redirected, not followed, body not loaded; others published intact",
            "tests/flows/test_fault_injection.py::"
            "test_a_redirect_carrying_a_fhir_bundle_is_neither_followed_nor_loaded",
        )
    )
