"""Loading landed slot searches: typed rows, leniency, strictness, idempotency."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reliability import Result, record
from tests.warehouse.conftest import OBSERVED_AT, fixture_bytes, land
from warehouse.db import open_warehouse
from warehouse.loader import LandingFile, PracticeDataError, PracticeLoad, Warehouse

LOADER_NOT_COUNTED = "not counted: the test asserts each practice is fully in or fully out"


def staged(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.execute(
        "select slot_id, schedule_id, start_at, end_at, start_text, delivery_channel, slot_type, "
        "version_id, filter_role from staging.stg_gpconnect__slots order by slot_id"
    ).fetchall()


def test_emis_bundle_flattens_to_typed_rows(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = land(
        tmp_path / "J82001.ndjson", "J82001", [("general", "none", fixture_bytes("emis_three_slots.json"))]
    )
    result = Warehouse(con).load_practice_file(path, load_id="test-load", practice_ods="J82001")
    assert result.slot_rows == 3 and result.responses == 1
    rows = staged(con)
    assert [r[0] for r in rows] == ["104233", "104234", "104240"]
    first, bst, autumn = rows
    assert first[1] == "5012"
    assert first[2] == datetime(2026, 3, 27, 9, 0, tzinfo=UTC)
    assert first[4] == "2026-03-27T09:00:00+00:00"  # original text kept
    # BST offset converted to UTC; the unknown extension before the channel is ignored.
    assert bst[2] == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    assert bst[5] == "Telephone" and bst[6] == "NHS 111 Appointment"
    # 01:30 BST on the autumn fall-back day is the first of the two 01:30s: 00:30 UTC.
    assert autumn[2] == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert first[7] == "1774512000000"


def test_systmone_shapes_parse_leniently(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = land(
        tmp_path / "J82002.ndjson", "J82002", [("general", "none", fixture_bytes("tpp_unsorted_arrays.json"))]
    )
    Warehouse(con).load_practice_file(path, load_id="test-load", practice_ods="J82002")
    rows = staged(con)
    assert [r[0] for r in rows] == ["SL7f3a9c1d", "SL7f3a9c2e"]
    # Optional elements missing: no channel, no slot type, no versionId; still a valid slot.
    assert rows[0][5] is None and rows[0][6] is None and rows[0][7] is None
    assert rows[1][1] == "S1c0ffee"


def test_empty_bundle_is_a_valid_observation(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = land(tmp_path / "J82003.ndjson", "J82003", [("general", "none", fixture_bytes("empty.json"))])
    result = Warehouse(con).load_practice_file(path, load_id="test-load", practice_ods="J82003")
    assert result.slot_rows == 0
    windows = con.execute("select practice_ods, rows_loaded from meta.sync_window").fetchall()
    assert windows == [("J82003", 0)]


def test_missing_start_is_refused_but_raw_is_kept(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = land(
        tmp_path / "J82004.ndjson", "J82004", [("general", "none", fixture_bytes("slot_without_start.json"))]
    )
    with pytest.raises(PracticeDataError) as excinfo:
        Warehouse(con).load_practice_file(path, load_id="test-load", practice_ods="J82004")
    message = str(excinfo.value)
    assert "J82004" in message and "missing or invalid start" in message and "Next step" in message
    assert staged(con) == []
    assert con.execute("select count(*) from meta.sync_window").fetchall()[0][0] == 0
    assert con.execute("select count(*) from raw.gpc_slot_search").fetchall()[0][0] == 1


def test_reloading_the_same_observation_is_idempotent(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    body = fixture_bytes("emis_three_slots.json")
    warehouse = Warehouse(con)
    path = land(tmp_path / "a.ndjson", "J82001", [("general", "none", body)], load_id="load-a")
    warehouse.load_practice_file(path, load_id="load-a", practice_ods="J82001")
    first = staged(con)
    path = land(tmp_path / "b.ndjson", "J82001", [("general", "none", body)], load_id="load-b")
    warehouse.load_practice_file(path, load_id="load-b", practice_ods="J82001")
    assert staged(con) == first
    assert con.execute("select load_id from meta.sync_window").fetchall() == [("load-b",)]


def test_a_later_observation_is_kept_beside_the_earlier_one(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    body = fixture_bytes("emis_three_slots.json")
    warehouse = Warehouse(con)
    later = OBSERVED_AT.replace(hour=10)
    for load_id, observed in (("l1", OBSERVED_AT), ("l2", later)):
        path = land(
            tmp_path / f"{load_id}.ndjson",
            "J82001",
            [("general", "none", body)],
            load_id=load_id,
            observed_at=observed,
        )
        warehouse.load_practice_file(path, load_id=load_id, practice_ods="J82001")
    counts = con.execute(
        "select observed_at, count(*) from staging.stg_gpconnect__slots group by 1 order by 1"
    ).fetchall()
    assert [c[1] for c in counts] == [3, 3]


def test_schedules_locations_and_practitioners_are_staged(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = land(
        tmp_path / "J82001.ndjson",
        "J82001",
        [
            ("general", "none", fixture_bytes("emis_three_slots.json")),
            ("nhs111", "urgent-care|NHS111", fixture_bytes("tpp_unsorted_arrays.json")),
        ],
    )
    Warehouse(con).load_practice_file(path, load_id="test-load", practice_ods="J82001")
    schedules = con.execute(
        "select filter_role, schedule_id, location_id, practitioner_id, service_category, "
        "practitioner_role_code, practitioner_role_display, planning_horizon_start_at "
        "from staging.stg_gpconnect__schedules order by schedule_id"
    ).fetchall()
    assert schedules == [
        (
            "general",
            "5012",
            "17",
            "2",
            "Morning surgery",
            "R0260",
            "General Medical Practitioner",
            datetime(2026, 3, 27, 8, 30, tzinfo=UTC),
        ),
        ("nhs111", "S1c0ffee", "Lx9", None, "Nurse clinic", None, None, None),
    ]
    locations = con.execute(
        "select location_id, location_name, managing_organization_id "
        "from staging.stg_gpconnect__locations order by location_id"
    ).fetchall()
    assert locations == [("17", "Fareham Road Surgery", "23"), ("Lx9", "Branch site", None)]


def test_object_versus_array_slips_are_accepted(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """The specification examples' cardinality slips, in every element we read leniently."""
    sloppy = orjson.dumps(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Slot",
                        "id": "1",
                        "schedule": {"reference": "Schedule/9"},
                        "serviceType": {"text": "Single object"},
                        "status": "free",
                        "start": "2026-04-01T09:00:00+01:00",
                        "end": "2026-04-01T09:10:00+01:00",
                    }
                },
                {
                    "resource": {
                        "resourceType": "Schedule",
                        "id": "9",
                        "actor": {"reference": "https://provider.example/Location/L7"},
                        "serviceCategory": [{"coding": [{"display": "From coding"}]}],
                        "extension": [
                            {
                                "url": "https://fhir.nhs.uk/STU3/StructureDefinition/"
                                "Extension-GPConnect-PractitionerRole-1",
                                "valueCodeableConcept": {"coding": {"code": "R0270"}},
                            }
                        ],
                        "planningHorizon": {"start": "2026-04-01T08:00:00+01:00"},
                    }
                },
                {
                    "resource": {
                        "resourceType": "Location",
                        "id": "L7",
                        "name": "Annexe",
                        "identifier": {"system": "https://fhir.nhs.uk/Id/ods-site-code", "value": "J82001A"},
                        "managingOrganization": [{"reference": "Organization/O1"}],
                        "telecom": {"system": "phone", "value": "0"},
                    }
                },
                {
                    "resource": {
                        "resourceType": "Practitioner",
                        "id": "P1",
                        "identifier": {"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": "G1234567"},
                        "name": {"family": "Staffname", "given": ["Sam"]},
                        "gender": "female",
                    }
                },
                {"resource": {"resourceType": "HealthcareService", "id": "unknown-resources-are-ignored"}},
            ],
        }
    )
    path = land(tmp_path / "J82001.ndjson", "J82001", [("general", "none", sloppy)])
    result = Warehouse(con).load_practice_file(path, load_id="test-load", practice_ods="J82001")
    assert result.slot_rows == 1
    assert staged(con)[0][6] == "Single object"
    assert con.execute(
        "select location_id, service_category, practitioner_role_code, planning_horizon_start_at "
        "from staging.stg_gpconnect__schedules"
    ).fetchall() == [("L7", "From coding", "R0270", datetime(2026, 4, 1, 7, 0, tzinfo=UTC))]
    assert con.execute(
        "select location_id, ods_site_code, managing_organization_id from staging.stg_gpconnect__locations"
    ).fetchall() == [("L7", "J82001A", "O1")]
    assert con.execute(
        "select practitioner_id, sds_user_id, sds_role_profile_id from staging.stg_gpconnect__practitioners"
    ).fetchall() == [("P1", "G1234567", None)]


