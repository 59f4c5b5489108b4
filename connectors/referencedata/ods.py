"""Client for the ODS Organisation Reference Data (ORD) API, `ORD/2-0-0`, JSON.

What a registry build needs from ORD:

- `organisations?PrimaryRoleId=RO177&NonPrimaryRoleId=RO76[&RelTypeId=RE4&TargetOrgId=<sub-ICB>]`
  lists GP practices (prescribing cost centres with the "GP practice" role; RO177 alone also
  returns out-of-hours services and walk-in centres), paged with `Limit`/`Offset`, the total
  in the `X-Total-Count` header;
- `organisations?PrimaryRoleId=RO98&RelTypeId=RE5&TargetOrgId=<ICB>` lists an ICB's sub-ICB
  locations (the old CCG records, primary role RO98, located in the ICB's geography);
- `organisations/{code}` is one record: `Status`, `Name`, `GeoLoc.Location.PostCode`,
  `Roles.Role[]`, `Rels.Rel[]` (RE4 "is commissioned by" -> sub-ICB location; RE8 to a PCN,
  role RO272; RE5 sub-ICB -> ICB, role RO261/RO318; RE2 ICB -> NHS region, role RO209) and
  `Succs.Succ[]` (successor of a closed or merged practice). 404 for an unknown code.

The shapes relied on are recorded in tests/fixtures/ods/. All HTTP goes through `_request`
(to be switched to the shared HTTP layer); 429 is retried with back-off (Retry-After).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from connectors.referencedata.cache import Fetched, ReferenceCache, RemoteFailure, http_get

ORD_BASE_URL = "https://directory.spineservices.nhs.uk/ORD/2-0-0"
ROLE_PRESCRIBING_COST_CENTRE = "RO177"
ROLE_GP_PRACTICE = "RO76"
ROLE_CCG_SUB_ICB = "RO98"
ROLE_PCN = "RO272"
ROLES_ICB = ("RO261", "RO318")
ROLE_NHS_REGION = "RO209"
REL_COMMISSIONED_BY = "RE4"
REL_IN_GEOGRAPHY_OF = "RE5"
DEFAULT_PAGE_SIZE = 1000


class OrdError(Exception):
    """ORD answered something we cannot use (not JSON, unexpected status)."""


@dataclass(frozen=True)
class OrgSummary:
    """One row of an `organisations` search."""

    code: str
    name: str
    status: str
    postcode: str | None
    primary_role: str | None


@dataclass(frozen=True)
class OrgRel:
    rel_id: str
    target_code: str
    target_role: str | None
    active: bool


@dataclass(frozen=True)
class OrgRecord:
    """One `organisations/{code}` record, reduced to what a registry needs."""

    code: str
    name: str
    status: str
    postcode: str | None
    roles: tuple[str, ...]
    primary_role: str | None
    rels: tuple[OrgRel, ...] = field(default=())
    successors: tuple[str, ...] = field(default=())

    @property
    def active(self) -> bool:
        return self.status.lower() == "active"

    @property
    def is_gp_practice(self) -> bool:
        return self.primary_role == ROLE_PRESCRIBING_COST_CENTRE and ROLE_GP_PRACTICE in self.roles

    def targets(self, *, rel_id: str | None = None, roles: Iterable[str] = ()) -> list[str]:
        """Codes of active relationships' targets, by relationship id and/or target role."""
        wanted_roles = set(roles)
        return [
            rel.target_code
            for rel in self.rels
            if rel.active
            and (rel_id is None or rel.rel_id == rel_id)
            and (not wanted_roles or rel.target_role in wanted_roles)
        ]


def parse_search(document: Any) -> list[OrgSummary]:
    organisations = document.get("Organisations") if isinstance(document, Mapping) else None
    if not isinstance(organisations, list):
        raise OrdError("search answer has no 'Organisations' list")
    return [
        OrgSummary(
            code=str(org["OrgId"]),
            name=str(org.get("Name", "")),
            status=str(org.get("Status", "")),
            postcode=org.get("PostCode"),
            primary_role=org.get("PrimaryRoleId"),
        )
        for org in organisations
        if isinstance(org, Mapping) and "OrgId" in org
    ]


