"""Fixtures for the sandbox tests: real servers on loopback, driven by a simulated clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common.clock import SimulatedClock
from sandbox import SandboxServer
from tests.sandbox.helpers import START, GpcClient, small_estate


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(START)


@pytest.fixture
def sandbox(clock: SimulatedClock) -> Iterator[SandboxServer]:
    with SandboxServer(clock=clock) as server:
        yield server


@pytest.fixture
def gpc(sandbox: SandboxServer, clock: SimulatedClock) -> Iterator[GpcClient]:
    client = GpcClient(sandbox, clock)
    yield client
    client.close()


@pytest.fixture(scope="module")
def shared_clock() -> SimulatedClock:
    return SimulatedClock(START)


@pytest.fixture(scope="module")
def shared_sandbox(shared_clock: SimulatedClock) -> Iterator[SandboxServer]:
    """One estate per test module, for tests that only read (never move the clock)."""
    with SandboxServer(clock=shared_clock) as server:
        yield server


@pytest.fixture(scope="module")
def shared_gpc(shared_sandbox: SandboxServer, shared_clock: SimulatedClock) -> Iterator[GpcClient]:
    client = GpcClient(shared_sandbox, shared_clock)
    yield client
    client.close()


@pytest.fixture
def small_sandbox(clock: SimulatedClock) -> Iterator[SandboxServer]:
    """Three practices and a hub: for tests that need every book loaded (exports, replays)."""
    with SandboxServer(clock=clock, registry_factory=small_estate) as server:
        yield server


@pytest.fixture
def small_gpc(small_sandbox: SandboxServer, clock: SimulatedClock) -> Iterator[GpcClient]:
    client = GpcClient(small_sandbox, clock)
    yield client
    client.close()
