"""The end-of-night writer on a copy of a nightly's warehouse, step by step.

What a night must still do after its last fetch: `models.build_models` (the fold, then every
model in build order, in one transaction), and `publish.publish`. This times each of them
(wall and CPU seconds; the machine may be shared, CPU seconds say more) on a copy, so a
warehouse a nightly left behind (`slotsync bench` keeps none: run `lab.bench_flow` with your
own `--data-dir`) can be measured again and again while the SQL changes.

`--first-night` re-folds a warehouse that holds one night: its history is emptied and its
units marked unfolded, which is exactly the state before that night's fold (a warehouse of
several nights has no such state: its fold is timed only if something is pending).
`--memory-limit` scales the writer's memory limit with the sample, so a sample of the estate
meets the spilling a whole England night meets under `WRITER_MEMORY_LIMIT`.

    python -m lab.bench_writer WAREHOUSE [--first-night] [--memory-limit 140MB] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from warehouse import db, fold, models, publish
from warehouse.db import sql_text, transaction
from warehouse.integrity import table_hashes


class _Clock:
    def __init__(self) -> None:
        self.wall_s: dict[str, float] = {}
        self.cpu_s: dict[str, float] = {}

    def time(self, name: str, step: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        self.wall_s[name] = round(time.perf_counter() - wall, 3)
        self.cpu_s[name] = round(time.process_time() - cpu, 3)


def measure(
    warehouse: Path, *, first_night: bool = False, memory_limit: str = db.WRITER_MEMORY_LIMIT,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Fold, build every model and publish on a copy of `warehouse`; seconds per step."""
    with tempfile.TemporaryDirectory(prefix="slotsync-writer-", dir=work_dir) as tmp:
        copy = Path(tmp) / "warehouse.duckdb"
        shutil.copyfile(warehouse, copy)
        con = db.open_warehouse(copy, memory_limit=memory_limit)
        try:
            latest = con.execute(
                "select load_id, observed_at from meta.sync_window "
                "order by observed_at desc, load_id desc limit 1"
            ).fetchone()
            if latest is None:
                raise SystemExit(f"{warehouse}: no load in meta.sync_window; run a nightly into it first")
            if first_night:
                if con.execute("select count(distinct observed_at) from meta.sync_window").fetchone() != (1,):
                    raise SystemExit(f"{warehouse}: --first-night needs a warehouse of one night")
                con.execute("update meta.sync_window set folded_at = null")
                con.execute("delete from core.fct_slot_history")
                con.execute("checkpoint")
            slots = con.execute("select count(*) from staging.stg_gpconnect__slots").fetchone()
            clock = _Clock()
            folded: list[int] = []
            clock.time("fold", lambda: folded.append(fold.fold_slot_history(con)))
            with transaction(con):
                for model in models.build_order():
                    clock.time(model.name, lambda m=model: m.build(con))  # type: ignore[misc]
                clock.time("reconciliation_summary", lambda: con.execute(
                    sql_text("ledger/record_reconciliation_summary.sql"), {"load_id": latest[0]}))
            clock.time("publish", lambda: publish.publish(
                con, Path(tmp) / "published", load_id=latest[0], as_of=latest[1]))
            hashes = table_hashes(con)
        finally:
            con.close()
    return {
        "warehouse": str(warehouse), "load_id": latest[0], "staged_slots": slots[0] if slots else 0,
        "observations_folded": folded[0], "memory_limit": memory_limit,
        "wall_s": clock.wall_s, "cpu_s": clock.cpu_s,
        "total_wall_s": round(sum(clock.wall_s.values()), 2),
        "total_cpu_s": round(sum(clock.cpu_s.values()), 2),
        "table_hashes": hashes,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.bench_writer", description=__doc__.split("\n")[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("--first-night", action="store_true", help="re-fold a one-night warehouse")
    parser.add_argument("--memory-limit", default=db.WRITER_MEMORY_LIMIT)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not args.warehouse.is_file():
        raise SystemExit(f"{args.warehouse}: no such warehouse file")
    figures = measure(args.warehouse, first_night=args.first_night, memory_limit=args.memory_limit)
    for name, wall in figures["wall_s"].items():
        print(f"{name:45} {wall:8.3f} s wall {figures['cpu_s'][name]:8.3f} s CPU")
    print(f"{'total':45} {figures['total_wall_s']:8.2f} s wall {figures['total_cpu_s']:8.2f} s CPU "
          f"({figures['staged_slots']:,} staged slots, "
          f"{figures['observations_folded']:,} observations folded)")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
