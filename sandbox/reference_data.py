"""The sandbox estate as national reference data: ODS ORD, SDS FHIR and the monthly files.

Served next to GP Connect so `slotsync registry build` can be exercised end to end:

- `GET /ORD/2-0-0/organisations?PrimaryRoleId=&NonPrimaryRoleId=&RelTypeId=&TargetOrgId=
  &Status=&Limit=&Offset=`: search, one page, total in `X-Total-Count`;
  `GET /ORD/2-0-0/organisations/{code}`: the full record, 404 for an unknown code. Practices
  are RO177 + RO76, commissioned (RE4) by sub-ICB locations 10K/10V (RO98), members (RE8) of
  their PCN (RO272); the sub-ICB locations are in ICB QRL (RE5, RO261) in region Y59 (RE2,
  RO209). Hubs are RO177 without RO76, so the GP-practice filter leaves them out.
- `GET /spine-directory/FHIR/R4/Endpoint|Device?organization=<ods system>|X
  &identifier=<interaction system>|<interaction>`: searchset Bundles with the practice's
  service root and ASID (the ones the sandbox's Spine checks expect).
- `GET /_reference/gp-reg-pat-prac-all.csv` and `/_reference/gp-practices-111-booking.csv`:
  the month's list sizes and 111 status in the published shapes.

`ReferenceData` (one per `SandboxState`, see `reference_data_for`) is mutable so tests can
simulate a month (list sizes change, a practice closes or merges, one opens), make one
practice's SDS answer ambiguous, and switch throttling (429 with Retry-After) on.
"""

from __future__ import annotations

import csv
import io
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.registry import Practice, Registry
from sandbox.determinism import stable_int
from sandbox.estate import ESTATE_ICB_ODS, ESTATE_REGION_ODS, NHS111_PROVIDER_NAMES
from sandbox.state import SandboxState

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
INTERACTION_SYSTEM = "https://fhir.nhs.uk/Id/nhsServiceInteractionId"
ASID_SYSTEM = "https://fhir.nhs.uk/Id/nhsSpineASID"
PARTY_KEY_SYSTEM = "https://fhir.nhs.uk/Id/nhsMhsPartyKey"
GPCONNECT_INTERACTION_PREFIX = "urn:nhs:names:services:gpconnect:"
# The name the 111 workbook uses for the estate's 111 provider (the mapping file knows it).
WORKBOOK_PROVIDER_NAME = "South Central Ambulance Service (SCAS)"
ORD_MAX_LIMIT = 1000
_SOURCE = {"root": "2.16.840.1.113883.2.1.3.2.4.18.48", "assigningAuthorityName": "HSCIC"}
_ROLE_NAMES = {
    "RO177": "PRESCRIBING COST CENTRE",
    "RO76": "GP PRACTICE",
    "RO98": "CLINICAL COMMISSIONING GROUP",
    "RO319": "SUB ICB LOCATION",
    "RO261": "STRATEGIC PARTNERSHIP",
    "RO318": "INTEGRATED CARE BOARD",
    "RO209": "NHS ENGLAND (REGION)",
    "RO272": "PRIMARY CARE NETWORK",
    "RO197": "NHS TRUST",
}


@dataclass
class _Org:
    code: str
    name: str
    roles: tuple[str, ...]  # primary first
    postcode: str
    rels: list[tuple[str, str]] = field(default_factory=list)  # (RE id, target code)
    active: bool = True
    successor: str | None = None


@dataclass
class _Endpoint:
    service_root: str
    asid: str


