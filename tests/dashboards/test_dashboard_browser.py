"""The served app in real headless Chromium: what a CCG lead actually sees.

Figures on the page are checked against SQL run straight on the snapshot file, and the
server must never hold a DuckDB handle that would block the sync flow from publishing.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from playwright.sync_api import Locator, Page, expect

from dashboards.ui import format_uk
from warehouse.loader import Warehouse

pytestmark = pytest.mark.browser

BELOW = "Core practice-days below quota"
RENDER_TIMEOUT_MS = 30_000


def _open(page: Page, server: Any) -> None:
    page.goto(f"{server.url}/")
    _wait_rendered(page)


def _wait_rendered(page: Page) -> None:
    expect(page.get_by_test_id("stMetric").first).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    # Streamlit shows a "Running..." status widget while the script runs.
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=RENDER_TIMEOUT_MS)


def _metric_value(page: Page, label: str) -> Locator:
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def _pick(page: Page, label: str, option: str) -> None:
    page.get_by_test_id("stMultiSelect").filter(has_text=label).click()
    page.get_by_role("option", name=option).click()
    page.keyboard.press("Escape")


def _screenshot(page: Page, path: Path) -> None:
    # Streamlit scrolls inside its own container, so a full-page shot only sees the
    # viewport: grow the viewport until it holds all the content (tables size lazily).
    width = page.viewport_size["width"] if page.viewport_size else 1440
    for _ in range(5):
        needed = int(page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight"))
        if page.viewport_size and needed <= page.viewport_size["height"]:
            break
        page.set_viewport_size({"width": width, "height": needed + 50})
        _wait_rendered(page)
        page.wait_for_timeout(300)
    page.screenshot(path=str(path), full_page=True)


def _handles_on(pid: int, *files: Path) -> list[str]:
    """Open file descriptors of `pid` pointing at any of `files` (Linux /proc)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    if not fd_dir.exists():
        pytest.skip("needs /proc to inspect the server's open files")
    targets = {str(f.resolve()) for f in files}
    found = []
    for fd in fd_dir.iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue  # closed while listing
        # startswith also catches `.wal` files and a swapped-out inode shown as "… (deleted)".
        if any(link.startswith(target) for target in targets):
            found.append(link)
    return found


def test_page_renders_kpis_from_the_snapshot(
    page: Page, streamlit_server: Any, expected_kpis: Callable[..., Any], screenshot_dir: Path
) -> None:
    _open(page, streamlit_server)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_role("heading", name="NHS 111 slots vs quota")).to_be_visible()
    expect(_metric_value(page, BELOW)).to_have_text(str(expected_kpis().core_days_below))
    expect(page.get_by_test_id("stVegaLiteChart")).to_be_visible()
    _screenshot(page, screenshot_dir / "nhs111_quota.png")


def test_filter_changes_kpi_to_the_sql_figure(
    page: Page, streamlit_server: Any, expected_kpis: Callable[..., Any], screenshot_dir: Path
) -> None:
    _open(page, streamlit_server)
    everything, one_ccg = expected_kpis().core_days_below, expected_kpis(ccg="11M").core_days_below
    assert everything != one_ccg, "fixture data must make the filter visible"
    _pick(page, "CCG", "11M")
    expect(_metric_value(page, BELOW)).to_have_text(str(one_ccg), timeout=RENDER_TIMEOUT_MS)
    _pick(page, "Practice", "Oak Tree Practice (B82003)")
    expected = expected_kpis(ccg="11M", practice="B82003").core_days_below
    expect(_metric_value(page, BELOW)).to_have_text(str(expected), timeout=RENDER_TIMEOUT_MS)
    expect(_metric_value(page, "Practices")).to_have_text("1")
    expect(page.get_by_test_id("stException")).to_have_count(0)
    _screenshot(page, screenshot_dir / "nhs111_quota_filtered.png")


def test_below_quota_csv_download_matches_the_table(
    page: Page, streamlit_server: Any, snapshot: Any, tmp_path: Path
) -> None:
    _open(page, streamlit_server)
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download practices below quota (CSV)").click()
    target = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(target)
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    con = duckdb.connect(str(snapshot.marts), read_only=True)
    try:
        expected = con.execute(
            "select practice_ods, count(*) from dashboard.marts.mart_111_quota_daily "
            "where is_core_day and not meets_quota group by all order by 2 desc, 1"
        ).fetchall()
    finally:
        con.close()
    assert [(r["practice_ods"], int(r["core_days_below"])) for r in rows] == expected


def test_open_page_never_blocks_the_writer(page: Page, isolated_server: Any, isolated_snapshot: Any) -> None:
    server, snapshot = isolated_server, isolated_snapshot
    _open(page, server)
    assert _handles_on(server.pid, snapshot.marts, snapshot.warehouse) == []
    # No reader holds the served snapshot: even a read-write open (no retry) succeeds.
    duckdb.connect(str(snapshot.marts)).close()

    # The sync flow's path: the warehouse opened read-write (no retry, so any lock fails
    # at once), marts published into a fresh file and swapped over the one being served.
    new_as_of = datetime.now(UTC).replace(second=0, microsecond=0)
    con = duckdb.connect(str(snapshot.warehouse))
    try:
        Warehouse(con).publish(snapshot.marts.parent, load_id="test-load-republished", as_of=new_as_of)
    finally:
        con.close()

    page.get_by_role("button", name="Refresh data").click()
    expect(page.get_by_text(format_uk(new_as_of)).first).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    expect(page.get_by_text("test-load-republished")).to_be_visible()
    _wait_rendered(page)
    assert _handles_on(server.pid, snapshot.marts, snapshot.warehouse) == []
