"""Book, read, amend, cancel and retrieve appointments as GP Connect 1.2.7 defines them."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from connectors.gpconnect.spine import Interaction, SearchFilter
from connectors.registry import Practice
from tests.sandbox.helpers import (
    GpcClient,
    booking_body,
    first_free_slot,
    practices_of,
    spine_code,
)

DAY = ("2026-03-25", "2026-03-25")


def _practice(gpc: GpcClient) -> Practice:
    return practices_of(gpc.sandbox.registry)[0]


def _patient_id(gpc: GpcClient, practice: Practice) -> str:
    nhs_number = gpc.sandbox.state.profile(practice.ods_code).patients[0].nhs_number
    response = gpc.request(
        "GET",
        practice,
        "/Patient",
        Interaction.FIND_PATIENT,
        params=[("identifier", f"https://fhir.nhs.uk/Id/nhs-number|{nhs_number}")],
    )
    assert response.status_code == 200
    patient = response.json()["entry"][0]["resource"]
    assert patient["identifier"][0]["value"] == nhs_number
    return str(patient["id"])


def _book(gpc: GpcClient, practice: Practice, **overrides: Any) -> tuple[httpx.Response, dict[str, Any]]:
    slot, location_id = first_free_slot(gpc, practice, *DAY)
    body = booking_body(slot, patient_id=_patient_id(gpc, practice), location_id=location_id, **overrides)
    response = gpc.request("POST", practice, "/Appointment", Interaction.BOOK_APPOINTMENT, json=body)
    return response, body


def _put(
    gpc: GpcClient, practice: Practice, appointment: dict[str, Any], interaction: Interaction, etag: str
) -> httpx.Response:
    return gpc.request(
        "PUT",
        practice,
        f"/Appointment/{appointment['id']}",
        interaction,
        json=appointment,
        headers={"If-Match": etag},
    )


def test_book_then_rebook_the_same_slot_is_duplicate_rejected(shared_gpc: GpcClient) -> None:
    practice = _practice(shared_gpc)
    response, body = _book(shared_gpc, practice)
    assert response.status_code == 201, response.text
    appointment = response.json()
    assert response.headers["location"].endswith(
        f"/{practice.ods_code}/STU3/1/gpconnect/Appointment/{appointment['id']}"
    )
    assert response.headers["etag"] == f'W/"{appointment["meta"]["versionId"]}"'
    assert appointment["status"] == "booked"
    assert appointment["slot"] == body["slot"]
    again = shared_gpc.request("POST", practice, "/Appointment", Interaction.BOOK_APPOINTMENT, json=body)
    assert again.status_code == 409
    assert spine_code(again) == "DUPLICATE_REJECTED"
    slot_id = body["slot"][0]["reference"].split("/")[1]
    assert slot_id not in shared_gpc.free_slot_ids(practice, *DAY)


def test_read_appointment(shared_gpc: GpcClient) -> None:
    practice = _practice(shared_gpc)
    booked = _book(shared_gpc, practice)[0].json()
    response = shared_gpc.request(
        "GET", practice, f"/Appointment/{booked['id']}", Interaction.READ_APPOINTMENT
    )
    assert response.status_code == 200
    assert response.json() == booked
    assert response.headers["etag"] == f'W/"{booked["meta"]["versionId"]}"'
    missing = shared_gpc.request("GET", practice, "/Appointment/999999999", Interaction.READ_APPOINTMENT)
    assert missing.status_code == 404
    assert spine_code(missing) == "NO_RECORD_FOUND"


def test_booking_records_the_contained_organisation(small_gpc: GpcClient) -> None:
    gpc = small_gpc
    practice = _practice(gpc)
    response, _ = _book(gpc, practice, org_ods="RYE", org_type="urgent-care")
    contained = response.json()["contained"][0]
    assert contained["identifier"][0]["value"] == "RYE"
    log = gpc.http.get(f"{gpc.sandbox.base_url}/_booking-orgs/RYE/bookings").json()
    assert response.json()["id"] in {row["appointment_id"] for row in log}
    truth = {r.slot_id: r for r in gpc.sandbox.state.ground_truth(practice.ods_code)}
    slot_id = response.json()["slot"][0]["reference"].split("/")[1]
    assert (truth[slot_id].booked_by_ods, truth[slot_id].booked_by_kind) == ("RYE", "nhs111")


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        pytest.param(lambda b: b.update(reason=[{"text": "x"}]), 422, "INVALID_RESOURCE", id="reason"),
        pytest.param(
            lambda b: b.update(description="x" * 101), 422, "INVALID_RESOURCE", id="long-description"
        ),
        pytest.param(lambda b: b.update(status="proposed"), 422, "INVALID_RESOURCE", id="status"),
        pytest.param(
            lambda b: b.update(slot=[{"reference": "Slot/nope"}]), 422, "INVALID_RESOURCE", id="slot"
        ),
        pytest.param(lambda b: b.update(end=b["start"]), 422, "INVALID_RESOURCE", id="end-mismatch"),
        pytest.param(lambda b: b.update(contained=[]), 422, "INVALID_RESOURCE", id="no-booking-org"),
        pytest.param(lambda b: b.update(resourceType="Patient"), 422, "INVALID_RESOURCE", id="type"),
        pytest.param(
            lambda b: b["participant"][0]["actor"].update(reference="Patient/unknown"),
            422,
            "REFERENCE_NOT_FOUND",
            id="patient",
        ),
    ],
)
def test_invalid_bookings_are_refused(shared_gpc: GpcClient, change: Any, status: int, code: str) -> None:
    practice = _practice(shared_gpc)
    slot, location_id = first_free_slot(shared_gpc, practice, *DAY)
    body = booking_body(slot, patient_id=_patient_id(shared_gpc, practice), location_id=location_id)
    change(body)
    response = shared_gpc.request("POST", practice, "/Appointment", Interaction.BOOK_APPOINTMENT, json=body)
    assert response.status_code == status, response.text
    assert spine_code(response) == code


def test_malformed_json_is_a_bad_request(shared_gpc: GpcClient) -> None:
    practice = _practice(shared_gpc)
    response = shared_gpc.request(
        "POST", practice, "/Appointment", Interaction.BOOK_APPOINTMENT, headers={}, json=None
    )
    assert response.status_code == 400
    assert spine_code(response) == "BAD_REQUEST"


def test_amend_description_and_comment(shared_gpc: GpcClient) -> None:
    practice = _practice(shared_gpc)
    response, _ = _book(shared_gpc, practice)
    appointment = response.json()
    changed = copy.deepcopy(appointment)
    changed["description"] = "Amended description"
    changed["comment"] = "A comment"
    amended = _put(shared_gpc, practice, changed, Interaction.AMEND_APPOINTMENT, response.headers["etag"])
    assert amended.status_code == 200, amended.text
    assert amended.json()["description"] == "Amended description"
    assert amended.json()["meta"]["versionId"] != appointment["meta"]["versionId"]
    stale = _put(shared_gpc, practice, changed, Interaction.AMEND_APPOINTMENT, response.headers["etag"])
    assert stale.status_code == 409
    assert spine_code(stale) == "FHIR_CONSTRAINT_VIOLATION"


def test_amend_may_not_change_anything_else(shared_gpc: GpcClient) -> None:
    practice = _practice(shared_gpc)
    response, _ = _book(shared_gpc, practice)
    changed = copy.deepcopy(response.json())
    changed["end"] = changed["start"]
    result = _put(shared_gpc, practice, changed, Interaction.AMEND_APPOINTMENT, response.headers["etag"])
    assert result.status_code == 422
    assert spine_code(result) == "INVALID_RESOURCE"


def test_if_match_is_required(shared_gpc: GpcClient) -> None:
    practice = _practice(shared_gpc)
    appointment = _book(shared_gpc, practice)[0].json()
    response = shared_gpc.request(
        "PUT", practice, f"/Appointment/{appointment['id']}", Interaction.AMEND_APPOINTMENT, json=appointment
    )
    assert response.status_code == 400


def test_cancel_frees_the_slot(shared_gpc: GpcClient) -> None:
    practice = _practice(shared_gpc)
    response, body = _book(shared_gpc, practice)
    slot_id = body["slot"][0]["reference"].split("/")[1]
    assert slot_id not in shared_gpc.free_slot_ids(practice, *DAY)
    cancel = copy.deepcopy(response.json())
    cancel["status"] = "cancelled"
    cancel["extension"].append(
        {
            "url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-AppointmentCancellationReason-1",
            "valueString": "Patient no longer needs the appointment",
        }
    )
    stale = _put(shared_gpc, practice, cancel, Interaction.CANCEL_APPOINTMENT, 'W/"1"')
    assert stale.status_code == 409
    assert spine_code(stale) == "FHIR_CONSTRAINT_VIOLATION"
    result = _put(shared_gpc, practice, cancel, Interaction.CANCEL_APPOINTMENT, response.headers["etag"])
    assert result.status_code == 200, result.text
    assert result.json()["status"] == "cancelled"
    assert slot_id in shared_gpc.free_slot_ids(practice, *DAY)
    again = _put(shared_gpc, practice, result.json(), Interaction.CANCEL_APPOINTMENT, result.headers["etag"])
    assert again.status_code == 422


def test_cancel_needs_a_reason_and_amend_cannot_cancel(shared_gpc: GpcClient) -> None:
    practice = _practice(shared_gpc)
    response, _ = _book(shared_gpc, practice)
    cancel = copy.deepcopy(response.json())
    cancel["status"] = "cancelled"
    no_reason = _put(shared_gpc, practice, cancel, Interaction.CANCEL_APPOINTMENT, response.headers["etag"])
    assert no_reason.status_code == 422
    assert spine_code(no_reason) == "INVALID_PARAMETER"
    via_amend = _put(shared_gpc, practice, cancel, Interaction.AMEND_APPOINTMENT, response.headers["etag"])
    assert via_amend.status_code == 422
    assert spine_code(via_amend) == "INVALID_RESOURCE"


def test_patient_appointments_include_cancelled_ones(shared_gpc: GpcClient) -> None:
    practice = _practice(shared_gpc)
    response, body = _book(shared_gpc, practice)
    patient_id = body["participant"][0]["actor"]["reference"].split("/")[1]
    cancel = copy.deepcopy(response.json())
    cancel["status"] = "cancelled"
    cancel["extension"].append(
        {
            "url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-GPConnect-AppointmentCancellationReason-1",
            "valueString": "Changed plans",
        }
    )
    assert (
        _put(
            shared_gpc, practice, cancel, Interaction.CANCEL_APPOINTMENT, response.headers["etag"]
        ).status_code
        == 200
    )
    params = [("start", "ge2026-03-23"), ("start", "le2026-04-20")]
    listed = shared_gpc.request(
        "GET", practice, f"/Patient/{patient_id}/Appointment", Interaction.PATIENT_APPOINTMENTS, params=params
    )
    assert listed.status_code == 200
    mine = [e["resource"] for e in listed.json()["entry"] if e["resource"]["id"] == response.json()["id"]]
    assert mine and mine[0]["status"] == "cancelled"


@pytest.mark.parametrize(
    "params",
    [
        pytest.param([("start", "ge2026-03-01"), ("start", "le2026-04-20")], id="past"),
        pytest.param([("start", "ge2026-03-24")], id="one-bound"),
        pytest.param([("start", "ge2026-03-24T09:00:00+00:00"), ("start", "le2026-04-20")], id="time"),
        pytest.param([("start", "ge2026-04-24"), ("start", "le2026-04-20")], id="reversed"),
    ],
)
def test_patient_appointment_range_rules(shared_gpc: GpcClient, params: list[tuple[str, str]]) -> None:
    practice = _practice(shared_gpc)
    patient_id = _patient_id(shared_gpc, practice)
    response = shared_gpc.request(
        "GET", practice, f"/Patient/{patient_id}/Appointment", Interaction.PATIENT_APPOINTMENTS, params=params
    )
    assert response.status_code == 422
    assert spine_code(response) == "INVALID_PARAMETER"


def test_find_patient_rules(shared_gpc: GpcClient) -> None:
    practice = _practice(shared_gpc)
    system = "https://fhir.nhs.uk/Id/nhs-number"

    def find(value: str) -> httpx.Response:
        return shared_gpc.request(
            "GET", practice, "/Patient", Interaction.FIND_PATIENT, params=[("identifier", value)]
        )

    elsewhere = shared_gpc.sandbox.state.profile(
        practices_of(shared_gpc.sandbox.registry)[1].ods_code
    ).patients[0]
    assert find(f"{system}|{elsewhere.nhs_number}").json().get("entry", []) == []
    assert spine_code(find(f"{system}|9990000017")) == "INVALID_NHS_NUMBER"  # bad check digit
    assert spine_code(find(f"https://example.org/id|{elsewhere.nhs_number}")) == "INVALID_IDENTIFIER_SYSTEM"


def test_race_with_a_booking_made_in_the_practice(shared_gpc: GpcClient) -> None:
    practice = _practice(shared_gpc)
    urgent = SearchFilter(org_type="urgent-care", ods_code="RYE")
    slot, location_id = first_free_slot(shared_gpc, practice, *DAY)
    shared_gpc.sandbox.state.book_now(practice.ods_code, slot["id"], practice.ods_code)
    body = booking_body(slot, patient_id=_patient_id(shared_gpc, practice), location_id=location_id)
    response = shared_gpc.request("POST", practice, "/Appointment", Interaction.BOOK_APPOINTMENT, json=body)
    assert response.status_code == 409
    assert spine_code(response) == "DUPLICATE_REJECTED"
    assert slot["id"] not in shared_gpc.free_slot_ids(practice, *DAY, urgent)


def test_wrong_verb_is_a_bad_request(shared_gpc: GpcClient) -> None:
    practice = _practice(shared_gpc)
    response = shared_gpc.request("DELETE", practice, "/Appointment/1", Interaction.CANCEL_APPOINTMENT)
    assert response.status_code == 400
    assert spine_code(response) == "BAD_REQUEST"
