"""The monthly registry refresh as a real Prefect flow run against the sandbox's ORD, SDS and
monthly files over loopback: a first run builds the registry, a second after a simulated month
publishes an artifact listing what changed and records the new list sizes from its day."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from connectors.registry import load_registry
from flows.registry_refresh import ARTIFACT_KEY, registry_refresh
from sandbox.reference_data import ReferenceData, reference_data_for
from sandbox.server import SandboxServer
from tests.flows.conftest import run_async

# The deployment's schedule: 06:00 London time on the 15th (GMT in March, BST in April).
MARCH = datetime(2026, 3, 15, 6, 0, tzinfo=UTC)
APRIL = datetime(2026, 4, 15, 5, 0, tzinfo=UTC)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


def sources(sandbox: SandboxServer, tmp_path: Path) -> dict[str, Any]:
    """Everything but the scope: the deployment's operators set these once."""
    base = sandbox.base_url
    return {
        "ord_url": f"{base}/ORD/2-0-0",
        "sds_url": f"{base}/spine-directory/FHIR/R4",
        "list_sizes": f"{base}/_reference/gp-reg-pat-prac-all.csv",
        "nhs111_csv": f"{base}/_reference/gp-practices-111-booking.csv",
        "hubs": str(tmp_path / "hubs.yaml"),
        "data_dir": str(tmp_path),
    }


async def latest_report() -> str:
    async with get_client() as client:
        (artifact,) = await client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY]))
        )
    return str(artifact.data)


def sizes(tmp_path: Path, ods: str) -> list[tuple[date, int, int]]:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        return [
            (row[0], row[1], row[2])
            for row in con.execute(
                "select valid_from, list_size, nhs111_daily_quota from core.practice_list_size "
                "where practice_ods = ? order by valid_from",
                [ods],
            ).fetchall()
        ]
    finally:
        con.close()


def simulate_a_month(reference: ReferenceData, codes: list[str]) -> None:
    """A list size grows past a quota step, one practice merges into another, one closes,
    and one practice's SDS record gets a new ASID."""
    reference.set_list_size(codes[0], 99_999)
    reference.close_practice(codes[1], successor=codes[2])
    reference.close_practice(codes[3])
    reference.endpoints[codes[4]] = dataclasses.replace(reference.endpoints[codes[4]], asid="999999999999")


def test_a_refresh_a_month_later_reports_the_changes_and_keeps_last_months_sizes(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    reference = reference_data_for(sandbox.state)
    (tmp_path / "hubs.yaml").write_text(reference.hub_file())
    registry_path = tmp_path / "registry.yaml"

    first = run_async(registry_refresh(
        registry_path=str(registry_path), icb="QRL", as_of=MARCH, **sources(sandbox, tmp_path)
    ))
    built = load_registry(registry_path)
    practices = sorted(p.ods_code for p in built.practices if p.kind == "practice")
    assert {p.ods_code for p in built.practices} == {p.ods_code for p in sandbox.registry.practices}
    assert first["list_sizes_recorded"] == len(practices) and first["diff"] is None
    assert "First build: no previous registry" in run_async(latest_report())
    before = {p.ods_code: p for p in built.practices}
    old_size = before[practices[0]].list_size

    simulate_a_month(reference, practices)
    # No scope given: the deployment's run refreshes the ICB the registry already covers.
    second = run_async(registry_refresh(
        registry_path=str(registry_path), as_of=APRIL, **sources(sandbox, tmp_path)
    ))
    assert second["scope"] == "ICB QRL"
    assert second["merged"] == [practices[1]] and second["closed"] == [practices[3]]
    report = run_async(latest_report())
    assert f"- merged: {practices[1]} into {practices[2]}" in report
    assert f"- closed: {practices[3]} (" in report
    assert f"| {practices[0]} | list_size | {old_size} | 99999 |" in report
    assert f"| {practices[0]} | nhs111_quota | {before[practices[0]].nhs111_quota} | 33 |" in report
    old_asid = before[practices[4]].provider_asid
    assert f"| {practices[4]} | provider_asid | {old_asid} | 999999999999 |" in report
    assert "- opened: none" in report

    # The registry the syncs read is the new one; March keeps March's size and quota.
    refreshed = load_registry(registry_path).by_ods()
    assert practices[1] not in refreshed and refreshed[practices[0]].list_size == 99_999
    assert sizes(tmp_path, practices[0]) == [
        (MARCH.date(), old_size, max(1, old_size // 3000)),
        (APRIL.date(), 99_999, 33),
    ]
    assert second["list_sizes_recorded"] == 1  # only the practice whose size changed


def test_a_refresh_of_an_unchanged_estate_says_so(sandbox: SandboxServer, tmp_path: Path) -> None:
    reference = reference_data_for(sandbox.state)
    (tmp_path / "hubs.yaml").write_text(reference.hub_file())
    registry_path = tmp_path / "registry.yaml"
    run_async(registry_refresh(registry_path=str(registry_path), icb="QRL", as_of=MARCH,
                               **sources(sandbox, tmp_path)))
    again = run_async(registry_refresh(registry_path=str(registry_path), as_of=APRIL,
                                       **sources(sandbox, tmp_path)))
    assert (again["opened"], again["closed"], again["merged"], again["changed"]) == ([], [], [], 0)
    assert again["list_sizes_recorded"] == 0
    assert "- field changes: 0" in run_async(latest_report())
