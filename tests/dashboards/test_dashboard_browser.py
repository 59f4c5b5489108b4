"""The served dashboard in real headless Chromium (Debian's `chromium`, driven by Playwright).

Every page is loaded on the snapshot the real pipeline published (`demo`): it must render
without an exception, show a figure equal to the same figure computed by SQL on the snapshot,
and change that figure, still equal to SQL, when a filter is picked. A screenshot of each page
goes to `test-artifacts/screenshots/`. The last test opens the pages while a real
`nightly_sync` writes the warehouse and publishes, in other processes.

Skipped without /usr/bin/chromium unless SLOTSYNC_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from connectors.registry import load_registry
from dashboards.ui import format_uk
from tests.dashboards.conftest import (
    PERIOD_CTE,
    PROJECT_ROOT,
    Server,
    Snapshot,
    copy_snapshot,
    pipeline_env,
    serve,
    sql_rows,
)

pytestmark = pytest.mark.browser

RENDER_TIMEOUT_MS = 30_000
SUB_ICB = "10K"  # a sub-ICB location (the former CCG 10K)
SYNC_PRACTICES = 4
RENDER_PAUSE_S = 2.0  # leave the 2-core machine to the writer between renders


def _open(page: Page, server: Server, path: str = "") -> None:
    page.goto(f"{server.url}/{path}")
    _wait_rendered(page)


PAGES = [
    ("", "Overview"),
    ("nhs111", "NHS 111 slots vs quota"),
    ("utilisation", "Slot utilisation"),
    ("releases", "Released NHS 111 slots"),
    ("data-health", "Data health"),
]


def _open_page(page: Page, server: Server, path: str, title: str) -> None:
    """Open a page that may have no figures (a mart not published yet) and wait for it."""
    page.goto(f"{server.url}/{path}")
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=RENDER_TIMEOUT_MS)
    expect(page.get_by_test_id("stException")).to_have_count(0)


def _wait_rendered(page: Page) -> None:
    # A page draws its tiles, or says in a notice why it has none (a mart not available yet).
    drawn = page.locator("[data-testid='stMetric'], [data-testid='stAlert']").first
    expect(drawn).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    # Streamlit shows a "Running..." status widget while the script runs.
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=RENDER_TIMEOUT_MS)


def _metric_value(page: Page, label: str) -> Locator:
    # While a rerun draws the page again, Streamlit keeps the previous run's elements marked
    # stale; only the current ones count.
    current = page.locator(
        "[data-testid='stElementContainer'][data-stale='false'] > [data-testid='stMetric']"
    )
    return current.filter(
        has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    ).get_by_test_id("stMetricValue")


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
    page.wait_for_timeout(500)  # let charts finish drawing
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": width, "height": 1000})


def _handles_after_settling(pid: int, *files: Path, within_s: float = 10.0) -> list[str]:
    """Handles still open on `files` once the server settles (a read may be mid-flight).

    The property is that the server never *keeps* the files open between reads: a render
    finishing as we look holds a short-lived read-only connection for a moment.
    """
    deadline = time.monotonic() + within_s
    while True:
        found = _handles_on(pid, *files)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


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


# ---------------------------------------------------------------------------- figure vs SQL


def _count(value: Any) -> str:
    number = int(value or 0)
    return "<5" if 1 <= number <= 4 else f"{number:,}"


def _overview(marts: Path, sub_icb: str | None) -> str:
    (booked, offered) = sql_rows(
        marts,
        f"""
        with {PERIOD_CTE}
        select sum(booked_by_111), sum(offered) from mart_111_utilisation_daily, period
        where is_final and slot_day between first_day and last_day and ($s is null or sub_icb_code = $s)""",
        {"s": sub_icb},
    )[0]
    assert not 1 <= booked <= 4, "the demo's figure would be suppressed"
    (unknown,) = sql_rows(
        marts,
        f"""
        with {PERIOD_CTE}
        select sum(unknown) from mart_111_utilisation_daily, period
        where is_final and slot_day between first_day and last_day and ($s is null or sub_icb_code = $s)""",
        {"s": sub_icb},
    )[0]
    low, high = booked / offered, (booked + unknown) / offered
    return f"{low:.1%}" if abs(high - low) < 0.0005 else f"{low:.1%} – {high:.1%}"


def _nhs111(marts: Path, sub_icb: str | None) -> str:
    (below,) = sql_rows(
        marts,
        f"""
        with {PERIOD_CTE}
        select count(*) filter (where is_core_day and not meets_quota and accepts_111_booking)
        from mart_111_quota_daily, period
        where slot_day between first_day and last_day and ($s is null or sub_icb_code = $s)""",
        {"s": sub_icb},
    )[0]
    return f"{below:,}"


def _utilisation(marts: Path, sub_icb: str | None) -> str:
    (booked,) = sql_rows(
        marts,
        f"""
        with {PERIOD_CTE}
        select sum(booked) from mart_slot_utilisation_daily, period
        where kind = 'practice' and is_final and slot_day between first_day and last_day
          and ($s is null or sub_icb_code = $s)""",
        {"s": sub_icb},
    )[0]
    return _count(booked)


def _releases(marts: Path, sub_icb: str | None) -> str:
    (released,) = sql_rows(
        marts,
        f"""
        with {PERIOD_CTE}
        select sum(released + queued) from mart_releases_daily as r join orgs using (practice_ods), period
        where slot_day between first_day and last_day and ($s is null or sub_icb_code = $s)""",
        {"s": sub_icb},
    )[0]
    return f"{int(released or 0):,}"


def _health(marts: Path, sub_icb: str | None) -> str:
    # Judged against now (the served dashboard runs on the wall clock), as `slotsync status` does.
    (ok, total) = sql_rows(
        marts,
        f"""
        with {PERIOD_CTE}
        select count(*) filter (where last_nightly_at >= now() - interval 26 hour), count(*)
        from mart_pipeline_freshness left join orgs using (practice_ods)
        where $s is null or sub_icb_code = $s""",
        {"s": sub_icb},
    )[0]
    return f"{ok:,} of {total:,}"


@dataclass(frozen=True)
class PageCase:
    path: str
    title: str
    metric: str
    expected: Callable[[Path, str | None], str]

    @property
    def shot(self) -> str:
        return f"{self.path or 'overview'}.png"


CASES = [
    PageCase("", "Overview", "NHS 111 utilisation", _overview),
    PageCase("nhs111", "NHS 111 slots vs quota", "Practice-days below quota", _nhs111),
    PageCase("utilisation", "Slot utilisation", "Booked", _utilisation),
    PageCase("releases", "Released NHS 111 slots", "Released 111 slots", _releases),
    PageCase("data-health", "Data health", "Practices up to date", _health),
]


@pytest.mark.parametrize("case", CASES, ids=[c.shot.removesuffix(".png") for c in CASES])
def test_page_renders_and_its_figure_matches_sql_before_and_after_a_filter(
    page: Page, demo_server: Server, demo: Snapshot, screenshot_dir: Path, case: PageCase
) -> None:
    _open(page, demo_server, case.path)
    expect(page.get_by_role("heading", name=case.title, exact=True)).to_be_visible()
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_text(demo.load_id).first).to_be_visible()
    everything = case.expected(demo.marts, None)
    expect(_metric_value(page, case.metric)).to_have_text(everything)
    _screenshot(page, screenshot_dir / case.shot)

    one_sub_icb = case.expected(demo.marts, SUB_ICB)
    assert one_sub_icb != everything, "the demo data must make the filter visible"
    _pick(page, "Sub-ICB location", SUB_ICB)
    expect(_metric_value(page, case.metric)).to_have_text(one_sub_icb, timeout=RENDER_TIMEOUT_MS)
    _wait_rendered(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)


# Every table's scroll area, as [content width, visible width] (Streamlit's grid draws on a
# canvas inside `.dvn-scroller`; content wider than the box means a horizontal scroll bar).
_TABLE_WIDTHS_JS = """() => Array.from(document.querySelectorAll("[data-testid='stDataFrame']"))
    .map(table => table.querySelector('.dvn-scroller'))
    .filter(scroller => scroller !== null)
    .map(scroller => [scroller.scrollWidth, scroller.clientWidth])"""


def test_every_table_fits_1400px_without_horizontal_scrolling(
    page: Page, demo_server: Server
) -> None:
    page.set_viewport_size({"width": 1400, "height": 1000})
    seen = 0
    for path, title in PAGES:
        _open(page, demo_server, path)
        expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
        page.wait_for_timeout(1000)  # the grids size their columns after the first paint
        widths = page.evaluate(_TABLE_WIDTHS_JS)
        seen += len(widths)
        too_wide = [w for w in widths if w[0] > w[1] + 1]
        assert not too_wide, f"{title}: tables scroll sideways at 1,400 px (content, visible): {too_wide}"
    assert seen >= 10, f"only {seen} tables found: the check would pass on empty pages"


def test_small_snapshot_quota_csv_matches_sql(
    page: Page, small_server: Server, small_snapshot: Snapshot, tmp_path: Path, screenshot_dir: Path
) -> None:
    _open(page, small_server, "nhs111")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download practices below quota (CSV)").click()
    target = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(target)
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    expected = sql_rows(
        small_snapshot.marts,
        "select practice_ods, count(*) from mart_111_quota_daily "
        "where is_core_day and not meets_quota group by all order by 2 desc, 1",
    )
    assert [(r["practice_ods"], int(r["core_days_below"])) for r in rows] == expected
    # Pages whose marts the small snapshot lacks say so instead of failing.
    page.goto(f"{small_server.url}/utilisation")
    expect(page.get_by_text("Practice slot utilisation: not available yet")).to_be_visible(
        timeout=RENDER_TIMEOUT_MS
    )
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=RENDER_TIMEOUT_MS)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    _screenshot(page, screenshot_dir / "utilisation_not_available.png")


def test_utilisation_csv_is_suppressed_like_the_table(
    page: Page, demo_server: Server, demo: Snapshot, tmp_path: Path
) -> None:
    _open(page, demo_server, "utilisation")
    # NHS 111 slots are few per practice, so some booked counts are small.
    page.get_by_test_id("stButtonGroup").get_by_role("radio", name="Reserved for NHS 111").click()
    (booked,) = sql_rows(
        demo.marts,
        f"""
        with {PERIOD_CTE}
        select sum(booked) from mart_slot_utilisation_daily, period
        where kind = 'practice' and audience = 'nhs111' and is_final
          and slot_day between first_day and last_day
        """,
    )[0]
    expect(_metric_value(page, "Booked")).to_have_text(_count(booked), timeout=RENDER_TIMEOUT_MS)
    _wait_rendered(page)
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download utilisation by practice (CSV)").click()
    target = tmp_path / "by_practice.csv"
    download_info.value.save_as(target)
    with target.open(newline="", encoding="utf-8") as handle:
        rows = {r["practice_ods"]: r for r in csv.DictReader(handle)}
    truth = {
        ods: (offered, booked)
        for ods, offered, booked in sql_rows(
            demo.marts,
            f"""
        with {PERIOD_CTE}
        select practice_ods, sum(offered), sum(booked) from mart_slot_utilisation_daily, period
        where kind = 'practice' and audience = 'nhs111' and is_final
          and slot_day between first_day and last_day
        group by all""",
        )
    }
    assert set(rows) == set(truth)
    small = [ods for ods, (_, booked) in truth.items() if 1 <= booked <= 4]
    assert small, "the demo data must exercise suppression"
    for ods, (offered, booked) in truth.items():
        row = rows[ods]
        assert row["offered"] == (
            "<5" if 1 <= offered <= 4 and row["booked"] in ("<5", "*") else str(offered)
        )
        if 1 <= booked <= 4:
            assert row["booked"] == "<5"
            assert row["utilisation"] == row["unused"] == row["unknown"] == "*"
        else:
            assert row["booked"] in (str(booked), "*")
    assert any(r["booked"] == "*" for r in rows.values()) or len(small) > 1
    expect(page.get_by_text("are shown as <5", exact=False).first).to_be_visible()


# ---------------------------------------------------------------------------- while a sync writes


def _start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = pipeline_env(log.parent / "prefect")
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_pages_open_while_nightly_sync_writes_and_publishes(
    page: Page, small_snapshot: Snapshot, tmp_path: Path
) -> None:
    # Starts from the small snapshot so that it runs while the session's demo builds.
    served = copy_snapshot(small_snapshot, tmp_path / "data")
    registry = tmp_path / "registry.yaml"
    sandbox = _start(
        [sys.executable, "-m", "flows.cli", "sandbox", "--port", "0", "--registry-out", str(registry)],
        tmp_path / "sandbox.log",
    )
    try:
        deadline = time.monotonic() + 60
        while "sandbox serving" not in (tmp_path / "sandbox.log").read_text(errors="replace"):
            log = (tmp_path / "sandbox.log").read_text(errors="replace")
            assert sandbox.poll() is None and time.monotonic() < deadline, log
            time.sleep(0.2)
        with serve(served.data_dir, tmp_path / "server.log") as server:
            _open_page(page, server, "nhs111", "NHS 111 slots vs quota")
            assert _handles_after_settling(server.pid, served.marts, served.warehouse) == []
            # A nightly sync of a few practices keeps the test short; it opens, writes and
            # publishes exactly as a full one does.
            some = [p.ods_code for p in load_registry(registry).practices][:SYNC_PRACTICES]
            practices = [arg for ods in some for arg in ("--practice", ods)]
            command = [sys.executable, "-m", "flows.cli", "sync", "--registry", str(registry)]
            command += ["--warehouse", str(served.warehouse), "--data-dir", str(served.data_dir), *practices]
            sync = _start(command, tmp_path / "sync.log")
            try:
                renders_while_writing = 0
                while sync.poll() is None:
                    path, title = PAGES[renders_while_writing % len(PAGES)]
                    _open_page(page, server, path, title)
                    # Each render shows one whole load: the old one or the one just published.
                    expect(
                        page.get_by_text(re.compile(f"{small_snapshot.load_id}|nightly_sync-")).first
                    ).to_be_visible()
                    if sync.poll() is None:
                        renders_while_writing += 1
                        time.sleep(RENDER_PAUSE_S)
                sync.wait(timeout=300)
            finally:
                _stop(sync)
            log = (tmp_path / "sync.log").read_text(errors="replace")
            assert sync.returncode == 0, log  # the dashboard never blocked the writer
            assert renders_while_writing >= 2, f"the sync finished too fast to overlap ({log[-500:]})"

            load_id, as_of = sql_rows(served.marts, "select load_id, as_of from publication")[0]
            assert load_id.startswith("nightly_sync-")
            _open_page(page, server, "utilisation", "Slot utilisation")
            page.get_by_role("button", name="Refresh data").click()
            expect(page.get_by_text(load_id).first).to_be_visible(timeout=RENDER_TIMEOUT_MS)
            expect(page.get_by_text(format_uk(as_of)).first).to_be_visible()
            # The new load has every mart: the page that said "not available yet" has figures.
            _wait_rendered(page)
            expect(page.get_by_test_id("stException")).to_have_count(0)
            assert _handles_after_settling(server.pid, served.marts, served.warehouse) == []
    finally:
        _stop(sandbox)
