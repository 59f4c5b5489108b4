"""The landing area: fetched response bytes on disk, waiting for the single writer.

Fetch tasks never touch DuckDB (one writer per file). They write one newline-delimited
file per (load, practice): each line is `{"meta": {...}, "bundle": <the body as received>}`.
The body is spliced in as bytes, never parsed in Python; JSON strings cannot contain raw
newlines, so replacing CR/LF with spaces keeps the bundle identical as JSON and makes it
one line. Files are written to a temporary name and renamed, so a crash never leaves a
half-written file that looks complete.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from connectors.gpconnect.client import SlotSearchResponse


@dataclass(frozen=True)
class LandedResponse:
    """A slot-search response plus the pipeline context it was fetched in."""

    response: SlotSearchResponse
    filter_role: str  # general | nhs111 | hub


def landing_path(landing_dir: Path, load_id: str, practice_ods: str) -> Path:
    return landing_dir / load_id / f"{practice_ods}.ndjson"


def write_landing_file(
    path: Path, *, load_id: str, observed_at: datetime, responses: Iterable[LandedResponse]
) -> int:
    """Write all responses of one practice atomically; returns the number of lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    lines = 0
    with tmp.open("wb") as handle:
        for landed in responses:
            r = landed.response
            meta = {
                "load_id": load_id,
                "practice_ods": r.practice_ods,
                "interaction": "search_slots",
                "filter_role": landed.filter_role,
                "filter_key": r.filter_key,
                "window_start": r.window.start_utc.isoformat(),
                "window_end": r.window.end_utc.isoformat(),
                "observed_at": observed_at.isoformat(),
                "fetched_at": r.fetched_at.isoformat(),
                "http_status": r.http_status,
                "trace_id": r.trace_id,
                "body_bytes": len(r.body),
            }
            body = r.body.replace(b"\r", b" ").replace(b"\n", b" ")
            handle.write(b'{"meta":' + orjson.dumps(meta) + b',"bundle":' + body + b"}\n")
            lines += 1
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return lines
