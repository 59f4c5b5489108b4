"""A pipelined night: practices validated a batch at a time without Data Docs, then docs built once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb

from tests.warehouse.test_quality import BAD, DAY, GOOD, add_practices, bundle, clean_slots, load, slot
from warehouse.db import open_warehouse
from warehouse.quality import build_data_docs, validate_pending

OTHERS = [f"J8201{i}" for i in range(4)]
PRACTICES = [GOOD, BAD, *OTHERS]
BATCHES = [[GOOD, OTHERS[0]], [BAD], [OTHERS[1], OTHERS[2], OTHERS[3]]]


def _staged(tmp_path: Path, name: str) -> duckdb.DuckDBPyConnection:
    """A warehouse with the same staged batches: BAD and OTHERS[2] each break an expectation."""
    con = open_warehouse(tmp_path / f"{name}.duckdb")
    add_practices(con, *PRACTICES)
    bodies = {ods: bundle(clean_slots()) for ods in PRACTICES}
    bodies[BAD] = bundle([slot("9", DAY, minutes=240)])
    bodies[OTHERS[2]] = bundle([*clean_slots(), slot("9", DAY + timedelta(hours=2), status="booked")])
    load(con, tmp_path / name, "load-1", bodies)
    return con


def _recorded(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[object, ...]]]:
    return {
        "batches": con.execute(
            "select * exclude (validated_at) from meta.quality_batch order by all").fetchall(),
        "results": con.execute(
            "select * exclude (validated_at) from meta.quality_result order by all").fetchall(),
        "quarantine": con.execute(
            "select * exclude (quarantined_at) from meta.quarantine order by all").fetchall(),
    }


def _results_per_suite(data_dir: Path) -> dict[str, int]:
    store = data_dir / "quality" / "gx" / "uncommitted" / "validations" / "slotsync"
    return {suite.name: len(list(suite.glob("load-1/*/*.json"))) for suite in store.iterdir()}


def _pages_per_suite(data_dir: Path) -> dict[str, int]:
    pages = data_dir / "quality" / "data_docs" / "validations" / "slotsync"
    return {suite.name: len(list(suite.glob("load-1/*/*.html"))) for suite in pages.iterdir()}


def test_validating_batch_by_batch_then_building_docs_once_matches_one_validation(tmp_path: Path) -> None:
    whole, split = _staged(tmp_path, "whole"), _staged(tmp_path, "split")
    try:
        one = validate_pending(whole, data_dir=tmp_path / "whole-data", validated_by="load-1")
        reports = [
            validate_pending(split, data_dir=tmp_path / "split-data", validated_by="load-1",
                             practices=batch, build_docs=False)
            for batch in BATCHES
        ]
        docs_before = tmp_path / "split-data" / "quality" / "data_docs"
        assert all(r.data_docs is None for r in reports) and not docs_before.exists()
        index = build_data_docs(tmp_path / "split-data")

        assert [b.practice_ods for r in reports for b in r.batches] == [p for batch in BATCHES for p in batch]
        assert sorted(b.practice_ods for b in one.quarantined) == [BAD, OTHERS[2]]
        recorded = _recorded(split)
        assert recorded == _recorded(whole)
        assert len(recorded["quarantine"]) == 2 and len(recorded["results"]) > 2 * len(PRACTICES)

        # Every validation is in Data Docs: one result and one page per call and suite, the
        # clean ones (no failing rows in a frame) included.
        assert Path(index).exists() and index == str(docs_before / "index.html")
        assert _results_per_suite(tmp_path / "split-data") == dict.fromkeys(_results_per_suite(
            tmp_path / "whole-data"), len(BATCHES))
        assert _pages_per_suite(tmp_path / "split-data") == dict.fromkeys(
            ["batches", "slots", "schedules", "locations", "appointments"], len(BATCHES))
        listed = Path(index).read_text()
        runs = list((tmp_path / "split-data" / "quality" / "gx" / "uncommitted" / "validations").glob(
            "slotsync/*/load-1/*"))
        assert len(runs) == 5 * len(BATCHES)
        for run in runs:
            assert f"slotsync/{run.parent.parent.name}/load-1/{run.name}/" in listed
    finally:
        whole.close()
        split.close()
