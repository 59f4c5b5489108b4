"""Releasing unused NHS 111 slots: the supplier API against a real sandbox, and the work-list."""

from __future__ import annotations

import asyncio
import csv
import multiprocessing
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.clock import SimulatedClock
from common.config import HttpSettings, Settings
from connectors.gpconnect.spine import SearchFilter
from connectors.http.errors import NotFound, ResponseInvalid
from connectors.registry import Practice, ReleasePolicy
from connectors.release.model import ReleaseOutcome, ReleaseRequest
from connectors.release.releasers import Releasers, releaser_for
from connectors.release.supplier_api import SupplierApiReleaser, supplier_api_root
from connectors.release.worklist import WORKLIST_COLUMNS, WorkListReleaser
from flows.release import idempotency_key
from sandbox import SandboxServer
from sandbox.state import GroundTruthRow
from tests.flows.conftest import run_async
from tests.reliability import Result, record
from tests.sandbox.helpers import START, GpcClient, practices_of

RELEASE_NOT_COUNTED = "not counted: each example asserts every key is queued exactly once"

DAY = date(2026, 3, 24)
FAST = HttpSettings(max_attempts=3, backoff_initial_s=0, backoff_max_s=0)


def _request(
    row: GroundTruthRow, version: str | None, key: str | None = None, **overrides: Any
) -> ReleaseRequest:
    fields: dict[str, Any] = {
        "practice_ods": row.practice_ods,
        "slot_id": row.slot_id,
        "slot_start": row.start_utc,
        "slot_end": row.end_utc,
        "idempotency_key": key or f"{row.practice_ods}:{row.slot_id}:lead-120",
        "decision_id": f"decision-{row.slot_id}",
        "reason": "NHS 111 slot unused 2 h before start",
        "decided_at": START,
        "policy_name": "lead-120",
        "lead_minutes": 120,
        "expected_version": version,
        "slot_type": row.slot_type,
    }
    fields.update(overrides)
    return ReleaseRequest(**fields)


def _reserved_free(sandbox: SandboxServer, practice: Practice, now: datetime) -> list[GroundTruthRow]:
    return [
        r
        for r in sandbox.state.ground_truth(
            practice.ods_code, first_day=DAY, last_day=DAY + timedelta(days=3)
        )
        if r.audience == "nhs111" and r.state == "free" and r.released_at is None and r.start_utc > now
    ]


def _big_111_practice(sandbox: SandboxServer) -> Practice:
    """A practice with several 111 slots a day that the sandbox releases through its API."""
    return next(
        p
        for p in practices_of(sandbox.registry)
        if p.accepts_111_booking and p.list_size > 12000 and p.release_policy.releaser == "sandbox"
    )


@pytest.fixture(scope="module")
def clock() -> SimulatedClock:
    return SimulatedClock(START)


@pytest.fixture(scope="module")
def sandbox(clock: SimulatedClock) -> Iterator[SandboxServer]:
    """One estate for the module; the clock never moves, so each test takes its own slots."""
    with SandboxServer(clock=clock) as server:
        yield server


@pytest.fixture(scope="module")
def practice(sandbox: SandboxServer) -> Practice:
    return _big_111_practice(sandbox)


@pytest.fixture(scope="module")
def slots(sandbox: SandboxServer, practice: Practice, clock: SimulatedClock) -> Iterator[GroundTruthRow]:
    """Reserved free slots, each handed to one test only."""
    return iter(_reserved_free(sandbox, practice, clock.now()))


@pytest.fixture(scope="module")
def gpc(sandbox: SandboxServer, clock: SimulatedClock) -> Iterator[GpcClient]:
    client = GpcClient(sandbox, clock)
    yield client
    client.close()


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


# ---------------------------------------------------------------------- supplier API


