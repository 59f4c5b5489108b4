"""Suite-wide setup: Prefect must be configured before it is first imported."""

from __future__ import annotations

import pytest

from flows.environment import prepare_prefect_environment

prepare_prefect_environment(quiet=True)


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (marked `anyio`) run on asyncio, like the flows."""
    return "asyncio"
