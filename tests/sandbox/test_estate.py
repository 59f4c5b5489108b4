"""The built-in Southern Hampshire estate matches the published headline facts."""

from __future__ import annotations

import re
import statistics
from datetime import date, timedelta

from connectors.registry import nhs111_daily_quota
from sandbox import NHS111_PROVIDER_ODS, SandboxState, rehome, southern_hampshire_estate
from sandbox.book import EstateIndex, plan_day
from sandbox.people import is_valid_nhs_number
from tests.sandbox.helpers import START, practices_of

BASE = "http://127.0.0.1:9"


def test_practice_facts() -> None:
    estate = southern_hampshire_estate(BASE)
    practices = practices_of(estate)
    sizes = [p.list_size for p in practices]
    assert len(practices) == 37
    assert sum(sizes) == 432_560
    assert 9_000 <= statistics.median(sizes) <= 10_500
    assert 3_300 <= min(sizes) <= 3_700
    assert 34_000 <= max(sizes) <= 38_000
    assert [p.clinical_system for p in practices].count("EMIS Web") == 36
    assert [p.clinical_system for p in practices].count("SystmOne") == 1
    accepting = [p for p in practices if p.accepts_111_booking]
    assert len(accepting) == 33
    assert {p.nhs111_provider_ods for p in accepting} == {NHS111_PROVIDER_ODS}
    assert all(p.nhs111_provider_ods is None for p in practices if not p.accepts_111_booking)
    assert {p.sub_icb_code for p in practices} == {"10K", "10V"}
    assert all(re.fullmatch(r"J82\d{3}", p.ods_code) for p in practices)
    assert all(p.pcn_code and re.fullmatch(r"U\d{5}", p.pcn_code) for p in practices)
    assert 3 <= len({p.pcn_code for p in practices}) <= 10
    for practice in practices:
        expected = "sandbox" if practice.clinical_system == "EMIS Web" else "worklist"
        assert practice.release_policy.releaser == expected
        assert practice.service_root == f"{BASE}/{practice.ods_code}/STU3/1/gpconnect"
        assert re.fullmatch(r"\d{12}", practice.provider_asid)


def test_hub_facts() -> None:
    estate = southern_hampshire_estate(BASE)
    hubs = practices_of(estate, "hub")
    hub_codes = {h.ods_code for h in hubs}
    assert len(hubs) == 5
    for hub in hubs:
        assert re.fullmatch(r"^[A-Z][0-9]{5}$", hub.ods_code)
        assert hub.list_size == 0
        assert hub.clinical_system == "EMIS Web"
        assert hub.accepts_111_booking and hub.nhs111_provider_ods == NHS111_PROVIDER_ODS
    practices = practices_of(estate)
    assert all(len(p.booking_hubs) == 1 and p.booking_hubs[0] in hub_codes for p in practices)
    assert {p.booking_hubs[0] for p in practices} == hub_codes


def test_estate_is_a_function_of_the_seed() -> None:
    assert southern_hampshire_estate(BASE) == southern_hampshire_estate(BASE)
    other = southern_hampshire_estate(BASE, seed=7)
    assert other != southern_hampshire_estate(BASE)
    assert sum(p.list_size for p in practices_of(other)) == 432_560


def test_rehome_points_every_service_root_at_the_sandbox() -> None:
    moved = rehome(southern_hampshire_estate(BASE), "http://127.0.0.1:4321/")
    assert all(
        p.service_root == f"http://127.0.0.1:4321/{p.ods_code}/STU3/1/gpconnect" for p in moved.practices
    )


def test_each_core_day_reserves_the_111_quota() -> None:
    estate = southern_hampshire_estate(BASE)
    index = EstateIndex(estate, seed=20261126)
    short_days = chronic = 0
    weekdays = [START.date() + timedelta(days=d) for d in range(21)]
    weekdays = [d for d in weekdays if d.weekday() < 5]
    for practice in practices_of(estate):
        profile = index.profile(practice.ods_code)
        quota = nhs111_daily_quota(practice.list_size)
        offered = [sum(s.audience == "nhs111" for s in plan_day(profile, day).slots) for day in weekdays]
        if not practice.accepts_111_booking:
            assert offered == [0] * len(weekdays)
            continue
        if profile.chronic_111_shortfall:
            chronic += 1
            assert quota > 1 and max(offered) == quota - 1
        else:
            assert set(offered) <= {quota, quota - 1}
        short_days += sum(count < quota for count in offered)
    assert chronic == 2
    assert 0 < short_days < 0.25 * 33 * len(weekdays)


def test_111_slots_are_spread_through_the_day_and_reserved_for_the_provider() -> None:
    estate = southern_hampshire_estate(BASE)
    index = EstateIndex(estate, seed=20261126)
    biggest = max(practices_of(estate), key=lambda p: p.list_size)
    book = plan_day(index.profile(biggest.ods_code), date(2026, 3, 24))
    reserved = sorted((s for s in book.slots if s.audience == "nhs111"), key=lambda s: s.start)
    assert len(reserved) >= nhs111_daily_quota(biggest.list_size) - 2
    assert all(s.org_types == ("urgent-care",) and s.ods_codes == ("RYE",) for s in reserved)
    hours = [s.start.hour for s in reserved]
    assert min(hours) <= 10 and max(hours) >= 14  # morning and afternoon, not bunched
    hub_reserved = [s for s in book.slots if s.audience == "hub"]
    assert hub_reserved and all(
        s.org_types == ("gp-practice",) and s.ods_codes == biggest.booking_hubs for s in hub_reserved
    )


def test_hubs_run_evenings_and_saturdays() -> None:
    estate = southern_hampshire_estate(BASE)
    index = EstateIndex(estate, seed=20261126)
    hub = index.profile(practices_of(estate, "hub")[0].ods_code)
    friday, saturday, sunday = date(2026, 3, 27), date(2026, 3, 28), date(2026, 3, 29)
    evening = plan_day(hub, friday).slots
    assert evening and all(s.start.hour == 18 or s.start.hour == 19 for s in evening)  # GMT
    weekend = plan_day(hub, saturday).slots
    assert {(s.end - s.start).seconds for s in weekend} == {900}
    assert any(s.audience == "nhs111" for s in weekend)
    assert plan_day(hub, sunday).slots == ()


def test_patients_have_valid_test_range_nhs_numbers() -> None:
    state = SandboxState(southern_hampshire_estate(BASE))
    numbers = [
        patient.nhs_number
        for practice in state.registry.practices[:5]
        for patient in state.profile(practice.ods_code).patients
    ]
    assert len(numbers) == len(set(numbers)) == 5 * 120
    assert all(n.startswith("999") and is_valid_nhs_number(n) for n in numbers)
