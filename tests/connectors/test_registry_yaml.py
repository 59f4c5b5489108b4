"""Registry YAML: the fast writer and reader say exactly what `yaml.safe_dump`/`safe_load` say."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.registry import RegistryError, load_registry, registry_from_nhs_csv
from connectors.registry_yaml import dump_yaml, load_yaml

# Strings YAML must quote or escape to keep them strings: numbers, booleans, nulls, dates,
# indicators, leading/trailing blanks, line breaks, non-ASCII, control characters.
TRICKY_TEXT = st.sampled_from(
    ["147155134383", "04D", "10K", "yes", "No", "null", "~", "", " x", "x ", "a: b", "- x", "#x", "'q'",
     '"q"', "2026-03-24", "1e3", "0o17", "line\nbreak", "Ysgol Gymraeg Pont-Siôn-Norton", "\t", "SÃO",
     "日本", "@x", "%x", "x #y", "{a}", "[b]", "*ref", "&anchor", "!tag", "|", ">", "\x07", "\u2028"]
)  # fmt: skip
# What a registry holds: text from the Basic Multilingual Plane (a practice name, a code).
# libyaml escapes characters beyond it and NEL (U+0085), where PyYAML writes them raw (see
# test_the_known_spelling_differences).
REGISTRY_TEXT = st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]), max_size=40).filter(
    lambda text: "\x85" not in text
)
ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
FIELD = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)


def documents(text: st.SearchStrategy[str], keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | text | TRICKY_TEXT
    nested = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=20,
    )
    return st.dictionaries(keys, nested, max_size=4) | st.lists(nested, max_size=4)


@settings(max_examples=400, deadline=None)
@given(documents(REGISTRY_TEXT, FIELD))
def test_registry_shaped_documents_are_byte_identical_to_safe_dump(document: Any) -> None:
    assert dump_yaml(document) == yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


@settings(max_examples=400, deadline=None)
@given(documents(ANY_TEXT, ANY_TEXT | TRICKY_TEXT) | st.none() | ANY_TEXT)
def test_any_document_reads_back_as_itself(document: Any) -> None:
    # (PyYAML's own emitter does not always: it folds a NEL in a plain key into a space.)
    expected = repr(document)
    written = dump_yaml(document)
    assert repr(yaml.safe_load(written)) == expected  # repr: NaN != NaN
    assert repr(load_yaml(written)) == expected


@pytest.mark.parametrize(
    ("document", "ours", "pyyaml"),
    [
        ({"name": "Clinic \U0001f3e5"}, 'name: "Clinic \\U0001F3E5"\n', "name: Clinic \U0001f3e5\n"),
        ({"name": "a\x85b"}, 'name: "a\\Nb"\n', "name: 'a\x85  b'\n"),
        ({"": 1}, "'': 1\n", "? ''\n: 1\n"),
        (None, "null\n", "null\n...\n"),
    ],
)
def test_the_known_spelling_differences(document: Any, ours: str, pyyaml: str) -> None:
    # Ours reads back as the data; PyYAML's NEL comes back as a space (its emitter folds it).
    assert dump_yaml(document) == ours
    assert yaml.safe_dump(document, sort_keys=False, allow_unicode=True) == pyyaml
    assert yaml.safe_load(ours) == document


def test_other_types_go_through_the_representer() -> None:
    document = {"day": date(2026, 3, 24), "pair": (1, "a"), "set": {3}, "size": 1.5, "on": [{"x": True}]}
    assert dump_yaml(document) == yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    for refused in ({"x": object()}, {"x": [1, {"y": object()}]}):
        with pytest.raises(yaml.representer.RepresenterError):
            yaml.safe_dump(refused)
        with pytest.raises(yaml.representer.RepresenterError):
            dump_yaml(refused)


def test_a_broken_file_keeps_the_error_with_the_caret(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text("practices:\n  - ods_code: [J82001\n    name: x\n")
    with pytest.raises(RegistryError) as raised:
        load_registry(path)
    [problem] = raised.value.problems
    assert problem.startswith("not valid YAML: while parsing a flow sequence")
    assert "line 2, column 15:\n" in problem and "^" in problem


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_the_collector_is_left_as_it_was(collector_off: None) -> None:
    dump_yaml({"a": [1, 2]})
    load_yaml("a: [1, 2]\n")
    assert not gc.isenabled()
    gc.enable()
    dump_yaml({"a": [1, 2]})
    with pytest.raises(yaml.YAMLError):
        load_yaml("a: [1, 2\n")
    assert gc.isenabled()


def test_a_registry_round_trips_through_its_file(tmp_path: Path) -> None:
    csv_text = (
        "ods_code,name,postcode,ccg_code,list_size,clinical_system,live_with_111_booking\n"
        "J82001,Fareham Road Surgery,PO16 7AA,10K,9027,EMIS Web,No\n"
        "J82002,Meddygfa'r Bont: Siôn & Partners,PO17 5CC,10V,4100,SystmOne,No\n"
    )
    registry = registry_from_nhs_csv(
        csv_text, source="t.csv", service_root_template="https://h/{ods}/STU3/1/gpconnect"
    )
    path = tmp_path / "registry.yaml"
    registry.write(path)
    assert path.read_text(encoding="utf-8") == yaml.safe_dump(
        yaml.safe_load(path.read_text(encoding="utf-8")), sort_keys=False, allow_unicode=True
    )
    assert load_registry(path) == registry
