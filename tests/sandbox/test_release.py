"""Supplier-side slot management: reading a slot and releasing its reservation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from connectors.gpconnect.spine import SearchFilter
from connectors.registry import Practice
from sandbox.state import GroundTruthRow
from tests.sandbox.helpers import GpcClient, practices_of

DAY = date(2026, 3, 24)


def _reserved_free_slots(gpc: GpcClient, practice: Practice, day: date = DAY) -> list[GroundTruthRow]:
    now = gpc.clock.now()
    return [
        r
        for r in gpc.sandbox.state.ground_truth(practice.ods_code, first_day=day, last_day=day)
        if r.audience == "nhs111" and r.state == "free" and r.released_at is None and r.start_utc > now
    ]


def _practice(gpc: GpcClient) -> Practice:
    return next(
        p for p in practices_of(gpc.sandbox.registry) if p.accepts_111_booking and p.list_size > 12000
    )


def _slot_url(gpc: GpcClient, practice: Practice, slot_id: str) -> str:
    return f"{gpc.sandbox.base_url}/_supplier/{practice.ods_code}/Slot/{slot_id}"


def _release(gpc: GpcClient, practice: Practice, slot_id: str, etag: str | None, key: str) -> httpx.Response:
    headers = {"If-Match": etag} if etag else {}
    body: dict[str, Any] = {"idempotency_key": key, "reason": "unused 2 h before start"}
    return gpc.http.post(_slot_url(gpc, practice, slot_id) + "/$release", json=body, headers=headers)


def test_release_makes_a_reserved_slot_visible_to_everyone(shared_gpc: GpcClient) -> None:
    gpc = shared_gpc
    practice = _practice(gpc)
    slot_id = _reserved_free_slots(gpc, practice)[0].slot_id
    window = (DAY.isoformat(), DAY.isoformat())
    assert slot_id not in gpc.free_slot_ids(practice, *window)

    read = gpc.http.get(_slot_url(gpc, practice, slot_id))
    assert read.status_code == 200
    slot = read.json()
    assert read.headers["etag"] == f'W/"{slot["version"]}"'
    assert slot["state"] == "free"
    assert slot["restrictions"] == {"org_types": ["urgent-care"], "ods_codes": ["RYE"]}
    assert slot["start"].startswith("2026-03-24T") and slot["start"].endswith("+00:00")

    assert _release(gpc, practice, slot_id, None, "k1").status_code == 428
    assert _release(gpc, practice, slot_id, 'W/"0"', "k1").status_code == 412

    released = _release(gpc, practice, slot_id, read.headers["etag"], "k1")
    assert released.status_code == 200, released.text
    assert released.json()["released"] is True and "already_released" not in released.json()
    assert released.json()["version"] != slot["version"]
    after = gpc.http.get(_slot_url(gpc, practice, slot_id)).json()
    assert after["restrictions"] == {"org_types": [], "ods_codes": []}
    assert after["released_at"] is not None
    assert slot_id in gpc.free_slot_ids(practice, *window)
    assert slot_id in gpc.free_slot_ids(practice, *window, SearchFilter("urgent-care", "RYE"))

    # A retry with the same key (and the old ETag) is answered, not applied twice.
    again = _release(gpc, practice, slot_id, read.headers["etag"], "k1")
    assert again.status_code == 200
    assert again.json() == {"released": True, "already_released": True, "version": released.json()["version"]}
    assert gpc.http.get(_slot_url(gpc, practice, slot_id)).json()["released_at"] == after["released_at"]
    other_key = _release(gpc, practice, slot_id, f'W/"{after["version"]}"', "k2")
    assert other_key.status_code == 422


def test_release_of_a_booked_slot_is_a_conflict(shared_gpc: GpcClient) -> None:
    gpc = shared_gpc
    practice = _practice(gpc)
    slot_id = _reserved_free_slots(gpc, practice)[-1].slot_id
    gpc.sandbox.state.book_now(practice.ods_code, slot_id, "RYE")
    etag = gpc.http.get(_slot_url(gpc, practice, slot_id)).headers["etag"]
    response = _release(gpc, practice, slot_id, etag, "booked")
    assert response.status_code == 409
    assert response.json()["error"] == "SLOT_NOT_FREE"


def test_release_of_an_unrestricted_or_unknown_slot(shared_gpc: GpcClient) -> None:
    gpc = shared_gpc
    practice = _practice(gpc)
    general = next(
        r
        for r in gpc.sandbox.state.ground_truth(practice.ods_code, first_day=DAY, last_day=DAY)
        if r.audience == "general" and r.state == "free"
    )
    etag = gpc.http.get(_slot_url(gpc, practice, general.slot_id)).headers["etag"]
    assert _release(gpc, practice, general.slot_id, etag, "g").status_code == 422
    assert gpc.http.get(_slot_url(gpc, practice, "0")).status_code == 404
    assert _release(gpc, practice, "0", 'W/"1"', "x").status_code == 404
    unknown_practice = f"{gpc.sandbox.base_url}/_supplier/A99999/Slot/1"
    assert gpc.http.get(unknown_practice).status_code == 404


def test_release_after_the_start_is_refused(gpc: GpcClient) -> None:
    practice = _practice(gpc)
    gpc.clock.set(datetime(2026, 3, 24, 16, 0, tzinfo=UTC))
    started = next(
        r
        for r in gpc.sandbox.state.ground_truth(practice.ods_code, first_day=DAY, last_day=DAY)
        if r.audience in ("nhs111", "hub") and r.state == "free" and r.start_utc < gpc.clock.now()
    )
    etag = gpc.http.get(_slot_url(gpc, practice, started.slot_id)).headers["etag"]
    response = _release(gpc, practice, started.slot_id, etag, "late")
    assert response.status_code == 422
    assert response.json()["error"] == "SLOT_STARTED"


def test_released_slots_are_usually_rebooked_by_the_practice(small_gpc: GpcClient) -> None:
    gpc = small_gpc
    state = gpc.sandbox.state
    later_day = DAY + timedelta(days=2)
    released = []
    for practice in practices_of(gpc.sandbox.registry):
        for row in _reserved_free_slots(gpc, practice, later_day):
            version = state.slot_version(state.slot(practice.ods_code, row.slot_id))
            state.release_slot(
                practice.ods_code, row.slot_id, if_match=version, idempotency_key=row.slot_id, reason="test"
            )
            released.append(row)
    assert len(released) >= 4
    gpc.clock.advance(timedelta(minutes=61))
    truth = {r.slot_id: r for r in state.ground_truth(first_day=later_day, last_day=later_day)}
    rebooked = [truth[r.slot_id] for r in released if truth[r.slot_id].state == "booked"]
    assert len(rebooked) >= len(released) // 2
    assert all(r.booked_by_kind == "practice" and r.booked_by_ods == r.practice_ods for r in rebooked)
    assert all(
        r.booked_at is not None and r.released_at is not None and r.booked_at > r.released_at
        for r in rebooked
    )
