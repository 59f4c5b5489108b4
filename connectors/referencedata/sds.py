"""Client for the Spine Directory Service (SDS) FHIR API: a practice's ASID and service root.

GP Connect consumers resolve, per target organisation and interaction, the provider's
accredited system (ASID, sent as `Ssp-To`) and its FHIR service root. The SDS FHIR API
answers both as searchset Bundles:

- `GET /Endpoint?organization=https://fhir.nhs.uk/Id/ods-organization-code|<ODS>
  &identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId|<interaction>`: Endpoint
  resources, `address` = the service root, identifier `.../nhsMhsPartyKey`;
- `GET /Device?` (same parameters): Device resources, identifiers `.../nhsSpineASID` and
  `.../nhsMhsPartyKey`.

`resolve` asks both for the slot-search interaction and answers a service root and ASID only
when each search has exactly one match (and their party keys agree): zero or several is a
per-practice finding, never a guess. Shapes relied on: tests/fixtures/sds/. All HTTP goes
through `_request`; access needs an `apikey` header.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from connectors.referencedata.cache import Fetched, ReferenceCache, RemoteFailure, http_get

SDS_BASE_URL = "https://api.service.nhs.uk/spine-directory/FHIR/R4"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
INTERACTION_SYSTEM = "https://fhir.nhs.uk/Id/nhsServiceInteractionId"
ASID_SYSTEM = "https://fhir.nhs.uk/Id/nhsSpineASID"
PARTY_KEY_SYSTEM = "https://fhir.nhs.uk/Id/nhsMhsPartyKey"
SLOT_SEARCH_INTERACTION = "urn:nhs:names:services:gpconnect:fhir:rest:search:slot-1"


class SdsError(Exception):
    """SDS answered something we cannot use."""


@dataclass(frozen=True)
class SdsEndpoint:
    address: str
    party_key: str | None


@dataclass(frozen=True)
class SdsDevice:
    asid: str
    party_key: str | None


@dataclass(frozen=True)
class SdsResolution:
    """Service root and ASID for one organisation, or the reason there is none."""

    ods_code: str
    service_root: str | None = None
    asid: str | None = None
    problem: str | None = None


def _identifier(resource: Mapping[str, Any], system: str) -> str | None:
    for ident in resource.get("identifier") or []:
        if isinstance(ident, Mapping) and ident.get("system") == system and ident.get("value"):
            return str(ident["value"])
    return None


def _resources(document: Any, resource_type: str) -> list[Mapping[str, Any]]:
    if not isinstance(document, Mapping) or document.get("resourceType") != "Bundle":
        raise SdsError(f"{resource_type} search did not answer a Bundle")
    return [
        entry["resource"]
        for entry in document.get("entry") or []
        if isinstance(entry, Mapping)
        and isinstance(entry.get("resource"), Mapping)
        and entry["resource"].get("resourceType") == resource_type
    ]


def parse_endpoints(document: Any) -> list[SdsEndpoint]:
    return [
        SdsEndpoint(
            address=str(res.get("address", "")).rstrip("/"), party_key=_identifier(res, PARTY_KEY_SYSTEM)
        )
        for res in _resources(document, "Endpoint")
        if res.get("status", "active") == "active"
    ]


def parse_devices(document: Any) -> list[SdsDevice]:
    devices = []
    for res in _resources(document, "Device"):
        asid = _identifier(res, ASID_SYSTEM)
        if asid:
            devices.append(SdsDevice(asid=asid, party_key=_identifier(res, PARTY_KEY_SYSTEM)))
    return devices


class SdsClient:
    """Endpoint and Device lookups by ODS code and interaction, cached."""

    source = "sds-fhir"

    def __init__(
        self,
        base_url: str = SDS_BASE_URL,
        *,
        cache: ReferenceCache,
        api_key: str | None = None,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._cache = cache
        self._api_key = api_key
        self._http = http or httpx.Client(timeout=30.0)
        self._sleep = sleep
        self._max_attempts = max_attempts
        self.requests_made = 0

    def close(self) -> None:
        self._http.close()

    def endpoints(self, ods_code: str, interaction: str = SLOT_SEARCH_INTERACTION) -> list[SdsEndpoint]:
        return parse_endpoints(self._search("Endpoint", ods_code, interaction))

    def devices(self, ods_code: str, interaction: str = SLOT_SEARCH_INTERACTION) -> list[SdsDevice]:
        return parse_devices(self._search("Device", ods_code, interaction))

    def resolve(self, ods_code: str, interaction: str = SLOT_SEARCH_INTERACTION) -> SdsResolution:
        endpoints = self.endpoints(ods_code, interaction)
        devices = self.devices(ods_code, interaction)
        if len(endpoints) != 1:
            listing = f": {', '.join(e.address for e in endpoints)}" if endpoints else ""
            return SdsResolution(
                ods_code, problem=f"SDS has {len(endpoints)} Endpoint(s) for {interaction}{listing}"
            )
        if len(devices) != 1:
            listing = f": ASIDs {', '.join(d.asid for d in devices)}" if devices else ""
            return SdsResolution(
                ods_code,
                problem=f"SDS has {len(devices)} accredited system(s) (Device) for {interaction}{listing}",
            )
        endpoint, device = endpoints[0], devices[0]
        if endpoint.party_key and device.party_key and endpoint.party_key != device.party_key:
            return SdsResolution(
                ods_code,
                problem=f"SDS Endpoint party key {endpoint.party_key} does not match the Device's "
                f"{device.party_key}",
            )
        return SdsResolution(ods_code, service_root=endpoint.address, asid=device.asid)

    def _search(self, resource_type: str, ods_code: str, interaction: str) -> Any:
        params = {
            "organization": f"{ODS_SYSTEM}|{ods_code}",
            "identifier": f"{INTERACTION_SYSTEM}|{interaction}",
        }
        url = f"{self.base_url}/{resource_type}?{urlencode(params)}"
        answer: Fetched = self._cache.get(
            self.source,
            url,
            lambda: http_get(
                lambda: self._request(url),
                what=f"SDS {resource_type} {ods_code}",
                sleep=self._sleep,
                max_attempts=self._max_attempts,
            ),
        )
        if answer.status != 200:
            raise SdsError(f"SDS {resource_type} search for {ods_code} answered HTTP {answer.status}")
        try:
            return orjson.loads(answer.body)
        except orjson.JSONDecodeError as exc:
            raise SdsError(f"SDS answered non-JSON: {exc}") from exc

    def _request(self, url: str) -> tuple[int, dict[str, str], bytes]:
        """The one place this client touches the network."""
        self.requests_made += 1
        headers = {"Accept": "application/fhir+json"}
        if self._api_key:
            headers["apikey"] = self._api_key
        try:
            response = self._http.get(url, headers=headers)
        except httpx.TransportError as exc:
            raise RemoteFailure(f"SDS {url}: {exc}") from exc
        return response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content
