"""Release unused NHS 111 slots back to the practice, safely and with an audit trail.

Every run (every 15 minutes in core hours, Europe/London):
1. Candidates come from the warehouse (warehouse/sql/release/release_candidates.sql): slots
   still reserved for NHS 111 and still free at the last snapshot, whose release time under
   the practice's policy has come (default: 2 hours before start; or a fixed daily cut-off)
   and whose start has not passed. A slot a live re-check already found gone or no longer
   reserved since that snapshot waits for the next snapshot instead of being re-checked.
2. Each practice's candidates are re-checked live, immediately before release, with a fresh
   differential search of that window: a slot no longer in the 111 provider's search was
   booked (or removed) since the snapshot; one already in the unfiltered search is no longer
   reserved. Only slots still reserved and free go on.
3. Each survivor is released through the practice's `SlotReleaser` (the supplier API with
   If-Match on the version just read, or a work-list for systems without a write API), with
   an idempotency key per slot and policy window.
Every decision is written to `audit.release_decision` before the release call (outcome
`attempting`) and completed after it, so a crash in between leaves a visible trace and the
re-run repeats the call with the same key: a slot is never released twice. Dry runs record
what would have happened and release nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import orjson
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from common.clock import Clock, SystemClock
from common.config import Settings
from common.uktime import format_uk, to_uk, uk_day, uk_local
from connectors.gpconnect.client import GpConnectClient
from connectors.gpconnect.searches import nhs111_filter
from connectors.gpconnect.spine import NO_FILTER
from connectors.gpconnect.windows import SearchWindow
from connectors.http.errors import HttpError
from connectors.registry import Practice, Registry, ReleasePolicy, load_registry
from connectors.release.model import ReleaseOutcome, ReleaseRequest, ReleaseResult
from connectors.release.releasers import Releasers
from flows.run_context import FixedClock, flow_run_id, settings_for, writer_slot
from warehouse.audit import ReleaseDecision, attempting_keys, audit_engine, save, settled_keys
from warehouse.db import open_warehouse, sql_text

CORE_DAY_START = time(8, 0)
CORE_DAY_END = time(18, 30)
# How far ahead candidates are looked for: more than any lead time or daily cut-off needs.
LOOKAHEAD = timedelta(hours=36)
# The deployed release cadence (flows/deployments.py runs the flow every 15 minutes). A run
# releases every slot falling due before the next run, so no slot is released up to one
# interval after `start - lead`; the cost is releasing at most one interval early.
RELEASE_EVERY = timedelta(minutes=15)


@dataclass(frozen=True)
class Candidate:
    """A slot still reserved for NHS 111 and free at the last snapshot, due for release."""

    practice_ods: str
    slot_id: str
    start_at: datetime
    end_at: datetime
    start_text: str | None
    slot_type: str | None
    schedule_id: str | None
    last_checked_at: datetime
    due_at: datetime
    policy_name: str
    lead_minutes: int
    idempotency_key: str


@dataclass
class ReleaseRun:
    as_of: datetime
    dry_run: bool
    decisions: list[ReleaseDecision] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for decision in self.decisions:
            totals[decision.outcome] = totals.get(decision.outcome, 0) + 1
        return dict(sorted(totals.items()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "dry_run": self.dry_run,
            "outcomes": self.counts(),
            "decisions": [d.model_dump(mode="json") for d in self.decisions],
        }


# ------------------------------------------------------------------ policy


def policy_name(policy: ReleasePolicy) -> str:
    base = (f"cutoff-{policy.daily_cutoff:%H%M}" if policy.daily_cutoff
            else f"lead-{policy.lead_minutes}m")
    return base + ("-core" if policy.core_hours_only else "")


def due_at(policy: ReleasePolicy, start_at: datetime) -> datetime:
    """When an unbooked 111 slot may go back to the practice under `policy`."""
    by_lead = start_at - timedelta(minutes=policy.lead_minutes)
    if policy.daily_cutoff is None:
        return by_lead
    # A daily cut-off releases the rest of the day at once; slots before it go by lead time.
    cutoff = uk_local(uk_day(start_at), policy.daily_cutoff).astimezone(UTC)
    return cutoff if cutoff < start_at else by_lead


def in_core_hours(start_at: datetime) -> bool:
    local = to_uk(start_at)
    return local.isoweekday() <= 5 and CORE_DAY_START <= local.time() < CORE_DAY_END


def idempotency_key(practice_ods: str, slot_id: str, policy: str, due: datetime) -> str:
    """One key per slot and policy window: the same decision always carries the same key."""
    text = f"{practice_ods}|{slot_id}|{policy}|{due.astimezone(UTC).isoformat()}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def select_candidates(
    rows: list[tuple[Any, ...]], registry: Registry, now: datetime, practices: set[str] | None = None,
    due_within: timedelta = timedelta(0),
) -> list[Candidate]:
    """Slots whose release falls due by `now + due_within` under their practice's policy."""
    known = registry.by_ods()
    chosen: list[Candidate] = []
    for ods, slot_id, start_at, end_at, start_text, slot_type, schedule_id, last_checked in rows:
        practice = known.get(ods)
        if practice is None or (practices is not None and ods not in practices):
            continue
        policy = practice.release_policy
        if start_at <= now or (policy.core_hours_only and not in_core_hours(start_at)):
            continue  # never release a started slot; policy may keep out-of-hours slots
        due = due_at(policy, start_at)
        if due > now + due_within:
            continue
        name = policy_name(policy)
        chosen.append(Candidate(
            ods, slot_id, start_at, end_at, start_text, slot_type, schedule_id, last_checked, due,
            name, policy.lead_minutes, idempotency_key(ods, slot_id, name, due),
        ))
    return sorted(chosen, key=lambda c: (c.practice_ods, c.start_at, c.slot_id))