def test_release_with_the_checked_version_opens_the_slot_to_everyone(
    sandbox: SandboxServer,
    practice: Practice,
    slots: Iterator[GroundTruthRow],
    gpc: GpcClient,
    clock: SimulatedClock,
) -> None:
    row = next(slots)
    window = (DAY.isoformat(), DAY.isoformat())
    assert row.slot_id not in gpc.free_slot_ids(practice, *window)

    async def scenario() -> tuple[Any, Any, Any]:
        async with SupplierApiReleaser(FAST, clock=clock) as releaser:
            before = await releaser.current_state(practice, row.slot_id)
            result = await releaser.release(practice, _request(row, before.version))
            after = await releaser.current_state(practice, row.slot_id)
            return before, result, after

    before, result, after = _run(scenario())
    assert before.free and before.restricted and before.start == row.start_utc
    assert result.outcome is ReleaseOutcome.RELEASED and result.outcome.done
    assert (result.version_before, result.http_status, result.attempts) == (before.version, 200, 1)
    assert result.version_after == after.version != before.version
    assert not after.restricted and after.released_at is not None
    assert row.slot_id in gpc.free_slot_ids(practice, *window)
    assert row.slot_id in gpc.free_slot_ids(practice, *window, SearchFilter("urgent-care", "RYE"))


def test_the_same_key_again_is_already_released_and_not_applied_twice(
    sandbox: SandboxServer, practice: Practice, slots: Iterator[GroundTruthRow], clock: SimulatedClock
) -> None:
    row = next(slots)
    version = sandbox.state.slot_version(sandbox.state.slot(practice.ods_code, row.slot_id))

    async def scenario() -> list[Any]:
        async with SupplierApiReleaser(FAST, clock=clock) as releaser:
            first = await releaser.release(practice, _request(row, version))
            released_at = sandbox.state.slot(practice.ods_code, row.slot_id).released_at
            # The retry still carries the old version: the key is what makes it safe.
            second = await releaser.release(practice, _request(row, version))
            return [first, released_at, second]

    first, released_at, second = _run(scenario())
    assert first.outcome is ReleaseOutcome.RELEASED
    assert second.outcome is ReleaseOutcome.ALREADY_RELEASED and second.outcome.done
    assert second.version_after == first.version_after
    slot = sandbox.state.slot(practice.ods_code, row.slot_id)
    assert slot.released_at == released_at and slot.release_key == first.idempotency_key


def test_a_stale_version_is_refused_and_the_slot_stays_reserved(
    sandbox: SandboxServer, practice: Practice, slots: Iterator[GroundTruthRow], clock: SimulatedClock
) -> None:
    row = next(slots)
    result = _run(_release_once(practice, _request(row, "1"), clock))
    assert result.outcome is ReleaseOutcome.REFUSED_VERSION and result.outcome.refused
    assert result.http_status == 412 and result.attempts == 1
    assert result.message is not None and "VERSION_MISMATCH" in result.message
    assert sandbox.state.slot(practice.ods_code, row.slot_id).is_restricted


def test_a_booking_after_the_check_is_never_released(
    sandbox: SandboxServer, practice: Practice, slots: Iterator[GroundTruthRow], clock: SimulatedClock
) -> None:
    """The booking changes the version, so If-Match is what catches the race (412)."""
    row = next(slots)

    async def scenario() -> Any:
        async with SupplierApiReleaser(FAST, clock=clock) as releaser:
            checked = await releaser.current_state(practice, row.slot_id)
            sandbox.state.book_now(practice.ods_code, row.slot_id, "RYE")
            return await releaser.release(practice, _request(row, checked.version))

    result = _run(scenario())
    assert result.outcome is ReleaseOutcome.REFUSED_VERSION
    slot = sandbox.state.slot(practice.ods_code, row.slot_id)
    assert slot.state == "booked" and slot.is_restricted and slot.released_at is None
    assert slot.latest_appointment is not None and slot.latest_appointment.status == "booked"


def test_releasing_a_booked_slot_at_its_current_version_is_refused_as_booked(
    sandbox: SandboxServer, practice: Practice, slots: Iterator[GroundTruthRow], clock: SimulatedClock
) -> None:
    row = next(slots)
    appointment = sandbox.state.book_now(practice.ods_code, row.slot_id, "RYE")

    async def scenario() -> tuple[Any, Any]:
        async with SupplierApiReleaser(FAST, clock=clock) as releaser:
            state = await releaser.current_state(practice, row.slot_id)
            return state, await releaser.release(practice, _request(row, state.version))

    state, result = _run(scenario())
    assert not state.free
    assert result.outcome is ReleaseOutcome.REFUSED_BOOKED and result.http_status == 409
    slot = sandbox.state.slot(practice.ods_code, row.slot_id)
    assert slot.latest_appointment is appointment and appointment.status == "booked"
    assert slot.released_at is None


