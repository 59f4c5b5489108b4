"""Private files and folders for what slotsync keeps on disk.

The warehouse, the published snapshot and the landing NDJSON (raw provider bodies, whose free
text can carry anything) must not be readable by other local users, whatever the umask. The
modes come from settings (`storage.dir_mode`, `storage.file_mode`); these are the defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path, mode: int = DIR_MODE, *, tighten: bool = False) -> Path:
    """Create `path` (and missing parents) with `mode`; `tighten` also sets it on an existing one.

    Only folders created here are changed, plus `path` itself when `tighten`: an existing
    parent (a home folder, /tmp) is never ours to chmod.
    """
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    for folder in (*missing, *([path] if tighten else [])):
        os.chmod(folder, mode)
    return path


def private_file(path: Path, mode: int = FILE_MODE) -> Path:
    """Set `path`'s mode (exactly: the umask can only take permissions away at creation)."""
    os.chmod(path, mode)
    return path


def open_private(path: Path, mode: int = FILE_MODE) -> int:
    """A new (truncated) file descriptor for writing that no other user could ever read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)  # an existing file keeps its old mode through O_CREAT
    return fd
