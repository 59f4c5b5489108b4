"""Data access and quota figures against a real published snapshot (no Streamlit, no browser)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from dashboards import data, quota

_HOLD_WRITE_LOCK = (
    "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(60)"
)


@pytest.fixture(scope="module")
def daily(snapshot: Any) -> pd.DataFrame:
    return quota.prepare(data.read_quota_daily(snapshot.marts))


def _all_days(**kwargs: tuple[str, ...]) -> quota.QuotaFilters:
    return quota.QuotaFilters(date(2000, 1, 1), date(2100, 1, 1), **kwargs)


def _copy_of(snapshot: Any, tmp_path: Path) -> Path:
    copy = tmp_path / "dashboard.duckdb"
    copy.write_bytes(snapshot.marts.read_bytes())
    return copy


# ---------------------------------------------------------------------------- data access


def test_publication_is_read_as_aware_utc(snapshot: Any) -> None:
    publication = data.read_publication(snapshot.marts)
    assert publication.load_id == snapshot.load_id
    assert publication.as_of == snapshot.as_of
    assert publication.as_of.tzinfo is not None


def test_snapshot_path_follows_data_dir(data_dir_env: Callable[[Path], None], tmp_path: Path) -> None:
    data_dir_env(tmp_path)
    assert data.snapshot_path() == tmp_path / "published" / "dashboard.duckdb"


def test_missing_snapshot_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(data.SnapshotMissingError, match=r"slotsync demo.*slotsync sync"):
        data.read_publication(tmp_path / "published" / "dashboard.duckdb")


def test_read_closes_its_connection(snapshot: Any, tmp_path: Path) -> None:
    copy = _copy_of(snapshot, tmp_path)
    data.read_quota_daily(copy)
    # A read-write open fails while any read-only connection to the file is still open.
    duckdb.connect(str(copy)).close()


def test_locked_snapshot_gives_up_quickly_with_a_clear_error(snapshot: Any, tmp_path: Path) -> None:
    copy = _copy_of(snapshot, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_WRITE_LOCK, str(copy)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        started = time.monotonic()
        with pytest.raises(data.SnapshotBusyError, match="locked by another process"):
            data.read_publication(copy)
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------------------- quota figures


def test_kpis_match_sql(daily: pd.DataFrame, expected_kpis: Callable[..., Any]) -> None:
    kpis = quota.kpis(quota.apply_filters(daily, _all_days()))
    expected = expected_kpis()
    assert (kpis.practices, kpis.core_practice_days, kpis.core_days_below) == (3, 9, 3)
    assert (kpis.practices, kpis.core_practice_days, kpis.core_days_below) == (
        expected.practices, expected.core_practice_days, expected.core_days_below,
    )
    assert kpis.share_meeting == pytest.approx(6 / 9)


@pytest.mark.parametrize(
    ("filters", "sql_filter", "below"),
    [
        (_all_days(ccgs=("15N",)), {"ccg": "15N"}, 2),
        (_all_days(practices=("B82003",)), {"practice": "B82003"}, 1),
        (_all_days(practices=("A81002",)), {"practice": "A81002"}, 0),
    ],
)
def test_filters_match_sql(
    daily: pd.DataFrame, expected_kpis: Callable[..., Any], filters: quota.QuotaFilters,
    sql_filter: dict[str, str], below: int,
) -> None:
    kpis = quota.kpis(quota.apply_filters(daily, filters))
    assert kpis.core_days_below == below == expected_kpis(**sql_filter).core_days_below


def test_date_range_and_system_filters(daily: pd.DataFrame) -> None:
    monday = quota.QuotaFilters(date(2026, 3, 9), date(2026, 3, 9))
    assert quota.kpis(quota.apply_filters(daily, monday)).core_days_below == 1  # A81001: 1 < 3
    weekend = quota.QuotaFilters(date(2026, 3, 7), date(2026, 3, 8))
    assert quota.kpis(quota.apply_filters(daily, weekend)).share_meeting is None
    systmone = _all_days(systems=("SystmOne",))
    assert set(quota.apply_filters(daily, systmone)["practice_ods"]) == {"A81002"}


def test_practices_below_quota_lists_worst_first(daily: pd.DataFrame) -> None:
    table = quota.practices_below_quota(daily)
    assert table["practice_ods"].tolist() == ["A81001", "B82003"]
    first = table.iloc[0]
    assert (first["core_days"], first["core_days_below"]) == (3, 2)
    assert (first["worst_day"], first["worst_day_offered"]) == (date(2026, 3, 10), 0)


def test_no_practice_below_quota_gives_an_empty_table(daily: pd.DataFrame) -> None:
    table = quota.practices_below_quota(quota.apply_filters(daily, _all_days(practices=("A81002",))))
    assert table.empty
    assert "worst_day" in table.columns


def test_heatmap_covers_core_days_only_with_status(daily: pd.DataFrame) -> None:
    cells = quota.heatmap_frame(daily)
    assert len(cells) == 9
    assert set(cells["slot_day"].dt.dayofweek) <= {0, 1, 2, 3, 4}
    statuses = cells.set_index(["practice_ods", "day_label"])["status"]
    assert statuses[("A81001", "Tue 10 Mar")] == quota.STATUS_NONE
    assert statuses[("A81001", "Mon 09 Mar")] == quota.STATUS_BELOW
    assert statuses[("A81002", "Mon 09 Mar")] == quota.STATUS_MEETS
    assert quota.practice_order(cells)[0] == "Riverside Surgery (A81001)"


def test_weekend_rows_keep_meets_quota_empty(daily: pd.DataFrame) -> None:
    weekend = daily.loc[~daily["is_core_day"]]
    assert len(weekend) == 6
    assert weekend["meets_quota"].isna().all()
    assert not weekend["below_quota"].any()


def test_no_patient_identifiers_in_the_mart(daily: pd.DataFrame) -> None:
    words = ("nhs_number", "patient", "dob", "birth", "postcode", "address")
    assert [column for column in daily.columns if any(word in column for word in words)] == []


def test_uk_time_formatting_shows_gmt_and_bst() -> None:
    from dashboards.ui import format_uk

    assert format_uk(datetime(2026, 6, 1, 7, 5, tzinfo=UTC)) == "Mon 1 Jun 2026, 08:05 BST"
    assert format_uk(datetime(2026, 3, 5, 23, 30, tzinfo=UTC)) == "Thu 5 Mar 2026, 23:30 GMT"
