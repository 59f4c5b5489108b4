"""The landing area: fetched response bytes on disk, and the immutable raw archive.

Fetch tasks never touch DuckDB (one writer per file). They write one newline-delimited
file per (load, practice), `<data_dir>/landing/<load_id>/<ODS>.ndjson`; each line is

    {"meta": {...}, "bundle": <the body as received>}

The body is spliced in as bytes, never parsed in Python. JSON strings cannot contain raw
newlines, so replacing CR/LF with spaces keeps the bundle identical as JSON and makes it one
line; the offsets of the replaced bytes are kept in `meta` (`cr_at`, `lf_at`, only when there
were any), so `read_raw_body` gives back the exact bytes received. The replacement keeps the
length, so a body is always the `meta.body_bytes` bytes before the line's closing `}`.
`meta.line` is the 1-based line number, recorded in `raw.gpc_slot_search` with the path.
Files are written to a temporary name, fsynced and renamed, so a crash never leaves a
half-written file that looks complete.

The loader reads these files and never stores the bodies in DuckDB: the files *are* the raw
layer (kept for `sync.raw_retention_days`, see `prune_landing`). `raw_body` reads one
response back for forensics.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson

from common.files import DIR_MODE, FILE_MODE, open_private, private_dir
from connectors.gpconnect.client import SlotSearchResponse
from warehouse.db import sql_text

_META_PREFIX = b'{"meta":'
_LINE_END = b"}\n"


@dataclass(frozen=True)
class LandedResponse:
    """A slot-search response plus the pipeline context it was fetched in."""

    response: SlotSearchResponse
    filter_role: str  # general | nhs111 | hub


def landing_path(landing_dir: Path, load_id: str, practice_ods: str) -> Path:
    return landing_dir / load_id / f"{practice_ods}.ndjson"


def _offsets(body: bytes, byte: bytes) -> list[int]:
    found: list[int] = []
    at = body.find(byte)
    while at != -1:
        found.append(at)
        at = body.find(byte, at + 1)
    return found


def write_landing_file(
    path: Path, *, load_id: str, observed_at: datetime, responses: Iterable[LandedResponse],
    file_mode: int = FILE_MODE, dir_mode: int = DIR_MODE,
) -> int:
    """Write all responses of one practice atomically; returns the number of lines.

    Raw bodies can carry whatever a provider puts in free text: the file is owner-only
    (`file_mode`) from its creation, and folders created for it get `dir_mode`.
    """
    private_dir(path.parent, dir_mode)
    tmp = path.with_name(path.name + ".tmp")
    lines = 0
    with os.fdopen(open_private(tmp, file_mode), "wb") as handle:
        for landed in responses:
            r = landed.response
            lines += 1
            meta: dict[str, Any] = {
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
                "line": lines,
            }
            body = r.body
            if b"\r" in body or b"\n" in body:
                meta["cr_at"] = _offsets(body, b"\r")
                meta["lf_at"] = _offsets(body, b"\n")
                body = body.replace(b"\r", b" ").replace(b"\n", b" ")
            handle.write(_META_PREFIX + orjson.dumps(meta) + b',"bundle":' + body + _LINE_END)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return lines


def landed_meta(line: bytes) -> dict[str, Any]:
    """The `meta` object of one landing line, without parsing the body (which may be broken)."""
    if not line.startswith(_META_PREFIX):
        raise ValueError("not a landing line: it does not start with the meta object")
    text = line.decode("utf-8", errors="replace")
    meta, _ = json.JSONDecoder().raw_decode(text, len(_META_PREFIX))
    if not isinstance(meta, dict):
        raise ValueError("not a landing line: meta is not an object")
    return meta


def read_landing_metas(path: Path) -> list[dict[str, Any]]:
    """Every line's `meta`, in file order, whatever the bodies hold (for refused files)."""
    metas: list[dict[str, Any]] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            meta = landed_meta(line)
            meta.setdefault("line", number)
            metas.append(meta)
    return metas


