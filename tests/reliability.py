"""Reliability results: tests record what they injected and survived; this renders the table.

Each reliability test calls `record(...)` with the numbers of its own run; one JSON file per
row under `test-artifacts/reliability/` (re-running a test overwrites its row). `python -m
tests.reliability` renders those rows into the table of `RELIABILITY.md`, between the
`<!-- results -->` markers, so the published numbers always come from real test runs.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "test-artifacts" / "reliability"
REPORT = ROOT / "RELIABILITY.md"
_BEGIN, _END = "<!-- results:begin -->", "<!-- results:end -->"


@dataclass(frozen=True)
class Result:
    """One row of the table: a fault (or check), what was injected and what survived."""

    area: str  # fault | crash | soak | security | property | fuzz
    fault: str
    injected: int
    survived: int
    data_lost: int
    duplicate_rows: int
    handling: str
    test: str
    recorded_at: str = ""


def record(result: Result) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    row = {**asdict(result), "recorded_at": datetime.now(UTC).isoformat(timespec="seconds")}
    slug = re.sub(r"[^a-z0-9]+", "-", f"{result.area}-{result.fault}".lower()).strip("-")
    (RESULTS_DIR / f"{slug}.json").write_text(json.dumps(row, indent=1) + "\n")


def load() -> list[Result]:
    rows = [Result(**json.loads(p.read_text())) for p in sorted(RESULTS_DIR.glob("*.json"))]
    order = ["fault", "crash", "fuzz", "property", "security", "soak"]
    return sorted(rows, key=lambda r: (order.index(r.area) if r.area in order else 99, r.fault))


def render(rows: list[Result]) -> str:
    lines = [
        "| area | fault | injected | survived | data lost | duplicate rows | handling | test |",
        "|---|---|--:|--:|--:|--:|---|---|",
    ]
    lines += [
        f"| {r.area} | {r.fault} | {r.injected} | {r.survived} | {r.data_lost} | "
        f"{r.duplicate_rows} | {r.handling} | `{r.test}` |"
        for r in rows
    ]
    latest = max((r.recorded_at for r in rows), default="")
    lines += ["", f"_{len(rows)} rows, recorded by the tests; latest {latest}._"]
    return "\n".join(lines)


def main() -> int:
    rows = load()
    if not rows:
        print(f"no results under {RESULTS_DIR}: run the reliability tests first", file=sys.stderr)
        return 1
    bad = [r for r in rows if r.data_lost or r.duplicate_rows or r.survived != r.injected]
    if bad:
        for r in bad:
            print(f"{r.area} {r.fault}: lost {r.data_lost}, duplicates {r.duplicate_rows}, "
                  f"survived {r.survived}/{r.injected} ({r.test})", file=sys.stderr)
        return 1
    text = REPORT.read_text()
    if _BEGIN not in text or _END not in text:
        print(f"{REPORT} has no {_BEGIN} ... {_END} markers", file=sys.stderr)
        return 1
    head, rest = text.split(_BEGIN, 1)
    _, tail = rest.split(_END, 1)
    REPORT.write_text(f"{head}{_BEGIN}\n{render(rows)}\n{_END}{tail}")
    print(f"{REPORT}: {len(rows)} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
