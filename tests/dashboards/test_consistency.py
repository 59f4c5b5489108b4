"""One figure, one value: every KPI on every page against its single SQL definition.

The metrics layer (`dashboards/figures/sql/fig_*.sql`) defines each named figure once. These
tests read every KPI tile the served dashboard shows, in headless Chromium, on every page,
before and after a sub-ICB location filter, and compare each with that definition run on the snapshot for
the same period, filters and "now". A figure with the same name must read the same on every
page, in the CSV downloads and in the demo's summary. Three scenarios that used to mislead: a
stale snapshot, practices whose latest sync failed, a period with no core day.

`pytest -k consistency` selects them all. Skipped without /usr/bin/chromium unless
SLOTSYNC_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import csv
import re
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
from playwright.sync_api import Page, expect

from dashboards import data, figures, filters
from tests.dashboards.conftest import (
    Server,
    Snapshot,
    demo_now,
    demo_output,
    serve,
    write_small_snapshot,
)

pytestmark = pytest.mark.browser

UK = ZoneInfo("Europe/London")
RENDER_TIMEOUT_MS = 45_000
SUB_ICB = "10K"  # a sub-ICB location (the former CCG 10K)
PAGES = [
    ("", "Overview"),
    ("nhs111", "NHS 111 slots vs quota"),
    ("utilisation", "Slot utilisation"),
    ("releases", "Released NHS 111 slots"),
    ("data-health", "Data health"),
]
SUPPRESSED = ("<5", "*")


# ---------------------------------------------------------------------------- expected text


def _count(value: object) -> str:
    return "–" if value is None else f"{int(value):,}"  # type: ignore[call-overload]


def _pct(value: object) -> str:
    return f"{float(value):.1%}"  # type: ignore[arg-type]


def _range(low: object, high: object) -> str:
    if low is None:
        return "–"
    if high is None or abs(float(high) - float(low)) < 0.0005:  # type: ignore[arg-type]
        return _pct(low)
    return f"{_pct(low)} – {_pct(high)}"


# Tile label -> its text worked out from the named figures (None: no quota applies).
Expect = Callable[[dict[str, figures.Value]], str]
EXPECTED: dict[str, Expect] = {
    figures.LABELS["nhs111_offered_core_days"]: lambda v: (
        _count(v["nhs111_offered_core_days"]) if v["core_days"] else "–"
    ),
    figures.LABELS["practices_below_quota"]: lambda v: (
        f"{_count(v['practices_below_quota'])} of {_count(v['practices'])}" if v["core_days"] else "–"
    ),
    "Practice-days below quota": lambda v: _count(v["core_practice_days_below"]) if v["core_days"] else "–",
    figures.LABELS["nhs111_utilisation"]: lambda v: _range(
        v["nhs111_utilisation"], v["nhs111_utilisation_upper"]
    ),
    figures.LABELS["practice_utilisation"]: lambda v: _range(
        v["practice_utilisation"], v["practice_utilisation_upper"]
    ),
    figures.LABELS["hub_utilisation"]: lambda v: _range(v["hub_utilisation"], v["hub_utilisation_upper"]),
    figures.LABELS["practice_unused"]: lambda v: _count(v["practice_unused"]),
    figures.LABELS["released"]: lambda v: _count(v["released"]),
    figures.LABELS["released_then_booked"]: lambda v: _count(v["released_then_booked"]),
    figures.LABELS["released_unused"]: lambda v: _count(v["released_unused"]),
    figures.LABELS["released_unknown"]: lambda v: _count(v["released_unknown"]),
    figures.LABELS["release_uptake"]: lambda v: _range(v["release_uptake"], v["release_uptake_upper"]),
    figures.LABELS["practices_fresh"]: lambda v: (
        f"{_count(v['practices_fresh'])} of {_count(v['registry_practices'])}"
    ),
    figures.LABELS["practices_failed"]: lambda v: _count(v["practices_failed"]),
    "Stale": lambda v: _count(v["practices_stale"]),
    "Never captured": lambda v: _count(v["practices_never_captured"]),
}
# Tiles that are not named figures (context, or one audience's subset): checked for `None` only.
OTHER_TILES = {
    "Data captured",
    "Practices",
    "Slots offered",
    "Booked",
    "Unused",
    "Unknown outcome",
    "Utilisation",
    "Queued",
    "Refused",
    "Skipped",
}


def _truth(marts: Path, *, sub_icb: str | None, now: datetime) -> dict[str, figures.Value]:
    """The named figures on the snapshot for the dashboard's default period and a sub-ICB location filter."""
    catalogue = data.read_catalogue(marts)
    publication = data.read_publication(marts)
    assert catalogue.first_day is not None and catalogue.last_day is not None
    first, last = filters.default_period(
        catalogue.first_day, catalogue.last_day, publication.as_of.astimezone(UK).date()
    )
    chosen = filters.Filters(first, last, sub_icbs=(sub_icb,) if sub_icb else ())
    allowed = filters.allowed_practices(catalogue.practices, chosen)
    return figures.read_all(figures.scope_for_period(first, last, allowed), snapshot=marts, at=now)


