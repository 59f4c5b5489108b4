"""A slot-search body with an element of the wrong JSON shape is refused in our words.

Through the real loader (DuckDB's typed read): the practice's error names the element at
fault and its shape, the response and search filter, and what to do; never DuckDB's own
reader advice. Bodies we can read are loaded as before.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from tests.warehouse.conftest import fixture_bytes, land
from warehouse.loader import LandingFile, PracticeDataError, Warehouse

ODS = "J82001"


def _slot(bundle: dict[str, Any]) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Slot")


EDITS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("entry object", lambda b: b.update(entry=b["entry"][0]), "Bundle.entry must be an array, got an object"),
    ("entry string", lambda b: b.update(entry="none"), "Bundle.entry must be an array, got a string"),
    ("entry item", lambda b: b["entry"].__setitem__(1, 7), "Bundle.entry[1] must be an object, got a number"),
    ("resource string", lambda b: b["entry"][0].update(resource="Slot/1"),
     "Bundle.entry[0].resource must be an object, got a string"),
    ("schedule string", lambda b: _slot(b).update(schedule="Schedule/1"),
     "(Slot).schedule must be an object, got a string"),
    ("meta array", lambda b: _slot(b).update(meta=[]), "(Slot).meta must be an object, got an array"),
    ("extension object", lambda b: _slot(b).update(extension={"url": "x"}),
     "(Slot).extension must be an array, got an object"),
    # A null item before the bad one is skipped, not walked into (found by the loader's fuzz test).
    ("null then boolean extension", lambda b: _slot(b).update(extension=[None, False]),
     "(Slot).extension[1] must be an object, got a boolean"),
    ("null entry then number", lambda b: b["entry"].__setitem__(0, None) or b["entry"].__setitem__(1, 7),
     "Bundle.entry[1] must be an object, got a number"),
]


@pytest.mark.parametrize(("edit", "expected"), [(e[1], e[2]) for e in EDITS], ids=[e[0] for e in EDITS])
def test_a_wrongly_shaped_element_is_named_in_our_words(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, edit: Callable[[dict[str, Any]], None], expected: str
) -> None:
    good = fixture_bytes("emis_three_slots.json")
    bundle = orjson.loads(good)
    edit(bundle)
    path = land(tmp_path / f"{ODS}.ndjson", ODS,
                [("general", "none", good), ("nhs111", "nhs111", orjson.dumps(bundle))])
    (result,) = Warehouse(con).load_practice_files([LandingFile(ODS, path)], load_id="test-load")
    assert isinstance(result, PracticeDataError)
    text = str(result)
    assert text.startswith(f"practice {ODS}, search free slots: ")
    assert f"{expected} (response 2, searchFilter nhs111). Next step: " in text, text
    assert "raise it with the supplier" in text
    assert "auto_detect" not in text and "Invalid Input Error" not in text and "\n" not in text


def test_one_bad_file_in_a_batch_is_named_and_the_others_load(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    good = fixture_bytes("emis_three_slots.json")
    bad = orjson.loads(good)
    bad["entry"] = bad["entry"][0]
    files = [
        LandingFile(ods, land(tmp_path / f"{ods}.ndjson", ods, [("general", "none", body)]))
        for ods, body in (("J82001", good), ("J82002", orjson.dumps(bad)))
    ]
    ok, refused = Warehouse(con).load_practice_files(files, load_id="test-load")
    assert not isinstance(ok, PracticeDataError) and ok.slot_rows == 3
    assert isinstance(refused, PracticeDataError) and refused.practice_ods == "J82002"
    assert "Bundle.entry must be an array, got an object (response 1, searchFilter general)" in str(refused)
