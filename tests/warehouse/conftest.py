"""Fixtures for warehouse tests: a fresh migrated warehouse and landed fixture payloads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from connectors.gpconnect.client import SlotSearchResponse
from connectors.gpconnect.windows import SearchWindow
from warehouse.db import open_warehouse
from warehouse.landing import LandedResponse, write_landing_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fhir" / "search_slots"
OBSERVED_AT = datetime(2026, 3, 26, 2, 0, tzinfo=UTC)
WINDOW = SearchWindow(OBSERVED_AT, datetime(2026, 11, 1, tzinfo=UTC))


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = open_warehouse(tmp_path / "wh.duckdb")
    yield connection
    connection.close()


def land(
    path: Path,
    practice_ods: str,
    bodies: list[tuple[str, str, bytes]],
    *,
    load_id: str = "test-load",
    observed_at: datetime = OBSERVED_AT,
) -> Path:
    """Write a landing file from (filter_role, filter_key, body) triples."""
    responses = [
        LandedResponse(
            SlotSearchResponse(
                practice_ods=practice_ods,
                filter_key=key,
                window=WINDOW,
                fetched_at=observed_at,
                http_status=200,
                trace_id=f"trace-{i}",
                body=body,
            ),
            role,
        )
        for i, (role, key, body) in enumerate(bodies)
    ]
    write_landing_file(path, load_id=load_id, observed_at=observed_at, responses=responses)
    return path


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()
