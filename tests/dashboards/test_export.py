"""`slotsync export` on the session's demo snapshot: Parquet, CSV, xlsx and a real PostgreSQL.

Each export is read back the way an analyst's tool would read it (pyarrow, the csv module,
openpyxl, psycopg) and every patient-derived cell is checked: no count in the rule's small
range (1-4, or 1-7 under the NHS England rule) appears as a number anywhere, and under the NHS
England rule every visible patient-derived count is a multiple of 5. The demo must exercise
suppression (some cell carries a mark), or the check would prove nothing.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from dashboards.disclosure import NHS_1_4, NHSE_1_7_ROUND_5, Rule
from flows.cli import app
from flows.export import CAPACITY_REASONS, EXPORTS, WORKBOOK, MartExport
from tests.dashboards.conftest import Snapshot
from tests.support.postgres import throwaway_cluster

RULES = [NHS_1_4, NHSE_1_7_ROUND_5]
runner = CliRunner()


def _export(demo: Snapshot, rule: Rule, *args: str) -> str:
    result = runner.invoke(
        app, ["export", "--data-dir", str(demo.data_dir), "--rule", rule.name, *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def _patient_columns(mart: MartExport) -> tuple[list[str], list[str]]:
    """(columns where a small count must never show, columns a rounding rule rounds)."""
    if mart.policy is None:
        return [], []
    policy = mart.policy
    return [*policy.protected, *policy.independent], [
        *policy.protected,
        *policy.outcomes,
        *policy.independent,
    ]


def _check_table(table: str, rows: list[dict[str, Any]], rule: Rule, marks: list[str]) -> None:
    mart = next(m for m in EXPORTS if m.table == table)
    never_small, rounded = _patient_columns(mart)
    for row in rows:
        if row.get("reason_code") in CAPACITY_REASONS:
            continue  # quota and set-up findings are about capacity: exact, as on the Data health page
        for column in set(never_small) | set(rounded):
            if column not in row or row[column] in (None, ""):
                continue
            value = row[column]
            if value in (rule.primary, rule.secondary):
                marks.append(str(value))
                continue
            number = float(value)
            if column in never_small:
                assert not rule.small_min <= number <= rule.small_max, (rule.name, table, column, row)
            if rule.round_to is not None and column in rounded:
                assert number % rule.round_to == 0, (rule.name, table, column, row)


def _check_meta(meta: dict[str, str], demo: Snapshot, rule: Rule) -> None:
    assert meta["load_id"] == demo.load_id
    assert meta["disclosure_rule"] == rule.name
    assert meta["period_from"] and meta["period_to"] and meta["filters"] and meta["published_at"]


@pytest.mark.slow
@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_export_to_parquet_csv_xlsx_and_postgresql_hides_every_small_count(
    demo: Snapshot, rule: Rule, tmp_path: Path
) -> None:
    marks: list[str] = []
    tables = [m.table for m in EXPORTS]

    # Parquet: one file per mart, the export's identity in the key-value metadata.
    _export(demo, rule, "--to", str(tmp_path / "pq"), "--format", "parquet")
    parquet_tables = sorted(p.stem for p in (tmp_path / "pq").glob("*.parquet"))
    assert parquet_tables == sorted(tables)
    for table in parquet_tables:
        arrow = pq.read_table(tmp_path / "pq" / f"{table}.parquet")
        meta = {k.decode(): v.decode() for k, v in (arrow.schema.metadata or {}).items()}
        _check_meta({k.removeprefix("slotsync."): v for k, v in meta.items()}, demo, rule)
        _check_table(table, arrow.to_pylist(), rule, marks)

    # CSV: one file per mart and a JSON sidecar with the identity and the dictionary.
    _export(demo, rule, "--to", str(tmp_path / "csv"), "--format", "csv")
    for table in tables:
        with (tmp_path / "csv" / f"{table}.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        sidecar = json.loads((tmp_path / "csv" / f"{table}.csv.json").read_text())
        _check_meta(sidecar, demo, rule)
        assert [c["name"] for c in sidecar["columns"]] == list(rows[0]) if rows else True
        assert all(c["meaning"] and c["unit"] for c in sidecar["columns"])
        _check_table(table, rows, rule, marks)

    # xlsx: one workbook, a cover sheet, a dictionary sheet and a sheet per mart.
    _export(demo, rule, "--to", str(tmp_path / "xlsx"), "--format", "xlsx")
    book = load_workbook(tmp_path / "xlsx" / WORKBOOK, read_only=True)
    cover = {str(r[0]): str(r[1]) for r in book["About"].iter_rows(values_only=True) if r[0] and len(r) > 1}
    _check_meta(cover, demo, rule)
    for table in tables:
        sheet_rows = list(book[table.removeprefix("mart_")[:31]].iter_rows(values_only=True))
        header = [str(h) for h in sheet_rows[0]]
        _check_table(table, [dict(zip(header, r, strict=True)) for r in sheet_rows[1:]], rule, marks)

    # PostgreSQL: a real cluster on loopback; the dictionary is in the comments.
    with throwaway_cluster() as cluster:
        _export(demo, rule, "--to", cluster.url(), "--schema", "icb_marts")
        _export(demo, rule, "--to", cluster.url(), "--schema", "icb_marts")  # a second run replaces
        with psycopg.connect(cluster.url()) as conn:
            meta = dict(conn.execute("select key, value from icb_marts.slotsync_export").fetchall())
            _check_meta(meta, demo, rule)
            for table in tables:
                cursor = conn.execute(f"select * from icb_marts.{table}")
                names = [d.name for d in cursor.description or ()]
                rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
                _check_table(table, rows, rule, marks)
            comment = conn.execute(
                "select col_description('icb_marts.mart_slot_utilisation_daily'::regclass, "
                "(select attnum from pg_attribute where attrelid = "
                "'icb_marts.mart_slot_utilisation_daily'::regclass and attname = 'booked'))"
            ).fetchone()
            assert comment and "slots" in str(comment[0])
            table_comment = conn.execute(
                "select obj_description('icb_marts.mart_slot_utilisation_daily'::regclass, 'pg_class')"
            ).fetchone()
            assert table_comment and rule.name in str(table_comment[0]) and "Grain" in str(table_comment[0])
    assert marks, "the demo data must exercise suppression in the exports"


@pytest.mark.slow
def test_export_is_idempotent_per_load(demo: Snapshot, tmp_path: Path) -> None:
    for run in ("first", "second"):
        _export(demo, NHS_1_4, "--to", str(tmp_path / run / "pq"), "--format", "parquet")
        _export(demo, NHS_1_4, "--to", str(tmp_path / run / "csv"), "--format", "csv")
    for kind in ("pq", "csv"):
        first = {p.name: p.read_bytes() for p in (tmp_path / "first" / kind).iterdir()}
        second = {p.name: p.read_bytes() for p in (tmp_path / "second" / kind).iterdir()}
        assert first == second and first
    # Exporting again into the same directory replaces the files with the same bytes.
    before = {p.name: p.read_bytes() for p in (tmp_path / "first" / "csv").iterdir()}
    _export(demo, NHS_1_4, "--to", str(tmp_path / "first" / "csv"), "--format", "csv")
    assert {p.name: p.read_bytes() for p in (tmp_path / "first" / "csv").iterdir()} == before


def test_export_bad_input_gets_one_line_errors(small_snapshot: Snapshot, tmp_path: Path) -> None:
    cases = [
        (["--format", "doc"], "--format must be one of parquet, csv, xlsx"),
        (["--since", "2026-13-01"], "--since must be a day as YYYY-MM-DD"),
        (["--since", "2026-03-10", "--until", "2026-03-06"], "is after --until"),
        (["--sub-icb", "NOPE"], "no practice or hub matches the filters"),
        (["--rule", "nhs-9-9"], "unknown disclosure rule"),
    ]
    for args, message in cases:
        result = runner.invoke(
            app, ["export", "--data-dir", str(small_snapshot.data_dir), "--to", str(tmp_path / "x"), *args]
        )
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    missing = runner.invoke(
        app, ["export", "--data-dir", str(tmp_path / "none"), "--to", str(tmp_path / "x")]
    )
    assert missing.exit_code == 1 and "no published snapshot" in missing.output


def test_export_of_a_snapshot_with_one_mart_writes_that_mart(
    small_snapshot: Snapshot, tmp_path: Path
) -> None:
    result = runner.invoke(
        app,
        [
            "export",
            "--data-dir",
            str(small_snapshot.data_dir),
            "--to",
            str(tmp_path / "o"),
            "--format",
            "csv",
            "--sub-icb",
            "15N",
            "--since",
            "2026-03-09",
        ],
    )
    assert result.exit_code == 0, result.output
    with (tmp_path / "o" / "mart_111_quota_daily.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["practice_ods"] for r in rows} == {"A81001", "A81002"}
    assert min(r["slot_day"] for r in rows) == "2026-03-09"
    assert "Grain: one row per practice" in (tmp_path / "o" / "dictionary.md").read_text()


def test_export_after_publish_writes_the_snapshot_and_never_fails_the_sync(
    small_snapshot: Snapshot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from common.config import ExportAfterPublishSettings, Settings
    from flows.export_postgres import export_after_publish

    logger = logging.getLogger("test-export-after-publish")
    settings = Settings(
        data_dir=small_snapshot.data_dir,
        export_after_publish=ExportAfterPublishSettings(to=str(tmp_path / "out"), format="csv"),
    )
    assert export_after_publish(settings, logger)
    assert (tmp_path / "out" / "mart_111_quota_daily.csv.json").exists()
    # An unreachable database is a warning, not an exception: the publish already happened.
    broken = Settings(
        data_dir=small_snapshot.data_dir,
        export_after_publish=ExportAfterPublishSettings(to="postgresql://nobody@127.0.0.1:1/none"),
    )
    with caplog.at_level(logging.WARNING):
        assert not export_after_publish(broken, logger)
    assert "export after publish failed" in caplog.text
    assert not export_after_publish(Settings(data_dir=small_snapshot.data_dir), logger)