def test_practitioner_names_are_never_stored(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    body = orjson.dumps(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Practitioner",
                        "id": "P1",
                        "identifier": [
                            {"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": "G1"},
                            {"system": "https://fhir.nhs.uk/Id/sds-role-profile-id", "value": "R9"},
                        ],
                        "name": [{"family": "Staffname", "given": ["Sam"], "prefix": ["Dr"]}],
                        "gender": "female",
                    }
                },
            ],
        }
    )
    path = land(tmp_path / "J82001.ndjson", "J82001", [("general", "none", body)])
    Warehouse(con).load_practice_file(path, load_id="test-load", practice_ods="J82001")
    assert con.execute(
        "select practitioner_id, sds_user_id, sds_role_profile_id from staging.stg_gpconnect__practitioners"
    ).fetchall() == [("P1", "G1", "R9")]
    columns = con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_schema in ('raw', 'staging', 'core', 'meta') "
        "and data_type in ('VARCHAR', 'JSON', 'VARCHAR[]')"
    ).fetchall()
    for schema, table, column in columns:
        hits = con.execute(
            f'select count(*) from "{schema}"."{table}" '
            f"where \"{column}\"::varchar ilike '%Staffname%' or \"{column}\"::varchar ilike '%female%'"
        ).fetchall()[0][0]
        assert hits == 0, f"{schema}.{table}.{column} holds staff personal data"


