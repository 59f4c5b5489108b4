"""Planned misbehaviour and traffic counting for GP Connect requests.

A `FaultRule` makes matching requests (one practice or `*`, optionally one interaction)
fail the way real providers and the Spine do: an error status (401/403/429 with
Retry-After/500/502/503/504), extra latency, a connection reset mid-body, a truncated JSON
body, a non-FHIR content type, or a stall past the client's timeout. `bad_data` instead sends
a well-formed slot searchset with one semantic defect (`defect`), for data-quality tests: a
slot that ends before it starts, one referencing a Schedule missing from the bundle, a slot
repeated in the bundle, offsets that contradict UK daylight saving (same instants), a slot
outside the search window, or no slots at all. `count` limits how many requests a rule
affects; `None` keeps it active until cleared. The first matching rule wins, in the order
the rules were added.

`TrafficCounter` counts GP Connect requests per (practice, interaction), so tests can
assert which practices a sync actually fetched.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from datetime import timedelta, timezone
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.gpconnect.spine import Interaction
from connectors.uktime import format_uk, parse_fhir_datetime

FaultKind = Literal["status", "latency", "reset", "truncate", "wrong_content_type", "stall", "bad_data"]
Defect = Literal[
    "end_before_start", "missing_schedule", "duplicate_slot", "wrong_offset", "outside_window", "no_slots"
]

DEFAULT_LATENCY_S = 1.0
DEFAULT_STALL_S = 30.0
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
    delay_s: float | None = Field(default=None, ge=0)
    count: int | None = Field(default=None, ge=1, description="requests affected; None = until cleared")
    defect: Defect | None = Field(default=None, description="kind bad_data: what is wrong with the slots")

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
        return DEFAULT_STALL_S if self.kind == "stall" else DEFAULT_LATENCY_S


def corrupt_bundle(body: bytes, defect: Defect) -> bytes:
    """A slot searchset with one semantic defect (the first slot's, or every slot gone)."""
    bundle: dict[str, Any] = orjson.loads(body)
    entries: list[dict[str, Any]] = bundle.get("entry") or []
    slots = [e for e in entries if e.get("resource", {}).get("resourceType") == "Slot"]
    if defect == "no_slots":
        bundle["entry"] = [e for e in entries
                           if e.get("resource", {}).get("resourceType") not in ("Slot", "Schedule")]
        return orjson.dumps(bundle)
    if not slots:
        return body
    slot = slots[0]["resource"]
    start, end = parse_fhir_datetime(slot["start"]), parse_fhir_datetime(slot["end"])
    if defect == "end_before_start":
        slot["start"], slot["end"] = slot["end"], slot["start"]
    elif defect == "missing_schedule":
        slot["schedule"] = {"reference": "Schedule/not-in-this-bundle"}
    elif defect == "duplicate_slot":
        entries.append(orjson.loads(orjson.dumps(slots[0])))
    elif defect == "wrong_offset":
        # The same instants, written with the offset UK time does not have then.
        wrong = timezone(timedelta(hours=0 if format_uk(start).endswith("+01:00") else 1))
        slot["start"] = start.astimezone(wrong).isoformat()
        slot["end"] = end.astimezone(wrong).isoformat()
    elif defect == "outside_window":
        later = timedelta(days=400)
        slot["start"], slot["end"] = format_uk(start + later), format_uk(end + later)
    return orjson.dumps(bundle)


class FaultInjector:
    """The active fault rules; thread-safe, so tests can arm faults while a sync runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._rules: dict[int, FaultRule] = {}
        self._remaining: dict[int, int | None] = {}
        self._aborts_pending = 0

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
                return rule
            return None

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