def test_an_unrestricted_slot_is_refused(
    sandbox: SandboxServer, practice: Practice, clock: SimulatedClock
) -> None:
    general = next(
        r
        for r in sandbox.state.ground_truth(practice.ods_code, first_day=DAY, last_day=DAY)
        if r.audience == "general" and r.state == "free"
    )
    version = sandbox.state.slot_version(sandbox.state.slot(practice.ods_code, general.slot_id))
    result = _run(_release_once(practice, _request(general, version), clock))
    assert result.outcome is ReleaseOutcome.REFUSED_NOT_RESTRICTED and result.http_status == 422


def test_an_unknown_slot_fails_with_a_classified_message_and_is_not_retried(
    practice: Practice, clock: SimulatedClock
) -> None:
    result = _run(_release_once(practice, _request(_fake_row(practice.ods_code, slot_id="0"), "1"), clock))

    async def read_unknown() -> None:
        async with SupplierApiReleaser(FAST, clock=clock) as releaser:
            await releaser.current_state(practice, "0")

    with pytest.raises(NotFound):
        _run(read_unknown())
    assert result.outcome is ReleaseOutcome.FAILED and not result.outcome.done
    assert (result.http_status, result.error_class, result.attempts) == (404, "NotFound", 1)
    assert result.message is not None
    for part in (practice.ods_code, "release slot", "HTTP 404", "Next step:"):
        assert part in result.message


def test_started_slot_is_refused() -> None:
    clock = SimulatedClock(START)
    with SandboxServer(clock=clock) as sandbox:
        practice = _big_111_practice(sandbox)
        clock.set(datetime(2026, 3, 24, 16, 0, tzinfo=UTC))
        started = next(
            r
            for r in sandbox.state.ground_truth(practice.ods_code, first_day=DAY, last_day=DAY)
            if r.audience in ("nhs111", "hub") and r.state == "free" and r.start_utc < clock.now()
        )

        async def scenario() -> Any:
            async with SupplierApiReleaser(FAST, clock=clock) as releaser:
                state = await releaser.current_state(practice, started.slot_id)
                return await releaser.release(practice, _request(started, state.version))

        result = _run(scenario())
    assert result.outcome is ReleaseOutcome.REFUSED_STARTED and result.http_status == 422


class _Flaky(httpx.AsyncBaseTransport):
    """Loopback transport to the real sandbox that spoils the first release attempts.

    Sandbox fault rules only cover GP Connect routes, not `/_supplier`, so the faults are
    made here instead: `unavailable` answers 503 without reaching the sandbox, and
    `lost_replies` delivers the request, then drops the response.
    """

    def __init__(self, *, unavailable: int = 0, lost_replies: int = 0) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.unavailable = unavailable
        self.lost_replies = lost_replies
        self.release_posts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            return await self._inner.handle_async_request(request)
        self.release_posts += 1
        if self.unavailable:
            self.unavailable -= 1
            return httpx.Response(503, json={"error": "UNAVAILABLE", "detail": "injected"})
        response = await self._inner.handle_async_request(request)
        if self.lost_replies:
            self.lost_replies -= 1
            await response.aread()
            await response.aclose()
            raise httpx.ReadError("connection dropped after the release was applied")
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_transient_503s_are_retried_then_released(
    sandbox: SandboxServer, practice: Practice, slots: Iterator[GroundTruthRow], clock: SimulatedClock
) -> None:
    row = next(slots)
    transport = _Flaky(unavailable=2)
    version = sandbox.state.slot_version(sandbox.state.slot(practice.ods_code, row.slot_id))
    result = _run(_release_once(practice, _request(row, version), clock, transport))
    assert result.outcome is ReleaseOutcome.RELEASED
    assert result.attempts == transport.release_posts == 3
    assert not sandbox.state.slot(practice.ods_code, row.slot_id).is_restricted


