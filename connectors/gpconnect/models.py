"""Pydantic models for the small GP Connect resources we validate in Python.

Bulk slot bundles are flattened in DuckDB SQL; only small things (OperationOutcome,
Appointment) are validated here. Models ignore unknown elements and extensions, and are
lenient where the spec's own examples are sloppy (object vs array).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.gpconnect.spine import BOOKING_ORG_URL, ODS_SYSTEM

# How much of a supplier's OperationOutcome text a failure message carries.
OUTCOME_TEXT_CHARS = 240
# Ten digits, optionally spaced 3-3-4: an NHS number (or anything that could be one).
_NHS_NUMBER = re.compile(r"(?<!\d)\d{3}[ -]?\d{3}[ -]?\d{4}(?!\d)")


def _as_list(value: Any) -> Any:
    """STU3 wants arrays; the spec examples sometimes send a single object."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Coding(_Lenient):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class CodeableConcept(_Lenient):
    coding: list[Coding] = Field(default_factory=list)
    text: str | None = None

    _coding_list = field_validator("coding", mode="before")(_as_list)


class Issue(_Lenient):
    severity: str | None = None
    code: str | None = None
    details: CodeableConcept | None = None
    diagnostics: str | None = None


class OperationOutcome(_Lenient):
    resourceType: str
    issue: list[Issue] = Field(default_factory=list)

    _issue_list = field_validator("issue", mode="before")(_as_list)

    @field_validator("resourceType")
    @classmethod
    def _is_outcome(cls, value: str) -> str:
        if value != "OperationOutcome":
            raise ValueError("not an OperationOutcome")
        return value

    @property
    def spine_code(self) -> str | None:
        for issue in self.issue:
            if issue.details:
                for coding in issue.details.coding:
                    if coding.code:
                        return coding.code
        return None

    @property
    def diagnostics(self) -> str | None:
        return next((i.diagnostics for i in self.issue if i.diagnostics), None)

    def summary(self, limit: int = OUTCOME_TEXT_CHARS) -> str | None:
        """Every issue's `code` and `diagnostics` ("invalid: start is not a date; processing"),
        with anything shaped like an NHS number removed and cut to `limit` characters: a
        supplier's diagnostics may quote the request, and the text goes to logs and phones."""
        parts = []
        for issue in self.issue:
            text = " ".join(_NHS_NUMBER.sub("[number removed]", issue.diagnostics or "").split())
            parts.append(": ".join(part for part in (issue.code, text) if part))
        joined = "; ".join(part for part in parts if part)
        if len(joined) > limit:
            joined = joined[: limit - 3].rstrip() + "..."
        return joined or None


class Reference(_Lenient):
    reference: str | None = None


class Meta(_Lenient):
    versionId: str | None = None


class Extension(_Lenient):
    url: str
    valueReference: Reference | None = None
    valueCode: str | None = None
    valueString: str | None = None


class Identifier(_Lenient):
    system: str | None = None
    value: str | None = None


class ContainedResource(_Lenient):
    resourceType: str
    id: str | None = None
    identifier: list[Identifier] = Field(default_factory=list)
    name: str | None = None

    _identifier_list = field_validator("identifier", mode="before")(_as_list)


class Participant(_Lenient):
    actor: Reference | None = None
    status: str | None = None


class Appointment(_Lenient):
    """A GP Connect Appointment; strict on what the warehouse relies on."""

    resourceType: str
    id: str = Field(min_length=1, max_length=64)
    meta: Meta = Meta()
    status: str
    start: str
    end: str
    created: str | None = None
    slot: list[Reference] = Field(min_length=1)
    participant: list[Participant] = Field(default_factory=list)
    extension: list[Extension] = Field(default_factory=list)
    contained: list[ContainedResource] = Field(default_factory=list)
    description: str | None = None

    _lists = field_validator("slot", "participant", "extension", "contained", mode="before")(
        _as_list
    )

    @field_validator("resourceType")
    @classmethod
    def _is_appointment(cls, value: str) -> str:
        if value != "Appointment":
            raise ValueError(f"expected an Appointment, got {value}")
        return value

    @property
    def slot_ids(self) -> list[str]:
        return [ref.reference.split("/", 1)[1] for ref in self.slot if ref.reference and "/" in ref.reference]

    @property
    def booking_org_ods(self) -> str | None:
        ref = next(
            (e.valueReference.reference for e in self.extension
             if e.url == BOOKING_ORG_URL and e.valueReference and e.valueReference.reference),
            None,
        )
        if ref is None:
            return None
        contained_id = ref.lstrip("#")
        for resource in self.contained:
            if resource.id == contained_id:
                return next((i.value for i in resource.identifier if i.system == ODS_SYSTEM), None)
        return None

    @property
    def patient_id(self) -> str | None:
        for participant in self.participant:
            ref = participant.actor.reference if participant.actor else None
            if ref and ref.startswith("Patient/"):
                return ref.split("/", 1)[1]
        return None
