"""The practice registry: which practices and hubs exist and how to reach them.

The registry is a YAML data file (`practices:` list, one mapping per practice or hub).
`load_registry` validates every row and reports *all* problems at once, each naming the
row, the ODS code where known, and the field, so an operator can fix the file in one pass.
`registry_from_nhs_csv` turns NHS Digital's practice list CSV formats into a registry;
`import_nhs_csv` does the same but can skip bad rows and say why (`--skip-invalid`).

Since CCGs were abolished (1 July 2022) their codes identify sub-ICB locations: a practice
carries `sub_icb_code`, `icb_code` and `region_code`. The old `ccg_code` key is still read
(as `sub_icb_code`, with a deprecation note) and `Practice.ccg_code` still answers, as a
deprecated alias, for code written against older releases.
"""

from __future__ import annotations

import csv
import hashlib
import io
import ipaddress
import re
import socket
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from connectors.registry_yaml import dump_yaml, load_yaml

ODS_PRACTICE_PATTERN = r"^[A-Z][0-9]{5}$"
ODS_ORG_PATTERN = r"^[A-Z0-9]{3,6}$"
CCG_CODE_DEPRECATION = (
    "field ccg_code is deprecated (CCGs became sub-ICB locations on 1 July 2022): "
    "read as sub_icb_code; rename it"
)

ClinicalSystem = Literal["EMIS Web", "SystmOne", "other"]

# What the run can take, checked before anything is fetched. The warehouse stores list sizes
# as INTEGER (INT32); the largest English practice lists are a few hundred thousand.
MAX_LIST_SIZE = 10_000_000
# A registry is practices > row > release_policy > field: anything deeper is not a registry,
# and a deep one would otherwise surface as a RecursionError traceback.
MAX_REGISTRY_DEPTH = 12
# England (~7,000 practices and hubs) is about 5 MB of YAML.
MAX_REGISTRY_BYTES = 32 * 1024 * 1024
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.azure.internal"})
# Cloud metadata services outside the link-local ranges (AWS's IPv6 endpoint).
METADATA_ADDRESSES = (ipaddress.ip_network("fd00:ec2::254/128"),)


class ReleasePolicy(BaseModel):
    """When an unbooked NHS 111 slot goes back to the practice."""

    model_config = ConfigDict(extra="forbid")

    lead_minutes: int = Field(default=120, ge=0, le=24 * 60)
    daily_cutoff: time | None = Field(
        default=None, description="release everything for the day at this local time instead"
    )
    core_hours_only: bool = True
    dry_run: bool = False
    releaser: Literal["sandbox", "worklist"] = "worklist"
    supplier_api_root: str | None = Field(
        default=None,
        pattern=r"^https?://\S*[^/\s]$",
        description="base URL the supplier slot API (/_supplier/{ODS}/Slot/...) hangs off, no "
        "trailing slash; unset = service_root minus /{ODS}/STU3/1/gpconnect (the sandbox)",
    )


