"""Flow tests run real Prefect flows against a temporary Prefect API (prefect_test_harness)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from prefect.testing.utilities import prefect_test_harness

T = TypeVar("T")


def run_in_thread(function: Callable[[], T]) -> T:
    """Run blocking code that calls `asyncio.run` itself (see `run_async`)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function).result()


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from a test.

    pytest-playwright's sync API keeps an event loop running in the main thread for the
    whole session, so `asyncio.run` cannot be used there; a worker thread has none.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="session", autouse=True)
def prefect_api() -> Iterator[None]:
    # The harness's API server takes ~25 s to start on a 2-core machine; 30 s is too tight.
    with prefect_test_harness(server_startup_timeout=180):
        yield
