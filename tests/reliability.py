"""Reliability results: tests record what they injected and survived; flows/report.py renders them.

Each reliability test calls `record(...)` with the numbers of its own run; one JSON file per
row under `reports/reliability/` (committed; re-running a test overwrites its row).
`python3 -m uv run python -m flows.report render` renders those rows into RELIABILITY.md
(`python -m tests.reliability` does the same after refusing rows that lost or duplicated
data), so the published numbers always come from real test runs. A column the test does not
measure is None, rendered `n/a` with the test's reason (`not_measured`), never a literal 0.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "reports" / "reliability"
REPORT = ROOT / "RELIABILITY.md"
_BEGIN, _END = "<!-- results:begin -->", "<!-- results:end -->"


@dataclass(frozen=True)
class Result:
    """One row of the table: a fault (or check), what was injected and what survived."""

    area: str  # fault | crash | soak | security | property | fuzz
    fault: str
    injected: int
    survived: int
    data_lost: int | None  # None: not measured by this test (say why in `not_measured`)
    duplicate_rows: int | None
    handling: str
    test: str
    recorded_at: str = ""
    not_measured: str = ""

    def __post_init__(self) -> None:
        if (self.data_lost is None or self.duplicate_rows is None) and not self.not_measured:
            raise ValueError(f"{self.fault}: a column not measured needs its reason (not_measured)")


def record(result: Result) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    row = {**asdict(result), "recorded_at": datetime.now(UTC).isoformat(timespec="seconds")}
    slug = re.sub(r"[^a-z0-9]+", "-", f"{result.area}-{result.fault}".lower()).strip("-")
    (RESULTS_DIR / f"{slug}.json").write_text(json.dumps(row, indent=1) + "\n")


def load() -> list[Result]:
    rows = [Result(**json.loads(p.read_text())) for p in sorted(RESULTS_DIR.glob("*.json"))]
    order = ["fault", "crash", "fuzz", "property", "security", "soak"]
    return sorted(rows, key=lambda r: (order.index(r.area) if r.area in order else 99, r.fault))


def main() -> int:
    rows = load()
    if not rows:
        print(f"no results under {RESULTS_DIR}: run the reliability tests first", file=sys.stderr)
        return 1
    bad = [r for r in rows if (r.data_lost or 0) or (r.duplicate_rows or 0) or r.survived != r.injected]
    if bad:
        for r in bad:
            print(f"{r.area} {r.fault}: lost {r.data_lost}, duplicates {r.duplicate_rows}, "
                  f"survived {r.survived}/{r.injected} ({r.test})", file=sys.stderr)
        return 1
    from flows.report import main as render

    return render(["render"])


if __name__ == "__main__":
    raise SystemExit(main())
