"""Flow tests run real Prefect flows against a temporary Prefect API (prefect_test_harness)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="session", autouse=True)
def prefect_api() -> Iterator[None]:
    # The harness's API server takes ~25 s to start on a 2-core machine; 30 s is too tight.
    with prefect_test_harness(server_startup_timeout=180):
        yield
