"""Planned misbehaviour and traffic counting for GP Connect requests.

A `FaultRule` makes matching requests (one practice or `*`, optionally one interaction)
fail the way real providers and the Spine do: an error status (401/403/429 with
Retry-After/500/502/503/504), extra latency, a connection reset mid-body, a truncated JSON
body, a non-FHIR content type, a stall past the client's timeout, a trickle (the answer's
body sent one byte every `delay_s`, each byte inside the read timeout, so only a total
deadline ends it) or a 302 redirect to another host whose body is the real FHIR Bundle
(never to be followed or loaded). Body faults answer
200 with a well-formed body that is wrong in one way (`BODY_FAULTS`, see `mutate_bundle`):
oversized, schema drift (unknown elements added, optional elements missing) or semantically
wrong data (a slot ending before it starts, a slot referencing a schedule the bundle lacks,
a slot id twice in one bundle, offsets contradicting UK daylight saving time), for the
reliability suite; or a payload of the wrong shape (`entry_object`: `Bundle.entry` an object,
not an array) or the provider's error sent as a success (`outcome_ok`: an OperationOutcome
with HTTP 200). `bad_data` sends a slot searchset with one semantic defect (`defect`,
see `corrupt_bundle`), for the data-quality tests: those above, a slot outside the search
window, or no slots at all. `count` limits how many requests a rule affects; `None` keeps it
active until cleared. The first matching rule wins, in the order the rules were added.

`TrafficCounter` counts GP Connect requests per (practice, interaction), so tests can
assert which practices a sync actually fetched.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections import Counter
from datetime import timedelta
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.uktime import format_uk, parse_fhir_datetime
from connectors.gpconnect.spine import Interaction

FaultKind = Literal[
    "status", "latency", "reset", "truncate", "wrong_content_type", "stall", "trickle", "redirect",
    "oversize", "schema_extra", "schema_missing",
    "end_before_start", "dangling_schedule", "duplicate_slot", "dst_offset", "outside_window", "no_slots",
    "entry_object", "outcome_ok",
]
# Faults that rewrite a successful response's JSON body (slot-search bundles and resources).
BODY_FAULTS = frozenset(
    {"oversize", "schema_extra", "schema_missing", "end_before_start", "dangling_schedule",
     "duplicate_slot", "dst_offset", "outside_window", "no_slots", "entry_object", "outcome_ok"}
)
# How far `outside_window` moves a slot: past any 14-day search window.
OUTSIDE_WINDOW_SHIFT = timedelta(days=400)

DEFAULT_LATENCY_S = 1.0
DEFAULT_STALL_S = 30.0
DEFAULT_TRICKLE_S = 1.0  # between two bytes of a trickled body
REDIRECT_LOCATION = "https://elsewhere.invalid/gpconnect"
DEFAULT_PAD_BYTES = 8 * 1024 * 1024
MISSING_SCHEDULE_REFERENCE = "Schedule/sandbox-missing-schedule"
_DEFAULT_SPINE_CODES = {
    400: "BAD_REQUEST",
    401: "ACCESS_DENIED",
    403: "ACCESS_DENIED",
    404: "NO_RECORD_FOUND",
    409: "DUPLICATE_REJECTED",
    422: "INVALID_RESOURCE",
    429: "TOO_MANY_REQUESTS",
}


class FaultRule(BaseModel):
    """One planned fault; the JSON body of `POST /_sandbox/faults` has the same fields."""

    model_config = ConfigDict(extra="forbid")

    practice: str = Field(default="*", description="ODS code, or '*' for every practice")
    interaction: str | None = Field(default=None, description="Interaction name, e.g. SEARCH_SLOTS")
    kind: FaultKind
    status: int = Field(default=503, ge=400, le=599)
    spine_code: str | None = None
    retry_after_s: float | None = Field(default=None, ge=0)
    delay_s: float | None = Field(
        default=None, ge=0, description="latency, stall: the wait; trickle: between bytes"
    )
    count: int | None = Field(default=None, ge=1, description="requests affected; None = until cleared")
    pad_bytes: int = Field(default=DEFAULT_PAD_BYTES, ge=1, description="oversize: bytes of padding added")

    @field_validator("interaction")
    @classmethod
    def _known_interaction(cls, value: str | None) -> str | None:
        if value is not None and value not in Interaction.__members__:
            raise ValueError(f"unknown interaction {value!r}; use one of {sorted(Interaction.__members__)}")
        return value

    @property
    def error_code(self) -> str:
        default = "INTERNAL_SERVER_ERROR" if self.status >= 500 else "BAD_REQUEST"
        return self.spine_code or _DEFAULT_SPINE_CODES.get(self.status, default)

    @property
    def delay(self) -> float:
        if self.delay_s is not None:
            return self.delay_s
        if self.kind == "trickle":
            return DEFAULT_TRICKLE_S
        return DEFAULT_STALL_S if self.kind == "stall" else DEFAULT_LATENCY_S


# Optional elements dropped by `schema_missing`, per resource type (STU3 cardinality 0..*).
_OPTIONAL_ELEMENTS = {
    "Slot": ("serviceType", "extension", "comment", "meta", "identifier"),
    "Schedule": ("serviceCategory", "planningHorizon", "comment", "identifier"),
    "Location": ("address", "telecom", "managingOrganization"),
    "Practitioner": ("name", "gender", "identifier"),
    "Organization": ("telecom", "address"),
}


def mutate_bundle(rule: FaultRule, body: bytes) -> bytes:
    """`body` (a JSON object) rewritten the way the body fault `rule.kind` says.

    Semantic faults change the first Slot of a bundle (all of them for `dst_offset`;
    `no_slots` drops every Slot and Schedule); a body without a Slot (an empty searchset, a
    single resource) is returned unchanged.
    """
    document = orjson.loads(body)
    if not isinstance(document, dict):
        return body
    if rule.kind == "outcome_ok":
        return orjson.dumps({"resourceType": "OperationOutcome", "issue": [{
            "severity": "error", "code": "processing",
            "diagnostics": "Slot search failed: the appointment book is being rebuilt"}]})
    if rule.kind == "oversize":
        # Valid JSON, just far too big: an unknown element of padding at the end.
        return body[: body.rindex(b"}")] + b',"sandboxPadding":"' + b"x" * rule.pad_bytes + b'"}'
    resources = [
        entry["resource"] for entry in document.get("entry") or []
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
    ] or [document]
    slots = [r for r in resources if r.get("resourceType") == "Slot"]
    if rule.kind == "schema_extra":
        document["sandboxUnknownElement"] = {"note": "not in STU3", "values": [1, 2, 3]}
        for resource in resources:
            resource["sandboxUnknownElement"] = {"nested": {"deeper": [True, None, 1.5]}}
            resource.setdefault("extension", []).append(
                {"url": "https://sandbox.invalid/Extension-Unknown", "valueString": "drift"}
            )
    elif rule.kind == "schema_missing":
        for resource in resources:
            for element in _OPTIONAL_ELEMENTS.get(str(resource.get("resourceType")), ()):
                resource.pop(element, None)
    elif not slots:
        return body
    elif rule.kind == "no_slots":
        # A practice that suddenly returns an empty diary: a searchset with nothing to book.
        document["entry"] = [
            entry for entry in document["entry"]
            if not (isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
                    and entry["resource"].get("resourceType") in ("Slot", "Schedule"))
        ]
    elif rule.kind == "entry_object":
        document["entry"] = document["entry"][0]
    elif rule.kind == "end_before_start":
        slots[0]["start"], slots[0]["end"] = slots[0]["end"], slots[0]["start"]
    elif rule.kind == "dangling_schedule":
        slots[0]["schedule"] = {"reference": MISSING_SCHEDULE_REFERENCE}
    elif rule.kind == "duplicate_slot":
        entries = document["entry"]
        first = next(i for i, e in enumerate(entries) if e.get("resource") is slots[0])
        entries.insert(first + 1, copy.deepcopy(entries[first]))
    elif rule.kind == "outside_window":
        for key in ("start", "end"):
            slots[0][key] = format_uk(parse_fhir_datetime(str(slots[0][key])) + OUTSIDE_WINDOW_SHIFT)
    elif rule.kind == "dst_offset":
        # Same wall-clock time, the other UK offset: 09:00+00:00 in summer, +01:00 in winter.
        for slot in slots:
            for key in ("start", "end"):
                slot[key] = _other_uk_offset(str(slot[key]))
    return orjson.dumps(document)


def _other_uk_offset(text: str) -> str:
    if text.endswith(("+00:00", "Z")):
        return text.removesuffix("Z").removesuffix("+00:00") + "+01:00"
    if text.endswith("+01:00"):
        return text.removesuffix("+01:00") + "+00:00"
    return text


class FaultInjector:
    """The active fault rules; thread-safe, so tests can arm faults while a sync runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._rules: dict[int, FaultRule] = {}
        self._remaining: dict[int, int | None] = {}
        self._aborts_pending = 0
        self._injected: Counter[int] = Counter()

    def add(self, rule: FaultRule) -> int:
        with self._lock:
            rule_id = next(self._ids)
            self._rules[rule_id] = rule
            self._remaining[rule_id] = rule.count
            return rule_id

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._remaining.clear()

    def active(self) -> list[tuple[int, FaultRule, int | None]]:
        """(id, rule, requests still to affect) for every active rule."""
        with self._lock:
            return [(i, rule, self._remaining[i]) for i, rule in self._rules.items()]

    def take(self, practice: str, interaction: Interaction) -> FaultRule | None:
        """The rule that applies to this request, if any, using up one of its count."""
        with self._lock:
            for rule_id, rule in self._rules.items():
                if rule.practice not in ("*", practice):
                    continue
                if rule.interaction is not None and rule.interaction != interaction.name:
                    continue
                remaining = self._remaining[rule_id]
                if remaining is not None:
                    if remaining <= 1:
                        del self._rules[rule_id], self._remaining[rule_id]
                    else:
                        self._remaining[rule_id] = remaining - 1
                self._injected[rule_id] += 1
                return rule
            return None

    def injected(self, rule_id: int | None = None) -> int:
        """Requests a rule (or, without an id, every rule so far) has affected."""
        with self._lock:
            if rule_id is None:
                return sum(self._injected.values())
            return self._injected[rule_id]

    def note_abort(self) -> None:
        """A reset fault just dropped a connection on purpose (the server will complain)."""
        with self._lock:
            self._aborts_pending += 1

    def claim_abort(self) -> bool:
        """True once per deliberate abort: lets the server silence its own complaint."""
        with self._lock:
            if self._aborts_pending == 0:
                return False
            self._aborts_pending -= 1
            return True


class TrafficCounter:
    """GP Connect requests received, per (practice ODS, interaction name)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def record(self, practice: str, interaction: Interaction) -> None:
        with self._lock:
            self._counts[(practice, interaction.name)] += 1

    def counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)

    def practices(self, interaction: Interaction | None = None) -> set[str]:
        """Practices that received at least one request (of `interaction`, if given)."""
        with self._lock:
            return {
                practice
                for (practice, name), count in self._counts.items()
                if count and (interaction is None or name == interaction.name)
            }

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