def parse_record(document: Any) -> OrgRecord:
    org = document.get("Organisation") if isinstance(document, Mapping) else None
    if not isinstance(org, Mapping):
        raise OrdError("record answer has no 'Organisation'")
    roles = _listed(org.get("Roles"), "Role")
    rels = _listed(org.get("Rels"), "Rel")
    succs = _listed(org.get("Succs"), "Succ")
    primary = next((r.get("id") for r in roles if r.get("primaryRole") is True), None)
    location = (org.get("GeoLoc") or {}).get("Location") or {}
    return OrgRecord(
        code=str((org.get("OrgId") or {}).get("extension", "")),
        name=str(org.get("Name", "")),
        status=str(org.get("Status", "")),
        postcode=location.get("PostCode"),
        roles=tuple(str(r.get("id")) for r in roles if str(r.get("Status", "Active")).lower() == "active"),
        primary_role=primary,
        rels=tuple(
            OrgRel(
                rel_id=str(rel.get("id")),
                target_code=str(((rel.get("Target") or {}).get("OrgId") or {}).get("extension", "")),
                target_role=((rel.get("Target") or {}).get("PrimaryRoleId") or {}).get("id"),
                active=str(rel.get("Status", "")).lower() == "active",
            )
            for rel in rels
        ),
        successors=tuple(
            str(((s.get("Target") or {}).get("OrgId") or {}).get("extension", ""))
            for s in succs
            if str(s.get("Type", "")).lower() == "successor"
        ),
    )


def _listed(container: Any, key: str) -> list[Mapping[str, Any]]:
    if not isinstance(container, Mapping):
        return []
    items = container.get(key)
    if isinstance(items, Mapping):
        items = [items]
    return [item for item in items or [] if isinstance(item, Mapping)]


class OrdClient:
    """ORD searches and records, paged, throttle-aware and cached (see the module docstring)."""

    source = "ods-ord"

    def __init__(
        self,
        base_url: str = ORD_BASE_URL,
        *,
        cache: ReferenceCache,
        http: httpx.Client | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._cache = cache
        self._http = http or httpx.Client(timeout=30.0)
        self._page_size = page_size
        self._sleep = sleep
        self._max_attempts = max_attempts
        self.requests_made = 0

    def close(self) -> None:
        self._http.close()

    def practices(self, **filters: str) -> list[OrgSummary]:
        """GP practices (RO177 + RO76), narrowed by e.g. RelTypeId/TargetOrgId or Status."""
        return self.search(
            PrimaryRoleId=ROLE_PRESCRIBING_COST_CENTRE, NonPrimaryRoleId=ROLE_GP_PRACTICE, **filters
        )

    def practices_commissioned_by(self, sub_icb_code: str) -> list[OrgSummary]:
        return self.practices(RelTypeId=REL_COMMISSIONED_BY, TargetOrgId=sub_icb_code)

    def sub_icbs_of(self, icb_code: str) -> list[OrgSummary]:
        return self.search(
            PrimaryRoleId=ROLE_CCG_SUB_ICB, RelTypeId=REL_IN_GEOGRAPHY_OF, TargetOrgId=icb_code
        )

    def search(self, **filters: str) -> list[OrgSummary]:
        """Every page of an `organisations` search (Limit/Offset until X-Total-Count is reached)."""
        found: list[OrgSummary] = []
        offset = 0
        while True:
            params = {**filters, "Limit": str(self._page_size), "Offset": str(offset)}
            answer = self._get("/organisations", params)
            if answer.status != 200:
                raise OrdError(f"organisations search {filters} answered HTTP {answer.status}")
            page = parse_search(_json(answer))
            found.extend(page)
            total_text = answer.headers.get("x-total-count")
            total = int(total_text) if total_text and total_text.isdigit() else None
            offset += len(page)
            if (
                not page
                or (total is not None and offset >= total)
                or (total is None and len(page) < self._page_size)
            ):
                return found

    def organisation(self, code: str) -> OrgRecord | None:
        """The record for `code`, or None if ORD does not know it (404)."""
        answer = self._get(f"/organisations/{code}", {})
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise OrdError(f"organisations/{code} answered HTTP {answer.status}")
        return parse_record(_json(answer))

    def _get(self, path: str, params: Mapping[str, str]) -> Fetched:
        url = f"{self.base_url}{path}" + (f"?{urlencode(sorted(params.items()))}" if params else "")
        return self._cache.get(
            self.source,
            url,
            lambda: http_get(
                lambda: self._request(url),
                what=f"ORD {path}",
                sleep=self._sleep,
                max_attempts=self._max_attempts,
            ),
        )

    def _request(self, url: str) -> tuple[int, dict[str, str], bytes]:
        """The one place this client touches the network."""
        self.requests_made += 1
        try:
            response = self._http.get(url, headers={"Accept": "application/json"})
        except httpx.TransportError as exc:
            raise RemoteFailure(f"ORD {url}: {exc}") from exc
        return response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content


def _json(answer: Fetched) -> Any:
    try:
        return orjson.loads(answer.body)
    except orjson.JSONDecodeError as exc:
        raise OrdError(f"ORD answered non-JSON: {exc}") from exc
