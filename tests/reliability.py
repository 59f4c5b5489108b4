"""Reliability results: tests record what they injected and survived; lab/report.py renders them.

Each reliability test calls `record(...)` with the numbers of its own run; one JSON file per
row under `test-artifacts/reliability/` (re-running a test overwrites its row). A test run never
writes the committed rows: hypothesis draws differ run to run, and the committed docs must equal
the rendering of the committed JSON. `python3 -m uv run python -m tests.reliability` refuses rows
that lost or duplicated data, copies this run's rows into `reports/reliability/` (committed) and
renders RELIABILITY.md from them, so the published numbers always come from real test runs.
A column the test does not measure is None, rendered `n/a` with the test's reason
(`not_measured`), never a literal 0.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMITTED_DIR = ROOT / "reports" / "reliability"
# Where a test run records its rows (SLOTSYNC_RELIABILITY_DIR overrides, e.g. for a separate run).
RESULTS_DIR = Path(os.environ.get("SLOTSYNC_RELIABILITY_DIR", ROOT / "test-artifacts" / "reliability"))
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
            print(
                f"{r.area} {r.fault}: lost {r.data_lost}, duplicates {r.duplicate_rows}, "
                f"survived {r.survived}/{r.injected} ({r.test})",
                file=sys.stderr,
            )
        return 1
    COMMITTED_DIR.mkdir(parents=True, exist_ok=True)
    for row in sorted(RESULTS_DIR.glob("*.json")):
        shutil.copyfile(row, COMMITTED_DIR / row.name)
    from lab.report import main as render

    return render(["render"])


if __name__ == "__main__":
    raise SystemExit(main())
