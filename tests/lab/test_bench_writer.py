"""The end-of-night writer measurement (lab/bench_writer.py) on a small one-night warehouse."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.bench_writer import measure
from tests.warehouse.conftest import land
from tests.warehouse.test_fold import add_practice, bundle
from warehouse import models
from warehouse.db import open_warehouse
from warehouse.integrity import table_hashes
from warehouse.loader import LandingFile, Warehouse


def one_night(tmp_path: Path) -> Path:
    path = tmp_path / "wh.duckdb"
    con = open_warehouse(path)
    try:
        for ods in ("J82001", "J82002"):
            add_practice(con, ods)
        searches = [("general", "none", bundle("1", "2")),
                    ("nhs111", "urgent-care|NHS111", bundle("2", "3"))]
        Warehouse(con).load_practice_files(
            [LandingFile(ods, land(tmp_path / f"{ods}.ndjson", ods, searches))
             for ods in ("J82001", "J82002")],
            load_id="test-load",
        )
        models.build_models(con, "test-load")
    finally:
        con.close()
    return path


def test_a_first_night_refold_times_every_step_and_rebuilds_the_same_tables(tmp_path: Path) -> None:
    path = one_night(tmp_path)
    con = open_warehouse(path)
    built = table_hashes(con)
    con.close()
    figures = measure(path, first_night=True, work_dir=tmp_path)
    assert figures["observations_folded"] == 2
    assert figures["staged_slots"] == 8
    steps = ["fold", *(m.name for m in models.build_order()), "reconciliation_summary", "publish"]
    assert list(figures["wall_s"]) == steps == list(figures["cpu_s"])
    assert figures["table_hashes"] == built, "the re-fold and rebuild must reproduce the night"
    con = open_warehouse(path)
    assert table_hashes(con) == built, "the measured warehouse is left alone"
    con.close()


def test_first_night_refuses_a_warehouse_of_several_nights(tmp_path: Path) -> None:
    path = one_night(tmp_path)
    con = open_warehouse(path)
    con.execute("update meta.sync_window set observed_at = observed_at - interval 1 day "
                "where practice_ods = 'J82001'")
    con.close()
    with pytest.raises(SystemExit, match="one night"):
        measure(path, first_night=True, work_dir=tmp_path)
