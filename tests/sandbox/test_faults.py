"""Planned faults make the sandbox fail like real providers and the Spine do."""

from __future__ import annotations

import httpx
import orjson
import pytest

from connectors.gpconnect.spine import Interaction
from sandbox import FaultRule
from tests.sandbox.helpers import GpcClient, spine_code

WINDOW = ("2026-03-24", "2026-03-25")


def _search(gpc: GpcClient, practice_index: int = 0) -> httpx.Response:
    return gpc.search(gpc.sandbox.registry.practices[practice_index], *WINDOW)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (500, "INTERNAL_SERVER_ERROR"),
        (502, "INTERNAL_SERVER_ERROR"),
        (503, "INTERNAL_SERVER_ERROR"),
        (504, "INTERNAL_SERVER_ERROR"),
        (401, "ACCESS_DENIED"),
        (403, "ACCESS_DENIED"),
    ],
)
def test_status_fault_answers_an_operation_outcome_then_clears(
    small_gpc: GpcClient, status: int, code: str
) -> None:
    small_gpc.sandbox.state.faults.add(FaultRule(kind="status", status=status, count=1))
    failed = _search(small_gpc)
    assert failed.status_code == status
    assert spine_code(failed) == code
    assert _search(small_gpc).status_code == 200


def test_throttling_carries_retry_after(small_gpc: GpcClient) -> None:
    small_gpc.sandbox.state.faults.add(FaultRule(kind="status", status=429, retry_after_s=7, count=2))
    for _ in range(2):
        response = _search(small_gpc)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "7"
    assert _search(small_gpc).status_code == 200


def test_faults_target_a_practice_and_an_interaction(small_gpc: GpcClient) -> None:
    practices = small_gpc.sandbox.registry.practices
    small_gpc.sandbox.state.faults.add(
        FaultRule(practice=practices[0].ods_code, interaction="SEARCH_SLOTS", kind="status", status=503)
    )
    assert _search(small_gpc, 0).status_code == 503
    assert _search(small_gpc, 0).status_code == 503  # no count: until cleared
    assert _search(small_gpc, 1).status_code == 200
    metadata = small_gpc.request("GET", practices[0], "/metadata", Interaction.METADATA)
    assert metadata.status_code == 200
    small_gpc.sandbox.state.faults.clear()
    assert _search(small_gpc, 0).status_code == 200


def test_latency_fault_still_answers(small_gpc: GpcClient) -> None:
    small_gpc.sandbox.state.faults.add(FaultRule(kind="latency", delay_s=0.05, count=1))
    assert _search(small_gpc).status_code == 200


def test_reset_drops_the_connection_mid_body(small_gpc: GpcClient) -> None:
    small_gpc.sandbox.state.faults.add(FaultRule(kind="reset", count=1))
    with pytest.raises(httpx.TransportError):
        _search(small_gpc)
    assert _search(small_gpc).status_code == 200


def test_truncate_sends_cut_json(small_gpc: GpcClient) -> None:
    small_gpc.sandbox.state.faults.add(FaultRule(kind="truncate", count=1))
    response = _search(small_gpc)
    assert response.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)


def test_wrong_content_type(small_gpc: GpcClient) -> None:
    small_gpc.sandbox.state.faults.add(FaultRule(kind="wrong_content_type", count=1))
    response = _search(small_gpc)
    assert response.headers["content-type"].startswith("text/html")


def test_stall_outlasts_the_client_timeout(small_gpc: GpcClient) -> None:
    small_gpc.sandbox.state.faults.add(FaultRule(kind="stall", delay_s=20, count=1))
    practice = small_gpc.sandbox.registry.practices[0]
    headers = small_gpc.headers(practice, Interaction.METADATA)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(practice.service_root + "/metadata", headers=headers, timeout=0.3)
    assert _search(small_gpc).status_code == 200


def test_trickle_sends_the_body_a_byte_at_a_time_inside_the_read_timeout(small_gpc: GpcClient) -> None:
    small_gpc.sandbox.state.faults.add(FaultRule(kind="trickle", delay_s=0.1, count=1))
    practice = small_gpc.sandbox.registry.practices[0]
    headers = small_gpc.headers(practice, Interaction.METADATA)
    # A 0.5 s read timeout never fires: every byte comes 0.1 s after the one before.
    with httpx.stream("GET", practice.service_root + "/metadata", headers=headers, timeout=0.5) as answer:
        assert answer.status_code == 200
        chunks = answer.iter_raw()
        received = [next(chunks) for _ in range(5)]
    assert all(len(chunk) == 1 for chunk in received), received
    assert _search(small_gpc).status_code == 200


def test_redirect_answers_a_302_elsewhere_with_the_real_bundle(small_gpc: GpcClient) -> None:
    small_gpc.sandbox.state.faults.add(FaultRule(kind="redirect", count=1))
    response = _search(small_gpc)
    assert response.status_code == 302
    assert response.headers["location"].startswith("https://elsewhere.invalid/")
    assert orjson.loads(response.content)["resourceType"] == "Bundle"
    assert _search(small_gpc).status_code == 200