# ------------------------------------------------------------------ live re-check


def _slot_ids(body: bytes) -> set[str]:
    bundle = orjson.loads(body)
    return {
        entry["resource"]["id"]
        for entry in bundle.get("entry") or []
        if isinstance(entry, dict) and entry.get("resource", {}).get("resourceType") == "Slot"
    }


async def recheck(
    client: GpConnectClient, practice: Practice, candidates: list[Candidate], now: datetime
) -> dict[str, str | None]:
    """slot id -> None if still reserved for 111 and free, else the reason to skip it."""
    window = SearchWindow(now, max(c.end_at for c in candidates))
    nhs111 = nhs111_filter(practice)
    general_response, nhs111_response = await asyncio.gather(
        client.search_free_slots(practice, window, NO_FILTER),
        client.search_free_slots(practice, window, nhs111),
    )
    open_to_all = _slot_ids(general_response.body)
    visible_to_111 = _slot_ids(nhs111_response.body)
    verdicts: dict[str, str | None] = {}
    for candidate in candidates:
        if candidate.slot_id in open_to_all:
            verdicts[candidate.slot_id] = "skipped_no_longer_reserved"
        elif candidate.slot_id not in visible_to_111:
            verdicts[candidate.slot_id] = "skipped_gone_since_snapshot"
        else:
            verdicts[candidate.slot_id] = None
    return verdicts


# ------------------------------------------------------------------ one practice


def _decision(
    candidate: Candidate, *, now: datetime, releaser: str, dry_run: bool, outcome: str,
    reason: str | None, flow_run_id: str | None, state_before: str, clock: Clock,
) -> ReleaseDecision:
    return ReleaseDecision(
        decision_id=str(uuid.uuid4()), idempotency_key=candidate.idempotency_key,
        flow_run_id=flow_run_id, as_of=now, practice_ods=candidate.practice_ods,
        slot_id=candidate.slot_id, slot_start_at=candidate.start_at,
        slot_start_text=candidate.start_text, slot_type=candidate.slot_type,
        policy_name=candidate.policy_name, due_at=candidate.due_at, releaser=releaser,
        dry_run=dry_run, outcome=outcome, reason=reason, state_before=state_before,
        decided_at=clock.now(),
    )


@dataclass
class PracticeCheck:
    """One practice's candidates after the live re-check: settled decisions, and the audit
    rows ('attempting') of the slots still reserved and free, to release."""

    practice: Practice
    decisions: list[ReleaseDecision] = field(default_factory=list)
    to_release: list[tuple[Candidate, ReleaseDecision]] = field(default_factory=list)


