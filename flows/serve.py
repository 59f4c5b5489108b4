"""`slotsync serve`: everything one machine needs to run slotsync on its schedules.

Starts, in this order, and stops in the reverse order:
1. a Prefect server on 127.0.0.1 backed by SQLite under PREFECT_HOME, or by PostgreSQL
   (`--database` / PREFECT_API_DATABASE_CONNECTION_URL, migrated first), unless
   PREFECT_API_URL already names a server (then that one is used and left alone), its
   task-run recorder and event persister set to write in batches (SERVER_SETTINGS);
2. the `slotsync` process work pool, the deployments of flows/deployments.py and the alert
   automations (flows/alerts.py), each created or updated idempotently;
3. a process worker that polls the pool and runs each flow run in its own subprocess.

Stopping (Ctrl-C, SIGINT or SIGTERM) stops the worker, then the server: SIGTERM to each
child's process group, then SIGKILL after a grace period. Every child starts in its own
session (so a terminal's Ctrl-C reaches only serve, which orders the shutdown) and carries a
marker in its environment; flow-run processes the worker started in sessions of their own
carry it too. At the end serve stops any process still carrying the marker, so nothing is
left orphaned. A flow run stopped this way does not complete; `slotsync rerun <id>` repairs
it from the warehouse. Deployments are never paused on the way out (a worker, unlike
`flow.serve()`, does not pause them), and each start re-applies them active.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

import httpx
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus
from prefect.exceptions import ObjectAlreadyExists
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.workers.process import ProcessWorker

from common.config import AlertSettings
from flows.deployments import WORK_POOL, slotsync_deployments
from flows.environment import SERVER_SETTINGS

SERVE_MARKER = "SLOTSYNC_SERVE_ID"  # environment variable every child process inherits
DATABASE_URL_VARIABLE = "PREFECT_API_DATABASE_CONNECTION_URL"


class ServeError(RuntimeError):
    """A part of the stack did not start or stopped unexpectedly; the message says which."""


@dataclass(frozen=True)
class ServeConfig:
    registry_path: Path
    data_dir: Path
    warehouse_path: Path | None = None
    host: str = "127.0.0.1"
    port: int = 4200
    worker_limit: int = 2  # flow runs this machine executes at once
    ui: bool = False
    startup_timeout_s: float = 240.0  # a Prefect server takes 15-25 s on 2 cores, more when busy
    stop_timeout_s: float = 30.0
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # The Prefect server's database: None = SQLite under PREFECT_HOME (or whatever
    # PREFECT_API_DATABASE_CONNECTION_URL says); e.g. postgresql+asyncpg://user:pw@host/db.
    database_url: str | None = None
    alerts: AlertSettings | None = None  # None: leave the server's alerts as they are


class ChildProcess:
    """A child command in its own session, stopped together with its process group."""

    def __init__(self, name: str, command: list[str], env: Mapping[str, str]) -> None:
        self.name = name
        self._command = command
        self._env = dict(env)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(self._command, env=self._env, start_new_session=True)

    @property
    def exit_code(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def stop(self, timeout_s: float) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class SlotsyncStack:
    """The server, pool, limit, deployments and worker, as a context manager."""

    def __init__(self, config: ServeConfig, *, progress: Callable[[str], None] = print) -> None:
        self.config = config
        self._progress = progress
        self._serve_id = uuid.uuid4().hex
        self._children: list[ChildProcess] = []
        external = os.environ.get("PREFECT_API_URL")
        self.api_url = external or f"http://{config.host}:{config.port}/api"
        self.owns_server = not external
        self.worker_name = f"slotsync-{socket.gethostname()}-{os.getpid()}"

    def __enter__(self) -> SlotsyncStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _start(self) -> None:
        env = {**os.environ, **self.config.extra_env, SERVE_MARKER: self._serve_id}
        if self.owns_server:
            check_port_free(self.config.host, self.config.port)
            database = self.config.database_url or os.environ.get(DATABASE_URL_VARIABLE)
            if database:
                env[DATABASE_URL_VARIABLE] = database
                migrate_database(env, database, timeout_s=self.config.startup_timeout_s)
                self._progress(f"Prefect database {redact_url(database)}: migrations applied")
            self._progress(f"starting a Prefect server on {self.api_url} (PREFECT_HOME "
                           f"{os.environ.get('PREFECT_HOME', '~/.prefect')}, database "
                           f"{redact_url(database) if database else 'SQLite'})")
            self._spawn("Prefect server", [
                sys.executable, "-m", "prefect", "server", "start",
                "--host", self.config.host, "--port", str(self.config.port),
            ], server_environment(env, ui=self.config.ui))
        self._wait_until_healthy()
        with temporary_settings({PREFECT_API_URL: self.api_url}):
            self._apply_configuration()
            if self.config.alerts is not None:
                self._apply_alerts(self.config.alerts)
        self._spawn("Prefect worker", [
            sys.executable, "-m", "prefect", "worker", "start", "--pool", WORK_POOL,
            "--type", "process", "--limit", str(self.config.worker_limit), "--name", self.worker_name,
        ], {**env, "PREFECT_API_URL": self.api_url})
        with temporary_settings({PREFECT_API_URL: self.api_url}):
            self._wait_for_worker()
        self._progress(f"worker {self.worker_name} is polling work pool {WORK_POOL!r}; Ctrl-C stops all")

    def _spawn(self, name: str, command: list[str], env: Mapping[str, str]) -> None:
        child = ChildProcess(name, command, env)
        child.start()
        self._children.append(child)

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_s
        while time.monotonic() < deadline:
            self._check_children()
            with suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/health", timeout=5).status_code == 200:
                    return
            time.sleep(0.5)
        raise ServeError(
            f"the Prefect API at {self.api_url} did not answer within "
            f"{self.config.startup_timeout_s:.0f} s. Next step: check the server output above, "
            "or raise --startup-timeout on a busy machine"
        )

    def _apply_configuration(self) -> None:
        with get_client(sync_client=True) as client:
            try:
                client.create_work_pool(WorkPoolCreate(
                    name=WORK_POOL, type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                ))
                self._progress(f"created process work pool {WORK_POOL!r}")
            except ObjectAlreadyExists:
                pass
        for deployment in slotsync_deployments(
            registry_path=self.config.registry_path, data_dir=self.config.data_dir,
            warehouse_path=self.config.warehouse_path,
        ):
            deployment.apply(work_pool_name=WORK_POOL)
            self._progress(f"deployment {deployment.full_name} applied")

    def _apply_alerts(self, alerts: AlertSettings) -> None:
        from flows.alerts import AlertsError, apply_alerts

        try:
            asyncio.run(apply_alerts(alerts, api_url=self.api_url, progress=self._progress))
        except AlertsError as exc:
            raise ServeError(f"alerts: {exc}") from None

    def _wait_for_worker(self) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_s
        online = WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"]))
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                self._check_children()
                workers = client.read_workers_for_work_pool(WORK_POOL, worker_filter=online)
                if any(w.name == self.worker_name for w in workers):
                    return
                time.sleep(0.5)
        raise ServeError(f"worker {self.worker_name} did not come online within "
                         f"{self.config.startup_timeout_s:.0f} s. Next step: check its output above")

    def _check_children(self) -> None:
        for child in self._children:
            if child.exit_code is not None:
                raise ServeError(f"{child.name} exited with code {child.exit_code}; see its output above")

    def wait(self) -> None:
        """Block until a signal arrives (as KeyboardInterrupt) or a child dies (ServeError)."""
        while True:
            self._check_children()
            time.sleep(1)

    def stop(self) -> None:
        """Stop the worker, then the server, then anything else still carrying the marker."""
        for child in reversed(self._children):
            if child.exit_code is None:
                self._progress(f"stopping {child.name}")
            child.stop(self.config.stop_timeout_s)
        self._children.clear()
        stop_marked_processes(self._serve_id)


def server_environment(env: Mapping[str, str], *, ui: bool) -> dict[str, str]:
    """The Prefect server's environment: SERVER_SETTINGS, overridden by the operator's own."""
    return {**SERVER_SETTINGS, **env, "PREFECT_UI_ENABLED": str(ui).lower()}


def check_port_free(host: str, port: int) -> None:
    """A one-line ServeError when something already listens where the server would."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise ServeError(
                f"port {port} on {host} is already in use (another `slotsync serve` or Prefect "
                "server?). Next step: stop it, pass --port, or point PREFECT_API_URL at it"
            ) from None


def redact_url(url: str) -> str:
    """A database URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def migrate_database(env: Mapping[str, str], database: str, *, timeout_s: float) -> None:
    """Create or upgrade the Prefect server's schema (`prefect server database upgrade`)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
            env={**env, DATABASE_URL_VARIABLE: database}, capture_output=True, text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        raise ServeError(f"migrating the Prefect database {redact_url(database)} took over "
                         f"{timeout_s:.0f} s. Next step: check the database is reachable") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1].replace(database, redact_url(database))
        raise ServeError(f"could not migrate the Prefect database {redact_url(database)}: {last}. "
                         "Next step: check the URL, the user's rights and that the server runs")


def stop_marked_processes(serve_id: str, *, grace_s: float = 5.0) -> list[int]:
    """SIGTERM (then SIGKILL) every process whose environment carries this serve's marker."""
    marked = marked_processes(serve_id)
    for pid in marked:
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and marked_processes(serve_id):
        time.sleep(0.1)
    for pid in marked_processes(serve_id):
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return marked


def marked_processes(serve_id: str) -> list[int]:
    """Live processes (Linux /proc) started under the serve with this id, except this one."""
    needle = f"{SERVE_MARKER}={serve_id}".encode()
    found: list[int] = []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(pid)
    return found


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
