"""Who holds a running load: this process's identity, and whether a recorded one still lives.

A load left `running` by a process that was killed (SIGKILL, the OOM killer, a pulled plug)
runs no cleanup, so the ledger records its holder when the load begins: the pid, the host
and the process's start (the kernel's boot id and the process start time in clock ticks on
Linux). A later process on the same host can then tell "that pid is gone" or "that pid now
belongs to another process" from "it is still loading"; on another host it cannot tell.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

HolderState = Literal["alive", "gone", "elsewhere"]

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Holder:
    """A process as the ledger records it; `started` is None where it cannot be read."""

    pid: int
    host: str
    started: str | None


def process_start(pid: int) -> str | None:
    """`<boot id>:<start ticks>` of a live Linux process, None if gone or not readable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        boot_id = _BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return None
    # Field 22 (starttime) counts from the field after the command, which may hold spaces or ')'.
    fields = stat.rpartition(")")[2].split()
    return f"{boot_id}:{fields[19]}" if len(fields) > 19 else None


def this_process() -> Holder:
    pid = os.getpid()
    return Holder(pid, socket.gethostname(), process_start(pid))


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def holder_state(holder: Holder, *, host: str | None = None) -> HolderState:
    """alive | gone (dead, or its pid reused by a newer process) | elsewhere (another host)."""
    if holder.host != (host or socket.gethostname()):
        return "elsewhere"
    if holder.pid <= 0 or not process_alive(holder.pid):
        return "gone"
    if holder.started is not None:
        now = process_start(holder.pid)
        if now is not None and now != holder.started:
            return "gone"  # the pid now names another process (or the host rebooted)
    return "alive"