def test_any_warehouse_file_name_loads(tmp_path: Path) -> None:
    """The loader's connections name the warehouse catalog, whatever the file is called."""
    con = open_warehouse(tmp_path / "my-warehouse.2026's.duckdb")
    try:
        body = fixture_bytes("emis_three_slots.json")
        paths = [
            land(tmp_path / f"{ods}.ndjson", ods, [("general", "none", body)])
            for ods in ("J82001", "J82002", "J82003")
        ]
        results = Warehouse(con).load_practice_files(
            [LandingFile(ods, path) for ods, path in zip(("J82001", "J82002", "J82003"), paths, strict=True)],
            load_id="test-load",
        )
        assert [r.slot_rows for r in results if isinstance(r, PracticeLoad)] == [3, 3, 3]
        assert con.execute("select count(*) from staging.stg_gpconnect__slots").fetchall() == [(9,)]
        attached = con.execute(
            "select count(*) from duckdb_databases() where database_name = 'slotsync_loader'"
        )
        assert attached.fetchall() == [(0,)], "the batch database is detached after the load"
    finally:
        con.close()


def test_a_body_larger_than_duckdbs_default_object_size_loads(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    big = orjson.loads(fixture_bytes("emis_three_slots.json"))
    big["entry"][0]["resource"]["comment"] = "x" * (17 * 1024 * 1024)  # unknown, ignored
    path = land(tmp_path / "J82001.ndjson", "J82001", [("general", "none", orjson.dumps(big))])
    result = Warehouse(con).load_practice_file(path, load_id="test-load", practice_ods="J82001")
    assert result.slot_rows == 3


# ---------------------------------------------------------------------- fuzzing

FUZZ_ODS = "J82001"
JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _accepts_or_names_the_input(result: PracticeLoad | PracticeDataError, path: Path) -> bool:
    """A load, or a PracticeDataError naming the practice and the landing file; True if refused."""
    if isinstance(result, PracticeLoad):
        return False
    assert isinstance(result, PracticeDataError), result
    assert FUZZ_ODS in str(result) and str(path) in str(result) and "Next step" in str(result)
    return True


def _fully_in_or_out(con: duckdb.DuckDBPyConnection, load_id: str) -> None:
    # A unit is (filter, window start, window end): a mutated window end is another window,
    # kept beside the first (hypothesis found the pair that made a start-only count differ).
    staged_units, marked = con.execute(
        "select (select count(distinct (filter_key, window_start, window_end)) "
        "        from staging.stg_gpconnect__slots "
        "        where load_id = $l), "
        "       (select count(*) from meta.sync_window where load_id = $l and rows_loaded > 0)",
        {"l": load_id},
    ).fetchall()[0]
    assert staged_units == marked


def test_mutated_landing_bytes_load_or_fail_naming_the_practice_and_file(tmp_path: Path) -> None:
    """Fuzz: byte edits anywhere in a landing file (meta or bundle) never escape the loader."""
    body = fixture_bytes("emis_three_slots.json")
    clean = land(tmp_path / "clean.ndjson", FUZZ_ODS, [("general", "none", body), ("nhs111", "k", body)])
    original = clean.read_bytes()
    con = open_warehouse(tmp_path / "fuzz.duckdb")
    examples = {"n": 0, "refused": 0}

    @settings(max_examples=100, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.integers(0, len(original)),
                st.integers(0, 30),
                st.binary(max_size=8)
                | st.sampled_from([b"\n", b"}", b"{", b"]", b"\x00", b"\xff", b'"', b"null", b",,"]),
            ),
            min_size=1,
            max_size=5,
        )
    )
    def check(edits: list[tuple[int, int, bytes]]) -> None:
        examples["n"] += 1
        data = original
        for position, delete, insert in edits:
            data = data[:position] + insert + data[position + delete :]
        path = tmp_path / f"mutated-{examples['n']}.ndjson"
        path.write_bytes(data)
        (result,) = Warehouse(con).load_practice_files([LandingFile(FUZZ_ODS, path)], load_id="test-load")
        examples["refused"] += _accepts_or_names_the_input(result, path)
        _fully_in_or_out(con, "test-load")

    try:
        check()
    finally:
        con.close()
    assert examples["refused"] > 0
    record(
        Result(
            "fuzz",
            "landing file: byte mutations",
            examples["n"],
            examples["n"],
            None,
            None,
            f"{examples['refused']} refused with a PracticeDataError naming practice and file, "
            "the rest loaded; each practice fully in or out",
            "tests/warehouse/test_loader.py::"
            "test_mutated_landing_bytes_load_or_fail_naming_the_practice_and_file",
            not_measured=LOADER_NOT_COUNTED,
        )
    )


