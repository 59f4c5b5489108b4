"""The practice registry: validation reports every problem with row and field."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.registry import (
    Practice,
    Registry,
    RegistryError,
    load_registry,
    nhs111_daily_quota,
    registry_from_nhs_csv,
)
from tests.reliability import Result, record
from warehouse.db import migrate
from warehouse.loader import Warehouse


def practice_row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "ods_code": "J82001",
        "name": "Fareham Road Surgery",
        "list_size": 9027,
        "clinical_system": "EMIS Web",
        "kind": "practice",
        "service_root": "http://127.0.0.1:8080/J82001/STU3/1/gpconnect",
        "provider_asid": "200000000101",
        "accepts_111_booking": True,
        "nhs111_provider_ods": "RYE",
    }
    row.update(overrides)
    return row


def write(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"practices": rows}))
    return path


@pytest.mark.parametrize(
    ("list_size", "quota"),
    [(0, 1), (2750, 1), (3000, 1), (5823, 1), (6000, 2), (7500, 2), (9000, 3), (9027, 3), (36087, 12)],
)
def test_111_quota_is_one_per_whole_3000_at_least_one(list_size: int, quota: int) -> None:
    assert nhs111_daily_quota(list_size) == quota


def test_valid_registry_round_trips(tmp_path: Path) -> None:
    registry = load_registry(write(tmp_path, [practice_row()]))
    out = tmp_path / "copy.yaml"
    registry.write(out)
    assert load_registry(out) == registry
    assert registry.get("J82001").nhs111_quota == 3


def test_every_problem_is_reported_with_row_and_field(tmp_path: Path) -> None:
    rows = [
        practice_row(ods_code="j8201"),  # malformed ODS code
        practice_row(ods_code="J82002", service_root=None),  # missing URL
        practice_row(ods_code="J82003", accepts_111_booking=True, nhs111_provider_ods=None),
        practice_row(ods_code="J82004", service_root="http://host/J82004/STU3/1/gpconnect/"),
    ]
    del rows[1]["service_root"]
    with pytest.raises(RegistryError) as excinfo:
        load_registry(write(tmp_path, rows))
    problems = excinfo.value.problems
    assert len(problems) == 4
    assert problems[0].startswith("row 1 (j8201) field ods_code:")
    assert problems[1].startswith("row 2 (J82002) field service_root:") and "required" in problems[1].lower()
    assert "row 3 (J82003)" in problems[2] and "nhs111_provider_ods" in problems[2]
    assert "row 4 (J82004) field service_root" in problems[3] and "trailing" in problems[3]
    assert str(tmp_path / "registry.yaml") in str(excinfo.value)


def test_duplicates_and_unknown_hubs_are_reported(tmp_path: Path) -> None:
    rows = [practice_row(booking_hubs=["Y00001"]), practice_row()]
    with pytest.raises(RegistryError) as excinfo:
        load_registry(write(tmp_path, rows))
    text = str(excinfo.value)
    assert "row 2 (J82001) field ods_code: duplicate of row 1" in text
    assert "Y00001" in text and "booking_hubs" in text


def test_unreadable_or_shapeless_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("practices: {not: a list}")
    with pytest.raises(RegistryError, match="'practices:' list"):
        load_registry(bad)


def test_nhs_digital_csv_becomes_a_registry() -> None:
    text = (
        "ods_code,name,postcode,ccg_code,list_size,supplier,clinical_system\n"
        "J82001,FAREHAM ROAD SURGERY,PO16 7AA,10K,9027,EMIS,EMIS Web\n"
        "J82002,GOSPORT MEDICAL,PO12 1AA,10K,5823,TPP,SystmOne\n"
    )
    registry = registry_from_nhs_csv(
        text,
        source="list.csv",
        service_root_template="https://gp.example/{ods}/STU3/1/gpconnect",
        nhs111_provider_ods="RYE",
    )
    first, second = registry.practices
    assert first.service_root == "https://gp.example/J82001/STU3/1/gpconnect"
    assert second.clinical_system == "SystmOne" and second.nhs111_quota == 1
    assert first.provider_asid.isdigit() and len(first.provider_asid) == 12


def test_csv_problems_name_the_line() -> None:
    text = "Practice Code,Practice Name,NUMBER_OF_PATIENTS\nJ82001,A,#N/A\nBAD,B,100\n"
    with pytest.raises(RegistryError) as excinfo:
        registry_from_nhs_csv(text, source="list.csv", service_root_template="https://h/{ods}")
    problems = excinfo.value.problems
    assert any(p.startswith("line 2 (J82001) field list_size") for p in problems)
    assert any("(BAD) field ods_code" in p for p in problems)


def test_csv_without_needed_columns_lists_accepted_names() -> None:
    with pytest.raises(RegistryError, match="no column for list_size"):
        registry_from_nhs_csv(
            "ods_code,name\nJ82001,A\n", source="x.csv", service_root_template="https://h/{ods}"
        )


# ---------------------------------------------------------------------- properties and fuzzing

VALID_YAML = yaml.safe_dump(
    {
        "practices": [
            practice_row(),
            practice_row(
                ods_code="J82002", name="Hub", kind="hub", accepts_111_booking=False, nhs111_provider_ods=None
            ),
        ],
        "booking_organisations": [
            {
                "ods_code": "RYE",
                "name": "NHS 111",
                "kind": "nhs111",
                "booking_log_url": "http://127.0.0.1:8080/_booking-orgs/RYE",
            }
        ],
    },
    sort_keys=False,
)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def test_111_quota_is_max_1_floor_list_size_over_3000_for_any_list_size(tmp_path: Path) -> None:
    """Property: the Python quota, and the value the warehouse stores for the marts."""
    examples = {"n": 0}

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.integers(0, 2_000_000), min_size=1, max_size=12))
    def check(sizes: list[int]) -> None:
        examples["n"] += len(sizes)
        for size in sizes:
            quota = nhs111_daily_quota(size)
            assert quota == max(1, math.floor(size / 3000)) and quota >= 1
            assert quota * 3000 <= max(size, 3000) < (quota + 1) * 3000 or size < 3000
            assert nhs111_daily_quota(size + 3000) == size // 3000 + 1  # one more per 3,000
        registry = Registry(
            practices=tuple(
                Practice.model_validate(practice_row(ods_code=f"J{i:05d}", list_size=size))
                for i, size in enumerate(sizes)
            )
        )
        con = duckdb.connect()
        try:
            migrate(con)
            Warehouse(con).sync_registry(registry, "l1")
            stored = con.execute(
                "select list_size, nhs111_daily_quota, greatest(1, floor(list_size / 3000))::int "
                "from core.dim_practice"
            ).fetchall()
        finally:
            con.close()
        assert sorted(stored) == sorted((s, max(1, s // 3000), max(1, s // 3000)) for s in sizes)

    check()
    record(
        Result(
            "property",
            "NHS 111 quota max(1, floor(list_size/3000))",
            examples["n"],
            examples["n"],
            None,
            None,
            "Python and the stored dim_practice value agree with the formula",
            "tests/connectors/test_registry.py::"
            "test_111_quota_is_max_1_floor_list_size_over_3000_for_any_list_size",
            not_measured="a registry check: no slot data involved",
        )
    )


def _mutate_bytes(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for position, delete, insert in edits:
        at = position % (len(data) + 1)
        data = data[:at] + insert + data[at + delete :]
    return data


def test_a_mutated_registry_file_loads_or_fails_with_a_registry_error_naming_it(tmp_path: Path) -> None:
    """Fuzz: byte edits (cuts, inserts, non-UTF-8, YAML syntax) never escape as another error."""
    examples = {"n": 0, "refused": 0}
    path = tmp_path / "fuzzed-registry.yaml"

    @settings(max_examples=400, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.integers(0, 10_000),
                st.integers(0, 40),
                st.binary(max_size=12)
                | st.sampled_from(
                    [
                        b":",
                        b"- ",
                        b"\n  ",
                        b"{",
                        b"[",
                        b"&a",
                        b"*a",
                        b"!!python/object",
                        b"\t",
                        b"\xff\xfe",
                        b"'",
                        b'"',
                        b"%YAML 9.9\n---\n",
                    ]
                ),
            ),
            min_size=1,
            max_size=6,
        )
    )
    def check(edits: list[tuple[int, int, bytes]]) -> None:
        examples["n"] += 1
        path.write_bytes(_mutate_bytes(VALID_YAML.encode(), edits))
        try:
            load_registry(path)
        except RegistryError as exc:
            examples["refused"] += 1
            assert str(path) in str(exc) and exc.problems

    check()
    assert examples["refused"] > 0
    record(
        Result(
            "fuzz",
            "registry file: byte mutations",
            examples["n"],
            examples["n"],
            None,
            None,
            f"{examples['refused']} refused with a RegistryError naming the file, the rest loaded",
            "tests/connectors/test_registry.py::"
            "test_a_mutated_registry_file_loads_or_fails_with_a_registry_error_naming_it",
            not_measured="a registry check: no slot data involved",
        )
    )


def test_mutated_registry_fields_fail_with_the_row_and_field_named(tmp_path: Path) -> None:
    """Fuzz: any value in any field (or a missing or unknown field) is reported by row/field."""
    examples = {"n": 0}
    path = tmp_path / "registry.yaml"
    fields = [*practice_row(), "booking_hubs", "release_policy", "ccg_code", "unknown_field"]

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(fields), JSONISH | st.just("<missing>"), st.integers(0, 2))
    def check(field: str, value: object, row_index: int) -> None:
        examples["n"] += 1
        rows = [practice_row(ods_code=f"J8200{i}") for i in range(3)]
        if value == "<missing>":
            rows[row_index].pop(field, None)
        else:
            rows[row_index][field] = value
        try:
            path.write_text(yaml.safe_dump({"practices": rows}))
        except yaml.YAMLError:
            return  # not representable as YAML
        try:
            load_registry(path)
        except RegistryError as exc:
            assert str(path) in str(exc)
            assert any(f"row {row_index + 1}" in p for p in exc.problems), exc.problems

    check()
    record(
        Result(
            "fuzz",
            "registry rows: any value in any field",
            examples["n"],
            examples["n"],
            None,
            None,
            "loaded, or RegistryError naming the file, row and field",
            "tests/connectors/test_registry.py::test_mutated_registry_fields_fail_with_the_row_and_field_named",
            not_measured="a registry check: no slot data involved",
        )
    )


def test_any_nhs_csv_becomes_a_registry_or_a_registry_error(tmp_path: Path) -> None:
    examples = {"n": 0}
    header = "Practice Code,Practice Name,List Size,GP System\n"

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=300), st.booleans())
    def check(body: str, with_header: bool) -> None:
        examples["n"] += 1
        try:
            registry_from_nhs_csv(
                (header if with_header else "") + body,
                source="fuzz.csv",
                service_root_template="http://127.0.0.1:1/{ods}/STU3/1/gpconnect",
            )
        except RegistryError as exc:
            assert "fuzz.csv" in str(exc)

    check()
    record(
        Result(
            "fuzz",
            "NHS Digital practice CSV: random text",
            examples["n"],
            examples["n"],
            None,
            None,
            "a registry, or RegistryError naming the source and line",
            "tests/connectors/test_registry.py::test_any_nhs_csv_becomes_a_registry_or_a_registry_error",
            not_measured="a registry check: no slot data involved",
        )
    )


# --- #18: the registry check passes only what the run can take ---------------------------


def test_a_list_size_the_warehouse_cannot_store_fails_validation(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"row 1 \(J82001\) field list_size: .*less than or equal"):
        load_registry(write(tmp_path, [practice_row(list_size=3_000_000_000)]))
    assert load_registry(write(tmp_path, [practice_row(list_size=400_000)])).practices


def test_a_deeply_nested_registry_is_a_one_line_error_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text("practices: " + "[" * 500 + "]" * 500 + "\n")  # about 1 KB
    with pytest.raises(RegistryError) as excinfo:
        load_registry(path)
    assert excinfo.value.problems == [
        "nested more than 12 levels deep; a registry is a list of flat rows"
    ]
    path.write_text("practices:\n  - " + "{a: " * 20 + "1" + "}" * 20 + "\n")
    with pytest.raises(RegistryError, match="nested more than 12 levels"):
        load_registry(path)


def test_an_oversized_registry_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    with path.open("w") as out:
        out.write("practices:\n")
        out.write("# padding\n" * 3_500_000)  # ~35 MB of comment, over the 32 MiB limit
    with pytest.raises(RegistryError) as excinfo:
        load_registry(path)
    assert len(excinfo.value.problems) == 1 and "over the 33,554,432-byte limit" in str(excinfo.value)


@pytest.mark.parametrize(
    "root",
    [
        "http://127.0.0.1:8080/J82001/STU3/1/gpconnect",
        "http://127.8.9.10/J82001/STU3/1/gpconnect",
        "http://localhost:8080/J82001/STU3/1/gpconnect",
        "http://[::1]:8080/J82001/STU3/1/gpconnect",
        "https://provider.example/J82001/STU3/1/gpconnect",
        "https://10.1.2.3/J82001/STU3/1/gpconnect",
    ],
)
def test_https_or_loopback_service_roots_are_accepted(tmp_path: Path, root: str) -> None:
    assert load_registry(write(tmp_path, [practice_row(service_root=root)])).practices


@pytest.mark.parametrize(
    ("root", "reason"),
    [
        ("http://provider.example/J82001/STU3/1/gpconnect", "must be https"),
        ("http://10.1.2.3/J82001/STU3/1/gpconnect", "must be https"),
        ("https://user:pass@provider.example/J82001/STU3/1/gpconnect", "user:password@"),
        ("https://token@provider.example/J82001/STU3/1/gpconnect", "user:password@"),
        ("https://169.254.169.254/latest/meta-data", "link-local or cloud-metadata"),
        ("http://169.254.169.254/latest/meta-data", "link-local or cloud-metadata"),
        ("https://[fe80::1]/J82001/STU3/1/gpconnect", "link-local or cloud-metadata"),
        ("https://[::ffff:169.254.169.254]/x", "link-local or cloud-metadata"),
        ("https://2852039166/x", "link-local or cloud-metadata"),
        ("https://metadata.google.internal/computeMetadata/v1", "link-local or cloud-metadata"),
        ("https://[fd00:ec2::254]/latest", "link-local or cloud-metadata"),
    ],
)
def test_unsafe_service_roots_fail_validation_naming_row_and_field(
    tmp_path: Path, root: str, reason: str
) -> None:
    with pytest.raises(RegistryError) as excinfo:
        load_registry(write(tmp_path, [practice_row(service_root=root)]))
    [problem] = excinfo.value.problems
    assert problem.startswith("row 1 (J82001) field service_root: ") and reason in problem


def test_booking_log_and_supplier_urls_follow_the_same_rule(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({
        "practices": [practice_row(release_policy={"supplier_api_root": "http://supplier.example"})],
        "booking_organisations": [{
            "ods_code": "RYE", "name": "111", "kind": "nhs111",
            "booking_log_url": "https://u:p@logs.example/bookings.json",
        }],
    }))
    with pytest.raises(RegistryError) as excinfo:
        load_registry(path)
    text = str(excinfo.value)
    assert "field release_policy.supplier_api_root: must be https" in text
    assert "booking_organisations row 1 (RYE) field booking_log_url: must not carry user:password@" in text


def test_a_service_root_naming_another_practice_is_warned_about(tmp_path: Path) -> None:
    rows = [
        practice_row(),
        practice_row(ods_code="J82002", service_root="http://127.0.0.1:8080/J82001/STU3/1/gpconnect"),
    ]
    registry = load_registry(write(tmp_path, rows))
    assert any("practice J82002 service_root names practice J82001" in n for n in registry.notes)
    assert not any("practice J82001 service_root" in n for n in registry.notes)


def test_a_csv_template_must_be_https_or_loopback() -> None:
    csv_text = "ods_code,name,list_size\nJ82001,A,100\n"
    with pytest.raises(RegistryError, match="must be https"):
        registry_from_nhs_csv(csv_text, source="x.csv", service_root_template="http://h/{ods}/x")
    assert registry_from_nhs_csv(csv_text, source="x.csv", service_root_template="https://h/{ods}/x")