class Practice(BaseModel):
    """One registry row: a GP practice or an extended-access hub."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ods_code: str = Field(pattern=ODS_PRACTICE_PATTERN)
    name: str = Field(min_length=1)
    list_size: int = Field(ge=0, le=MAX_LIST_SIZE)
    clinical_system: ClinicalSystem
    kind: Literal["practice", "hub"] = "practice"
    service_root: str = Field(description="GP Connect service root, no trailing slash")
    provider_asid: str = Field(pattern=r"^\d{12}$")
    accepts_111_booking: bool
    nhs111_provider_ods: str | None = Field(default=None, pattern=ODS_ORG_PATTERN)
    booking_hubs: tuple[str, ...] = Field(default=(), description="hubs that book into this book")
    # No pattern: registries written before sub-ICB locations carried free-text CCG codes.
    sub_icb_code: str | None = None
    icb_code: str | None = Field(default=None, pattern=ODS_ORG_PATTERN)
    region_code: str | None = Field(default=None, pattern=ODS_ORG_PATTERN)
    pcn_code: str | None = None
    postcode: str | None = None
    release_policy: ReleasePolicy = ReleasePolicy()

    @model_validator(mode="before")
    @classmethod
    def _ccg_code_is_sub_icb_code(cls, data: Any) -> Any:
        # Old registries say ccg_code; the code carried over as the sub-ICB location code.
        if isinstance(data, Mapping) and "ccg_code" in data:
            data = dict(data)
            ccg = data.pop("ccg_code")
            sub_icb = data.get("sub_icb_code")
            if sub_icb is not None and ccg is not None and sub_icb != ccg:
                raise ValueError(f"ccg_code {ccg!r} and sub_icb_code {sub_icb!r} disagree; keep sub_icb_code")
            if sub_icb is None:
                data["sub_icb_code"] = ccg
        return data

    @property
    def ccg_code(self) -> str | None:
        """Deprecated alias of `sub_icb_code` (for callers written before the rename)."""
        return self.sub_icb_code

    @field_validator("service_root")
    @classmethod
    def _service_root_shape(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        if value.endswith("/"):
            raise ValueError("must not end with '/' (GP Connect service roots have no trailing slash)")
        return value

    @field_validator("booking_hubs")
    @classmethod
    def _hub_codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [code for code in value if not re.fullmatch(ODS_PRACTICE_PATTERN, code)]
        if bad:
            raise ValueError(f"hub ODS codes must match {ODS_PRACTICE_PATTERN}: {bad}")
        return value

    @model_validator(mode="after")
    def _111_provider_required(self) -> Practice:
        if self.accepts_111_booking and not self.nhs111_provider_ods:
            raise ValueError("nhs111_provider_ods is required when accepts_111_booking is true")
        return self

    @property
    def nhs111_quota(self) -> int:
        """Contractual minimum NHS 111 slots per core day (GMS 7.9B.1)."""
        return nhs111_daily_quota(self.list_size)


class BookingOrganisation(BaseModel):
    """An organisation that books into practices (an NHS 111 provider or a hub) and exports
    a log of what it booked; the pipeline confirms each booking with Read Appointment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ods_code: str = Field(pattern=ODS_ORG_PATTERN)
    name: str = Field(min_length=1)
    kind: Literal["nhs111", "hub"]
    booking_log_url: str = Field(description="where its export of GP Connect bookings is served")
    booking_log_format: Literal["json", "csv"] = "json"

    @field_validator("booking_log_url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value


def url_problem(url: str) -> str | None:
    """Why an outbound URL from a registry must not be used, or None.

    The bearer JWT and patient-level requests go to these URLs, so: `https` unless the host
    is loopback (the sandbox, a local SSP tunnel), no `user:pass@` (secrets belong in
    settings), and never a link-local or cloud-metadata address (a registry row must not
    be able to point the run at the host's own credentials service).
    """
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError as exc:
        return f"is not a valid URL: {exc}"
    if not host:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "must not carry user:password@ (credentials belong in settings, not the registry)"
    address = _ip(host)
    if host in METADATA_NAMES or (
        address is not None
        and (address.is_link_local or any(address in net for net in METADATA_ADDRESSES))
    ):
        return f"host {host} is a link-local or cloud-metadata address"
    loopback = host in LOOPBACK_NAMES or (address is not None and address.is_loopback)
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        return f"must be https (plain http only for loopback hosts, not {host})"
    return None


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host literal names, including legacy IPv4 forms (2852039166, 0xa9fea9fe)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        try:  # the resolver accepts these numeric spellings, so they are addresses too
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _url_problems(label: str, fields: Mapping[str, str | None]) -> list[str]:
    return [
        f"{label} field {name}: {problem}"
        for name, url in fields.items()
        if url is not None and (problem := url_problem(url)) is not None
    ]


def _other_practice_codes(practice: Practice, known: set[str]) -> list[str]:
    """ODS codes of *other* registry practices that the service root names (a copy-paste slip)."""
    segments = urlsplit(practice.service_root).path.split("/")
    return sorted({s for s in segments if s in known and s != practice.ods_code})


def nhs111_daily_quota(list_size: int) -> int:
    """`max(1, floor(list_size / 3000))`: one per whole 3,000 patients, at least one."""
    return max(1, list_size // 3000)


class RegistryError(ValueError):
    """A registry file that cannot be used; `problems` lists every row/field at fault."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"registry {source} has {len(self.problems)} problem(s); fix them and load again:\n"
            f"{listing}"
        )


class Registry(BaseModel):
    """A validated set of practices and hubs (unique by ODS code) and booking organisations."""

    practices: tuple[Practice, ...]
    booking_organisations: tuple[BookingOrganisation, ...] = ()
    notes: tuple[str, ...] = Field(default=(), exclude=True, description="deprecations seen on load")

    def by_ods(self) -> dict[str, Practice]:
        return {p.ods_code: p for p in self.practices}

    def get(self, ods_code: str) -> Practice:
        for practice in self.practices:
            if practice.ods_code == ods_code:
                return practice
        raise KeyError(f"practice {ods_code} is not in the registry")

    def to_yaml(self) -> str:
        rows = [p.model_dump(mode="json", exclude_defaults=False) for p in self.practices]
        for row in rows:
            row["booking_hubs"] = list(row["booking_hubs"])
        document: dict[str, Any] = {"practices": rows}
        if self.booking_organisations:
            document["booking_organisations"] = [
                org.model_dump(mode="json") for org in self.booking_organisations
            ]
        return dump_yaml(document)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_yaml(), encoding="utf-8")
        tmp.replace(path)


def validate_rows(
    rows: Iterable[Any], source: str, booking_org_rows: Iterable[Any] = ()
) -> Registry:
    """Validate raw rows into a `Registry`, collecting every problem before raising."""
    problems: list[str] = []
    practices: list[Practice] = []
    seen: dict[str, int] = {}
    deprecated_rows: list[str] = []
    for index, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            problems.append(f"row {index}: expected a mapping of fields, got {type(row).__name__}")
            continue
        label = _row_label(index, row)
        if "ccg_code" in row:
            deprecated_rows.append(label)
        try:
            practice = Practice.model_validate(dict(row))
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(part) for part in err["loc"]) or "(row)"
                problems.append(f"{label} field {field}: {err['msg']}")
            continue
        if practice.ods_code in seen:
            problems.append(
                f"{label} field ods_code: duplicate of row {seen[practice.ods_code]}"
            )
            continue
        url_problems = _url_problems(label, {
            "service_root": practice.service_root,
            "release_policy.supplier_api_root": practice.release_policy.supplier_api_root,
        })
        if url_problems:
            problems.extend(url_problems)
            continue
        seen[practice.ods_code] = index
        practices.append(practice)
    known = set(seen)
    warnings: list[str] = []
    for practice in practices:
        others = _other_practice_codes(practice, known)
        if others:
            warnings.append(
                f"{source}: practice {practice.ods_code} service_root names practice "
                f"{', '.join(others)}; check it is not copied from another row"
            )
        missing = [hub for hub in practice.booking_hubs if hub not in known]
        if missing:
            problems.append(
                f"practice {practice.ods_code} field booking_hubs: hubs {missing} are not in the registry"
            )
    organisations = _validate_booking_orgs(booking_org_rows, problems)
    if problems:
        raise RegistryError(source, problems)
    if not practices:
        raise RegistryError(source, ["no practices listed under 'practices:'"])
    notes: tuple[str, ...] = tuple(warnings)
    if deprecated_rows:
        notes += (f"{source}: {len(deprecated_rows)} row(s) ({deprecated_rows[0]} first): "
                  f"{CCG_CODE_DEPRECATION}",)
    return Registry(
        practices=tuple(practices), booking_organisations=tuple(organisations), notes=notes
    )


def _validate_booking_orgs(rows: Iterable[Any], problems: list[str]) -> list[BookingOrganisation]:
    organisations: list[BookingOrganisation] = []
    seen: set[str] = set()
    for index, row in enumerate(rows, start=1):
        where = _row_label(index, row) if isinstance(row, Mapping) else f"row {index}"
        label = f"booking_organisations {where}"
        if not isinstance(row, Mapping):
            problems.append(f"{label}: expected a mapping of fields, got {type(row).__name__}")
            continue
        try:
            organisation = BookingOrganisation.model_validate(dict(row))
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(part) for part in err["loc"]) or "(row)"
                problems.append(f"{label} field {field}: {err['msg']}")
            continue
        if organisation.ods_code in seen:
            problems.append(f"{label} field ods_code: duplicate booking organisation")
            continue
        url_problems = _url_problems(label, {"booking_log_url": organisation.booking_log_url})
        if url_problems:
            problems.extend(url_problems)
            continue
        seen.add(organisation.ods_code)
        organisations.append(organisation)
    return organisations


def _row_label(index: int, row: Mapping[str, Any]) -> str:
    ods = row.get("ods_code")
    return f"row {index} ({ods})" if isinstance(ods, str) and ods else f"row {index}"


def load_registry(path: Path) -> Registry:
    """Load and validate a registry YAML file."""
    try:
        size = path.stat().st_size
        if size > MAX_REGISTRY_BYTES:
            raise RegistryError(str(path), [
                f"file is {size:,} bytes, over the {MAX_REGISTRY_BYTES:,}-byte limit for a registry"
            ])
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise RegistryError(
            str(path), [f"not UTF-8 text: byte {exc.object[exc.start]:#04x} at offset {exc.start}"]
        ) from exc
    too_deep = f"nested more than {MAX_REGISTRY_DEPTH} levels deep; a registry is a list of flat rows"
    try:
        document = load_yaml(text)
    except yaml.YAMLError as exc:
        raise RegistryError(str(path), [f"not valid YAML: {exc}"]) from exc
    except RecursionError:
        raise RegistryError(str(path), [too_deep]) from None
    if _depth_exceeds(document, MAX_REGISTRY_DEPTH):
        raise RegistryError(str(path), [too_deep])
    if not isinstance(document, Mapping) or not isinstance(document.get("practices"), list):
        raise RegistryError(str(path), ["top level must be a mapping with a 'practices:' list"])
    organisations = document.get("booking_organisations") or []
    if not isinstance(organisations, list):
        raise RegistryError(str(path), ["'booking_organisations:' must be a list"])
    return validate_rows(document["practices"], str(path), organisations)


def _depth_exceeds(document: Any, limit: int) -> bool:
    """Whether containers nest deeper than `limit` (iterative: a deep document cannot recurse)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Mapping):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


# Column names seen in NHS Digital publications (ODS epraccur, "Patients registered at a GP
# practice", the 111 direct-booking workbook) mapped to our fields.
_CSV_ALIASES: dict[str, tuple[str, ...]] = {
    "ods_code": ("ods_code", "ods code", "practice_code", "practice code", "code", "gp_code",
                 "organisation code", "org_code"),
    "name": ("name", "practice_name", "practice name", "gp_name", "organisation name"),
    "list_size": ("list_size", "list size", "number_of_patients", "patients", "population",
                  "registered patients"),
    "clinical_system": ("clinical_system", "clinical system", "supplier", "system",
                        "gp system", "principal supplier"),
    "postcode": ("postcode", "post code", "postcode_1"),
    "sub_icb_code": ("sub_icb_code", "sub_icb_location_code", "sub icb location code", "ccg_code",
                     "ccg code"),
    "accepts_111_booking": ("live_with_111_booking", "live with 111 booking", "accepts_111_booking"),
    "nhs111_provider": ("nhs111_provider", "111 provider", "nhs111_provider_name"),
}

_SYSTEM_NAMES = {
    "emis": "EMIS Web", "emis web": "EMIS Web", "emis health": "EMIS Web",
    "tpp": "SystmOne", "systmone": "SystmOne", "tpp systmone": "SystmOne",
}
_YES = {"yes", "y", "true", "1", "live"}
_NO = {"no", "n", "false", "0", "not live", ""}


def _placeholder_asid(ods: str) -> str:
    digest = hashlib.sha256(ods.encode()).hexdigest()
    return f"{int(digest[:15], 16) % 10**12:012d}"


EXAMPLE_SERVICE_ROOT_TEMPLATE = "https://host/{ods}/STU3/1/gpconnect"


def check_service_root_template(template: str) -> str | None:
    """None if `template` is usable, else a one-line reason (only `{ods}` may be substituted)."""
    try:
        parsed = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as exc:
        return f"service root template {template!r} is not a valid template: {exc}"
    fields = [name for name, _, _ in parsed]
    # A conversion or format spec ({ods!r}, {ods:>9}) would put quotes or padding in the URL.
    bad = sorted({f"{{{name}{'!' + conv if conv else ''}{':' + spec if spec else ''}}}"
                  for name, spec, conv in parsed if name != "ods" or spec or conv})
    if bad:
        return (f"service root template {template!r} has placeholder(s) {', '.join(bad)}; "
                "only {ods} is allowed")
    if "ods" not in fields:
        return f"service root template {template!r} must contain {{ods}}"
    try:
        example = template.format(ods="A00000")
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        return f"service root template {template!r} is not a valid template: {exc}"
    problem = url_problem(example)
    return f"service root template {template!r} {problem}" if problem else None


@dataclass(frozen=True)
class SkippedRow:
    """One CSV row left out of an import, and why."""

    line: int
    ods_code: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line} ({self.ods_code or '?'}) field {self.field}: {self.reason}"