def test_faults_over_http(small_gpc: GpcClient) -> None:
    url = f"{small_gpc.sandbox.base_url}/_sandbox/faults"
    created = small_gpc.http.post(url, json={"practice": "*", "kind": "status", "status": 502, "count": 3})
    assert created.status_code == 201
    listed = small_gpc.http.get(url).json()
    assert [(f["id"], f["remaining"]) for f in listed] == [(created.json()["id"], 3)]
    assert _search(small_gpc).status_code == 502
    assert small_gpc.http.get(url).json()[0]["remaining"] == 2
    assert small_gpc.http.delete(url).status_code == 204
    assert _search(small_gpc).status_code == 200
    invalid = small_gpc.http.post(url, json={"kind": "explode"})
    assert invalid.status_code == 422
    unknown = small_gpc.http.post(url, json={"kind": "status", "interaction": "DELETE_EVERYTHING"})
    assert unknown.status_code == 422


def test_request_counts(small_gpc: GpcClient) -> None:
    url = f"{small_gpc.sandbox.base_url}/_sandbox/requests"
    registry = small_gpc.sandbox.registry
    small_gpc.http.delete(url)
    _search(small_gpc, 0)
    _search(small_gpc, 0)
    small_gpc.request("GET", registry.practices[1], "/metadata", Interaction.METADATA)
    counts = small_gpc.http.get(url).json()
    assert counts["total"] == 3
    assert {(c["practice"], c["interaction"], c["count"]) for c in counts["counts"]} == {
        (registry.practices[0].ods_code, "SEARCH_SLOTS", 2),
        (registry.practices[1].ods_code, "METADATA", 1),
    }
    traffic = small_gpc.sandbox.state.traffic
    assert traffic.practices(Interaction.SEARCH_SLOTS) == {registry.practices[0].ods_code}
    assert small_gpc.http.delete(url).status_code == 204
    assert small_gpc.http.get(url).json() == {"total": 0, "counts": []}


def _bundle() -> bytes:
    slot = {
        "resourceType": "Slot",
        "id": "s1",
        "schedule": {"reference": "Schedule/a"},
        "start": "2026-03-24T09:00:00+00:00",
        "end": "2026-03-24T09:10:00+00:00",
        "serviceType": [{"text": "GP"}],
        "meta": {"versionId": "1"},
    }
    schedule = {"resourceType": "Schedule", "id": "a", "serviceCategory": {"text": "x"}}
    return orjson.dumps({"resourceType": "Bundle", "entry": [{"resource": slot}, {"resource": schedule}]})


def _resources(body: bytes) -> list[dict[str, object]]:
    return [e["resource"] for e in orjson.loads(body)["entry"]]


def test_body_faults_rewrite_a_bundle_in_one_way_each() -> None:
    from sandbox.faults import MISSING_SCHEDULE_REFERENCE, mutate_bundle

    def mutated(kind: str, **fields: object) -> bytes:
        return mutate_bundle(FaultRule.model_validate({"kind": kind, **fields}), _bundle())

    assert len(mutated("oversize", pad_bytes=5000)) > 5000
    assert orjson.loads(mutated("oversize", pad_bytes=10))["resourceType"] == "Bundle"
    extra = _resources(mutated("schema_extra"))
    assert all("sandboxUnknownElement" in r for r in extra)
    missing = _resources(mutated("schema_missing"))
    assert "serviceType" not in missing[0] and "serviceCategory" not in missing[1]
    assert missing[0]["start"] == "2026-03-24T09:00:00+00:00"
    swapped = _resources(mutated("end_before_start"))[0]
    assert str(swapped["end"]) < str(swapped["start"])
    dangling = _resources(mutated("dangling_schedule"))[0]
    assert dangling["schedule"] == {"reference": MISSING_SCHEDULE_REFERENCE}
    twice = _resources(mutated("duplicate_slot"))
    assert [r["id"] for r in twice] == ["s1", "s1", "a"]
    dst = _resources(mutated("dst_offset"))[0]
    assert dst["start"] == "2026-03-24T09:00:00+01:00" and dst["end"] == "2026-03-24T09:10:00+01:00"
    # 400 days on, in BST: the wall-clock time moves with the UK offset.
    moved = _resources(mutated("outside_window"))[0]
    assert moved["start"] == "2027-04-28T10:00:00+01:00" and moved["end"] == "2027-04-28T10:10:00+01:00"
    assert _resources(mutated("no_slots")) == []
    empty = orjson.dumps({"resourceType": "Bundle", "entry": []})
    assert mutate_bundle(FaultRule(kind="no_slots"), empty) == empty


def test_body_faults_apply_to_successful_searches_only(small_gpc: GpcClient) -> None:
    small_gpc.sandbox.state.faults.add(FaultRule(kind="schema_extra", count=1))
    assert b"sandboxUnknownElement" in _search(small_gpc).content
    assert b"sandboxUnknownElement" not in _search(small_gpc).content
    assert small_gpc.sandbox.state.faults.injected() == 1