class ReferenceData:
    """ORD organisations, SDS records and the monthly files for one sandbox estate."""

    def __init__(self, registry: Registry, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self.orgs: dict[str, _Org] = {}
        self.endpoints: dict[str, _Endpoint] = {}
        self.list_sizes: dict[str, int] = {}
        self.practices: dict[str, Practice] = {}
        self.ambiguous_sds: set[str] = set()
        self.throttle_remaining = 0
        self.retry_after_s = 0
        self.throttled = 0
        self.extract_date = "01NOV2026"
        self._add_org(_Org(ESTATE_REGION_ODS, "NHS ENGLAND SOUTH EAST", ("RO209",), "RG1 2AG"))
        self._add_org(
            _Org(
                ESTATE_ICB_ODS,
                "NHS HAMPSHIRE AND ISLE OF WIGHT INTEGRATED CARE BOARD",
                ("RO261", "RO318"),
                "SO50 5PB",
                [("RE2", ESTATE_REGION_ODS)],
            )
        )
        for code, ods_name in NHS111_PROVIDER_NAMES.items():
            self._add_org(_Org(code, ods_name.upper(), ("RO197",), "OX4 2LH"))
        for practice in registry.practices:
            sub_icb = practice.sub_icb_code
            if sub_icb and sub_icb not in self.orgs:
                self._add_org(
                    _Org(
                        sub_icb,
                        f"NHS HAMPSHIRE AND ISLE OF WIGHT ICB - {sub_icb}",
                        ("RO98", "RO319"),
                        "SO50 5PB",
                        [("RE5", ESTATE_ICB_ODS)],
                    )
                )
            if practice.pcn_code and practice.pcn_code not in self.orgs:
                self._add_org(_Org(practice.pcn_code, f"PCN {practice.pcn_code}", ("RO272",), "PO16 7BQ"))
            self._add_practice(practice)

    # --- simulated changes -------------------------------------------------------------

    def set_list_size(self, ods: str, list_size: int) -> None:
        with self._lock:
            self.list_sizes[ods] = list_size

    def close_practice(self, ods: str, successor: str | None = None) -> None:
        """Mark a practice Inactive in ORD (merged into `successor` if given); SDS drops it."""
        with self._lock:
            org = self.orgs[ods]
            org.active, org.successor = False, successor
            self.endpoints.pop(ods, None)
            self.list_sizes.pop(ods, None)

    def open_practice(self, practice: Practice) -> None:
        """A new practice: in ORD, SDS and the list-size extract from now on."""
        with self._lock:
            self._add_practice(practice)

    def throttle(self, count: int, retry_after_s: int = 0) -> None:
        """Answer the next `count` ORD/SDS requests 429 Too Many Requests."""
        with self._lock:
            self.throttle_remaining, self.retry_after_s = count, retry_after_s

    def hub_file(self) -> str:
        """The hub YAML an ICB would keep for this estate (hubs, whom they book into, booking orgs)."""
        hubs = []
        for hub in (p for p in self.practices.values() if p.kind == "hub"):
            hubs.append(
                {
                    "ods_code": hub.ods_code,
                    "name": hub.name,
                    "clinical_system": hub.clinical_system,
                    "books_into": sorted(
                        p.ods_code for p in self.practices.values() if hub.ods_code in p.booking_hubs
                    ),
                    "accepts_111_booking": hub.accepts_111_booking,
                    "nhs111_provider_ods": hub.nhs111_provider_ods,
                    "release_policy": hub.release_policy.model_dump(mode="json"),
                }
            )
        return yaml.safe_dump({"hubs": hubs}, sort_keys=False)

    # --- internals ----------------------------------------------------------------------

    def _add_org(self, org: _Org) -> None:
        self.orgs[org.code] = org

    def _add_practice(self, practice: Practice) -> None:
        roles = ("RO177", "RO76") if practice.kind == "practice" else ("RO177",)
        rels = [("RE4", practice.sub_icb_code)] if practice.sub_icb_code else []
        if practice.pcn_code:
            rels.append(("RE8", practice.pcn_code))
        postcode = practice.postcode or f"PO{1 + stable_int(self._seed, practice.ods_code, 'pc') % 20} 1AA"
        self._add_org(_Org(practice.ods_code, practice.name.upper(), roles, postcode, rels))
        self.endpoints[practice.ods_code] = _Endpoint(practice.service_root, practice.provider_asid)
        if practice.kind == "practice":
            self.list_sizes[practice.ods_code] = practice.list_size
        self.practices[practice.ods_code] = practice

    def take_throttle(self) -> int | None:
        """Retry-After seconds if this request is throttled, else None."""
        with self._lock:
            if self.throttle_remaining <= 0:
                return None
            self.throttle_remaining -= 1
            self.throttled += 1
            return self.retry_after_s

    def ord_summary(self, org: _Org) -> dict[str, Any]:
        return {
            "Name": org.name,
            "OrgId": org.code,
            "Status": "Active" if org.active else "Inactive",
            "OrgRecordClass": "RC1",
            "PostCode": org.postcode,
            "LastChangeDate": "2026-11-01",
            "PrimaryRoleId": org.roles[0],
            "PrimaryRoleDescription": _ROLE_NAMES.get(org.roles[0], ""),
            "OrgLink": f"https://directory.spineservices.nhs.uk/ORD/2-0-0/organisations/{org.code}",
        }

    def ord_record(self, org: _Org) -> dict[str, Any]:
        status = "Active" if org.active else "Inactive"
        dates = [
            {"Type": "Operational", "Start": "2013-04-01", **({} if org.active else {"End": "2026-11-30"})}
        ]
        record: dict[str, Any] = {
            "Name": org.name,
            "Date": dates,
            "OrgId": {**_SOURCE, "extension": org.code},
            "Status": status,
            "LastChangeDate": "2026-11-01",
            "orgRecordClass": "RC1",
            "GeoLoc": {
                "Location": {
                    "AddrLn1": "1 HIGH STREET",
                    "Town": "FAREHAM",
                    "PostCode": org.postcode,
                    "Country": "ENGLAND",
                }
            },
            "Roles": {
                "Role": [
                    {
                        "id": role,
                        "uniqueRoleId": 100000 + n,
                        "primaryRole": n == 0,
                        "Date": dates,
                        "Status": status,
                    }
                    for n, role in enumerate(org.roles)
                ]
            },
        }
        if org.rels:
            record["Rels"] = {
                "Rel": [
                    {
                        "Date": dates,
                        "Status": status,
                        "Target": {
                            "OrgId": {**_SOURCE, "extension": target},
                            "PrimaryRoleId": {"id": self.orgs[target].roles[0], "uniqueRoleId": 1},
                        },
                        "id": rel_id,
                        "uniqueRelId": 200000 + n,
                    }
                    for n, (rel_id, target) in enumerate(org.rels)
                    if target in self.orgs
                ]
            }
        if org.successor:
            record["Succs"] = {
                "Succ": [
                    {
                        "uniqueSuccId": 1,
                        "Date": [{"Type": "Legal", "Start": "2026-12-01"}],
                        "Type": "Successor",
                        "Target": {
                            "OrgId": {**_SOURCE, "extension": org.successor},
                            "PrimaryRoleId": {"id": "RO177", "uniqueRoleId": 1},
                        },
                    }
                ]
            }
        return {"Organisation": record}

    def search(self, params: Mapping[str, str]) -> list[_Org]:
        found = []
        for org in self.orgs.values():
            if "PrimaryRoleId" in params and org.roles[0] != params["PrimaryRoleId"]:
                continue
            if "NonPrimaryRoleId" in params and params["NonPrimaryRoleId"] not in org.roles[1:]:
                continue
            if "Status" in params and ("Active" if org.active else "Inactive") != params["Status"]:
                continue
            if "TargetOrgId" in params and not any(
                target == params["TargetOrgId"] and rel_id == params.get("RelTypeId", rel_id)
                for rel_id, target in org.rels
            ):
                continue
            found.append(org)
        return sorted(found, key=lambda org: org.code)

    def sds_bundle(self, resource_type: str, ods: str, interaction: str, self_url: str) -> dict[str, Any]:
        entries: list[dict[str, Any]] = []
        endpoint = self.endpoints.get(ods)
        if endpoint is not None and interaction.startswith(GPCONNECT_INTERACTION_PREFIX):
            records = [(endpoint.service_root, endpoint.asid, f"{ods}-{endpoint.asid[-6:]}")]
            if ods in self.ambiguous_sds:  # mid-migration: the old supplier's record is still there
                old_asid = str(10**11 + stable_int(self._seed, ods, "old-asid") % (9 * 10**11))
                records.append(
                    (endpoint.service_root.replace(ods, f"{ods}-old"), old_asid, f"{ods}-{old_asid[-6:]}")
                )
            for n, (root, asid, party_key) in enumerate(records):
                owner = {"identifier": {"system": ODS_SYSTEM, "value": ods}}
                if resource_type == "Endpoint":
                    resource: dict[str, Any] = {
                        "resourceType": "Endpoint",
                        "id": f"{party_key}-ep{n}",
                        "status": "active",
                        "connectionType": {
                            "system": "https://fhir.nhs.uk/CodeSystem/endpoint-connection-type",
                            "code": "hl7-fhir-rest",
                            "display": "HL7 FHIR",
                        },
                        "managingOrganization": owner,
                        "payloadType": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type",
                                        "code": "any",
                                        "display": "Any",
                                    }
                                ]
                            }
                        ],
                        "address": root,
                        "identifier": [
                            {"system": PARTY_KEY_SYSTEM, "value": party_key},
                            {"system": INTERACTION_SYSTEM, "value": interaction},
                        ],
                    }
                else:
                    resource = {
                        "resourceType": "Device",
                        "id": f"{party_key}-dev{n}",
                        "identifier": [
                            {"system": ASID_SYSTEM, "value": asid},
                            {"system": PARTY_KEY_SYSTEM, "value": party_key},
                            {"system": INTERACTION_SYSTEM, "value": interaction},
                        ],
                        "owner": owner,
                    }
                entries.append(
                    {
                        "fullUrl": f"{self_url.split('?')[0]}/{resource['id']}",
                        "resource": resource,
                        "search": {"mode": "match"},
                    }
                )
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(entries),
            "link": [{"relation": "self", "url": self_url}],
            "entry": entries,
        }

    def list_size_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            [
                "PUBLICATION",
                "EXTRACT_DATE",
                "TYPE",
                "CODE",
                "SUB_ICB_LOCATION_CODE",
                "ONS_SUB_ICB_LOCATION_CODE",
                "POSTCODE",
                "SEX",
                "AGE",
                "NUMBER_OF_PATIENTS",
            ]
        )
        for ods, size in sorted(self.list_sizes.items()):
            org = self.orgs[ods]
            sub_icb = next((t for r, t in org.rels if r == "RE4"), "")
            for sex, share in (("ALL", 1.0), ("FEMALE", 0.51), ("MALE", 0.49)):
                writer.writerow(
                    [
                        "GP_PRAC_PAT_LIST",
                        self.extract_date,
                        "GP",
                        ods,
                        sub_icb,
                        "E38000000",
                        org.postcode,
                        sex,
                        "ALL",
                        round(size * share),
                    ]
                )
        return out.getvalue()

    def nhs111_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            [
                "ods_code",
                "name",
                "postcode",
                "ccg_code",
                "ccg_name",
                "list_size",
                "supplier",
                "clinical_system",
                "nhs111_provider",
                "nhs111_system",
                "live_with_111_booking",
            ]
        )
        for ods, practice in sorted(self.practices.items()):
            org = self.orgs[ods]
            if practice.kind != "practice" or not org.active:
                continue
            supplier = "EMIS" if practice.clinical_system == "EMIS Web" else "TPP"
            writer.writerow(
                [
                    ods,
                    org.name,
                    org.postcode,
                    practice.sub_icb_code or "",
                    "",
                    self.list_sizes.get(ods, ""),
                    supplier,
                    practice.clinical_system,
                    WORKBOOK_PROVIDER_NAME,
                    "Adastra",
                    "Yes" if practice.accepts_111_booking else "No",
                ]
            )
        return out.getvalue()