def test_a_lost_reply_is_retried_with_the_same_key_and_applied_once(
    sandbox: SandboxServer, practice: Practice, slots: Iterator[GroundTruthRow], clock: SimulatedClock
) -> None:
    row = next(slots)
    transport = _Flaky(lost_replies=1)
    version = sandbox.state.slot_version(sandbox.state.slot(practice.ods_code, row.slot_id))
    result = _run(_release_once(practice, _request(row, version), clock, transport))
    # The first attempt released it; the retry is answered from the key.
    assert result.outcome is ReleaseOutcome.ALREADY_RELEASED and result.attempts == 2
    assert sandbox.state.slot(practice.ods_code, row.slot_id).release_key == result.idempotency_key


def test_persistent_503_fails_after_the_configured_attempts(
    practice: Practice, clock: SimulatedClock
) -> None:
    calls: list[httpx.Request] = []

    def unavailable(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, json={"error": "UNAVAILABLE", "detail": "maintenance"})

    row = _fake_row(practice.ods_code)
    transport = httpx.MockTransport(unavailable)
    result = _run(_release_once(practice, _request(row, "7"), clock, transport))
    assert result.outcome is ReleaseOutcome.FAILED and result.error_class == "TransientError"
    assert len(calls) == result.attempts == FAST.max_attempts
    assert result.message is not None and "HTTP 503" in result.message and "release slot" in result.message
    sent = calls[0]
    assert sent.headers["if-match"] == 'W/"7"'
    assert sent.url.path == f"/_supplier/{practice.ods_code}/Slot/{row.slot_id}/$release"
    assert (
        sent.content
        == b'{"idempotency_key":"%s","reason":"NHS 111 slot unused 2 h before start"}'
        % (row.practice_ods + ":" + row.slot_id + ":lead-120").encode()
    )


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("GET", b"<html>maintenance</html>"),
        (
            "GET",
            b'{"slot_id": "5001", "practice_ods": "X", "start": "2026-03-24T10:00:00", '
            b'"end": "2026-03-24T10:15:00+00:00", "state": "free", "version": "3"}',
        ),
        ("POST", b'{"released": false}'),
        ("POST", b"{}"),
    ],
)
def test_unusable_supplier_answers_are_response_invalid(
    practice: Practice, clock: SimulatedClock, method: str, body: bytes
) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    row = _fake_row(practice.ods_code)

    async def scenario() -> Any:
        async with SupplierApiReleaser(FAST, clock=clock, transport=transport) as releaser:
            if method == "GET":
                with pytest.raises(ResponseInvalid, match="read slot"):
                    await releaser.current_state(practice, row.slot_id)
                return None
            return await releaser.release(practice, _request(row, "3"))

    result = _run(scenario())
    if method == "POST":
        assert result.outcome is ReleaseOutcome.FAILED and result.error_class == "ResponseInvalid"
        assert result.attempts == 1


def test_no_expected_version_fails_without_calling_the_supplier(
    practice: Practice, clock: SimulatedClock
) -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no HTTP call expected")

    result = _run(
        _release_once(
            practice, _request(_fake_row(practice.ods_code), None), clock, httpx.MockTransport(never)
        )
    )
    assert result.outcome is ReleaseOutcome.FAILED and result.attempts == 0
    assert result.message is not None and "current_state" in result.message


def test_supplier_api_root_is_configured_or_derived(practice: Practice, clock: SimulatedClock) -> None:
    assert supplier_api_root(practice) == practice.service_root.removesuffix(
        f"/{practice.ods_code}/STU3/1/gpconnect"
    )
    configured = practice.model_copy(
        update={
            "release_policy": ReleasePolicy(releaser="sandbox", supplier_api_root="https://slots.example")
        }
    )
    assert supplier_api_root(configured) == "https://slots.example"
    with pytest.raises(ValueError, match="supplier_api_root"):
        ReleasePolicy(supplier_api_root="https://slots.example/")

    odd = practice.model_copy(update={"service_root": "https://gpc.example/fhir"})
    result = _run(_release_once(odd, _request(_fake_row(practice.ods_code), "1"), clock))
    assert result.outcome is ReleaseOutcome.FAILED and result.error_class == "ConfigurationError"
    assert result.message is not None and "supplier_api_root" in result.message


