"""Contract tests: small FHIR resources in the spec examples' shapes, slips included."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.gpconnect.models import Appointment, OperationOutcome

FHIR = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"


def test_appointment_with_contained_org_slips_and_unknown_extension() -> None:
    payload = (FHIR / "appointments" / "read_booked_multi_slot.json").read_text()
    appointment = Appointment.model_validate_json(payload)
    assert appointment.slot_ids == ["544", "545", "546"]
    assert appointment.booking_org_ods == "RYE"  # contained identifier sent as an object
    assert appointment.patient_id == "2"
    assert appointment.meta.versionId == "1774600000000"


def test_appointment_without_slots_is_refused() -> None:
    with pytest.raises(ValidationError, match="slot"):
        Appointment.model_validate_json((FHIR / "appointments" / "read_missing_slot.json").read_text())


@pytest.mark.parametrize(
    ("name", "code", "diagnostics"),
    [
        ("codesystem_duplicate.json", "DUPLICATE_REJECTED", "Slot 544 is already booked"),
        ("valueset_single_issue_object.json", "INVALID_PARAMETER", "Search window exceeds 14 days"),
        ("ssp_asid.json", "403", None),
    ],
)
def test_spine_code_is_read_whatever_the_coding_system(name: str, code: str, diagnostics: str | None) -> None:
    outcome = OperationOutcome.model_validate_json((FHIR / "errors" / name).read_text())
    assert outcome.spine_code == code
    assert outcome.diagnostics == diagnostics
