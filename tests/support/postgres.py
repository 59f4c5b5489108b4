"""A throwaway PostgreSQL cluster on a loopback port: initdb in a temp dir, pg_ctl, stopped after.

Uses Debian's `postgresql` package (`/usr/lib/postgresql/<version>/bin`), which `.ci/run`
installs. PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres`
system user the package creates. Where the binaries are missing a test skips with the reason,
except when `SLOTSYNC_REQUIRE_POSTGRES=1` (set by CI), where it fails: CI never skips it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SUPERUSER = "slotsync"
PASSWORD = "throwaway-test-only"  # a loopback cluster that lives for one test session


@dataclass(frozen=True)
class Cluster:
    host: str
    port: int
    user: str
    password: str
    database: str

    def url(self, driver: str = "postgresql", database: str | None = None) -> str:
        """e.g. `postgresql+asyncpg://user:pw@127.0.0.1:port/db` for `driver="postgresql+asyncpg"`."""
        return f"{driver}://{self.user}:{self.password}@{self.host}:{self.port}/{database or self.database}"


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's binaries, or None."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    found = [p for p in candidates if (p / "initdb").exists() and (p / "pg_ctl").exists()]
    return found[-1] if found else None


def require_bin_dir() -> Path:
    found = bin_dir()
    if found is None:
        message = "PostgreSQL is not installed (Debian: apt-get install postgresql); .ci/run installs it"
        if os.environ.get("SLOTSYNC_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(command: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *command] if owner else command


@contextmanager
def throwaway_cluster(database: str = "slotsync") -> Iterator[Cluster]:
    """Start a fresh cluster on 127.0.0.1, yield how to reach it, stop and delete it after."""
    binaries = require_bin_dir()
    owner = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root and there is no `postgres` user to own the test cluster")
        owner = "postgres"
    root = Path(tempfile.mkdtemp(prefix="slotsync-pg-"))
    data, socket_dir = root / "data", root / "sock"
    socket_dir.mkdir()
    password_file = root / "pw"
    password_file.write_text(PASSWORD + "\n")
    if owner:
        shutil.chown(root, owner)
        for path in (socket_dir, password_file):
            shutil.chown(path, owner)
    port = _free_port()
    run = {"check": True, "capture_output": True, "text": True}
    subprocess.run(
        _as_owner(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(password_file),
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            owner,
        ),
        **run,
    )  # type: ignore[call-overload]
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {socket_dir} -c fsync=off"
    subprocess.run(
        _as_owner(
            [
                str(binaries / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "log"),
                "-w",
                "start",
            ],
            owner,
        ),
        **run,
    )  # type: ignore[call-overload]
    try:
        subprocess.run(
            [str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, database],
            env={**os.environ, "PGPASSWORD": PASSWORD},
            **run,  # type: ignore[call-overload]
        )
        yield Cluster("127.0.0.1", port, SUPERUSER, PASSWORD, database)
    finally:
        subprocess.run(
            _as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], owner),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)
