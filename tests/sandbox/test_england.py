"""The England-scale estate has the calibrated shape, within tolerance, and is seed-stable."""

from __future__ import annotations

import statistics
from collections import Counter

import pytest

from connectors.registry import Practice, Registry
from sandbox.england import ENGLAND_HUBS, ENGLAND_PRACTICES, england_estate, sample_estate

BASE = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def estate() -> Registry:
    return england_estate(BASE, seed=7)


def _practices(registry: Registry) -> list[Practice]:
    return [p for p in registry.practices if p.kind == "practice"]


def test_counts_and_list_sizes(estate: Registry) -> None:
    practices = _practices(estate)
    hubs = [p for p in estate.practices if p.kind == "hub"]
    assert len(practices) == ENGLAND_PRACTICES
    assert len(hubs) == ENGLAND_HUBS
    sizes = sorted(p.list_size for p in practices)
    assert 8_500 <= statistics.median(sizes) <= 9_500
    deciles = statistics.quantiles(sizes, n=10)
    assert 3_400 <= deciles[0] <= 4_000
    assert 16_800 <= deciles[-1] <= 18_800
    assert min(sizes) > 0
    assert len({p.ods_code for p in estate.practices}) == len(estate.practices)


def test_supplier_mix_111_and_networks(estate: Registry) -> None:
    practices = _practices(estate)
    systems = Counter(p.clinical_system for p in practices)
    assert systems["EMIS Web"] / len(practices) == pytest.approx(0.55, abs=0.02)
    assert systems["SystmOne"] / len(practices) == pytest.approx(0.40, abs=0.02)
    assert systems["other"] / len(practices) == pytest.approx(0.05, abs=0.02)
    accepting = [p for p in practices if p.accepts_111_booking]
    assert len(accepting) / len(practices) == pytest.approx(0.95, abs=0.01)
    assert all(p.nhs111_provider_ods for p in accepting)
    hubs = {p.ods_code for p in estate.practices if p.kind == "hub"}
    members = Counter(p.booking_hubs[0] for p in practices)
    assert set(members) == hubs  # every hub books into at least one practice
    assert all(len(p.booking_hubs) == 1 for p in practices)
    # Every booking organisation is a hub or a 111 provider some practice uses.
    providers = {p.nhs111_provider_ods for p in accepting}
    assert {o.ods_code for o in estate.booking_organisations} == hubs | providers


def test_deterministic_per_seed(estate: Registry) -> None:
    assert england_estate(BASE, seed=7, practices=300) == england_estate(BASE, seed=7, practices=300)
    assert england_estate(BASE, seed=7, practices=300) != england_estate(BASE, seed=8, practices=300)
    assert estate == england_estate(BASE, seed=7)


def test_sample_keeps_whole_networks(estate: Registry) -> None:
    sample = sample_estate(estate, 100)
    practices = _practices(sample)
    hubs = {p.ods_code for p in sample.practices if p.kind == "hub"}
    assert 100 <= len(practices) < 120
    assert {p.booking_hubs[0] for p in practices} == hubs
    everyone = Counter(p.booking_hubs[0] for p in _practices(estate))
    assert Counter(p.booking_hubs[0] for p in practices) == {hub: everyone[hub] for hub in hubs}
