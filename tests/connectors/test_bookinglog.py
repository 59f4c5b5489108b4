"""Booking-log exports: JSON and CSV, validated row by row, patients pseudonymised."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.bookinglog import BookingLogInvalid, parse_booking_log, patient_key
from connectors.registry import BookingOrganisation

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "booking_logs"


def org(fmt: str) -> BookingOrganisation:
    return BookingOrganisation(
        ods_code="RYE",
        name="NHS 111 provider",
        kind="nhs111",
        booking_log_url=f"https://x.example/bookings.{fmt}",
        booking_log_format=fmt,
    )  # type: ignore[arg-type]


def test_json_export_parses_and_hashes_patients() -> None:
    entries = parse_booking_log(
        (LOGS / "nhs111.json").read_bytes(), organisation=org("json"), hash_secret="k"
    )
    first, second = entries
    assert first.slot_ids == ("958000342",) and first.status == "booked"
    assert first.patient_key == patient_key("k", "J82308", "1005443") and "1005443" not in first.patient_key
    assert second.cancelled_at == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert second.start_utc == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    assert patient_key("other-key", "J82308", "1005443") != first.patient_key


def test_csv_export_splits_slot_lists() -> None:
    (entry,) = parse_booking_log((LOGS / "hub.csv").read_bytes(), organisation=org("csv"), hash_secret="k")
    assert entry.slot_ids == ("s1", "s2") and entry.cancelled_at is None


def test_every_bad_row_and_field_is_named() -> None:
    with pytest.raises(BookingLogInvalid) as excinfo:
        parse_booking_log((LOGS / "bad.csv").read_bytes(), organisation=org("csv"), hash_secret="k")
    text = str(excinfo.value)
    assert "booking organisation RYE" in text
    assert "row 1 field practice_ods" in text
    assert "row 2 field slot_ids" in text and "row 2 field start" in text and "row 2 field status" in text
    assert "Next step" in text


def test_unparseable_exports_say_what_was_expected() -> None:
    with pytest.raises(BookingLogInvalid, match="not valid JSON"):
        parse_booking_log(b"<html>proxy error</html>", organisation=org("json"), hash_secret="k")