@task(name="recheck-practice", cache_policy=NO_CACHE, task_run_name="recheck-{practice.ods_code}")
async def recheck_practice(
    practice: Practice,
    candidates: list[Candidate],
    client: GpConnectClient,
    releaser_name: str,
    now: datetime,
    dry_run: bool,
    flow_run_id: str | None,
    clock: Clock,
    interrupted: frozenset[str] = frozenset(),
) -> PracticeCheck:
    """Re-check one practice's candidates live and decide each one; nothing is released here.

    `interrupted` holds idempotency keys whose earlier attempt never completed (a crash):
    those are sent again with the same key even if the slot already looks released, so
    the supplier can say whether it applied the first attempt, and the audit is completed.
    """
    dry = dry_run or practice.release_policy.dry_run
    state = "reserved for NHS 111, free at snapshot"
    check = PracticeCheck(practice)
    try:
        verdicts = await recheck(client, practice, candidates, now)
    except HttpError as exc:
        get_run_logger().warning("%s", exc)
        check.decisions = [
            _decision(c, now=now, releaser=releaser_name, dry_run=dry, outcome="skipped_recheck_failed",
                      reason=str(exc), flow_run_id=flow_run_id, state_before=state, clock=clock)
            for c in candidates
        ]
        return check
    for candidate in candidates:
        verdict = verdicts[candidate.slot_id]
        if verdict == "skipped_no_longer_reserved" and candidate.idempotency_key in interrupted:
            verdict = None  # resume the interrupted attempt instead of guessing who released it
        if verdict is not None:
            check.decisions.append(_decision(
                candidate, now=now, releaser=releaser_name, dry_run=dry, outcome=verdict,
                reason=_SKIP_REASONS[verdict], flow_run_id=flow_run_id, state_before=state, clock=clock,
            ))
        elif dry:
            check.decisions.append(_decision(
                candidate, now=now, releaser=releaser_name, dry_run=True, outcome="dry_run",
                reason=f"would release: still reserved and free at the live re-check, due "
                f"{format_uk(candidate.due_at)} under {candidate.policy_name}",
                flow_run_id=flow_run_id, state_before=state + "; live re-check: still reserved",
                clock=clock,
            ))
        else:
            attempt = _decision(
                candidate, now=now, releaser=releaser_name, dry_run=False, outcome="attempting",
                reason=f"due {format_uk(candidate.due_at)} under {candidate.policy_name}",
                flow_run_id=flow_run_id, state_before=state + "; live re-check: still reserved",
                clock=clock,
            )
            check.to_release.append((candidate, attempt))
    return check


@task(name="release-practice", cache_policy=NO_CACHE, task_run_name="release-{check.practice.ods_code}")
async def release_practice(check: PracticeCheck, releasers: Releasers, clock: Clock) -> list[ReleaseDecision]:
    """Release one practice's re-checked slots; each 'attempting' audit row is already written."""
    releaser = releasers.for_practice(check.practice)
    return [
        await _release_one(check.practice, candidate, attempt, releaser, clock)
        for candidate, attempt in check.to_release
    ]


_SKIP_REASONS = {
    "skipped_no_longer_reserved": "already open to everyone at the live re-check (released elsewhere)",
    "skipped_gone_since_snapshot": "no longer free at the live re-check: booked (or removed) since the "
    "snapshot; left untouched",
}


async def _release_one(
    practice: Practice, candidate: Candidate, attempt: ReleaseDecision, releaser: Any, clock: Clock
) -> ReleaseDecision:
    version: str | None = None
    try:
        current = await releaser.current_state(practice, candidate.slot_id)
        version = current.version if current is not None else None
    except HttpError as exc:
        return _completed(attempt, "failed", str(exc), clock, http_status=exc.status)
    request = ReleaseRequest(
        practice_ods=candidate.practice_ods, slot_id=candidate.slot_id,
        slot_start=candidate.start_at, slot_end=candidate.end_at,
        idempotency_key=candidate.idempotency_key, decision_id=attempt.decision_id,
        reason=attempt.reason or "", decided_at=attempt.decided_at,
        policy_name=candidate.policy_name, lead_minutes=candidate.lead_minutes,
        expected_version=version, slot_type=candidate.slot_type, session=candidate.schedule_id,
    )
    result: ReleaseResult = await releaser.release(practice, request)
    detail = result.message or (f"work-list {result.location}" if result.location else None)
    completed = _completed(attempt, result.outcome.value, detail or attempt.reason, clock,
                           http_status=result.http_status)
    completed.version_before = result.version_before or version
    completed.version_after = result.version_after
    completed.state_after = _STATE_AFTER.get(result.outcome, "unchanged")
    return completed


