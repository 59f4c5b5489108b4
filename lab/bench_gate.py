"""The data-quality gate's own benchmark figure: `validate_pending` over a synthetic night.

`validation_gate_synthetic_s_per_million_rows` in the bench JSON: about a million synthetic
slots (practices of 4 weekly windows, every 50th from the 2nd defective) staged as the loader
leaves them, in a warehouse built by the migrations (warehouse/sql/quality/
seed_synthetic_batches.sql), then validated by the real gate with GX results and Data Docs
built into a temporary project folder. GX alone over every row is
`warehouse.quality_suites.measure_validation_s_per_million_rows`, which the gate no longer does.
"""

from __future__ import annotations

import functools
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from warehouse.db import open_warehouse, sql_text
from warehouse.quality import validate_pending
from warehouse.quality_suites import gx_context

SLOTS_PER_WINDOW = 1000  # ten-minute slots: 1,008 fit in a weekly window
WINDOWS = 4


def measure_gate_s_per_million_rows(rows: int = 1_000_000, *, repetitions: int = 3) -> float:
    """Seconds `validate_pending` (with Data Docs) takes per million staged slots, median of runs.

    Each repetition validates a fresh copy of the staged warehouse into a fresh project folder,
    so it pays for its GX context and Data Docs as a night does; GX's import (~5 s, once per
    process) is excluded.
    """
    practices = max(1, round(rows / (WINDOWS * SLOTS_PER_WINDOW)))
    per_window = -(-rows // (WINDOWS * practices))
    gx_context(None)  # warm-up: GX's import
    with tempfile.TemporaryDirectory(prefix="slotsync-gate-bench-") as folder:
        staged = Path(folder) / "staged.duckdb"
        con = open_warehouse(staged)
        try:
            con.execute("set enable_progress_bar = false")
            con.execute("set variable synthetic_practices = $n", {"n": practices})
            con.execute("set variable synthetic_slots_per_window = $n", {"n": per_window})
            con.execute(sql_text("quality/seed_synthetic_batches.sql"))
            con.execute("checkpoint")
            slots = int(con.execute("select count(*) from staging.stg_gpconnect__slots").fetchall()[0][0])
        finally:
            con.close()
        timings = []
        for rep in range(max(1, repetitions)):
            copy_path = Path(folder) / f"run-{rep}.duckdb"
            shutil.copy(staged, copy_path)
            con = open_warehouse(copy_path)
            try:
                con.execute("set enable_progress_bar = false")
                began = time.perf_counter()
                report = validate_pending(
                    con, data_dir=Path(folder) / f"data-{rep}", validated_by="synthetic-load")
                timings.append(time.perf_counter() - began)
            finally:
                con.close()
            if not report.quarantined or report.data_docs is None:
                raise RuntimeError("the synthetic night was not judged as staged: no quarantine or docs")
            copy_path.unlink()
    return statistics.median(timings) * 1_000_000 / slots


@functools.cache
def gate_s_per_million_rows() -> float:
    """The bench's figure (`slotsync bench`), measured once per process."""
    return round(measure_gate_s_per_million_rows(), 3)