def read_raw_body(
    path: Path, *, line: int | None = None, filter_key: str | None = None,
    window_start: datetime | None = None,
) -> bytes:
    """The exact bytes of one landed response body.

    Found by its 1-based `line` when known, and/or by (`filter_key`, `window_start`), which
    identify a response within a practice's file (files written before line numbers were
    recorded have only those). Raises LookupError when no line matches all that is given.
    """
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if line is not None and number != line:
                continue
            meta = landed_meta(raw)
            if filter_key is not None and meta.get("filter_key") != filter_key:
                continue
            if window_start is not None and (
                datetime.fromisoformat(str(meta.get("window_start"))) != window_start
            ):
                continue
            return _restore_body(raw, meta)
    wanted = f"line {line}" if line is not None else f"filter {filter_key}, window {window_start}"
    raise LookupError(f"{path}: no landed response at {wanted}")


def _restore_body(raw: bytes, meta: dict[str, Any]) -> bytes:
    size = int(meta["body_bytes"])
    if not raw.endswith(_LINE_END) or len(raw) < size + len(_LINE_END):
        raise ValueError("landing line is cut short")
    body = bytearray(raw[len(raw) - len(_LINE_END) - size : len(raw) - len(_LINE_END)])
    for key, byte in (("cr_at", ord("\r")), ("lf_at", ord("\n"))):
        for offset in meta.get(key) or ():
            body[int(offset)] = byte
    return bytes(body)


def raw_body(
    con: duckdb.DuckDBPyConnection, load_id: str, practice_ods: str, filter_key: str, window_start: datetime,
    *, landing_dir: Path | None = None,
) -> bytes:
    """The exact bytes of one slot-search response, read back from its landing file.

    For forensics (what did the supplier send?). `landing_dir` relocates the archive
    (`<landing_dir>/<load_id>/<ODS>.ndjson`), e.g. after moving the data folder, and is
    needed for responses loaded before the landing file was recorded (migration V006).
    Raises LookupError when no such response was loaded and FileNotFoundError when its
    landing file is gone (pruned after `sync.raw_retention_days`).
    """
    rows = con.execute(
        "select landing_file, landing_line from raw.gpc_slot_search "
        "where load_id = $load_id and practice_ods = $practice_ods "
        "and filter_key = $filter_key and window_start = $window_start",
        {"load_id": load_id, "practice_ods": practice_ods, "filter_key": filter_key,
         "window_start": window_start},
    ).fetchall()
    if not rows:
        raise LookupError(
            f"no slot-search response of practice {practice_ods}, filter {filter_key}, window "
            f"from {window_start.isoformat()} in load {load_id} (raw.gpc_slot_search)"
        )
    recorded, line = rows[0]
    if landing_dir is not None:
        path = landing_path(landing_dir, load_id, practice_ods)
    elif recorded is not None:
        path = Path(recorded)
    else:
        raise LookupError(
            f"load {load_id} was loaded before landing files were recorded: pass landing_dir "
            "(the data folder's `landing`)"
        )
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: the landing file of load {load_id} is gone (pruned after "
            "sync.raw_retention_days, or moved: pass landing_dir)"
        )
    return read_raw_body(path, line=line, filter_key=filter_key, window_start=window_start)

def prune_landing(
    con: duckdb.DuckDBPyConnection, landing_dir: Path, *, retention_days: int, now: datetime) -> list[Path]:
    """Delete the landing folders of loads observed more than `retention_days` before `now`.

    Only loads that completed, or whose re-run completed, are pruned; a folder of a load
    that is still running, failed without repair or is unknown to the ledger is kept.
    Their `raw.gpc_slot_search` rows stay (metadata only). Returns the folders deleted.
    """
    if not landing_dir.is_dir():
        return []
    folders = {p.name: p for p in landing_dir.iterdir() if p.is_dir()}
    if not folders:
        return []
    rows = con.execute(
        sql_text("ledger/prunable_loads.sql"),
        {"load_ids": sorted(folders), "cutoff": now - timedelta(days=retention_days)},
    ).fetchall()
    pruned: list[Path] = []
    for (load_id,) in rows:
        try:
            shutil.rmtree(folders[load_id])
        except OSError:
            continue  # tried again after the next load; never fails a load that completed
        pruned.append(folders[load_id])
    return pruned