_STATE_AFTER = {
    ReleaseOutcome.RELEASED: "open to the practice",
    ReleaseOutcome.ALREADY_RELEASED: "open to the practice (released by an earlier attempt)",
    ReleaseOutcome.QUEUED: "on the practice work-list",
    ReleaseOutcome.ALREADY_QUEUED: "on the practice work-list (queued earlier)",
}


def _completed(
    attempt: ReleaseDecision, outcome: str, reason: str | None, clock: Clock, *, http_status: int | None
) -> ReleaseDecision:
    # A fresh row, not model_copy: a copied table model would share the original's ORM state.
    return ReleaseDecision.model_validate({
        **attempt.model_dump(), "outcome": outcome, "reason": reason,
        "completed_at": clock.now(), "http_status": http_status,
    })


def _write_decisions(settings: Settings, decisions: list[ReleaseDecision]) -> None:
    con = open_warehouse(settings.resolved_warehouse_path, file_mode=settings.storage.file_mode,
                         dir_mode=settings.storage.dir_mode)
    try:
        save(audit_engine(con), decisions)
    finally:
        con.close()


# ------------------------------------------------------------------ the flow


async def run_release(
    registry: Registry, settings: Settings, *, as_of: datetime | None, dry_run: bool,
    practices: list[str] | None = None, flow_run_id: str | None = None,
    due_within: timedelta = RELEASE_EVERY,
) -> ReleaseRun:
    clock: Clock = FixedClock(as_of) if as_of else SystemClock()
    now = clock.now().astimezone(UTC)
    run = ReleaseRun(as_of=now, dry_run=dry_run)
    async with writer_slot(settings):
        con = open_warehouse(settings.resolved_warehouse_path, file_mode=settings.storage.file_mode,
                             dir_mode=settings.storage.dir_mode)
        try:
            rows = con.execute(
                sql_text("release/release_candidates.sql"), {"now": now, "until": now + LOOKAHEAD}
            ).fetchall()
            candidates = select_candidates(rows, registry, now, set(practices) if practices else None,
                                           due_within)
            engine = audit_engine(con)
            settled = settled_keys(engine, [c.idempotency_key for c in candidates])
            interrupted = frozenset(attempting_keys(engine) - settled)
        finally:
            con.close()
    candidates = [c for c in candidates if c.idempotency_key not in settled]
    by_practice: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        by_practice.setdefault(candidate.practice_ods, []).append(candidate)
    if not by_practice:
        return run
    practices_by_ods = registry.by_ods()
    async with (
        GpConnectClient(settings.http, settings.consumer, clock=clock) as client,
        Releasers(settings, settings.data_dir / "worklists", clock=clock) as releasers,
    ):
        checks = await asyncio.gather(*(
            recheck_practice(practices_by_ods[ods], group, client,
                             releasers.for_practice(practices_by_ods[ods]).name, now, dry_run,
                             flow_run_id, clock, interrupted)
            for ods, group in sorted(by_practice.items())
        ))
        attempts = [attempt for check in checks for _, attempt in check.to_release]
        if attempts:
            # Every audit row exists before any release call, so a crash leaves it 'attempting';
            # one write for the whole run, because the writer slot is shared with the syncs.
            async with writer_slot(settings):
                _write_decisions(settings, attempts)
        released = await asyncio.gather(*(
            release_practice(check, releasers, clock) for check in checks if check.to_release
        ))
    results = [check.decisions for check in checks] + released
    run.decisions = [d for group in results for d in group]
    async with writer_slot(settings):
        _write_decisions(settings, run.decisions)
    return run


@flow(name="release_unused_111", log_prints=True)
async def release_unused_111(
    registry_path: str,
    warehouse_path: str | None = None,
    data_dir: str | None = None,
    as_of: datetime | None = None,
    dry_run: bool = False,
    practices: list[str] | None = None,
    due_within_minutes: int = int(RELEASE_EVERY.total_seconds() // 60),
) -> dict[str, Any]:
    """Give NHS 111 slots that nobody booked back to their practice before they go to waste.

    `due_within_minutes` is the gap to the next scheduled run: slots due before it go now.
    """
    settings = settings_for(warehouse_path, data_dir)
    registry = load_registry(Path(registry_path))
    run = await run_release(registry, settings, as_of=as_of, dry_run=dry_run, practices=practices,
                            flow_run_id=flow_run_id(),
                            due_within=timedelta(minutes=max(0, due_within_minutes)))
    return run.as_dict()