_BY_STATE: weakref.WeakKeyDictionary[SandboxState, ReferenceData] = weakref.WeakKeyDictionary()
_BY_STATE_LOCK = threading.Lock()


def reference_data_for(state: SandboxState) -> ReferenceData:
    """The (one) reference data view of a sandbox state, made on first use."""
    with _BY_STATE_LOCK:
        data = _BY_STATE.get(state)
        if data is None:
            data = _BY_STATE[state] = ReferenceData(state.registry, seed=state.seed)
        return data


def _json(
    value: Any, status: int = 200, headers: dict[str, str] | None = None, media_type: str = "application/json"
) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type=media_type, headers=headers)


def _throttled(data: ReferenceData) -> Response | None:
    retry_after = data.take_throttle()
    if retry_after is None:
        return None
    return _json({"errorCode": 429, "errorText": "Too Many Requests"}, 429, {"Retry-After": str(retry_after)})


def reference_routes(state: SandboxState) -> list[Route]:
    """Starlette routes for ORD, SDS and the monthly files over `state`'s estate."""

    async def ord_search(request: Request) -> Response:
        data = reference_data_for(state)
        if (limited := _throttled(data)) is not None:
            return limited
        params = dict(request.query_params)
        try:
            limit = int(params.pop("Limit", "20"))
            offset = int(params.pop("Offset", "0"))
        except ValueError:
            return _json({"errorCode": 400, "errorText": "Limit and Offset must be integers"}, 400)
        if not 1 <= limit <= ORD_MAX_LIMIT or offset < 0:
            return _json({"errorCode": 400, "errorText": f"Limit must be 1..{ORD_MAX_LIMIT}"}, 400)
        known = {"PrimaryRoleId", "NonPrimaryRoleId", "RelTypeId", "TargetOrgId", "Status"}
        if unknown := sorted(set(params) - known):
            return _json(
                {"errorCode": 400, "errorText": f"unsupported parameter(s): {', '.join(unknown)}"}, 400
            )
        with data._lock:
            found = data.search(params)
            page = [data.ord_summary(org) for org in found[offset : offset + limit]]
        return _json({"Organisations": page}, headers={"X-Total-Count": str(len(found))})

    async def ord_record(request: Request) -> Response:
        data = reference_data_for(state)
        if (limited := _throttled(data)) is not None:
            return limited
        code = request.path_params["code"].upper()
        with data._lock:
            org = data.orgs.get(code)
            body = data.ord_record(org) if org else None
        if body is None:
            return _json({"errorCode": 404, "errorText": "Not Found"}, 404)
        return _json(body)

    async def sds_search(request: Request) -> Response:
        data = reference_data_for(state)
        if (limited := _throttled(data)) is not None:
            return limited
        resource_type = request.path_params["resource"]
        if resource_type not in ("Endpoint", "Device"):
            return _json(
                {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "error",
                            "code": "not-supported",
                            "diagnostics": f"no {resource_type} search",
                        }
                    ],
                },
                404,
                media_type="application/fhir+json",
            )
        organization = request.query_params.get("organization", "")
        identifier = request.query_params.get("identifier", "")
        if not organization.startswith(f"{ODS_SYSTEM}|") or not identifier.startswith(
            f"{INTERACTION_SYSTEM}|"
        ):
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": "required",
                        "diagnostics": f"organization ({ODS_SYSTEM}|<ODS>) and identifier "
                        f"({INTERACTION_SYSTEM}|<interaction>) are required",
                    }
                ],
            }
            return _json(outcome, 400, media_type="application/fhir+json")
        ods = organization.split("|", 1)[1].upper()
        interaction = identifier.split("|", 1)[1]
        with data._lock:
            bundle = data.sds_bundle(resource_type, ods, interaction, str(request.url))
        return _json(bundle, media_type="application/fhir+json")

    async def list_sizes(request: Request) -> Response:
        data = reference_data_for(state)
        with data._lock:
            text = data.list_size_csv()
        return Response(text, media_type="text/csv")

    async def nhs111_workbook(request: Request) -> Response:
        data = reference_data_for(state)
        with data._lock:
            text = data.nhs111_csv()
        return Response(text, media_type="text/csv")

    return [
        Route("/ORD/2-0-0/organisations", ord_search, methods=["GET"]),
        Route("/ORD/2-0-0/organisations/{code}", ord_record, methods=["GET"]),
        Route("/spine-directory/FHIR/R4/{resource:str}", sds_search, methods=["GET"]),
        Route("/_reference/gp-reg-pat-prac-all.csv", list_sizes, methods=["GET"]),
        Route("/_reference/gp-practices-111-booking.csv", nhs111_workbook, methods=["GET"]),
    ]
