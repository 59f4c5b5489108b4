"""The practice registry: validation reports every problem with row and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from connectors.registry import (
    RegistryError,
    load_registry,
    nhs111_daily_quota,
    registry_from_nhs_csv,
)


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
        practice_row(ods_code="j8201"),                  # malformed ODS code
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
        text, source="list.csv", service_root_template="https://gp.example/{ods}/STU3/1/gpconnect",
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
        registry_from_nhs_csv("ods_code,name\nJ82001,A\n", source="x.csv",
                              service_root_template="https://h/{ods}")
