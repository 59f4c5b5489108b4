"""`SandboxServer`: the sandbox on a real loopback socket, in a background thread.

The socket is bound first (port 0 picks a free port) so the registry can be built with the
real base URL in every service root; then uvicorn serves the app from a daemon thread.
Use it as a context manager; leaving the block (also on KeyboardInterrupt) shuts it down.

    with SandboxServer(clock=SimulatedClock(start)) as sandbox:
        registry = sandbox.registry            # service roots point at sandbox.base_url
        sandbox.state.faults.add(FaultRule(kind="status", status=503, count=1))
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

import uvicorn

from common.clock import Clock, SystemClock
from connectors.registry import Registry
from sandbox.app import create_app
from sandbox.estate import DEFAULT_SEED, southern_hampshire_estate
from sandbox.faults import FaultInjector
from sandbox.latency import LatencyModel
from sandbox.simulation import REBOOK_AFTER_RELEASE_CHANCE
from sandbox.state import SandboxState

RegistryFactory = Callable[[str], Registry]
_UVICORN_LOGGER = "uvicorn.error"
_ABORT_COMPLAINT = "ASGI callable returned without completing response."


class SandboxServer:
    """A running sandbox GP Connect provider estate on `base_url`."""

    def __init__(
        self,
        *,
        registry_factory: RegistryFactory | None = None,
        clock: Clock | None = None,
        seed: int = DEFAULT_SEED,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout_s: float = 10.0,
        rebook_after_release_chance: float = REBOOK_AFTER_RELEASE_CHANCE,
        latency: LatencyModel | None = None,
    ) -> None:
        self._latency = latency
        self._rebook_after_release_chance = rebook_after_release_chance
        self._registry_factory = registry_factory or (lambda base: southern_hampshire_estate(base, seed))
        self._clock = clock or SystemClock()
        self._seed = seed
        self._host = host
        self._port = port
        self._startup_timeout_s = startup_timeout_s
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._log_filter: _DeliberateAbortFilter | None = None
        self.base_url = ""
        self._state: SandboxState | None = None

    @property
    def state(self) -> SandboxState:
        if self._state is None:
            raise RuntimeError("the sandbox has not been started")
        return self._state

    @property
    def registry(self) -> Registry:
        return self.state.registry

    def start(self) -> SandboxServer:
        if self._thread is not None:
            raise RuntimeError("the sandbox is already running")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self._host, self._port))
        listener.listen(128)
        self._socket = listener
        host, port = listener.getsockname()[:2]
        self.base_url = f"http://{host}:{port}"
        state = SandboxState(
            self._registry_factory(self.base_url), clock=self._clock, seed=self._seed,
            rebook_after_release_chance=self._rebook_after_release_chance,
        )
        self._state = state
        self._log_filter = _DeliberateAbortFilter(state.faults)
        logging.getLogger(_UVICORN_LOGGER).addFilter(self._log_filter)
        config = uvicorn.Config(
            create_app(state, self._latency, self._seed),
            log_level="warning",
            access_log=False,
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [listener]}, name=f"sandbox-{port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox did not start on {self.base_url}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()
        if self._log_filter is not None:
            logging.getLogger(_UVICORN_LOGGER).removeFilter(self._log_filter)
        self._server = self._thread = self._socket = self._log_filter = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class _DeliberateAbortFilter(logging.Filter):
    """Silence uvicorn's error line for connections a reset fault dropped on purpose."""

    def __init__(self, faults: FaultInjector) -> None:
        super().__init__()
        self._faults = faults

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() == _ABORT_COMPLAINT:
            return not self._faults.claim_abort()
        return True
