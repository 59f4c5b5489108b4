"""`WorkListReleaser`: for systems with no write API, per-practice, per-UK-day instructions
for practice staff (`<out_dir>/<YYYY-MM-DD>/<ODS>.csv` and `.md`), carrying the same decision
id and idempotency key as the audit table.
"""

from __future__ import annotations

import asyncio
import csv
import fcntl
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from common.clock import Clock, SystemClock
from common.uktime import format_uk, to_uk, uk_day
from connectors.registry import Practice
from connectors.release.model import (
    RELEASE_SLOT,
    ReleaseOutcome,
    ReleaseRequest,
    ReleaseResult,
    check_practice,
    new_result,
)

WORKLIST_COLUMNS = (
    "idempotency_key",
    "decision_id",
    "practice_ods",
    "slot_id",
    "slot_start_uk",
    "slot_end_uk",
    "slot_start_utc",
    "slot_end_utc",
    "slot_type",
    "session",
    "expected_version",
    "policy_name",
    "lead_minutes",
    "reason",
    "decided_at_utc",
    "queued_at_utc",
)
# Free text that reaches the CSV from providers or config. Staff may open the file in a
# spreadsheet, so a leading formula character is neutralised.
_FREE_TEXT_COLUMNS = frozenset({"slot_type", "session", "policy_name", "reason"})
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

_INSTRUCTION = {
    "EMIS Web": "In EMIS Web (Appointments), open each slot below and remove the NHS 111 "
    "organisation-group restriction, or book a practice patient into it.",
    "SystmOne": "In SystmOne, open each slot below and remove the NHS 111 booking rule "
    "(rota / slot type), or book a practice patient into it.",
}
_INSTRUCTION_OTHER = (
    "In your clinical system, remove the NHS 111 restriction from each slot below, or book a "
    "practice patient into it."
)