@dataclass(frozen=True)
class CsvImport:
    """What `import_nhs_csv` made of a CSV: the registry of good rows and the skipped ones."""

    registry: Registry
    skipped: tuple[SkippedRow, ...]
    rows_read: int


ProviderLookup = Mapping[str, str]


def normalise_provider_name(name: str) -> str:
    """Case- and space-insensitive key for a 111 provider name."""
    return " ".join(name.casefold().split())


def import_nhs_csv(
    text: str,
    *,
    source: str,
    service_root_template: str,
    skip_invalid: bool = False,
    asid_for: Mapping[str, str] | None = None,
    nhs111_provider_ods: str | None = None,
    provider_ods_by_name: ProviderLookup | None = None,
) -> CsvImport:
    """Import an NHS Digital practice list CSV, using every column it recognises.

    `live_with_111_booking` sets `accepts_111_booking`; the 111 provider *name* maps to its
    ODS code through `provider_ods_by_name` (keys from `normalise_provider_name`); a live row
    whose provider is not in the mapping is a row problem, never a guess. `nhs111_provider_ods`
    overrides both for every row (the old `--nhs111-provider`). `ccg_code` is read as the
    sub-ICB location code. Without `skip_invalid` any row problem raises `RegistryError`
    listing all of them; with it the good rows are returned with the skipped ones.
    """
    template_problem = check_service_root_template(service_root_template)
    if template_problem:
        raise RegistryError(source, [template_problem])
    # Universal newlines: a lone CR (old Mac exports) ends a line instead of breaking the reader.
    reader = csv.DictReader(io.StringIO(text, newline=None))
    try:
        records = list(reader)
    except csv.Error as exc:
        raise RegistryError(source, [f"line {reader.line_num}: not readable as CSV: {exc}"]) from exc
    headers = {h.strip().lower(): h for h in (reader.fieldnames or [])}
    columns: dict[str, str] = {}
    for field, aliases in _CSV_ALIASES.items():
        for alias in aliases:
            if alias in headers:
                columns[field] = headers[alias]
                break
    missing = [f for f in ("ods_code", "name", "list_size") if f not in columns]
    if missing:
        raise RegistryError(
            source,
            [f"no column for {m} (accepted names: {', '.join(_CSV_ALIASES[m])})" for m in missing],
        )
    providers = {normalise_provider_name(k): v for k, v in (provider_ods_by_name or {}).items()}

    def cell(raw: Mapping[str, str | None], field: str) -> str:
        column = columns.get(field)
        return (raw.get(column) or "").strip() if column else ""

    skipped: list[SkippedRow] = []
    practices: list[Practice] = []
    seen: dict[str, int] = {}
    # DictReader rows do not carry their physical line; count from the header (line 1).
    for line_no, raw in enumerate(records, start=2):
        ods = cell(raw, "ods_code").upper()
        size_text = cell(raw, "list_size").replace(",", "")
        if not size_text.isdigit():
            skipped.append(SkippedRow(line_no, ods, "list_size", f"{size_text!r} is not a count"))
            continue
        accepts, provider_ods, problem = _nhs111_columns(
            cell(raw, "accepts_111_booking") if "accepts_111_booking" in columns else None,
            cell(raw, "nhs111_provider"), nhs111_provider_ods, providers,
        )
        if problem is not None:
            skipped.append(SkippedRow(line_no, ods, *problem))
            continue
        row: dict[str, Any] = {
            "ods_code": ods,
            "name": cell(raw, "name"),
            "list_size": int(size_text),
            "clinical_system": _SYSTEM_NAMES.get(cell(raw, "clinical_system").lower(), "other"),
            "kind": "practice",
            "service_root": service_root_template.format(ods=ods),
            "provider_asid": (asid_for or {}).get(ods, _placeholder_asid(ods)),
            "accepts_111_booking": accepts,
            "nhs111_provider_ods": provider_ods,
            "sub_icb_code": cell(raw, "sub_icb_code").upper() or None,
            "postcode": cell(raw, "postcode").upper() or None,
        }
        try:
            practice = Practice.model_validate(row)
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(part) for part in err["loc"]) or "(row)"
                skipped.append(SkippedRow(line_no, ods, field, err["msg"]))
            continue
        if practice.ods_code in seen:
            first = seen[practice.ods_code]
            skipped.append(SkippedRow(line_no, ods, "ods_code", f"duplicate of line {first}"))
            continue
        root_problem = url_problem(practice.service_root)
        if root_problem:
            skipped.append(SkippedRow(line_no, ods, "service_root", root_problem))
            continue
        seen[practice.ods_code] = line_no
        practices.append(practice)
    if skipped and not skip_invalid:
        raise RegistryError(source, [str(row) for row in skipped])
    if not practices:
        raise RegistryError(source, ["no importable rows", *(str(row) for row in skipped)])
    return CsvImport(Registry(practices=tuple(practices)), tuple(skipped), len(records))


