"""The built-in demo estate: a synthetic twin of the Southern Hampshire Primary Care Alliance.

NHS Digital's case study describes Fareham & Gosport (CCG 10K) and South Eastern Hampshire
(CCG 10V) as 37 GP practices serving 432,560 patients, with extended-access hubs booking
across practices over GP Connect and South Central Ambulance Service (ODS `RYE`) as the NHS
111 provider. This module builds a `Registry` with those headline facts and otherwise
synthetic detail (names, ODS codes, ASIDs, list sizes). It is a pure function of the seed.

`rehome` points any other registry at a running sandbox, so the sandbox can serve estates
that were generated or loaded elsewhere.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

from connectors.registry import BookingOrganisation, Practice, Registry, ReleasePolicy
from sandbox.determinism import stable_int, stable_random

DEFAULT_SEED = 20261126
ESTATE_PATIENTS = 432_560
NHS111_PROVIDER_ODS = "RYE"
# Both sub-ICB locations sit in NHS Hampshire and Isle of Wight ICB (QRL), South East region (Y59).
ESTATE_ICB_ODS = "QRL"
ESTATE_REGION_ODS = "Y59"
NHS111_PROVIDER_NAMES = {NHS111_PROVIDER_ODS: "South Central Ambulance Service NHS Foundation Trust"}

# List-size anchors (rank fraction, patients), log-interpolated between, shaped on the real
# 10K/10V spread: min ~3,500, quartiles ~7,700 / ~13,600, median ~9,900 once the middle
# is scaled up to the published total, max ~36,000.
_LIST_SIZE_ANCHORS = (
    (0.0, 3_525),
    (0.25, 7_700),
    (0.5, 9_700),
    (0.75, 13_600),
    (0.9, 19_500),
    (0.97, 27_000),
    (1.0, 36_087),
)
_NAME_SUFFIXES = (
    "Surgery",
    "Medical Centre",
    "Health Centre",
    "Medical Practice",
    "Family Practice",
    "Group Practice",
)
_STREETS = (
    "Westbury",
    "Highlands",
    "Brook Lane",
    "Forton Road",
    "Crofton",
    "Portsdown",
    "Elms",
    "Station Road",
    "Solent View",
    "Meon Valley",
    "Harbour",
    "Park Lane",
    "Queens Road",
    "The Square",
    "Wickham Road",
    "Castle View",
    "Bridge Street",
    "Milton",
    "Oaklands",
    "Willow Tree",
    "Kings Road",
    "Anchorage",
    "Downlands",
    "Heathfield",
)


@dataclass(frozen=True)
class _Locality:
    """A cluster of practices sharing an extended-access hub."""

    name: str
    sub_icb_code: str
    practice_count: int
    pcn_count: int
    towns: tuple[str, ...]
    postcode_districts: tuple[str, ...]
    phone_prefix: str


_LOCALITIES = (
    _Locality(
        "Fareham",
        "10K",
        8,
        2,
        ("Fareham", "Portchester", "Stubbington", "Titchfield", "Locks Heath", "Whiteley"),
        ("PO14", "PO15", "PO16", "SO31"),
        "01329",
    ),
    _Locality(
        "Gosport",
        "10K",
        8,
        2,
        ("Gosport", "Lee-on-the-Solent", "Alverstoke", "Bridgemary", "Rowner", "Elson"),
        ("PO12", "PO13"),
        "023 9258",
    ),
    _Locality(
        "Havant",
        "10V",
        8,
        2,
        ("Havant", "Emsworth", "Hayling Island", "Leigh Park", "Bedhampton", "Rowlands Castle"),
        ("PO9", "PO10", "PO11"),
        "023 9248",
    ),
    _Locality(
        "Waterlooville",
        "10V",
        7,
        1,
        ("Waterlooville", "Cowplain", "Horndean", "Denmead", "Purbrook", "Clanfield"),
        ("PO7", "PO8"),
        "023 9226",
    ),
    _Locality(
        "Petersfield",
        "10V",
        6,
        1,
        ("Petersfield", "Liss", "Liphook", "Steep", "Buriton"),
        ("GU30", "GU31", "GU32", "GU33"),
        "01730",
    ),
)
_PRACTICES_NOT_ACCEPTING_111 = 4


def southern_hampshire_estate(base_url: str, seed: int = DEFAULT_SEED) -> Registry:
    """37 practices (36 EMIS Web, 1 SystmOne; 33 accept NHS 111) and 5 hubs behind `base_url`."""
    base = base_url.rstrip("/")
    rng = stable_random(seed, "estate")
    practice_count = sum(locality.practice_count for locality in _LOCALITIES)
    list_sizes = _list_sizes(seed, practice_count)
    rng.shuffle(list_sizes)
    ods_codes = _unique_codes(seed, "J82", practice_count)
    hub_codes = _unique_codes(seed, "Y0", len(_LOCALITIES))
    pcn_codes = _unique_codes(seed, "U", sum(locality.pcn_count for locality in _LOCALITIES))

    # Settle which practices differ before naming anything, so each choice is seed-stable.
    systmone_index = rng.randrange(practice_count - _LOCALITIES[-1].practice_count, practice_count)
    emis_indexes = [i for i in range(practice_count) if i != systmone_index]
    no_111 = set(rng.sample(emis_indexes, _PRACTICES_NOT_ACCEPTING_111))

    used_names: set[str] = set()
    hubs: list[Practice] = []
    practices: list[Practice] = []
    index = 0
    pcn_cursor = 0
    for locality, hub_ods in zip(_LOCALITIES, hub_codes, strict=True):
        hubs.append(
            Practice(
                ods_code=hub_ods,
                name=f"{locality.name} Enhanced Access Hub",
                list_size=0,
                clinical_system="EMIS Web",
                kind="hub",
                service_root=f"{base}/{hub_ods}/STU3/1/gpconnect",
                provider_asid=_asid(seed, hub_ods),
                accepts_111_booking=True,
                nhs111_provider_ods=NHS111_PROVIDER_ODS,
                sub_icb_code=locality.sub_icb_code,
                icb_code=ESTATE_ICB_ODS,
                region_code=ESTATE_REGION_ODS,
                release_policy=ReleasePolicy(releaser="sandbox"),
            )
        )
        locality_pcns = pcn_codes[pcn_cursor : pcn_cursor + locality.pcn_count]
        pcn_cursor += locality.pcn_count
        for position in range(locality.practice_count):
            ods = ods_codes[index]
            system = "SystmOne" if index == systmone_index else "EMIS Web"
            accepts_111 = index not in no_111
            practices.append(
                Practice(
                    ods_code=ods,
                    name=_practice_name(rng, locality, used_names),
                    list_size=list_sizes[index],
                    clinical_system=system,
                    kind="practice",
                    service_root=f"{base}/{ods}/STU3/1/gpconnect",
                    provider_asid=_asid(seed, ods),
                    accepts_111_booking=accepts_111,
                    nhs111_provider_ods=NHS111_PROVIDER_ODS if accepts_111 else None,
                    booking_hubs=(hub_ods,),
                    sub_icb_code=locality.sub_icb_code,
                    icb_code=ESTATE_ICB_ODS,
                    region_code=ESTATE_REGION_ODS,
                    pcn_code=locality_pcns[position * len(locality_pcns) // locality.practice_count],
                    release_policy=ReleasePolicy(releaser="sandbox" if system == "EMIS Web" else "worklist"),
                )
            )
            index += 1
    return Registry(
        practices=(*practices, *hubs),
        booking_organisations=booking_organisations(base, hubs),
    )


def booking_organisations(base_url: str, hubs: list[Practice]) -> tuple[BookingOrganisation, ...]:
    """The NHS 111 provider and the hubs, each exporting its bookings from the sandbox.

    The 111 provider exports JSON and the hubs CSV, as different real systems would.
    """
    nhs111 = BookingOrganisation(
        ods_code=NHS111_PROVIDER_ODS,
        name=NHS111_PROVIDER_NAMES[NHS111_PROVIDER_ODS],
        kind="nhs111",
        booking_log_url=f"{base_url}/_booking-orgs/{NHS111_PROVIDER_ODS}/bookings?format=json",
        booking_log_format="json",
    )
    hub_orgs = (
        BookingOrganisation(
            ods_code=hub.ods_code,
            name=hub.name,
            kind="hub",
            booking_log_url=f"{base_url}/_booking-orgs/{hub.ods_code}/bookings?format=csv",
            booking_log_format="csv",
        )
        for hub in hubs
    )
    return (nhs111, *hub_orgs)


def rehome(registry: Registry, base_url: str) -> Registry:
    """The same registry with every service root pointing at the sandbox at `base_url`."""
    base = base_url.rstrip("/")
    return Registry(
        practices=tuple(
            practice.model_copy(update={"service_root": f"{base}/{practice.ods_code}/STU3/1/gpconnect"})
            for practice in registry.practices
        ),
        booking_organisations=tuple(
            org.model_copy(
                update={"booking_log_url": f"{base}/_booking-orgs/{org.ods_code}/bookings"
                        f"?format={org.booking_log_format}"}
            )
            for org in registry.booking_organisations
        ),
    )


def _list_sizes(seed: int, count: int) -> list[int]:
    """`count` list sizes, spread like the real estate, summing to exactly 432,560."""
    rng = stable_random(seed, "list-sizes")
    raw = [_anchor_size(i / (count - 1)) * rng.uniform(0.96, 1.04) for i in range(count)]
    # Keep the extremes near the anchors and scale the middle to hit the published total.
    raw[0] = _LIST_SIZE_ANCHORS[0][1] * rng.uniform(0.99, 1.01)
    raw[-1] = _LIST_SIZE_ANCHORS[-1][1] * rng.uniform(0.99, 1.01)
    scale = (ESTATE_PATIENTS - raw[0] - raw[-1]) / sum(raw[1:-1])
    sizes = [round(raw[0]), *(round(value * scale) for value in raw[1:-1]), round(raw[-1])]
    sizes[count * 3 // 4] += ESTATE_PATIENTS - sum(sizes)  # rounding remainder, a few patients
    return sizes


def _anchor_size(rank: float) -> float:
    for (rank0, size0), (rank1, size1) in itertools.pairwise(_LIST_SIZE_ANCHORS):
        if rank <= rank1:
            t = (rank - rank0) / (rank1 - rank0)
            return math.exp(math.log(size0) + t * (math.log(size1) - math.log(size0)))
    return float(_LIST_SIZE_ANCHORS[-1][1])


def _unique_codes(seed: int, prefix: str, count: int) -> list[str]:
    """`count` distinct synthetic codes: `prefix` plus digits up to six characters in all."""
    digits = 6 - len(prefix)
    rng = stable_random(seed, "codes", prefix)
    numbers = rng.sample(range(10 ** (digits - 1), 10**digits), count)
    return [f"{prefix}{number:0{digits}d}" for number in numbers]


def _asid(seed: int, ods: str) -> str:
    """A deterministic 12-digit Accredited System ID for a provider endpoint."""
    return str(10**11 + stable_int(seed, ods, "asid") % (9 * 10**11))


def _practice_name(rng: random.Random, locality: _Locality, used: set[str]) -> str:
    while True:
        place = rng.choice(locality.towns if rng.random() < 0.6 else _STREETS)
        name = f"{place} {rng.choice(_NAME_SUFFIXES)}"
        if name not in used:
            used.add(name)
            return name
