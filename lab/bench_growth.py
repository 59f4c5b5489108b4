"""`slotsync bench --size england --growth 300,1000,3000,6300`: how the nightly's cost grows.

At each size the pre-rendered England sandbox serves the first N practices' networks (as
`--practices N` does) and the real nightly flow runs end to end in its own process
(`lab.bench_processes.run_nightly`). Per size: the nightly's wall seconds (flow call to
return), the CPU seconds and the sampled peak RSS of its whole process tree (Prefect's
temporary API server included; the sandbox is reported apart), responses and slots.

Wall should grow linearly with practices and peak memory stay flat (the nightly streams:
practices in flight are bounded, the writer loads in batches under a DuckDB memory limit).
The report says how far each holds: a least-squares line wall = fixed + per-practice x N with
its R^2 (n/a with fewer than three sizes: two points always fit), each size's wall per
practice relative to the largest size's, and the largest size's peak tree RSS relative to the
smallest's (`TARGET_MEMORY_GROWTH`).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.bench import _git_commit
from lab.bench_processes import BENCH_START, StandaloneSandbox, run_nightly
from sandbox.latency import parse_latency

GROWTH_SCHEMA_VERSION = 1
TARGET_WALL_R2 = 0.98  # wall against practices: a straight line
TARGET_MEMORY_GROWTH = 1.25  # peak tree RSS, largest size over smallest
GROWTH_NOOP_TASKS = 1  # the nightly process's Prefect-overhead flow is not what this measures


def parse_sizes(text: str) -> list[int]:
    """`300,1000,3000,6300` as ascending practice counts; ValueError says what to write."""
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"--growth {text!r}: write practice counts like 300,1000,3000,6300") from None
    if not sizes or sizes[0] < 1:
        raise ValueError(f"--growth {text!r}: write practice counts of at least 1, like 300,1000")
    return sizes


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float | None]:
    """Least squares y = fixed + slope x, with R^2 (None with fewer than three points)."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    fixed = mean_y - slope * mean_x
    ss_tot = sum((y - mean_y) ** 2 for y in ys)
    ss_res = sum((y - fixed - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    r2 = None if n < 3 else (1.0 - ss_res / ss_tot if ss_tot else 1.0)
    return {"fixed_s": round(fixed, 2), "s_per_practice": round(slope, 4),
            "r2": None if r2 is None else round(r2, 4)}


def summarise(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Linearity of wall and flatness of memory over the measured sizes."""
    largest, smallest = points[-1], points[0]
    fit = linear_fit([p["practices"] for p in points], [p["wall_s"] for p in points])
    per_practice_largest = largest["wall_s"] / largest["practices"]
    for point in points:
        point["wall_per_practice_vs_largest"] = round(
            point["wall_s"] / point["practices"] / per_practice_largest, 3
        )
    memory_growth = (
        round(largest["peak_rss_tree_mib"] / smallest["peak_rss_tree_mib"], 3)
        if smallest["peak_rss_tree_mib"] else None
    )
    return {
        "wall_fit": fit,
        "target_wall_r2": TARGET_WALL_R2,
        "wall_linear": None if fit["r2"] is None else fit["r2"] >= TARGET_WALL_R2,
        "peak_rss_tree_growth": memory_growth,
        "practices_growth": round(largest["practices"] / smallest["practices"], 2),
        "target_memory_growth": TARGET_MEMORY_GROWTH,
        "memory_flat": (
            None if memory_growth is None or len(points) < 2 else memory_growth <= TARGET_MEMORY_GROWTH
        ),
    }


def measure_size(
    root: Path, practices: int, *, latency: str | None, progress: Callable[[str], None]
) -> dict[str, Any]:
    """One size: the pre-rendered sandbox for `practices`, the nightly end to end, its cost."""
    progress(f"growth: {practices:,} practices: starting the pre-rendered sandbox")
    sandbox = StandaloneSandbox(root, england_practices=practices, latency=latency)
    with sandbox as registry:
        rows = len(registry.practices)
        progress(f"growth: {practices:,} practices ({rows:,} rows): nightly sync (its own process)")
        began = time.perf_counter()
        figures, usage, tree = run_nightly(root, sandbox.registry_path, None, GROWTH_NOOP_TASKS)
        process_wall = time.perf_counter() - began
    nightly = figures["nightly"]
    sandbox_cpu = sandbox.usage.ru_utime + sandbox.usage.ru_stime if sandbox.usage else None
    return {
        "practices_requested": practices,
        "practices": sum(1 for row in registry.practices if row.kind == "practice"),
        "rows": rows,
        "responses": nightly.get("responses"),
        "slots": nightly.get("slots"),
        "practices_failed": nightly.get("practices_failed"),
        "wall_s": nightly["wall_s"],
        "fetch_s": nightly.get("fetch_s"),
        "load_publish_s": nightly.get("load_publish_s"),
        "writer_phases_s": nightly.get("writer_phases_s"),
        "process_wall_s": round(process_wall, 2),  # with Prefect's start-up and the no-op flow
        "cpu_tree_s": round(float(tree["cpu_s"]), 2),
        "peak_rss_tree_mib": round(float(tree["peak_mib"]), 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1) if usage else None,
        "tree_max_processes": int(tree["max_processes"]),
        "sandbox_cpu_s": None if sandbox_cpu is None else round(sandbox_cpu, 2),
        "sandbox_peak_rss_mib": round(sandbox.usage.ru_maxrss / 1024, 1) if sandbox.usage else None,
    }


def run_growth(
    sizes: Sequence[int], *, work_dir: Path | None = None, latency: str | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The nightly at each size, smallest first, and how its cost grew."""
    if latency is not None:
        parse_latency(latency)
    began = time.perf_counter()
    points = []
    for practices in sorted(sizes):
        with tempfile.TemporaryDirectory(prefix=f"slotsync-growth-{practices}-", dir=work_dir) as tmp:
            points.append(measure_size(Path(tmp), practices, latency=latency, progress=progress))
    return {
        "kind": "growth",
        "schema_version": GROWTH_SCHEMA_VERSION,
        "commit": _git_commit(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "start": BENCH_START,
        "latency": latency,
        "sizes": points,
        **summarise(points),
        "bench_wall_s": round(time.perf_counter() - began, 1),
    }


def format_growth(data: dict[str, Any]) -> str:
    lines = [
        "slotsync bench --growth: the nightly end to end at each size (pre-rendered England estate)"
        + (f", provider latency {data['latency']}" if data["latency"] else ""),
        "",
        f"  {'practices':>9}  {'rows':>6}  {'responses':>9}  {'wall s':>8}  {'CPU s (tree)':>12}  "
        f"{'peak RSS MiB (tree)':>19}  {'wall/practice vs largest':>24}",
    ]
    for p in data["sizes"]:
        lines.append(
            f"  {p['practices']:>9,}  {p['rows']:>6,}  {p['responses'] or 0:>9,}  {p['wall_s']:>8,.1f}  "
            f"{p['cpu_tree_s']:>12,.1f}  {p['peak_rss_tree_mib']:>19,.0f}  "
            f"{p['wall_per_practice_vs_largest']:>24.2f}"
        )
    fit = data["wall_fit"]
    r2 = "n/a (fewer than three sizes)" if fit["r2"] is None else f"{fit['r2']:.3f}"
    memory = data["peak_rss_tree_growth"]
    lines += [
        "",
        f"  wall = {fit['fixed_s']:,.1f} s {fit['s_per_practice']:+.3f} s x practices; R^2 {r2} "
        f"(target >= {data['target_wall_r2']})",
        f"  peak tree RSS grew x{memory if memory is not None else 'n/a'} while practices grew "
        f"x{data['practices_growth']} (target <= x{data['target_memory_growth']})",
    ]
    return "\n".join(lines)


def write_json(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
