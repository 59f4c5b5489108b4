"""An England-scale estate: about 6,300 synthetic practices and 1,250 hubs, a pure function of the seed.

Calibrated on the published shape of English general practice (no real practice is named):

- list sizes log-normal around a median of ~9,000 patients, 10th-90th percentile ~3,700-17,800;
  the real distribution is skewed more to the left than one log-normal allows, so the spread
  below the median and above it each get their own sigma (a two-piece log-normal);
- principal clinical system ~55% EMIS Web, ~40% SystmOne (TPP), the rest other suppliers;
- ~95% of practices live with NHS 111 direct booking, each with one of 16 regional 111 providers;
- practices grouped into ~1,250 primary care networks, each running one extended-access hub
  that books into its members' books; about 190 commissioning groups.

`sample_estate` keeps whole networks (a hub with all its members) until it has at least the
requested number of practices, so a sample has the same shape as the whole at any size.
"""

from __future__ import annotations

import math
import random
from statistics import NormalDist

from connectors.registry import BookingOrganisation, ClinicalSystem, Practice, Registry, ReleasePolicy
from sandbox.determinism import stable_random
from sandbox.estate import DEFAULT_SEED, _asid, _unique_codes

ENGLAND_PRACTICES = 6_300
ENGLAND_HUBS = 1_250
CCG_COUNT = 190
NHS111_PROVIDER_COUNT = 16
MEDIAN_LIST_SIZE = 9_000
P10_LIST_SIZE = 3_700
P90_LIST_SIZE = 17_800
MIN_LIST_SIZE, MAX_LIST_SIZE = 600, 80_000  # the register's extremes: no zero-patient practices
# The rest of the practices run other suppliers' systems.
SUPPLIER_SHARES: tuple[tuple[ClinicalSystem, float], ...] = (("EMIS Web", 0.55), ("SystmOne", 0.40))
ACCEPTS_111_SHARE = 0.95

_Z90 = NormalDist().inv_cdf(0.9)
SIGMA_BELOW = math.log(MEDIAN_LIST_SIZE / P10_LIST_SIZE) / _Z90
SIGMA_ABOVE = math.log(P90_LIST_SIZE / MEDIAN_LIST_SIZE) / _Z90
# Practice codes start with a region letter, as real ones do; hubs with Y, networks with U.
_PRACTICE_PREFIXES = "ABCDEFGHJKLMNP"
_NAMES = ("Surgery", "Medical Centre", "Health Centre", "Medical Practice", "Family Practice")


