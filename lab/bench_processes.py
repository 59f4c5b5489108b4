"""The bench's child processes: the standalone sandbox and the nightly run, and what they cost.

Each runs in a process of its own so its CPU and memory are its own: `StandaloneSandbox` (the
live estate, or the pre-rendered England estate, optionally with provider latency) and
`run_nightly` (`lab/bench_flow.py`, sampled every `RSS_SAMPLE_S` for the summed RSS and the CPU
seconds of its whole process tree).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from connectors.registry import Registry, load_registry
from sandbox.prerendered import READY_LINE

BENCH_START = "2026-03-23T02:00:00+00:00"  # a Monday's nightly run; the horizon crosses BST
HORIZON_DAYS = 28
SANDBOX_SEED = 20261126
SANDBOX_STARTUP_TIMEOUT_S = 90.0
RSS_SAMPLE_S = 0.5


class StandaloneSandbox:
    """The sandbox in its own process (its own GIL), on a free port.

    The live estate (`python -m sandbox`) for small and region; for england the
    pre-rendered England estate (`python -m sandbox.prerendered`), which renders
    its templates before it reports ready. `usage` holds the process's rusage once stopped.
    """

    def __init__(
        self, work_dir: Path, *, start: str = BENCH_START, seed: int = SANDBOX_SEED,
        england_practices: int | None = None, latency: str | None = None,
    ) -> None:
        self._latency = latency
        self.registry_path = work_dir / "sandbox-registry.yaml"
        self.log_path = work_dir / "sandbox.log"
        self._start = start
        self._seed = seed
        self._england_practices = england_practices
        self._process: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.usage: resource.struct_rusage | None = None

    def _command(self) -> list[str]:
        common = ["--port", "0", "--start", self._start, "--seed", str(self._seed),
                  "--write-registry", str(self.registry_path),
                  *(("--latency", self._latency) if self._latency else ())]
        if self._england_practices is None:
            return [sys.executable, "-m", "sandbox", *common]
        return [sys.executable, "-m", "sandbox.prerendered", *common,
                "--practices", str(self._england_practices), "--horizon-days", str(HORIZON_DAYS)]

    def __enter__(self) -> Registry:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT)
        timeout = SANDBOX_STARTUP_TIMEOUT_S * (1 if self._england_practices is None else 10)
        deadline = time.monotonic() + timeout
        ready = READY_LINE.encode()
        while ready not in (output := self.log_path.read_bytes()):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(
                    "the standalone sandbox did not start; its output:\n"
                    + self.log_path.read_text(errors="replace")[-2000:]
                )
            time.sleep(0.05)
        self.base_url = output.split(ready, 1)[1].split(b";", 1)[0].decode()
        return load_registry(self.registry_path)

    def stats(self) -> dict[str, Any] | None:
        """The pre-rendered sandbox's account of its own cost (None for the live sandbox)."""
        if self._england_practices is None or not self.base_url:
            return None
        stats: dict[str, Any] = httpx.get(f"{self.base_url}/_sandbox/stats", timeout=30).json()
        return stats

    def in_flight(self) -> dict[str, Any]:
        """GP Connect requests the sandbox had in flight (`sandbox.latency`), per host and overall."""
        report: dict[str, Any] = httpx.get(f"{self.base_url}/_sandbox/in-flight", timeout=30).json()
        return report

    def __exit__(self, *exc_info: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()  # SIGTERM unwinds like Ctrl-C and releases the port
        self.usage = _reap(process, timeout=30)
        if self.usage is None:
            process.kill()
            self.usage = _reap(process, timeout=10)


def _reap(process: subprocess.Popen[bytes], *, timeout: float | None) -> resource.struct_rusage | None:
    """Wait for `process` and return its own rusage (peak RSS, CPU), not every child's."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, 0 if deadline is None else os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return usage
        if deadline is not None and time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def run_nightly(root: Path, registry_path: Path, practices: Sequence[str] | None, noop_tasks: int,
                env_overrides: Mapping[str, str] | None = None) -> tuple[
    dict[str, Any], resource.struct_rusage | None, dict[str, float]
]:
    """`lab/bench_flow.py` in its own process: the nightly flow end to end, and Prefect's overhead."""
    figures = root / "nightly.json"
    command = [
        sys.executable, "-m", "lab.bench_flow", "--registry", str(registry_path),
        "--data-dir", str(root / "nightly"), "--as-of", BENCH_START, "--horizon-days", str(HORIZON_DAYS),
        "--noop-tasks", str(noop_tasks), "--json", str(figures),
        *(arg for ods in practices or () for arg in ("--practice", ods)),
    ]
    log_path = root / "nightly.log"
    samples: list[tuple[float, float]] = []  # (unix time, RSS MiB): which phase holds the memory
    tree_peak, tree_processes = 0.0, 0
    cpu_seen: dict[int, float] = {}  # pid: latest CPU s, for descendants never reaped by the tree
    with log_path.open("wb") as log:
        # Its own Prefect home: an England run writes hundreds of MB of task runs and events,
        # and an ephemeral API on a bloated default ~/.prefect database starts very slowly.
        env = {**os.environ, "PREFECT_HOME": str(root / "prefect-home"), **(env_overrides or {})}
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        usage = None
        while usage is None:
            usage = _reap(process, timeout=0)
            if usage is None:
                samples.append((time.time(), _current_rss_mib(process.pid)))
                tree_mib, processes = tree_rss_mib(process.pid, cpu_seen)
                tree_peak, tree_processes = max(tree_peak, tree_mib), max(tree_processes, processes)
                time.sleep(RSS_SAMPLE_S)
    if process.returncode != 0 or not figures.exists():
        raise RuntimeError(
            f"the nightly run failed (exit {process.returncode}); its output:\n"
            + log_path.read_text(errors="replace")[-3000:]
        )
    nightly: dict[str, Any] = json.loads(figures.read_text())
    fetched_by = nightly["nightly"].get("fetched_by")
    if fetched_by is not None:
        nightly["nightly"]["rss_peak_fetch_mib"] = max(
            (m for t, m in samples if t <= fetched_by), default=None
        )
        nightly["nightly"]["rss_peak_load_publish_mib"] = max(
            (m for t, m in samples if t > fetched_by), default=None
        )
    # CPU of the tree: the nightly's own rusage counts every descendant it reaped; a sampled one
    # that was never reaped (orphaned) is counted from its last sample instead, so take the larger.
    reaped = usage.ru_utime + usage.ru_stime if usage else 0.0
    cpu_s = max(reaped, sum(cpu_seen.values()))
    return nightly, usage, {"peak_mib": tree_peak, "max_processes": tree_processes, "cpu_s": cpu_s}


def tree_rss_mib(root_pid: int, cpu_seen: dict[int, float] | None = None) -> tuple[float, int]:
    """(summed RSS MiB, process count) of `root_pid` and every descendant, from /proc.

    With `cpu_seen`, also records each process's CPU seconds so far (user + system), by pid.
    """
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name may hold spaces and parentheses: fields start after the last ')'.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    pending, total, count = [root_pid], 0.0, 0
    while pending:
        pid = pending.pop()
        rss = _current_rss_mib(pid)
        if rss > 0:
            total, count = total + rss, count + 1
        if cpu_seen is not None:
            cpu_seen[pid] = max(cpu_seen.get(pid, 0.0), _cpu_s(pid))
        pending.extend(children.get(pid, ()))
    return total, count


def _cpu_s(pid: int) -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return 0.0


def _current_rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0
