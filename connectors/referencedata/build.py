"""Build a practice registry from national reference data, and diff it against the last one.

`build_registry` takes a scope (an ICB, a sub-ICB location or a list of ODS codes) and the
sources that are configured (ORD, SDS, list sizes, 111 status, the hub file, the previous
registry), and returns the registry plus *findings*: one line per practice problem (unknown
to ODS, closed, no or several SDS matches, no list size...). A practice with a problem in a
field the registry requires is left out, never filled with a guess; where a source is not
configured, the previous registry's value is used and said so. `diff_registries` compares two
registries (opened, closed, merged; list size, quota, endpoint, ASID, 111 status changes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from connectors.referencedata.cache import ReferenceCache
from connectors.referencedata.ods import ROLE_NHS_REGION, ROLE_PCN, ROLES_ICB, OrdClient, OrgRecord
from connectors.referencedata.sds import SdsClient
from connectors.referencedata.sources import HubFile, ListSizes, Nhs111Status
from connectors.registry import (
    BookingOrganisation,
    ClinicalSystem,
    Practice,
    Registry,
    RegistryError,
    ReleasePolicy,
    validate_rows,
)


class BuildError(Exception):
    """The build cannot start or produced nothing (one line)."""


@dataclass(frozen=True)
class Scope:
    icb: str | None = None
    sub_icb: str | None = None
    practices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.icb:
            return f"ICB {self.icb}"
        if self.sub_icb:
            return f"sub-ICB location {self.sub_icb}"
        return f"practices {', '.join(self.practices)}"


@dataclass(frozen=True)
class Finding:
    ods_code: str
    field: str
    message: str
    excluded: bool

    def __str__(self) -> str:
        verdict = "left out" if self.excluded else "kept"
        return f"{self.ods_code} {self.field}: {self.message} ({verdict})"


@dataclass
class BuildResult:
    registry: Registry
    findings: list[Finding]
    closed: dict[str, str]
    stale: list[str]
    notes: list[str]
    scope: Scope

    def report(self) -> dict[str, Any]:
        return {
            "scope": self.scope.describe(),
            "practices": sum(1 for p in self.registry.practices if p.kind == "practice"),
            "hubs": sum(1 for p in self.registry.practices if p.kind == "hub"),
            "findings": [asdict(f) for f in self.findings],
            "closed": self.closed,
            "stale_sources": self.stale,
            "notes": self.notes,
        }


@dataclass
class Sources:
    ord: OrdClient | None = None
    sds: SdsClient | None = None
    list_sizes: ListSizes | None = None
    nhs111: Mapping[str, Nhs111Status] | None = None
    hubs: HubFile | None = None
    previous: Registry | None = None
    cache: ReferenceCache | None = None


@dataclass
class _Org:
    sub_icb: str | None = None
    icb: str | None = None
    region: str | None = None
    pcn: str | None = None
    name: str | None = None
    postcode: str | None = None


@dataclass
class _Builder:
    sources: Sources
    findings: list[Finding] = field(default_factory=list)
    closed: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _parents: dict[str, str | None] = field(default_factory=dict)

    def find(self, ods: str, what: str, message: str, *, excluded: bool) -> None:
        self.findings.append(Finding(ods, what, message, excluded))

    def candidates(self, scope: Scope) -> list[str]:
        ord_client = self.sources.ord
        if scope.practices:
            return list(dict.fromkeys(code.strip().upper() for code in scope.practices if code.strip()))
        if ord_client is None:
            previous = self.sources.previous
            if previous is None:
                raise BuildError(f"{scope.describe()}: needs ORD or a previous registry to list practices")
            self.notes.append("ORD not used: practices listed from the previous registry")
            return [
                p.ods_code
                for p in previous.practices
                if p.kind == "practice"
                and (scope.sub_icb in (None, p.sub_icb_code))
                and (scope.icb in (None, p.icb_code))
            ]
        sub_icbs: list[str]
        if scope.icb:
            if ord_client.organisation(scope.icb) is None:
                raise BuildError(f"ICB {scope.icb} is not known to ODS")
            sub_icbs = [org.code for org in ord_client.sub_icbs_of(scope.icb)]
            if not sub_icbs:
                raise BuildError(f"ICB {scope.icb} has no sub-ICB locations in ODS")
        else:
            assert scope.sub_icb is not None
            if ord_client.organisation(scope.sub_icb) is None:
                raise BuildError(f"sub-ICB location {scope.sub_icb} is not known to ODS")
            sub_icbs = [scope.sub_icb]
        codes: list[str] = []
        for sub_icb in sub_icbs:
            codes.extend(org.code for org in ord_client.practices_commissioned_by(sub_icb))
        return list(dict.fromkeys(codes))

    def organisation(self, ods: str, previous: Practice | None) -> _Org | None:
        """ORD facts for a practice; None when it must be left out (unknown, closed, not a GP)."""
        ord_client = self.sources.ord
        if ord_client is None:
            if previous is None:
                self.find(ods, "ods_code", "not in the previous registry and ORD is not used", excluded=True)
                return None
            return _Org(
                previous.sub_icb_code,
                previous.icb_code,
                previous.region_code,
                previous.pcn_code,
                previous.name,
                previous.postcode,
            )
        record = ord_client.organisation(ods)
        if record is None:
            self.find(ods, "ods_code", "unknown to ODS (ORD answered 404)", excluded=True)
            return None
        if not record.active:
            reason = f"merged into {', '.join(record.successors)}" if record.successors else "closed"
            self.closed[ods] = reason
            self.find(ods, "status", f"ODS record is {record.status} ({reason})", excluded=True)
            return None
        if not record.is_gp_practice:
            self.find(
                ods, "roles", f"not a GP practice in ODS (roles {', '.join(record.roles)})", excluded=True
            )
            return None
        return self._placed(record)

    def _placed(self, record: OrgRecord) -> _Org:
        org = _Org(name=record.name, postcode=record.postcode)
        commissioners = record.targets(rel_id="RE4")
        if len(commissioners) == 1:
            org.sub_icb = commissioners[0]
            org.icb = self._parent(org.sub_icb, ROLES_ICB)
            org.region = self._parent(org.icb, (ROLE_NHS_REGION,)) if org.icb else None
            if org.icb is None:
                self.find(
                    record.code,
                    "icb_code",
                    f"ODS has no single ICB for sub-ICB location {org.sub_icb}",
                    excluded=False,
                )
        else:
            self.find(
                record.code,
                "sub_icb_code",
                f"ODS lists {len(commissioners)} active commissioners (RE4)",
                excluded=False,
            )
        pcns = record.targets(roles=(ROLE_PCN,))
        if len(pcns) == 1:
            org.pcn = pcns[0]
        elif pcns:
            self.find(
                record.code, "pcn_code", f"member of {len(pcns)} PCNs: {', '.join(pcns)}", excluded=False
            )
        return org

    def _parent(self, code: str, roles: Iterable[str]) -> str | None:
        key = f"{code}>{','.join(roles)}"
        if key not in self._parents:
            assert self.sources.ord is not None
            record = self.sources.ord.organisation(code)
            targets = record.targets(roles=roles) if record else []
            self._parents[key] = targets[0] if len(targets) == 1 else None
        return self._parents[key]

    def endpoint(self, ods: str, previous: Practice | None) -> tuple[str, str] | None:
        sds = self.sources.sds
        if sds is None:
            if previous is None:
                self.find(
                    ods,
                    "service_root",
                    "SDS is not used and the previous registry has no endpoint",
                    excluded=True,
                )
                return None
            return previous.service_root, previous.provider_asid
        resolution = sds.resolve(ods)
        if resolution.problem or resolution.service_root is None or resolution.asid is None:
            self.find(ods, "service_root", resolution.problem or "SDS gave no endpoint", excluded=True)
            return None
        return resolution.service_root, resolution.asid

    def list_size(self, ods: str, previous: Practice | None) -> int | None:
        sizes = self.sources.list_sizes
        if sizes is not None and ods in sizes.sizes:
            return sizes.sizes[ods]
        if previous is not None and previous.kind == "practice":
            if sizes is not None:
                self.find(
                    ods,
                    "list_size",
                    "not in the list-size extract; kept the previous list size",
                    excluded=False,
                )
            return previous.list_size
        self.find(
            ods,
            "list_size",
            "no list size (not in the list-size extract, no previous registry)",
            excluded=True,
        )
        return None

    def nhs111(self, ods: str, previous: Practice | None) -> tuple[bool, str | None, ClinicalSystem | None]:
        statuses = self.sources.nhs111
        status = statuses.get(ods) if statuses is not None else None
        if status is not None:
            if status.problem:
                self.find(
                    ods, "accepts_111_booking", status.problem + "; recorded as not live", excluded=False
                )
            return status.accepts_111_booking, status.nhs111_provider_ods, status.clinical_system
        if previous is not None:
            return previous.accepts_111_booking, previous.nhs111_provider_ods, previous.clinical_system
        if statuses is not None:
            self.find(
                ods, "accepts_111_booking", "not in the 111 workbook; recorded as not live", excluded=False
            )
        return False, None, None


def build_registry(scope: Scope, sources: Sources) -> BuildResult:
    """The registry for `scope` from whatever sources are configured (see the module docstring)."""
    builder = _Builder(sources)
    previous_by_ods = sources.previous.by_ods() if sources.previous else {}
    for missing, label in (
        (sources.list_sizes, "list sizes"),
        (sources.nhs111, "111 status"),
        (sources.sds, "SDS"),
        (sources.hubs, "hub file"),
    ):
        if missing is None:
            builder.notes.append(f"{label}: source not configured; previous registry values used where known")
    rows: list[dict[str, Any]] = []
    for ods in builder.candidates(scope):
        previous = previous_by_ods.get(ods)
        org = builder.organisation(ods, previous)
        if org is None:
            continue
        endpoint = builder.endpoint(ods, previous)
        list_size = builder.list_size(ods, previous)
        if endpoint is None or list_size is None:
            continue
        accepts, provider, system = builder.nhs111(ods, previous)
        rows.append(
            {
                "ods_code": ods,
                "name": org.name or (previous.name if previous else ods),
                "list_size": list_size,
                "clinical_system": system or (previous.clinical_system if previous else "other"),
                "kind": "practice",
                "service_root": endpoint[0],
                "provider_asid": endpoint[1],
                "accepts_111_booking": accepts,
                "nhs111_provider_ods": provider,
                "sub_icb_code": org.sub_icb,
                "icb_code": org.icb,
                "region_code": org.region,
                "pcn_code": org.pcn,
                "postcode": org.postcode,
                "release_policy": (previous.release_policy if previous else ReleasePolicy()).model_dump(
                    mode="json"
                ),
            }
        )
    if not rows:
        raise BuildError(
            f"{scope.describe()}: no practice could be built "
            f"({len(builder.findings)} finding(s): {'; '.join(map(str, builder.findings[:5]))})"
        )
    rows.extend(_hub_rows(builder, rows))
    organisations = _booking_organisations(sources)
    try:
        registry = validate_rows(
            rows, f"build for {scope.describe()}", [org.model_dump(mode="json") for org in organisations]
        )
    except RegistryError as exc:
        raise BuildError(f"the built registry does not validate: {'; '.join(exc.problems)}") from None
    stale = sources.cache.stale_report() if sources.cache is not None else []
    return BuildResult(registry, builder.findings, builder.closed, stale, builder.notes, scope)


def _hub_rows(builder: _Builder, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    hubs = builder.sources.hubs
    by_ods = {row["ods_code"]: row for row in rows}
    if hubs is None:
        # Keep the previous registry's hubs and who they book into, where those practices remain.
        previous = builder.sources.previous
        if previous is None:
            return []
        kept = []
        before = previous.by_ods()
        for hub in (p for p in previous.practices if p.kind == "hub"):
            booked = [
                row
                for row in rows
                if row["ods_code"] in before and hub.ods_code in before[row["ods_code"]].booking_hubs
            ]
            if not booked:
                continue
            for row in booked:
                row["booking_hubs"] = [*row.get("booking_hubs", []), hub.ods_code]
            kept.append(hub.model_dump(mode="json"))
        return kept
    hub_rows = []
    for entry in hubs.hubs:
        endpoint = builder.endpoint(
            entry.ods_code,
            (builder.sources.previous.by_ods().get(entry.ods_code) if builder.sources.previous else None),
        )
        if endpoint is None:
            continue
        targets = list(entry.books_into) + [row["ods_code"] for row in rows if row["pcn_code"] in entry.pcns]
        booked = [code for code in dict.fromkeys(targets) if code in by_ods]
        for code in dict.fromkeys(targets):
            if code not in by_ods:
                builder.find(
                    entry.ods_code, "books_into", f"{code} is not in the built registry", excluded=False
                )
        for code in booked:
            by_ods[code]["booking_hubs"] = [*by_ods[code].get("booking_hubs", []), entry.ods_code]
        first = by_ods[booked[0]] if booked else {}
        hub_rows.append(
            {
                "ods_code": entry.ods_code,
                "name": entry.name,
                "list_size": 0,
                "clinical_system": entry.clinical_system,
                "kind": "hub",
                "service_root": endpoint[0],
                "provider_asid": endpoint[1],
                "accepts_111_booking": entry.accepts_111_booking,
                "nhs111_provider_ods": entry.nhs111_provider_ods,
                "sub_icb_code": first.get("sub_icb_code"),
                "icb_code": first.get("icb_code"),
                "region_code": first.get("region_code"),
                "release_policy": entry.release_policy.model_dump(mode="json"),
            }
        )
    return hub_rows


def _booking_organisations(sources: Sources) -> tuple[BookingOrganisation, ...]:
    if sources.hubs is not None and sources.hubs.booking_organisations:
        return sources.hubs.booking_organisations
    return sources.previous.booking_organisations if sources.previous else ()


DIFF_FIELDS = (
    "list_size",
    "nhs111_quota",
    "service_root",
    "provider_asid",
    "accepts_111_booking",
    "nhs111_provider_ods",
)


def diff_registries(previous: Registry, current: Registry, closed: Mapping[str, str]) -> dict[str, Any]:
    """Practices opened, closed and merged, and per-practice field changes, as JSON-ready data."""
    old, new = previous.by_ods(), current.by_ods()
    gone = sorted(set(old) - set(new))
    merged = [
        {"ods_code": c, "into": closed[c].removeprefix("merged into ")}
        for c in gone
        if closed.get(c, "").startswith("merged into ")
    ]
    merged_codes = {m["ods_code"] for m in merged}
    changes = []
    for code in sorted(set(old) & set(new)):
        for name in DIFF_FIELDS:
            before, after = getattr(old[code], name), getattr(new[code], name)
            if before != after:
                changes.append({"ods_code": code, "field": name, "before": before, "after": after})
    return {
        "opened": sorted(set(new) - set(old)),
        "closed": [
            {"ods_code": c, "reason": closed.get(c, "no longer in scope")}
            for c in gone
            if c not in merged_codes
        ],
        "merged": merged,
        "changed": changes,
    }


def diff_markdown(diff: Mapping[str, Any]) -> str:
    """A short human summary of `diff_registries` output."""
    lines = ["# Registry changes", ""]
    lines.append(f"- opened: {', '.join(diff['opened']) or 'none'}")
    lines.append(
        "- closed: " + (", ".join(f"{c['ods_code']} ({c['reason']})" for c in diff["closed"]) or "none")
    )
    lines.append(
        "- merged: " + (", ".join(f"{m['ods_code']} into {m['into']}" for m in diff["merged"]) or "none")
    )
    lines.append(f"- field changes: {len(diff['changed'])}")
    if diff["changed"]:
        lines += ["", "| practice | field | before | after |", "|---|---|---|---|"]
        lines += [
            f"| {c['ods_code']} | {c['field']} | {c['before']} | {c['after']} |" for c in diff["changed"]
        ]
    return "\n".join(lines) + "\n"
