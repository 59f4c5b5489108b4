"""File sources for a registry build: list sizes, 111 status, 111 provider names, hubs.

- **List sizes**: NHS Digital's monthly "Patients Registered at a GP Practice" CSV
  (`gp-reg-pat-prac-all.csv`: `PUBLICATION, EXTRACT_DATE, TYPE, CODE, SUB_ICB_LOCATION_CODE,
  ONS_SUB_ICB_LOCATION_CODE, POSTCODE, SEX, AGE, NUMBER_OF_PATIENTS`; one `TYPE=GP, SEX=ALL,
  AGE=ALL` row per practice). Only the columns named in `_LIST_SIZE_COLUMNS` are required.
- **111 status**: the 111 direct-booking workbook as CSV (`ods_code`, `live_with_111_booking`,
  `nhs111_provider`, `clinical_system`...), the provider *name* mapped to its ODS code by
  `ProviderMapping` (the documented `nhs111_providers.yaml` shipped here, or the ICB's own).
- **Hubs**: extended-access hubs and the practices they book into are local arrangements the
  national data does not carry; the ICB keeps them in a small YAML file (`HubFile`), validated
  with every problem listed at once.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.registry import (
    ODS_ORG_PATTERN,
    ODS_PRACTICE_PATTERN,
    BookingOrganisation,
    ClinicalSystem,
    ReleasePolicy,
    normalise_provider_name,
)

DEFAULT_PROVIDER_MAPPING = Path(__file__).with_name("nhs111_providers.yaml")
_SYSTEM_NAMES: dict[str, ClinicalSystem] = {
    "emis": "EMIS Web",
    "emis web": "EMIS Web",
    "tpp": "SystmOne",
    "systmone": "SystmOne",
}


class SourceError(ValueError):
    """A source file that cannot be used at all (one line, names the file)."""


@dataclass(frozen=True)
class ListSizes:
    """Registered patients per practice, from one monthly extract."""

    sizes: dict[str, int]
    extract_date: str | None
    problems: tuple[str, ...]


def parse_list_sizes(text: str, source: str) -> ListSizes:
    """Parse the "Patients Registered at a GP Practice" all-persons CSV."""
    reader = csv.DictReader(io.StringIO(text, newline=None))
    headers = {h.strip().upper(): h for h in reader.fieldnames or []}
    code_col = headers.get("CODE") or headers.get("PRACTICE_CODE")
    count_col = headers.get("NUMBER_OF_PATIENTS")
    if code_col is None or count_col is None:
        raise SourceError(
            f"{source}: needs CODE and NUMBER_OF_PATIENTS columns (the NHS Digital "
            f"'Patients Registered at a GP Practice' all-persons CSV)"
        )
    sizes: dict[str, int] = {}
    problems: list[str] = []
    extract_date: str | None = None
    for line_no, row in enumerate(reader, start=2):
        if any(
            (row.get(headers[col]) or "ALL").strip().upper() not in want
            for col, want in (("TYPE", {"GP"}), ("SEX", {"ALL"}), ("AGE", {"ALL"}))
            if col in headers
        ):
            continue  # breakdown rows (by sex/age) or non-practice rows
        code = (row.get(code_col) or "").strip().upper()
        count = (row.get(count_col) or "").strip().replace(",", "")
        if not count.isdigit():
            problems.append(
                f"{source} line {line_no} ({code or '?'}): NUMBER_OF_PATIENTS {count!r} is not a count"
            )
            continue
        sizes[code] = int(count)
        if extract_date is None and "EXTRACT_DATE" in headers:
            extract_date = (row.get(headers["EXTRACT_DATE"]) or "").strip() or None
    return ListSizes(sizes, extract_date, tuple(problems))


@dataclass(frozen=True)
class Nhs111Status:
    accepts_111_booking: bool
    nhs111_provider_ods: str | None
    clinical_system: ClinicalSystem | None
    problem: str | None = None


class ProviderMapping:
    """111 provider name -> ODS code (case- and space-insensitive)."""

    def __init__(self, by_name: Mapping[str, str]) -> None:
        self.by_name = {normalise_provider_name(k): v for k, v in by_name.items()}

    @classmethod
    def load(cls, path: Path = DEFAULT_PROVIDER_MAPPING) -> ProviderMapping:
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise SourceError(f"provider mapping {path}: cannot read it: {exc}") from exc
        providers = document.get("providers") if isinstance(document, Mapping) else None
        if not isinstance(providers, list):
            raise SourceError(f"provider mapping {path}: needs a 'providers:' list")
        by_name: dict[str, str] = {}
        for index, entry in enumerate(providers, start=1):
            ods = entry.get("ods_code") if isinstance(entry, Mapping) else None
            names = entry.get("names") if isinstance(entry, Mapping) else None
            if not isinstance(ods, str) or not isinstance(names, list) or not names:
                raise SourceError(f"provider mapping {path}: entry {index} needs ods_code and names")
            for name in names:
                by_name[str(name)] = ods
        return cls(by_name)

    def ods_for(self, name: str) -> str | None:
        return self.by_name.get(normalise_provider_name(name))


def parse_nhs111_workbook(text: str, source: str, providers: ProviderMapping) -> dict[str, Nhs111Status]:
    """111 status per practice from the 111 direct-booking workbook CSV."""
    reader = csv.DictReader(io.StringIO(text, newline=None))
    headers = {h.strip().lower(): h for h in reader.fieldnames or []}
    if "ods_code" not in headers or "live_with_111_booking" not in headers:
        raise SourceError(
            f"{source}: needs ods_code and live_with_111_booking columns (the 111 "
            "direct-booking workbook as CSV)"
        )
    statuses: dict[str, Nhs111Status] = {}
    for line_no, row in enumerate(reader, start=2):

        def cell(name: str, row: Mapping[str, str | None] = row) -> str:
            column = headers.get(name)
            return (row.get(column) or "").strip() if column else ""

        ods = cell("ods_code").upper()
        live = cell("live_with_111_booking").lower()
        system = _SYSTEM_NAMES.get(cell("clinical_system").lower())
        provider_name = cell("nhs111_provider")
        if live not in ("yes", "no"):
            statuses[ods] = Nhs111Status(
                False,
                None,
                system,
                f"{source} line {line_no}: live_with_111_booking {live!r} is not Yes or No",
            )
            continue
        provider_ods = providers.ods_for(provider_name) if provider_name else None
        if live == "yes" and provider_ods is None:
            statuses[ods] = Nhs111Status(
                False,
                None,
                system,
                f"{source} line {line_no}: 111 provider {provider_name!r} is not in the provider mapping",
            )
            continue
        statuses[ods] = Nhs111Status(live == "yes", provider_ods if live == "yes" else None, system)
    return statuses


class HubEntry(BaseModel):
    """One extended-access hub the ICB runs, and whom it books for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ods_code: str = Field(pattern=ODS_PRACTICE_PATTERN)
    name: str = Field(min_length=1)
    clinical_system: ClinicalSystem = "EMIS Web"
    books_into: tuple[str, ...] = Field(default=(), description="practice ODS codes it books into")
    pcns: tuple[str, ...] = Field(default=(), description="or: every practice of these PCNs")
    accepts_111_booking: bool = False
    nhs111_provider_ods: str | None = Field(default=None, pattern=ODS_ORG_PATTERN)
    release_policy: ReleasePolicy = ReleasePolicy()


class HubFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hubs: tuple[HubEntry, ...] = ()
    booking_organisations: tuple[BookingOrganisation, ...] = ()


def load_hub_file(path: Path) -> HubFile:
    """Load and validate the ICB's hub file; every problem is listed in one SourceError."""
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SourceError(f"hub file {path}: cannot read it: {exc}") from exc
    try:
        return HubFile.model_validate(document or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}" for err in exc.errors()
        )
        raise SourceError(f"hub file {path}: {problems}") from None
