"""Suite-wide setup: Prefect must be configured before it is first imported."""

from __future__ import annotations

from flows.environment import prepare_prefect_environment

prepare_prefect_environment(quiet=True)