class WorkListReleaser:
    """Writes release instructions for practice staff where the system has no write API.

    For each request, one row is appended to `<out_dir>/<UK date of slot>/<ODS>.csv` (the
    header is written once). The matching `<ODS>.md`, a readable list sorted by UK start
    time, is then rebuilt from the CSV. A key already in the CSV is not written again: the
    result is `already_queued`. Writes hold an `fcntl` lock on `<ODS>.lock` and replace
    files atomically, so two processes can queue for the same practice and day. No patient
    data is written.
    """

    name = "worklist"

    def __init__(self, out_dir: Path, *, clock: Clock | None = None) -> None:
        self.out_dir = out_dir
        self._clock = clock or SystemClock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Nothing to close: every write opens, locks and closes its own files."""

    async def current_state(self, practice: Practice, slot_id: str) -> None:
        """There is no supplier API to ask. The caller relies on the GP Connect re-check."""
        return None

    def paths(self, practice_ods: str, day: date) -> tuple[Path, Path]:
        """The CSV and Markdown work-list files for one practice and UK day."""
        folder = self.out_dir / day.isoformat()
        return folder / f"{practice_ods}.csv", folder / f"{practice_ods}.md"

    async def release(self, practice: Practice, request: ReleaseRequest) -> ReleaseResult:
        check_practice(practice, request)
        now = self._clock.now()
        csv_path, _ = self.paths(practice.ods_code, uk_day(request.slot_start))
        if request.slot_start <= now:
            # Staff cannot act on a slot that has started, so it is not put on the list.
            return self._result(
                request,
                ReleaseOutcome.REFUSED_STARTED,
                now,
                message=f"practice {practice.ods_code}, {RELEASE_SLOT} (work-list): slot "
                f"{request.slot_id} started at {format_uk(request.slot_start)}; not queued",
            )
        try:
            # File locks block, so the write runs off the event loop.
            written = await asyncio.to_thread(self._write, practice, request, now)
        except OSError as exc:
            return self._result(
                request,
                ReleaseOutcome.FAILED,
                now,
                message=f"practice {practice.ods_code}, {RELEASE_SLOT} (work-list): cannot write "
                f"{csv_path}: {exc.strerror or exc}. Next step: make the work-list directory "
                "writable, then re-run (the same key is never written twice)",
                error_class=type(exc).__name__,
            )
        outcome = ReleaseOutcome.QUEUED if written else ReleaseOutcome.ALREADY_QUEUED
        return self._result(request, outcome, now, location=str(csv_path))

    def _result(
        self,
        request: ReleaseRequest,
        outcome: ReleaseOutcome,
        now: datetime,
        *,
        message: str | None = None,
        error_class: str | None = None,
        location: str | None = None,
    ) -> ReleaseResult:
        return new_result(
            self.name, request, outcome, now,
            message=message, error_class=error_class, location=location,
        )

    def _write(self, practice: Practice, request: ReleaseRequest, now: datetime) -> bool:
        """Append the request's row unless its key is there; True when a row was written."""
        csv_path, md_path = self.paths(practice.ods_code, uk_day(request.slot_start))
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(csv_path.with_suffix(".lock")):
            rows = _read_rows(csv_path)
            if any(row.get("idempotency_key") == request.idempotency_key for row in rows):
                return False
            rows.append(_worklist_row(request, now))
            _atomic_write(csv_path, _csv_text(rows))
            _atomic_write(md_path, _markdown(practice, uk_day(request.slot_start), rows))
            return True


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive `flock` held for the block.

    The lock file is left on disk: deleting it while another writer waits on it would let
    two writers in at once.
    """
    with lock_path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file in the same directory, fsync, then rename it into place.

    A reader sees the old file or the new one, never a partial file.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _read_rows(csv_path: Path) -> list[dict[str, str]]:
    try:
        with csv_path.open(encoding="utf-8", newline="") as handle:
            return [dict(row) for row in csv.DictReader(handle)]
    except FileNotFoundError:
        return []


def _worklist_row(request: ReleaseRequest, now: datetime) -> dict[str, str]:
    row = {
        "idempotency_key": request.idempotency_key,
        "decision_id": request.decision_id,
        "practice_ods": request.practice_ods,
        "slot_id": request.slot_id,
        "slot_start_uk": format_uk(request.slot_start),
        "slot_end_uk": format_uk(request.slot_end),
        "slot_start_utc": _utc_text(request.slot_start),
        "slot_end_utc": _utc_text(request.slot_end),
        "slot_type": request.slot_type or "",
        "session": request.session or "",
        "expected_version": request.expected_version or "",
        "policy_name": request.policy_name,
        "lead_minutes": str(request.lead_minutes),
        "reason": request.reason,
        "decided_at_utc": _utc_text(request.decided_at),
        "queued_at_utc": _utc_text(now),
    }
    for column in _FREE_TEXT_COLUMNS:
        if row[column].startswith(_FORMULA_PREFIXES):
            row[column] = "'" + row[column]
    return row


def _csv_text(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=WORKLIST_COLUMNS, extrasaction="ignore", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _markdown(practice: Practice, day: date, rows: list[dict[str, str]]) -> str:
    ordered = sorted(rows, key=lambda r: (r["slot_start_utc"], r["slot_id"]))
    instruction = _INSTRUCTION.get(practice.clinical_system, _INSTRUCTION_OTHER)
    lines = [
        f"# NHS 111 slots to give back: {_md(practice.name)} ({practice.ods_code})",
        "",
        f"**{day.strftime('%A %d %B %Y')}**. These slots are reserved for NHS 111 and are still "
        "unbooked close to their start time.",
        "",
        instruction,
        "If a slot has already been booked, leave it as it is.",
        "",
        "| Start (UK time) | End | Slot type | Session | Slot id | Decision id | Idempotency key |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in ordered:
        start = to_uk(datetime.fromisoformat(row["slot_start_uk"]))
        end = to_uk(datetime.fromisoformat(row["slot_end_uk"]))
        cells = (
            f"{start:%H:%M} {start.tzname()}",
            f"{end:%H:%M} {end.tzname()}",
            row.get("slot_type", ""),
            row.get("session", ""),
            row["slot_id"],
            row["decision_id"],
            row["idempotency_key"],
        )
        lines.append("| " + " | ".join(_md(cell) for cell in cells) + " |")
    lines += ["", f"{len(ordered)} slot(s). Generated by slotsync from {practice.ods_code}.csv.", ""]
    return "\n".join(lines)


def _md(text: str) -> str:
    """Plain text for a Markdown table cell: a stray `|` or `*` must not break the layout."""
    flat = " ".join(text.split())
    return "".join(f"\\{ch}" if ch in "\\`*_[]<>|#" else ch for ch in flat) or " "


def _utc_text(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
