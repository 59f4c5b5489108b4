"""Render every published figure from committed JSON: BENCHMARKS.md, RELIABILITY.md, README blocks.

    python3 -m uv run python -m lab.report render   # rewrite the docs from reports/
    python3 -m uv run python -m lab.report check    # exit 1 if a doc differs from its rendering

Inputs (committed, `reports/`):
- `reports/bench/bench-<size>-<commit>.json`: `slotsync bench --size <size> --json ...`;
- `reports/replay/replay-<days>d.json`: `slotsync replay --days <days> --json ...`;
- `reports/reliability/*.json`: one row per reliability test (`tests/reliability.py`).

BENCHMARKS.md is rendered whole; RELIABILITY.md between `<!-- results:begin -->` and
`<!-- results:end -->`; the README between `<!-- generated:NAME -->` and
`<!-- /generated:NAME -->` for NAME in accuracy, benchmarks, capacity. A figure with no
committed JSON behind it is rendered `n/a` with the reason, never copied from older text.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports"
RENDER_COMMAND = "python3 -m uv run python -m lab.report render"
SIZES = ("small", "region", "england")
NOT_RUN = "n/a (no committed bench JSON for this size: not run this round)"
_RELIABILITY_BEGIN, _RELIABILITY_END = "<!-- results:begin -->", "<!-- results:end -->"


# ---------------------------------------------------------------------- inputs


def bench_runs(reports: Path = REPORTS) -> dict[str, list[dict[str, Any]]]:
    """Committed bench figures per size, oldest first (by when they were generated)."""
    runs: dict[str, list[dict[str, Any]]] = {size: [] for size in SIZES}
    for path in sorted((reports / "bench").glob("bench-*.json")):
        data = json.loads(path.read_text())
        data["_file"] = path.relative_to(reports.parent).as_posix()
        runs.setdefault(data["size"], []).append(data)
    for size_runs in runs.values():
        size_runs.sort(key=lambda d: (d.get("generated_at") or "", d["_file"]))
    return runs


def growth_run(reports: Path = REPORTS) -> dict[str, Any] | None:
    """The newest committed growth series (`slotsync bench --growth ...`)."""
    found = []
    for path in (reports / "bench").glob("growth-*.json"):
        data = json.loads(path.read_text())
        data["_file"] = path.relative_to(reports.parent).as_posix()
        found.append(data)
    return max(found, key=lambda d: (d.get("generated_at") or "", d["_file"]), default=None)


def replay_run(reports: Path = REPORTS) -> dict[str, Any] | None:
    """The longest committed replay (the full week if there is one)."""
    found = []
    for path in (reports / "replay").glob("replay-*d.json"):
        data = json.loads(path.read_text())
        data["_file"] = path.relative_to(reports.parent).as_posix()
        found.append(data)
    return max(found, key=lambda d: (d["days"], d.get("generated_at") or ""), default=None)


def reliability_rows(reports: Path = REPORTS) -> list[dict[str, Any]]:
    rows = [json.loads(p.read_text()) for p in sorted((reports / "reliability").glob("*.json"))]
    order = ["fault", "crash", "fuzz", "property", "security", "soak"]
    return sorted(rows, key=lambda r: (order.index(r["area"]) if r["area"] in order else 99, r["fault"]))


# ---------------------------------------------------------------------- formatting


def _num(value: Any, fmt: str = "{:,}", missing: str = "n/a (not in this run's JSON)") -> str:
    if value is None:
        return missing
    return fmt.format(value)


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _signed_pct(value: Any) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def _generated_note(sources: list[str]) -> str:
    listed = ", ".join(f"`{s}`" for s in sources) or "no committed JSON"
    return f"<!-- rendered by `{RENDER_COMMAND}` from {listed}; do not edit by hand -->"


# ---------------------------------------------------------------------- BENCHMARKS.md

_BENCH_ROWS: list[tuple[str, str, str]] = [
    ("nightly: practices and hubs", "estate_practices", "{:,}"),
    ("nightly: slots (HTTP responses to published marts)", "slots", "{:,}"),
    ("nightly: wall s", "nightly_wall_s", "{:,.1f}"),
    ("nightly: CPU s (nightly process)", "nightly_cpu_s", "{:,.1f}"),
    ("nightly: of which fetching s", "nightly_fetch_s", "{:,.1f}"),
    ("nightly: writer after the last fetch s (load rest, validate rest, models, publish)",
     "nightly_load_publish_s", "{:,.1f}"),
    ("nightly: writer while fetching s (load / validate / fold / batches)", "_while_fetching", "{}"),
    ("nightly: slots/s end to end", "nightly_slots_per_s", "{:,.0f}"),
    ("peak_rss_tree_mib (nightly + Prefect server + children, sampled)", "peak_rss_tree_mib", "{:,.0f}"),
    ("processes in that tree (max seen)", "peak_rss_tree_max_processes", "{}"),
    ("peak_rss_mib (nightly process alone)", "peak_rss_mib", "{:,.0f}"),
    ("sandbox_peak_rss_mib (apart)", "sandbox_peak_rss_mib", "{:,.0f}"),
    ("sandbox CPU s (apart)", "sandbox_cpu_s", "{:,.1f}"),
    ("ingest sample: slots", "ingest_slots", "{:,}"),
    ("ours: slots/s (median)", "ingest_slots_per_s", "{:,}"),
    ("ours: wall s / CPU s (median)", "_ours_wall_cpu", "{}"),
    ("  of which s: landing / load (raw, four staging models, units) / slot-history fold",
     "_ours_phases", "{}"),
    ("DuckDB read_json limit: slots/s (median)", "duckdb_limit_slots_per_s", "{:,}"),
    ("limit: wall s / CPU s (median)", "_limit_wall_cpu", "{}"),
    ("ingest_ratio_vs_duckdb", "ingest_ratio_vs_duckdb", "{:.2f}"),
    ("  the same without the slot-history fold (staging_ratio_vs_duckdb)", "staging_ratio_vs_duckdb",
     "{:.2f}"),
    ("typed rows identical to the limit's", "rows_match", "{}"),
    ("naive baseline: slots/s", "naive_slots_per_s", "{:,}"),
    ("naive baseline: wall s / CPU s", "_naive_wall_cpu", "{}"),
    ("speedup_vs_naive", "speedup_vs_naive", "{:,.1f}"),
    ("FHIR-minded peer: slots/s", "fhir_peer_slots_per_s", "{:,}"),
    ("FHIR-minded peer: wall s / CPU s", "_fhir_wall_cpu", "{}"),
    ("speedup_vs_fhir_peer", "speedup_vs_fhir_peer", "{:,.1f}"),
    ("validation_s_per_million_rows (the nightly's gate, its own rows)", "validation_s_per_million_rows",
     "{:.3f}"),
    ("  GX's start-up, once a night (made as the night starts) s", "validation_gate_setup_s", "{:,.1f}"),
    ("  the gate with that start-up counted, s per million", "validation_s_per_million_rows_with_setup",
     "{:.3f}"),
    ("validation gate (validate_pending + Data Docs), synthetic 1 M staged slots, s per million",
     "validation_gate_synthetic_s_per_million_rows", "{:.3f}"),
    ("orchestration_overhead_ms_per_task", "orchestration_overhead_ms_per_task", "{:.2f}"),
    ("mart_query_p95_s", "mart_query_p95_s", "{:.3f}"),
    ("bench wall s", "wall_s", "{:,.1f}"),
]


def _latest(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any] | None]:
    return {size: runs[size][-1] if runs.get(size) else None for size in SIZES}


def _derived(data: dict[str, Any], key: str) -> Any:
    pairs = {
        "_ours_wall_cpu": ("ours_s_median", "ours_cpu_s_median"),
        "_limit_wall_cpu": ("limit_s_median", "limit_cpu_s_median"),
        "_naive_wall_cpu": ("naive_s", "naive_cpu_s"),
        "_fhir_wall_cpu": ("fhir_peer_s", "fhir_peer_cpu_s"),
    }
    if key == "_while_fetching":
        # Older JSON (a sequential night) has no such phases: n/a, not zero.
        phases = data.get("nightly_writer_phases_s") or {}
        if "load_while_fetching" not in phases:
            return "n/a (sequential night: nothing written while fetching)"
        return (f"{phases['load_while_fetching']:,.1f} / {phases['validate_while_fetching']:,.1f} / "
                f"{phases.get('fold_while_fetching', 0):,.1f} / {phases['batches_while_fetching']:,.0f}")
    if key == "_ours_phases":
        # Older JSON has no phases: n/a, not zero.
        phases = data.get("ours_phases_median_s") or {}
        if not {"landing", "load", "fold"} <= phases.keys():
            return "n/a (this run's JSON has no phases)"
        return f"{phases['landing']:.3f} / {phases['load']:.3f} / {phases['fold']:.3f}"
    if key not in pairs:
        return data.get(key)
    wall, cpu = (data.get(k) for k in pairs[key])
    return None if wall is None or cpu is None else f"{wall:.3f} / {cpu:.3f}"


# Figures that depend on the limit's speed. Bench JSON before schema 5 read the limit's NDJSON
# with a 256 MiB maximum_object_size, larger than the file, so DuckDB read it on one thread.
_LIMIT_FIGURES = {"ingest_ratio_vs_duckdb", "staging_ratio_vs_duckdb", "duckdb_limit_slots_per_s",
                  "_limit_wall_cpu"}
PARALLEL_LIMIT_SCHEMA = 5
ONE_THREAD_LIMIT = "(limit on one thread)"


def _one_thread_limit(data: dict[str, Any]) -> bool:
    return int(data.get("schema_version") or 0) < PARALLEL_LIMIT_SCHEMA


def _bench_cell(data: dict[str, Any] | None, key: str, fmt: str) -> str:
    if data is None:
        return "n/a (not run this round)"
    value = _derived(data, key)
    if isinstance(value, bool):
        return "yes" if value else "NO"
    text = _num(value, fmt)
    if key in _LIMIT_FIGURES and value is not None and _one_thread_limit(data):
        text += f" {ONE_THREAD_LIMIT}"
    return text


def render_benchmarks(reports: Path = REPORTS) -> str:
    from lab.bench import (
        FHIR_PEER_LABEL,
        NAIVE_LABEL,
        NAIVE_SAMPLE_SLOTS,
        TARGET_AFTER_FETCH_S,
        TARGET_ENGLAND_WALL_S,
        TARGET_MART_QUERY_P95_S,
        TARGET_PEAK_RSS_MIB,
        TARGET_RATIO,
        TARGET_SPEEDUP_VS_NAIVE,
        TARGET_VALIDATION_S_PER_MILLION,
    )

    runs = bench_runs(reports)
    latest = _latest(runs)
    sources = [d["_file"] for size in SIZES for d in runs.get(size, [])]
    lines = [
        "# Benchmarks",
        "",
        _generated_note(sources),
        "",
        "Every figure on this page is rendered from the committed bench JSON under `reports/bench/` "
        f"(one file per size and commit) by `{RENDER_COMMAND}`; a test "
        "(`tests/lab/test_report.py`) fails when this page differs from that rendering. A size "
        "with no committed JSON says `n/a`.",
        "",
        "`slotsync bench` measures, side by side in one run: slots per second from HTTP responses to "
        "typed warehouse rows (ours) against DuckDB's own `read_json` on the same bytes (the limit), "
        f"a naive baseline ({NAIVE_LABEL}) and its FHIR-minded peer ({FHIR_PEER_LABEL}), each on a "
        f"sample of at least {NAIVE_SAMPLE_SLOTS:,} slots, with wall and CPU seconds beside each; "
        "then the real `nightly_sync` flow end to end in its own process.",
        "",
        "The limit reads its NDJSON with `maximum_object_size` just above its largest line "
        "(`limit_maximum_object_size`), as our loader sizes its own from its largest file: DuckDB "
        "reads a newline-delimited file on every core only when the file is larger than that "
        "buffer. Runs before schema 5 gave the limit 256 MiB, larger than its file, so DuckDB read "
        f"it on one thread (a slower limit); their limit figures say "
        f"{ONE_THREAD_LIMIT}, and their ratios are not comparable with later ones.",
        "",
        "`peak_rss_tree_mib` is the peak of the summed RSS of the nightly's whole process tree (the "
        "nightly process, Prefect's temporary API server, every child), sampled; the sandbox runs in "
        "a separate process and is reported apart (`sandbox_peak_rss_mib`). "
        "`validation_s_per_million_rows` is the data-quality gate's own cost in that nightly run "
        "(its writer's validate phase over the slot rows it loaded). GX's one-off start-up (its "
        "import and the project's suites) is made in a thread as the night starts, while the writer "
        "has nothing to write, and is reported apart (`validation_gate_setup_s`) and counted in "
        "`validation_s_per_million_rows_with_setup`; a night that did not make it apart (runs "
        "before, and nights of at most two writer batches) has it inside the validate phase, and "
        "shows `n/a` for the start-up. "
        "`validation_gate_synthetic_s_per_million_rows` is the same gate (`validate_pending`, GX "
        "results and Data Docs into a temporary folder) over one million synthetic staged slots in "
        "a warehouse built by the migrations, a few practices defective (runs before it timed GX "
        "alone over a 1 M-row frame, under another key, and show `n/a` here).",
        "",
        "## Targets",
        "",
        "| figure (JSON key) | target |",
        "|---|---|",
        f"| `ingest_ratio_vs_duckdb` | >= {TARGET_RATIO} |",
        f"| `speedup_vs_naive` (naive baseline: one transaction) | >= {TARGET_SPEEDUP_VS_NAIVE:g} |",
        f"| `peak_rss_tree_mib` (England nightly, whole process tree) | < {TARGET_PEAK_RSS_MIB:,.0f} |",
        f"| `mart_query_p95_s` (England-scale marts) | < {TARGET_MART_QUERY_P95_S:g} s |",
        f"| `nightly_wall_s` (England nightly, zero-latency sandbox) | <= {TARGET_ENGLAND_WALL_S:,.0f} s |",
        "| `nightly_load_publish_s` (England: writer after the last fetch) | "
        f"<= {TARGET_AFTER_FETCH_S:g} s |",
        f"| `validation_s_per_million_rows` (England nightly) | <= {TARGET_VALIDATION_S_PER_MILLION:g} |",
        "",
        "The bench reports; nothing asserts a timing (the CI test checks every figure is there and "
        "sane).",
        "",
        "## Latest figures per size",
        "",
        "| metric | " + " | ".join(SIZES) + " |",
        "|---|" + "---|" * len(SIZES),
        "| commit (JSON file) | " + " | ".join(
            f"`{d.get('commit', '?')}` (`{d['_file']}`)" if d else NOT_RUN for d in latest.values()
        ) + " |",
    ]
    for label, key, fmt in _BENCH_ROWS:
        lines.append(f"| {label} | " + " | ".join(_bench_cell(latest[s], key, fmt) for s in SIZES) + " |")
    lines += ["", "## Every committed run", "",
              "| size | commit | generated | nightly wall s | peak_rss_tree_mib | ingest ratio | "
              "speedup_vs_naive | validation s/M rows |",
              "|---|---|---|--:|--:|--:|--:|--:|"]
    for size in SIZES:
        for d in runs.get(size, []):
            lines.append(
                f"| {size} | `{d.get('commit', '?')}` | {d.get('generated_at', 'n/a')} | "
                f"{_num(d.get('nightly_wall_s'), '{:,.1f}')} | "
                f"{_num(d.get('peak_rss_tree_mib'), '{:,.0f}')} | "
                f"{_bench_cell(d, 'ingest_ratio_vs_duckdb', '{:.2f}')} | "
                f"{_num(d.get('speedup_vs_naive'), '{:,.1f}')} | "
                f"{_num(d.get('validation_s_per_million_rows'), '{:.3f}')} |"
            )
        if not runs.get(size):
            lines.append(f"| {size} | {NOT_RUN} | | | | | | |")
    lines += ["", "## Capacity model", "", *_capacity_lines(runs)]
    lines += ["", "## Provider latency: measured against the model", "", *_latency_lines(runs)]
    lines += ["", "## How cost grows", "", *_growth_lines(growth_run(reports))]
    machine = next((d.get("machine") for d in reversed([x for s in SIZES for x in runs.get(s, [])])
                    if d.get("machine")), None)
    lines += ["", "## Machine (of the latest run)", ""]
    if machine:
        lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in machine.items()]
    else:
        lines.append("n/a (no committed bench JSON)")
    lines += [
        "",
        "## How to reproduce",
        "",
        "```sh",
        "python3 -m uv run slotsync bench --size small --json reports/bench/bench-small-$(git rev-parse "
        "--short HEAD).json",
        "python3 -m uv run slotsync bench --size region --json reports/bench/bench-region-$(git rev-parse "
        "--short HEAD).json",
        "python3 -m uv run slotsync bench --size england --repetitions 1 --latency p50=1s,p95=3s "
        "--latency-in-flight 96 "
        "--json reports/bench/bench-england-$(git rev-parse --short HEAD).json",
        "python3 -m uv run slotsync bench --size england --growth 300,1000,3000,6300 "
        "--json reports/bench/growth-$(git rev-parse --short HEAD).json",
        RENDER_COMMAND,
        "```",
        "",
    ]
    return "\n".join(lines)


def _capacity_lines(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    source = next((runs[s][-1] for s in reversed(SIZES) if runs.get(s) and runs[s][-1].get("capacity_model")),
                  None)
    if source is None:
        return ["n/a (no committed bench JSON with a capacity model)"]
    model = source["capacity_model"]
    lines = [
        f"From `{source['_file']}` ({model['basis']}): a full England night is "
        f"{model['calls_per_night']:,} calls ({model['slot_searches']:,} slot searches, "
        f"{model['appointment_reads']:,} appointment reads); our ceiling "
        f"{model['our_ceiling_calls_per_s']:,.1f} calls/s; load and publish "
        f"{model['load_publish_s']:,.0f} s.",
        "",
        "| provider latency (p50) s | calls in flight | nightly wall min |",
        "|--:|--:|--:|",
    ]
    lines += [f"| {r['latency_p50_s']:g} | {r['concurrency']} | {r['wall_s'] / 60:,.0f} |"
              for r in model["rows"]]
    return lines


LATENCY_NOT_RUN = "n/a (no committed bench JSON with a latency night: run the bench with --latency)"
GROWTH_NOT_RUN = "n/a (no committed growth JSON: run `slotsync bench --size england --growth ...`)"


def _latency_lines(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [
        "`--latency p50=1s,p95=3s` runs the nightly a second time against a sandbox that delays every "
        "GP Connect call by a seeded log-normal draw with that median and 95th percentile (per "
        "supplier if asked), and holds its wall time against the capacity model for the same "
        "latency and in-flight limits, fed the zero-latency run: fetch = max(calls x mean latency / "
        "min(overall, per-host x hosts), busiest host's calls x mean latency / per-host, zero-latency "
        "fetch); wall = fetch + load and publish (`lab/bench_capacity.py`). The sandbox counts the "
        "calls it had in flight (max and time-weighted mean, per host and overall).",
        "",
        "| size | commit | latency | calls | in flight (limit) | measured wall s | predicted wall s | "
        "error | within 15% | max in flight overall / per host (limits) | mean in flight | "
        "limits respected |",
        "|---|---|---|--:|--:|--:|--:|--:|---|---|--:|---|",
    ]
    for size in SIZES:
        run = next((d for d in reversed(runs.get(size, [])) if d.get("latency_night")), None)
        if run is None:
            lines.append(f"| {size} | {LATENCY_NOT_RUN} | | | | | | | | | | |")
            continue
        night, achieved = run["latency_night"], run["latency_night"]["achieved_concurrency"]
        predicted = night["prediction"]
        lines.append(
            f"| {size} | `{run.get('commit', '?')}` | {night['latency']['spec']} (mean "
            f"{predicted['mean_latency_s']:.3f} s) | {predicted['calls']:,} | "
            f"{predicted['effective_concurrency']} | {_num(night.get('measured_wall_s'), '{:,.1f}')} | "
            f"{_num(night.get('predicted_wall_s'), '{:,.1f}')} | "
            f"{_signed_pct(night.get('prediction_error'))} | "
            f"{'yes' if night.get('within_target') else 'NO'} | {achieved['max_overall']} / "
            f"{achieved['max_per_host']} ({achieved['overall_limit']} / {achieved['per_host_limit']}) | "
            f"{_num(achieved.get('mean_overall'), '{:.1f}')} | "
            f"{'yes' if achieved.get('limits_respected') else 'NO'} |"
        )
    return lines


def _growth_lines(data: dict[str, Any] | None) -> list[str]:
    if data is None:
        return [GROWTH_NOT_RUN]
    fit = data["wall_fit"]
    r2 = "n/a (fewer than three sizes: two points always fit)" if fit["r2"] is None else f"{fit['r2']:.3f}"
    memory = data.get("peak_rss_tree_growth")
    lines = [
        f"From `{data['_file']}` (commit `{data.get('commit', '?')}`, {data.get('generated_at', 'n/a')}"
        + (f", provider latency {data['latency']}" if data.get("latency") else ", zero latency")
        + "): the nightly end to end at each size of the pre-rendered England estate, in its own "
        "process; CPU and peak RSS are of its whole process tree (the sandbox apart).",
        "",
        "| practices | rows | responses | wall s | CPU s (tree) | peak RSS MiB (tree) | "
        "wall per practice vs largest | sandbox CPU s |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for p in data["sizes"]:
        lines.append(
            f"| {p['practices']:,} | {p['rows']:,} | {_num(p.get('responses'))} | {p['wall_s']:,.1f} | "
            f"{_num(p.get('cpu_tree_s'), '{:,.1f}')} | {_num(p.get('peak_rss_tree_mib'), '{:,.0f}')} | "
            f"{p['wall_per_practice_vs_largest']:.2f} | {_num(p.get('sandbox_cpu_s'), '{:,.1f}')} |"
        )
    lines += [
        "",
        f"Wall = {fit['fixed_s']:,.1f} s {fit['s_per_practice']:+.3f} s x practices, R^2 {r2} "
        f"(linear: R^2 >= {data['target_wall_r2']}). Peak tree RSS grew x"
        f"{'n/a' if memory is None else memory} while practices grew x{data['practices_growth']} "
        f"(flat: <= x{data['target_memory_growth']}).",
    ]
    return lines


# ---------------------------------------------------------------------- README blocks


def _accuracy_block(reports: Path) -> str:
    run = replay_run(reports)
    if run is None:
        return "n/a: no committed replay JSON under `reports/replay/` (run `slotsync replay`)."
    acc = run["accuracy"]
    displaced = run["nhs111_displaced"]
    misses = ", ".join(f"{k} {v}" for k, v in run["release_misses_by_cause"].items()) or "none"
    curve = run["waste_cut_by_rebook_rate"]
    curve_rows = [
        f"| {rate} | {c['unused_without']:,} | {c['unused_with']:,} | {c['waste_cut']:.1%} |"
        for rate, c in sorted(curve.items())
    ]
    causes = ", ".join(f"{k} {v:,}" for k, v in acc["differences_by_cause"].items()) or "none"
    return "\n".join([
        f"Rendered from `{run['_file']}` (`{run['command']}`, commit `{run['commit']}`, seed "
        f"{run['seed']}): {run['days']} judged day(s), {run['first_judged_day']} to "
        f"{run['last_judged_day']}, {run['scheduled_runs']:,} scheduled runs at the deployed cadence, "
        f"{run['sync_failures']} practice failures.",
        "",
        "**What the release flow controls** (against a twin of the same seeded world with no releases):",
        "",
        f"- *release coverage*: of {run['reserved_unused_without_release']:,} reserved NHS 111 slots that "
        f"start unused in the twin, {_pct(run['release_coverage'])} were released (or, at work-list "
        f"practices, queued for staff) at or before `start - lead` (target >= "
        f"{run['release_coverage_target']:.0%}): released {run['released_in_time']:,}, queued "
        f"{run['queued_in_time']:,}; misses by cause: {misses}.",
        f"- *NHS 111 bookings displaced*: {displaced['count']:,} ({_pct(displaced['share_of_111_demand'])} "
        f"of {displaced['nhs111_bookings_without_release']:,} NHS 111 bookings in the twin; "
        f"{displaced['nhs111_bookings_with_release']:,} with releases), under the release policies "
        + ", ".join(f"`{p}`" for p in displaced["release_policies"]) + ".",
        f"- *release requests for booked slots*: {run['booked_release_requests']:,} of "
        f"{run['release_requests']:,} requests the provider received for the judged days (its request "
        "log, whatever it answered; target 0).",
        "",
        "**Waste cut, as a curve over an assumption**: the rebook rate is the chance the practice "
        "books a slot after it is released: that is the practice's demand, which the sandbox "
        "simulates and nobody measured. Each row replays the flow's own release requests on the same "
        f"world at that rate (replayed answers differing from the logged ones: "
        f"{run['replayed_status_mismatches']}).",
        "",
        "| rebook rate (assumed) | unused 111 slots without releases | with | waste cut at that rate |",
        "|--:|--:|--:|--:|",
        *curve_rows,
        "",
        "**Accuracy of the marts** against the sandbox's ground truth "
        f"({acc['practice_days']:,} practice-days, {acc['slots_compared']:,} slots compared):",
        "",
        f"- NHS 111 utilisation exact on {run['nhs111_utilisation_exact_days']:,} of "
        f"{run['nhs111_utilisation_days']:,} practice-days ({run['missing_mart_days']} missing from the "
        f"mart, {acc['phantom_mart_days']} in the mart but not the truth).",
        f"- Booked slots: truth {acc['booked_truth']:,}, ours {acc['booked_ours']:,}, "
        f"`booked_error_total` {run['booked_error_total']:,} "
        f"({acc['booked_relative_error']:.1%}); differences by cause (each cause checked against its "
        f"timeline): {causes}; unexplained {run['unexplained_booked_differences']}; phantom slots "
        f"{run['phantom_slots']}; missing slots {acc['missing_slots']}; non-cadence differences "
        f"{run['non_cadence_share_of_booked']:.2%} of true bookings (bound 2%).",
        f"- Booked before the first snapshot that covered them (unobservable): "
        f"{acc['unobservable_bookings']:,}; free in the truth but booked at every search that covered "
        f"them (never visible): {_count_or_na(acc, 'freed_after_every_check')}.",
    ])


def _count_or_na(figures: dict[str, Any], key: str) -> str:
    """A count, or `n/a` with why when the committed run predates the figure."""
    value = figures.get(key)
    return "n/a (not measured by this run)" if value is None else f"{value:,}"


def _benchmarks_block(reports: Path) -> str:
    runs = bench_runs(reports)
    latest = _latest(runs)
    keys = [
        ("peak_rss_tree_mib", "peak_rss_tree_mib", "{:,.0f}"),
        ("nightly wall s", "nightly_wall_s", "{:,.1f}"),
        ("ingest_ratio_vs_duckdb", "ingest_ratio_vs_duckdb", "{:.2f}"),
        ("speedup_vs_naive (one transaction)", "speedup_vs_naive", "{:,.1f}"),
        ("validation_s_per_million_rows", "validation_s_per_million_rows", "{:.3f}"),
        ("mart_query_p95_s", "mart_query_p95_s", "{:.3f}"),
    ]
    lines = ["| figure | " + " | ".join(SIZES) + " |", "|---|" + "---|" * len(SIZES)]
    lines.append("| source | " + " | ".join(f"`{d['_file']}`" if d else NOT_RUN for d in latest.values())
                 + " |")
    for label, key, fmt in keys:
        lines.append(f"| {label} | " + " | ".join(_bench_cell(latest[s], key, fmt) for s in SIZES) + " |")
    return "\n".join(lines)


def _capacity_block(reports: Path) -> str:
    return "\n".join(_capacity_lines(bench_runs(reports)))


README_BLOCKS: dict[str, Callable[[Path], str]] = {
    "accuracy": _accuracy_block,
    "benchmarks": _benchmarks_block,
    "capacity": _capacity_block,
}


def render_readme(text: str, reports: Path = REPORTS) -> str:
    for name, block in README_BLOCKS.items():
        begin, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
        if begin not in text or end not in text:
            raise ValueError(f"README.md has no {begin} ... {end} markers")
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{_generated_note(['reports/'])}\n{block(reports)}\n{end}{tail}"
    return text


# ---------------------------------------------------------------------- RELIABILITY.md


def _measured(value: Any, reason: Any) -> str:
    if value is None:
        return f"n/a ({reason or 'not measured by this test'})"
    return str(value)


def render_reliability_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| area | fault | injected | survived | data lost | duplicate rows | handling | test |",
        "|---|---|--:|--:|--:|--:|---|---|",
    ]
    for r in rows:
        why = r.get("not_measured")
        lines.append(
            f"| {r['area']} | {r['fault']} | {r['injected']} | {r['survived']} | "
            f"{_measured(r['data_lost'], why)} | {_measured(r['duplicate_rows'], why)} | {r['handling']} | "
            f"`{r['test']}` |"
        )
    latest = max((r.get("recorded_at") or "" for r in rows), default="")
    lines += ["", f"_{len(rows)} rows from `reports/reliability/*.json`, recorded by the tests; latest "
                  f"{latest or 'n/a'}._"]
    return "\n".join(lines)


def render_reliability(text: str, reports: Path = REPORTS) -> str:
    if _RELIABILITY_BEGIN not in text or _RELIABILITY_END not in text:
        raise ValueError(f"RELIABILITY.md has no {_RELIABILITY_BEGIN} ... {_RELIABILITY_END} markers")
    head, rest = text.split(_RELIABILITY_BEGIN, 1)
    _, tail = rest.split(_RELIABILITY_END, 1)
    table = render_reliability_table(reliability_rows(reports))
    return f"{head}{_RELIABILITY_BEGIN}\n{table}\n{_RELIABILITY_END}{tail}"


# ---------------------------------------------------------------------- command


def rendered(root: Path = ROOT) -> dict[Path, str]:
    """Each generated doc as the committed JSON renders it."""
    reports = root / "reports"
    return {
        root / "BENCHMARKS.md": render_benchmarks(reports),
        root / "RELIABILITY.md": render_reliability((root / "RELIABILITY.md").read_text(), reports),
        root / "README.md": render_readme((root / "README.md").read_text(), reports),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in (["render"], ["check"]):
        print("usage: python -m lab.report render|check", file=sys.stderr)
        return 1
    try:
        docs = rendered()
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        print(f"cannot render: {exc}", file=sys.stderr)
        return 1
    stale = [path for path, text in docs.items() if path.read_text() != text]
    if args == ["check"]:
        for path in stale:
            print(f"{path.name} differs from the rendering of reports/: run `{RENDER_COMMAND}`",
                  file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(docs[path])
        print(f"rendered {path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