# ---------------------------------------------------------------------------- browser helpers


def _wait(page: Page) -> None:
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=RENDER_TIMEOUT_MS)
    expect(page.get_by_test_id("stException")).to_have_count(0)


def _open(page: Page, server: Server, path: str, title: str) -> None:
    page.goto(f"{server.url}/{path}")
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    _wait(page)
    page.wait_for_timeout(500)
    _wait(page)


def _tiles(page: Page, *, require: str | None = None) -> dict[str, str]:
    """Every KPI tile of the current run: label -> value as shown.

    ``require`` names a tile the page must show; waiting for it first closes the race where the
    status widget has not yet appeared and the tiles of the new run are still being drawn.
    """
    tiles = page.locator("[data-testid='stElementContainer'][data-stale='false'] [data-testid='stMetric']")
    if require is not None:
        expect(tiles.filter(has_text=require).first).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    out: dict[str, str] = {}
    for index in range(tiles.count()):
        tile = tiles.nth(index)
        label = tile.get_by_test_id("stMetricLabel").inner_text().strip()
        out[label] = tile.get_by_test_id("stMetricValue").inner_text().strip()
    return out


def _pick(page: Page, label: str, option: str) -> None:
    page.get_by_test_id("stMultiSelect").filter(has_text=label).click()
    page.get_by_role("option", name=option).click()
    page.keyboard.press("Escape")
    page.wait_for_timeout(500)
    _wait(page)


def _no_literal_none(page: Page) -> None:
    text = page.get_by_test_id("stMain").inner_text()
    assert not re.search(r"\bNone\b", text), "a literal None is shown on the page"
    # Table cells are drawn on a canvas; their CSVs are checked instead.


def _check_tiles(tiles: dict[str, str], truth: dict[str, figures.Value], where: str) -> list[str]:
    checked = []
    for label, shown in tiles.items():
        assert "None" not in shown, f"{where}: tile {label!r} shows None"
        if label in EXPECTED:
            try:
                expected = EXPECTED[label](truth)
            except KeyError:
                expected = "–"  # the snapshot lacks the figure's mart: "not available yet"
            if shown in SUPPRESSED:
                continue  # small numbers are hidden by design (dashboards.suppression)
            assert shown == expected, f"{where}: {label!r} shows {shown!r}, its SQL gives {expected!r}"
            checked.append(label)
        else:
            assert label in OTHER_TILES, f"{where}: tile {label!r} is not a named figure nor known context"
    return checked