def _nhs111_columns(
    live: str | None, provider_name: str, override_ods: str | None, providers: Mapping[str, str]
) -> tuple[bool, str | None, tuple[str, str] | None]:
    """(accepts_111_booking, nhs111_provider_ods, problem as (field, reason) or None)."""
    if override_ods is not None:
        return True, override_ods, None
    if live is None:
        return False, None, None
    flag = live.strip().lower()
    if flag not in _YES and flag not in _NO:
        return False, None, ("live_with_111_booking", f"{live!r} is not Yes or No")
    provider_ods = providers.get(normalise_provider_name(provider_name)) if provider_name else None
    if flag in _YES and provider_ods is None:
        reason = (f"111 provider {provider_name!r} is not in the provider mapping; add its ODS code"
                  if provider_name else "live with 111 booking but no 111 provider named")
        return False, None, ("nhs111_provider", reason)
    return flag in _YES, provider_ods if flag in _YES else None, None


def registry_from_nhs_csv(
    text: str,
    *,
    source: str,
    service_root_template: str,
    asid_for: Mapping[str, str] | None = None,
    nhs111_provider_ods: str | None = None,
    provider_ods_by_name: ProviderLookup | None = None,
) -> Registry:
    """Build a registry from an NHS Digital practice list CSV, refusing any bad row.

    `service_root_template` must contain `{ods}` (and nothing else in braces); ASIDs come from
    `asid_for` (e.g. an SDS export) or a deterministic placeholder that the Spine would reject,
    so the operator must supply real ones (or use `slotsync registry build`) before syncing live.
    """
    return import_nhs_csv(
        text, source=source, service_root_template=service_root_template, asid_for=asid_for,
        nhs111_provider_ods=nhs111_provider_ods, provider_ods_by_name=provider_ods_by_name,
    ).registry