def england_estate(
    base_url: str, seed: int = DEFAULT_SEED, *, practices: int = ENGLAND_PRACTICES,
    hubs: int | None = None,
) -> Registry:
    """`practices` practices and (by default ~1 per 5 practices) hubs behind `base_url`."""
    if practices < 1:
        raise ValueError("an estate needs at least one practice")
    base = base_url.rstrip("/")
    hub_count = hubs if hubs is not None else max(1, round(practices * ENGLAND_HUBS / ENGLAND_PRACTICES))
    rng = stable_random(seed, "england")
    sizes = list_sizes(seed, practices)
    systems = _shares(rng, practices)
    accepts = [i < round(practices * ACCEPTS_111_SHARE) for i in range(practices)]
    rng.shuffle(accepts)
    codes = _practice_codes(seed, practices)
    hub_codes = _unique_codes(seed, "Y", hub_count)
    pcn_codes = _unique_codes(seed, "U", hub_count)
    ccgs = [f"{n // 26 + 10:02d}{chr(65 + n % 26)}" for n in range(min(CCG_COUNT, hub_count))]
    providers = [f"R{n:02d}" for n in range(NHS111_PROVIDER_COUNT)]
    # Networks are contiguous runs of practices, so ~5 each with a spread of 1 to ~9.
    network_of = sorted(rng.randrange(hub_count) if i >= hub_count else i for i in range(practices))

    hub_rows = [
        Practice(
            ods_code=hub, name=f"{pcn} Extended Access Hub", list_size=0, clinical_system="EMIS Web",
            kind="hub", service_root=f"{base}/{hub}/STU3/1/gpconnect", provider_asid=_asid(seed, hub),
            accepts_111_booking=True, nhs111_provider_ods=_provider(providers, n, hub_count),
            sub_icb_code=ccgs[n * len(ccgs) // hub_count], pcn_code=pcn,
            release_policy=ReleasePolicy(releaser="sandbox"),
        )
        for n, (hub, pcn) in enumerate(zip(hub_codes, pcn_codes, strict=True))
    ]
    practice_rows = []
    for i, ods in enumerate(codes):
        network = network_of[i]
        system = systems[i]
        practice_rows.append(
            Practice(
                ods_code=ods, name=f"{ods} {_NAMES[i % len(_NAMES)]}", list_size=sizes[i],
                clinical_system=system, kind="practice", service_root=f"{base}/{ods}/STU3/1/gpconnect",
                provider_asid=_asid(seed, ods), accepts_111_booking=accepts[i],
                nhs111_provider_ods=_provider(providers, network, hub_count) if accepts[i] else None,
                booking_hubs=(hub_codes[network],), sub_icb_code=hub_rows[network].sub_icb_code,
                pcn_code=pcn_codes[network],
                release_policy=ReleasePolicy(releaser="sandbox" if system == "EMIS Web" else "worklist"),
            )
        )
    return Registry(
        practices=(*practice_rows, *hub_rows), booking_organisations=_booking_orgs(base, hub_rows)
    )


def sample_estate(registry: Registry, practices: int) -> Registry:
    """Whole networks (hub and members), in registry order, until at least `practices` practices."""
    members: dict[str, list[Practice]] = {}
    for row in registry.practices:
        if row.kind == "practice":
            for code in row.booking_hubs:
                members.setdefault(code, []).append(row)
    kept: list[Practice] = []
    hubs: list[Practice] = []
    for hub in (row for row in registry.practices if row.kind == "hub"):
        if len(kept) >= practices:
            break
        kept.extend(members.get(hub.ods_code, []))
        hubs.append(hub)
    codes = {hub.ods_code for hub in hubs}
    providers = {row.nhs111_provider_ods for row in (*kept, *hubs) if row.nhs111_provider_ods}
    return Registry(
        practices=(*kept, *hubs),
        booking_organisations=tuple(
            org for org in registry.booking_organisations if org.ods_code in codes | providers
        ),
    )


def list_sizes(seed: int, count: int) -> list[int]:
    """Two-piece log-normal list sizes: the median and both deciles as calibrated above."""
    rng = stable_random(seed, "england-list-sizes")
    sizes = []
    for _ in range(count):
        z = rng.gauss(0.0, 1.0)
        sigma = SIGMA_BELOW if z < 0 else SIGMA_ABOVE
        sizes.append(min(MAX_LIST_SIZE, max(MIN_LIST_SIZE, round(MEDIAN_LIST_SIZE * math.exp(sigma * z)))))
    return sizes


def _shares(rng: random.Random, count: int) -> list[ClinicalSystem]:
    """Exactly the supplier shares (rounded), in a seeded random order."""
    systems: list[ClinicalSystem] = []
    for system, share in SUPPLIER_SHARES:
        systems += [system] * round(count * share)
    systems += ["other"] * (count - len(systems))
    rng.shuffle(systems)
    return systems


def _practice_codes(seed: int, count: int) -> list[str]:
    per_prefix = -(-count // len(_PRACTICE_PREFIXES))
    codes = [code for prefix in _PRACTICE_PREFIXES for code in _unique_codes(seed, prefix, per_prefix)]
    return codes[:count]


def _provider(providers: list[str], network: int, networks: int) -> str:
    """111 providers cover contiguous regions: neighbouring networks share one."""
    return providers[network * len(providers) // networks]


def _booking_orgs(base: str, hubs: list[Practice]) -> tuple[BookingOrganisation, ...]:
    providers = sorted({hub.nhs111_provider_ods for hub in hubs if hub.nhs111_provider_ods})
    nhs111 = [
        BookingOrganisation(
            ods_code=code, name=f"NHS 111 provider {code}", kind="nhs111",
            booking_log_url=f"{base}/_booking-orgs/{code}/bookings?format=json", booking_log_format="json",
        )
        for code in providers
    ]
    hub_orgs = [
        BookingOrganisation(
            ods_code=hub.ods_code, name=hub.name, kind="hub",
            booking_log_url=f"{base}/_booking-orgs/{hub.ods_code}/bookings?format=csv",
            booking_log_format="csv",
        )
        for hub in hubs
    ]
    return (*nhs111, *hub_orgs)