def _screenshot(page: Page, path: Path) -> None:
    width = page.viewport_size["width"] if page.viewport_size else 1440
    needed = int(page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight"))
    page.set_viewport_size({"width": width, "height": min(max(needed + 50, 1000), 6000)})
    page.wait_for_timeout(800)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": width, "height": 1000})


# ---------------------------------------------------------------------------- every KPI vs SQL


def test_consistency_every_kpi_on_every_page_matches_its_sql_definition_before_and_after_a_filter(
    page: Page, demo_server_at_end: Server, demo: Snapshot, screenshot_dir: Path
) -> None:
    now = demo_now(demo)
    everything = _truth(demo.marts, sub_icb=None, now=now)
    one_sub_icb = _truth(demo.marts, sub_icb=SUB_ICB, now=now)
    assert everything["released"] and everything["released_unknown"] is not None
    seen: dict[str, dict[str, str]] = {}
    checked: set[str] = set()
    for path, title in PAGES:
        _open(page, demo_server_at_end, path, title)
        tiles = _tiles(page)
        checked |= set(_check_tiles(tiles, everything, f"{title} (all)"))
        _no_literal_none(page)
        for label, shown in tiles.items():
            seen.setdefault(label, {})[title] = shown
        _screenshot(page, screenshot_dir / f"{path or 'overview'}.png")
        _pick(page, "Sub-ICB location", SUB_ICB)
        checked |= set(_check_tiles(_tiles(page), one_sub_icb, f"{title} (sub-ICB {SUB_ICB})"))
        _no_literal_none(page)
    # Every named figure appears somewhere, and reads the same wherever it appears.
    missing = {label for label in EXPECTED if label not in checked} - {"Stale", "Never captured"}
    assert not missing, f"named figures no page showed: {sorted(missing)}"
    for label, by_page in seen.items():
        if label in EXPECTED:
            assert len(set(by_page.values())) == 1, f"{label!r} differs between pages: {by_page}"


def test_consistency_same_figure_equal_in_csv_and_demo_summary(
    page: Page, demo_server_at_end: Server, demo: Snapshot, tmp_path: Path
) -> None:
    now = demo_now(demo)
    truth = _truth(demo.marts, sub_icb=None, now=now)
    # The CSV: the scorecard's totals are the tiles' figures, and it says how it was cut.
    _open(page, demo_server_at_end, "nhs111", "NHS 111 slots vs quota")
    tiles = _tiles(page, require=figures.LABELS["nhs111_offered_core_days"])
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download quota scorecard (CSV)").click()
    target = tmp_path / "scorecard.csv"
    download_info.value.save_as(target)
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {"period_from", "period_to", "filters", "data_as_of"} <= set(rows[0])
    assert rows[0]["filters"] == "none (all practices and hubs)"
    offered = sum(int(r["offered_core_days"]) for r in rows)
    assert f"{offered:,}" == tiles[figures.LABELS["nhs111_offered_core_days"]]
    assert sum(int(r["shortfall_slots"]) for r in rows) == truth["nhs111_shortfall_slots"]
    assert "None" not in target.read_text()
    # The demo summary: the same words carry the same numbers.
    summary = demo_output(demo)
    for name in ("nhs111_offered_core_days", "released", "practices_below_quota"):
        found = re.search(rf"{re.escape(figures.LABELS[name])}: ([\d,]+)", summary)
        assert found, f"the demo summary does not give {figures.LABELS[name]!r}"
        assert found.group(1) == _count(truth[name])
    found = re.search(rf"{re.escape(figures.LABELS['practice_utilisation'])}: ([\d.]+%)", summary)
    assert found and found.group(1) == _pct(truth["practice_utilisation"])
    _open(page, demo_server_at_end, "releases", "Released NHS 111 slots")
    released = figures.LABELS["released"]
    assert _tiles(page, require=released)[released] == _count(truth["released"])
    # No internal names, and the assumption behind any saving is named.
    assert "release_unused_111" not in summary and "skipped_gone" not in summary
    assert "REBOOK_AFTER_RELEASE_CHANCE" in summary
    last = [line for line in summary.splitlines() if line.strip()][-2:]
    assert "slotsync dashboard --data-dir" in last[0] and "http://127.0.0.1:8501" in last[1]


# ---------------------------------------------------------------------------- scenarios


def test_consistency_stale_snapshot_shows_red_banner_and_no_reassurance(
    page: Page, demo_server: Server, demo: Snapshot, screenshot_dir: Path
) -> None:
    """The demo's data is months old by the wall clock: the dashboard must say so, like status."""
    now = datetime.now(UTC)
    truth = _truth(demo.marts, sub_icb=None, now=now)
    assert truth["practices_fresh"] == 0
    _open(page, demo_server, "", "Overview")
    expect(page.get_by_text("This data is stale").first).to_be_visible()
    assert page.get_by_test_id("stAlertContentError").count() >= 1
    tiles = _tiles(page)
    _check_tiles(tiles, truth, "Overview (stale)")
    assert tiles[figures.LABELS["practices_fresh"]] == f"0 of {_count(truth['registry_practices'])}"
    assert page.get_by_test_id("stAlertContentSuccess").count() == 0, "no 'all good' on stale data"
    _screenshot(page, screenshot_dir / "overview_stale.png")
    # `slotsync status` on the same warehouse, at the same now, says the same.
    from flows.operations import practice_status

    con = duckdb.connect(str(demo.warehouse), read_only=True)
    try:
        statuses = practice_status(con, now=now)
    finally:
        con.close()
    assert sum(1 for s in statuses if s.stale) == truth["practices_stale"]
    assert sum(1 for s in statuses if s.failure) == truth["practices_failed"]


def test_consistency_status_and_dashboard_agree_at_the_demo_end(demo: Snapshot) -> None:
    from flows.operations import freshness_counts, practice_status, status_report

    now = demo_now(demo)
    truth = _truth(demo.marts, sub_icb=None, now=now)
    con = duckdb.connect(str(demo.warehouse), read_only=True)
    try:
        statuses = practice_status(con, now=now)
        counts = freshness_counts(con, now=now)
    finally:
        con.close()
    # The summary `slotsync status` prints is the dashboard's freshness group, figure by figure.
    for name in ("registry_practices", "practices_fresh", "practices_stale",
                 "practices_never_captured", "practices_failed"):
        assert counts[name] == truth[name], name
    summary = status_report(statuses, counts, stale_after=figures.STALE_AFTER)[0]
    assert summary.startswith(
        f"{truth['registry_practices']} practices: {truth['practices_fresh']} fresh, "
        f"{truth['practices_stale']} stale"
    ), summary
    assert len(statuses) == truth["registry_practices"]
    assert sum(1 for s in statuses if not s.stale) == truth["practices_fresh"]
    assert sum(1 for s in statuses if s.failure) == truth["practices_failed"]


def _failed_copy(demo: Snapshot, root: Path, failed: list[str]) -> Path:
    """The demo snapshot with two practices whose latest sync failed before any capture
    (e.g. a broken service root), as mart_pipeline_freshness records them."""
    target = root / "published" / data.SNAPSHOT_FILE
    target.parent.mkdir(parents=True)
    shutil.copyfile(demo.marts, target)
    con = duckdb.connect(str(target))
    try:
        con.execute(
            "update dashboard.marts.mart_pipeline_freshness set last_observed_at = null, "
            "last_completed_at = null, last_nightly_at = null, latest_status = 'failed', "
            "latest_error_class = 'ConnectError', latest_error = null, latest_next_step = null "
            "where practice_ods in (select unnest($ods::varchar[]))",
            {"ods": failed},
        )
    finally:
        con.close()
    return target


def test_consistency_failed_practices_are_counted_everywhere(
    page: Page, demo: Snapshot, tmp_path: Path, screenshot_dir: Path
) -> None:
    ods = [
        str(r[0])
        for r in duckdb.connect(str(demo.marts), read_only=True)
        .execute("select practice_ods from dashboard.marts.mart_pipeline_freshness order by 1 limit 2")
        .fetchall()
    ]
    marts = _failed_copy(demo, tmp_path / "data", ods)
    now = demo_now(demo)
    truth = _truth(marts, sub_icb=None, now=now)
    assert truth["practices_failed"] == 2
    with serve(tmp_path / "data", tmp_path / "server.log", now=now) as server:
        for path, title in (("", "Overview"), ("data-health", "Data health")):
            _open(page, server, path, title)
            tiles = _tiles(page)
            assert tiles[figures.LABELS["practices_failed"]] == "2"
            _check_tiles(tiles, truth, f"{title} (failed)")
            _no_literal_none(page)
        expect(page.get_by_text("What needs fixing")).to_be_visible()
        _screenshot(page, screenshot_dir / "data-health_failed.png")
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download capture freshness (CSV)").click()
        target = tmp_path / "freshness.csv"
        download_info.value.save_as(target)
        text = target.read_text()
        assert "None" not in text and "nan" not in text.lower().split(",")


def _weekend_snapshot(root: Path) -> Path:
    """The small snapshot cut to Sat 7 - Sun 8 Mar 2026, captured on the Sunday."""
    snapshot = write_small_snapshot(root, as_of=datetime(2026, 3, 8, 20, 0, tzinfo=UTC))
    con = duckdb.connect(str(snapshot.marts))
    try:
        con.execute("delete from dashboard.marts.mart_111_quota_daily where is_core_day")
    finally:
        con.close()
    return snapshot.marts


def test_consistency_weekend_only_period_says_no_core_days_everywhere(
    page: Page, tmp_path: Path, screenshot_dir: Path
) -> None:
    marts = _weekend_snapshot(tmp_path / "data")
    now = datetime(2026, 3, 8, 21, 0, tzinfo=UTC)
    truth = _truth(marts, sub_icb=None, now=now)
    assert truth["core_days"] == 0
    with serve(tmp_path / "data", tmp_path / "server.log", now=now) as server:
        for path, title in (("", "Overview"), ("nhs111", "NHS 111 slots vs quota")):
            _open(page, server, path, title)
            expect(page.get_by_text("No core days in the selected period").first).to_be_visible()
            assert page.get_by_text("met its NHS 111 quota").count() == 0
            tiles = _tiles(page)
            _check_tiles(tiles, truth, f"{title} (weekend)")
            assert tiles[figures.LABELS["nhs111_offered_core_days"]] == "–"
            _no_literal_none(page)
        _screenshot(page, screenshot_dir / "nhs111_weekend.png")


def test_consistency_scope_counts_core_days_of_the_period() -> None:
    """The no-core-day rule itself: a Saturday-Sunday has none, a Friday-Saturday one."""
    saturday = date(2026, 3, 7)
    assert not figures.Scope(saturday, saturday + timedelta(days=1)).has_core_day
    assert figures.Scope(saturday - timedelta(days=1), saturday).has_core_day
