"""Our own words for a slot-search body DuckDB could not read into the loader's typed columns.

The loader reads every landing file with DuckDB's typed `read_json` (the fast path; see
warehouse/sql/load/read_landing_files.sql), so a body whose elements have the wrong JSON
shape (`Bundle.entry` an object instead of an array, a `resource` that is a string, a
Slot's `schedule` that is not an object) fails with DuckDB's own text ("JSON transform
error ... Try setting 'auto_detect' to true"), which names neither the element nor what to
do. Only then, on the failure path and never per slot on the hot path, the offending line
is parsed in Python and walked against `SHAPES`, which mirrors the typed columns, to name
the first element at fault: "Bundle.entry must be an array, got an object (response 1,
searchFilter general)".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

# Element -> the JSON shape the typed read needs; elements read as JSON (serviceType, actor,
# identifier, ...) take any shape and are normalised in the staging models, so are absent.
BUNDLE_SHAPES: dict[str, type] = {"resourceType": str, "entry": list}
RESOURCE_SHAPES: dict[str, type] = {
    "resourceType": str, "id": str, "meta": dict, "schedule": dict, "status": str, "start": str,
    "end": str, "extension": list, "name": str,
}
NESTED_SHAPES: dict[str, dict[str, type]] = {
    "meta": {"versionId": str}, "schedule": {"reference": str},
}
EXTENSION_SHAPES: dict[str, type] = {"url": str, "valueCode": str}
_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
               int: "a number", float: "a number", type(None): "null"}
_LINE = re.compile(r"\bin line (\d+)")
# DuckDB's advice is about its reader options, never the operator's next step.
_DUCKDB_ADVICE = re.compile(r"\s*Try setting 'auto_detect'.*$", re.S)


def _shape(value: Any) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _must(path: str, value: Any, wanted: type) -> str | None:
    if value is None or isinstance(value, wanted):
        return None  # absent or null elements are judged by the staging checks, in SQL
    return f"{path} must be {_JSON_NAMES[wanted]}, got {_shape(value)}"


def bundle_problem(bundle: Any) -> str | None:
    """The first element of a slot-search body whose shape the typed read cannot take."""
    if not isinstance(bundle, dict):
        return f"the body must be a JSON object (a FHIR Bundle), got {_shape(bundle)}"
    for name, wanted in BUNDLE_SHAPES.items():
        if problem := _must(f"Bundle.{name}", bundle.get(name), wanted):
            return problem
    for index, entry in enumerate(bundle.get("entry") or []):
        where = f"Bundle.entry[{index}]"
        entry = {} if entry is None else entry  # a null item is judged by the staging checks
        if problem := _must(where, entry, dict) or _must(f"{where}.resource", entry.get("resource"), dict):
            return problem
        resource = entry.get("resource") or {}
        kind = resource.get("resourceType")
        where = f"{where}.resource" + (f" ({kind})" if isinstance(kind, str) else "")
        for name, wanted in RESOURCE_SHAPES.items():
            if problem := _must(f"{where}.{name}", resource.get(name), wanted):
                return problem
        for name, fields in NESTED_SHAPES.items():
            for field, wanted in fields.items():
                if problem := _must(f"{where}.{name}.{field}", (resource.get(name) or {}).get(field), wanted):
                    return problem
        for number, extension in enumerate(resource.get("extension") or []):
            at = f"{where}.extension[{number}]"
            extension = {} if extension is None else extension
            if problem := _must(at, extension, dict):
                return problem
            for field, wanted in EXTENSION_SHAPES.items():
                if problem := _must(f"{at}.{field}", extension.get(field), wanted):
                    return problem
    return None


def explain_unreadable(path: Path, error: Exception) -> str:
    """Why DuckDB could not read the landing file at `path`, naming the element at fault."""
    found = _LINE.search(str(error))
    named = int(found.group(1)) if found else None
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        return f"the landing file cannot be read ({exc.strerror or exc})"
    # The line DuckDB names first; it does not always count lines as the file does, so then all.
    order = ([named] if named and named <= len(lines) else []) + list(range(1, len(lines) + 1))
    for number in order:
        if problem := _line_problem(lines[number - 1], number):
            return problem
    text = _DUCKDB_ADVICE.sub("", " ".join(str(error).split()))
    return f"response is not valid FHIR JSON of the expected shape ({text[:300]})"


def _line_problem(line: bytes, number: int) -> str | None:
    try:
        landed = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        # orjson's position is in the landing line, not the supplier's body: only its reason.
        return f"response {number} is not valid FHIR JSON: cut short or malformed ({str(exc).split(':')[0]})"
    if not isinstance(landed, dict):
        return f"line {number} of the landing file is not a landed response"
    problem = bundle_problem(landed.get("bundle"))
    if problem is None:
        return None
    meta = landed.get("meta")
    role = meta.get("filter_role") if isinstance(meta, dict) else None
    return f"{problem} (response {number}" + (f", searchFilter {role})" if role else ")")