async def _release_once(
    practice: Practice,
    request: ReleaseRequest,
    clock: SimulatedClock,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Any:
    async with SupplierApiReleaser(FAST, clock=clock, transport=transport) as releaser:
        return await releaser.release(practice, request)


# ---------------------------------------------------------------------- work-list


def _fake_row(
    ods: str, start: datetime | None = None, slot_id: str = "5001", slot_type: str = "NHS 111"
) -> Any:
    start = start or datetime(2026, 3, 24, 10, 0, tzinfo=UTC)
    return GroundTruthRow(
        practice_ods=ods, slot_id=slot_id, schedule_id="s1", start_utc=start,
        end_utc=start + timedelta(minutes=15), slot_type=slot_type, delivery_channel="In-person",
        bookable=True, audience="nhs111", reserved_for_ods="RYE", state="free", booked_by_ods=None,
        booked_by_kind=None, booked_at=None, cancelled_at=None, released_at=None, removed_at=None,
        appointment_id=None,
    )  # fmt: skip


def _worklist_practice() -> Practice:
    return Practice(
        ods_code="J82099",
        name="Meon Valley Surgery",
        list_size=9027,
        clinical_system="SystmOne",
        service_root="https://gpc.example/J82099/STU3/1/gpconnect",
        provider_asid="200000000199",
        accepts_111_booking=True,
        nhs111_provider_ods="RYE",
    )


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_worklist_writes_csv_and_markdown_once_per_key(tmp_path: Path) -> None:
    practice = _worklist_practice()
    clock = SimulatedClock(START)
    first = _request(_fake_row(practice.ods_code, slot_type="=HYPERLINK(1)"), None)
    repeat = _request(_fake_row(practice.ods_code, slot_type="=HYPERLINK(1)"), None, decision_id="d-2")

    async def scenario() -> list[Any]:
        async with WorkListReleaser(tmp_path, clock=clock) as releaser:
            assert await releaser.current_state(practice, first.slot_id) is None
            return [await releaser.release(practice, first), await releaser.release(practice, repeat)]

    queued, again = _run(scenario())
    csv_path = tmp_path / "2026-03-24" / "J82099.csv"
    assert queued.outcome is ReleaseOutcome.QUEUED and queued.location == str(csv_path)
    assert again.outcome is ReleaseOutcome.ALREADY_QUEUED and again.outcome.done

    assert csv_path.read_text(encoding="utf-8").splitlines()[0] == ",".join(WORKLIST_COLUMNS)
    [row] = _csv_rows(csv_path)
    assert row["idempotency_key"] == first.idempotency_key and row["decision_id"] == first.decision_id
    assert (
        row["slot_start_uk"] == "2026-03-24T10:00:00+00:00"
        and row["slot_start_utc"] == "2026-03-24T10:00:00Z"
    )
    assert row["slot_type"] == "'=HYPERLINK(1)"  # a spreadsheet shows it as text, not a formula

    markdown = (tmp_path / "2026-03-24" / "J82099.md").read_text(encoding="utf-8")
    assert "Meon Valley Surgery (J82099)" in markdown and "In SystmOne" in markdown
    assert "Tuesday 24 March 2026" in markdown
    assert "| 10:00 GMT | 10:15 GMT |" in markdown
    assert first.decision_id in markdown and "J82099:5001:lead-120" in markdown
    assert "d-2" not in markdown
    assert not list(tmp_path.rglob("*.tmp"))


def test_worklist_uses_uk_local_time_and_uk_dates_across_dst(tmp_path: Path) -> None:
    practice = _worklist_practice()
    clock = SimulatedClock(START)
    ods = practice.ods_code
    dst_day = [  # Sunday 29 March 2026: clocks go forward at 01:00 GMT
        _fake_row(ods, datetime(2026, 3, 29, 8, 0, tzinfo=UTC), "7002"),
        _fake_row(ods, datetime(2026, 3, 29, 0, 30, tzinfo=UTC), "7001"),
    ]
    late_summer_evening = _fake_row(ods, datetime(2026, 6, 1, 23, 30, tzinfo=UTC), "8001")

    async def scenario() -> None:
        releaser = WorkListReleaser(tmp_path, clock=clock)
        for row in [*dst_day, late_summer_evening]:
            assert (await releaser.release(practice, _request(row, None))).outcome is ReleaseOutcome.QUEUED
        await releaser.aclose()

    _run(scenario())
    markdown = (tmp_path / "2026-03-29" / "J82099.md").read_text(encoding="utf-8")
    early, late = markdown.index("| 00:30 GMT | 00:45 GMT |"), markdown.index("| 09:00 BST | 09:15 BST |")
    assert early < late  # sorted by start
    starts = {r["slot_id"]: r["slot_start_uk"] for r in _csv_rows(tmp_path / "2026-03-29" / "J82099.csv")}
    assert starts == {"7002": "2026-03-29T09:00:00+01:00", "7001": "2026-03-29T00:30:00+00:00"}
    # 23:30 UTC on 1 June is 00:30 BST on 2 June: the file goes under the UK date.
    assert (tmp_path / "2026-06-02" / "J82099.csv").exists()
    assert not (tmp_path / "2026-06-01").exists()


def test_worklist_does_not_queue_a_started_slot(tmp_path: Path) -> None:
    practice = _worklist_practice()
    clock = SimulatedClock(datetime(2026, 3, 24, 10, 5, tzinfo=UTC))
    request = _request(_fake_row(practice.ods_code), None)
    result = _run(WorkListReleaser(tmp_path, clock=clock).release(practice, request))
    assert result.outcome is ReleaseOutcome.REFUSED_STARTED
    assert not list(tmp_path.iterdir())


def _queue_from_another_process(out_dir: str, worker: int, barrier: Any) -> None:
    """Runs in a spawned process: 20 keys of its own plus 10 shared with the other writer."""
    practice = _worklist_practice()
    clock = SimulatedClock(START)
    base = datetime(2026, 3, 24, 8, 0, tzinfo=UTC)
    slot_ids = [f"{worker}{n:03d}" for n in range(20)] + [f"9{n:03d}" for n in range(10)]

    async def queue_all() -> None:
        releaser = WorkListReleaser(Path(out_dir), clock=clock)
        requests = [
            _request(_fake_row(practice.ods_code, base + timedelta(minutes=i), slot_id), None)
            for i, slot_id in enumerate(slot_ids)
        ]
        barrier.wait(timeout=60)
        await asyncio.gather(*(releaser.release(practice, r) for r in requests))

    asyncio.run(queue_all())


def test_two_processes_queueing_for_one_practice_do_not_corrupt_the_files(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [
        context.Process(target=_queue_from_another_process, args=(str(tmp_path), worker, barrier))
        for worker in (1, 2)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0
    csv_path = tmp_path / "2026-03-24" / "J82099.csv"
    text = csv_path.read_text(encoding="utf-8")
    assert text.count("idempotency_key,") == 1
    keys = [row["idempotency_key"] for row in _csv_rows(csv_path)]
    assert len(keys) == len(set(keys)) == 50
    markdown = (tmp_path / "2026-03-24" / "J82099.md").read_text(encoding="utf-8")
    assert markdown.count("| J82099:") == 50 and "50 slot(s)" in markdown


# ---------------------------------------------------------------------- choosing one


def test_releaser_chosen_by_policy_and_shared_across_a_run(sandbox: SandboxServer, tmp_path: Path) -> None:
    by_kind = {p.release_policy.releaser: p for p in practices_of(sandbox.registry)}
    settings = Settings(http=FAST)

    async def scenario() -> None:
        single = releaser_for(by_kind["sandbox"], settings, tmp_path)
        assert isinstance(single, SupplierApiReleaser)
        await single.aclose()
        async with Releasers(settings, tmp_path) as releasers:
            api = releasers.for_practice(by_kind["sandbox"])
            assert isinstance(api, SupplierApiReleaser)
            assert releasers.for_practice(by_kind["sandbox"]) is api
            worklist = releasers.for_practice(by_kind["worklist"])
            assert isinstance(worklist, WorkListReleaser) and worklist.out_dir == tmp_path

    _run(scenario())


def test_requests_are_validated() -> None:
    row = _fake_row("J82099")
    with pytest.raises(ValueError, match="timezone-aware"):
        _request(row, None, decided_at=datetime(2026, 3, 23, 6, 0))
    with pytest.raises(ValueError, match="not after start"):
        _request(row, None, slot_end=row.start_utc)
    with pytest.raises(ValueError, match="idempotency_key"):
        _request(row, None, key=" ")
    london = _request(row, None, slot_start=datetime.fromisoformat("2026-03-24T10:00:00+00:00"))
    assert london.slot_start.tzinfo is UTC
    with pytest.raises(ValueError, match="passed with practice"):
        _run(
            WorkListReleaser(Path("unused")).release(
                _worklist_practice(), _request(_fake_row("A12345"), None)
            )
        )


# ---------------------------------------------------------------------- properties


def test_release_idempotency_keys_are_stable_per_slot_and_policy_window() -> None:
    """Property: one key per (practice, slot, policy, due instant), whatever the due time's zone."""
    examples = {"n": 0}
    instants = st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    )

    @settings(max_examples=300, deadline=None)
    @given(
        st.tuples(
            st.sampled_from(["J82001", "J82002"]),
            st.sampled_from(["1", "2", "10"]),
            st.sampled_from(["lead-120m-core", "cutoff-1600"]),
            instants,
        ),
        st.tuples(
            st.sampled_from(["J82001", "J82002"]),
            st.sampled_from(["1", "2", "10"]),
            st.sampled_from(["lead-120m-core", "cutoff-1600"]),
            instants,
        ),
    )
    def check(a: tuple[str, str, str, datetime], b: tuple[str, str, str, datetime]) -> None:
        examples["n"] += 1
        key = idempotency_key(*a)
        assert key == idempotency_key(*a[:3], a[3].astimezone(ZoneInfo("Europe/London")))
        assert (key == idempotency_key(*b)) == (a == b)

    check()
    record(
        Result(
            "property",
            "release idempotency key: one per slot and policy window",
            examples["n"],
            examples["n"],
            None,
            None,
            "same decision, same key (any zone); another decision, another key",
            "tests/connectors/test_release.py::"
            "test_release_idempotency_keys_are_stable_per_slot_and_policy_window",
            not_measured=RELEASE_NOT_COUNTED,
        )
    )


def test_any_sequence_of_repeated_releases_queues_each_key_exactly_once(tmp_path: Path) -> None:
    """Property: re-sending decisions (retries, re-runs, a restarted process) never queues a
    slot twice: the first send of a key queues it, every later one is already queued."""
    practice = _worklist_practice()
    clock = SimulatedClock(START)
    pool = [
        _request(
            _fake_row(
                practice.ods_code, datetime(2026, 3, 24, 9 + i % 4, 15 * (i % 4), tzinfo=UTC), str(5000 + i)
            ),
            None,
            decision_id=f"d-{i}",
        )
        for i in range(6)
    ]
    examples = {"n": 0, "sends": 0}

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, len(pool) - 1), st.booleans()), min_size=1, max_size=20))
    def check(sends: list[tuple[int, bool]]) -> None:
        examples["n"] += 1
        examples["sends"] += len(sends)
        out = tmp_path / f"example-{examples['n']}"

        async def scenario() -> list[ReleaseOutcome]:
            outcomes = []
            releaser = WorkListReleaser(out, clock=clock)
            for index, restart in sends:
                if restart:  # a new process picks up where the last one stopped
                    await releaser.aclose()
                    releaser = WorkListReleaser(out, clock=clock)
                outcomes.append((await releaser.release(practice, pool[index])).outcome)
            await releaser.aclose()
            return outcomes

        outcomes = run_async(scenario())
        first = {index: position for position, (index, _) in reversed(list(enumerate(sends)))}
        for position, ((index, _), outcome) in enumerate(zip(sends, outcomes, strict=True)):
            expected = ReleaseOutcome.QUEUED if first[index] == position else ReleaseOutcome.ALREADY_QUEUED
            assert outcome is expected
        keys = [row["idempotency_key"] for path in out.rglob("*.csv") for row in _csv_rows(path)]
        assert sorted(keys) == sorted(pool[i].idempotency_key for i in first)

    check()
    record(
        Result(
            "property",
            "release idempotency: repeated sends and restarts",
            examples["sends"],
            examples["sends"],
            None,
            None,
            "each key queued exactly once (work-list releaser)",
            "tests/connectors/test_release.py::"
            "test_any_sequence_of_repeated_releases_queues_each_key_exactly_once",
            not_measured=RELEASE_NOT_COUNTED,
        )
    )