def test_mutated_bundle_elements_load_or_fail_naming_the_practice_and_file(tmp_path: Path) -> None:
    """Fuzz: any JSON value in place of any bundle, entry or Slot element never escapes."""
    bundle = orjson.loads(fixture_bytes("emis_three_slots.json"))
    con = open_warehouse(tmp_path / "fuzz.duckdb")
    examples = {"n": 0, "refused": 0}
    slot_keys = [
        "id",
        "start",
        "end",
        "schedule",
        "status",
        "serviceType",
        "extension",
        "meta",
        "resourceType",
    ]

    @settings(max_examples=100, deadline=None)
    @given(
        st.sampled_from(["bundle", "entry", "slot"]), st.sampled_from(slot_keys), JSONISH, st.integers(0, 5)
    )
    def check(where: str, key: str, value: object, index: int) -> None:
        examples["n"] += 1
        document = orjson.loads(orjson.dumps(bundle))
        entries = document["entry"]
        if where == "bundle":
            document[{"id": "entry", "start": "resourceType"}.get(key, key)] = value
        elif where == "entry":
            entries[index % len(entries)] = value if index % 2 else {"resource": value}
        else:
            slots = [e["resource"] for e in entries if e["resource"].get("resourceType") == "Slot"]
            slots[index % len(slots)][key] = value
        path = land(
            tmp_path / f"mutated-{examples['n']}.ndjson",
            FUZZ_ODS,
            [("general", "none", orjson.dumps(document))],
        )
        (result,) = Warehouse(con).load_practice_files([LandingFile(FUZZ_ODS, path)], load_id="test-load")
        examples["refused"] += _accepts_or_names_the_input(result, path)
        _fully_in_or_out(con, "test-load")

    try:
        check()
    finally:
        con.close()
    assert examples["refused"] > 0
    record(
        Result(
            "fuzz",
            "slot bundle: any value in any element",
            examples["n"],
            examples["n"],
            None,
            None,
            f"{examples['refused']} refused with a PracticeDataError naming practice and file, "
            "the rest loaded (unknown shapes ignored)",
            "tests/warehouse/test_loader.py::"
            "test_mutated_bundle_elements_load_or_fail_naming_the_practice_and_file",
            not_measured=LOADER_NOT_COUNTED,
        )
    )


def test_publish_removes_a_dead_writers_half_written_snapshot_only(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    import subprocess
    import sys

    published = tmp_path / "published"
    published.mkdir()
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead = published / f".dashboard-{finished.stdout.strip()}.duckdb.tmp"  # its process has exited
    live = published / f".dashboard-{os.getppid()}.duckdb.tmp"  # a process still running
    for leftover in (dead, dead.with_name(dead.name + ".wal"), live):
        leftover.write_bytes(b"half-written")
    target = Warehouse(con).publish(published, load_id="load-1", as_of=OBSERVED_AT)
    assert target.exists()
    assert sorted(p.name for p in published.iterdir()) == sorted(["dashboard.duckdb", live.name])


def test_a_window_with_another_end_is_another_unit(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """The fuzzer's find: same start, another end (one second later) is kept beside the first."""
    body = fixture_bytes("emis_three_slots.json")
    clean = land(tmp_path / "clean.ndjson", FUZZ_ODS, [("general", "none", body)])
    shifted = tmp_path / "shifted.ndjson"
    text = clean.read_bytes()
    end = text.split(b'"window_end":"', 1)[1].split(b'"', 1)[0]
    shifted.write_bytes(text.replace(end, end.replace(b":00+", b":01+", 1), 1))
    for path in (clean, shifted):
        (result,) = Warehouse(con).load_practice_files([LandingFile(FUZZ_ODS, path)], load_id="test-load")
        assert isinstance(result, PracticeLoad), result
    _fully_in_or_out(con, "test-load")
    assert con.execute("select count(*) from meta.sync_window").fetchall() == [(2,)]
