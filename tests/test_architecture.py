"""The house reads as the pipeline: the import graph of the tree, checked.

Every import counts, including those inside functions (they hide circles). Product packages
must not reach the sandbox or the lab, no module may import another that imports it back,
and no product module grows past the size a reader takes in at once.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("common", "connectors", "warehouse", "flows", "dashboards")
LAB = ("sandbox", "lab")
MAX_PRODUCT_MODULE_LINES = 650


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in (*PRODUCT, *LAB):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    targets: set[str] = set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            candidates = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        targets.update(c for c in candidates if c in known and c != name)
    return targets


GRAPH = {name: _imports(name, path, set(_modules())) for name, path in _modules().items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_circles() -> None:
    circles = _cycles(GRAPH)
    assert circles == [], f"modules importing each other (directly or round a loop): {circles}"


def test_graph_sees_every_kind_of_import() -> None:
    # Top-level imports, a from-import of a module, and one inside a function (flows.cli imports
    # flows.sync only inside the `sync` command): a graph missing these would pass vacuously.
    assert "connectors.registry" in GRAPH["flows.cli"]
    assert "flows.sync" in GRAPH["flows.cli"]
    assert "dashboards.views.nhs111" in GRAPH["dashboards.app"]
    assert {"lab.demo", "flows.environment"} <= GRAPH["lab.commands"]


def test_cycle_finder_finds_a_planted_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", PRODUCT)
def test_product_never_imports_sandbox_or_lab(package: str) -> None:
    offending = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if module.split(".")[0] == package
        for target in targets
        if target.split(".")[0] in LAB
    )
    assert offending == [], f"product modules importing the sandbox or lab: {offending}"


def test_product_modules_stay_readable() -> None:
    too_long = sorted(
        f"{name}: {len(path.read_text().splitlines())} lines"
        for name, path in _modules().items()
        if name.split(".")[0] in PRODUCT and len(path.read_text().splitlines()) > MAX_PRODUCT_MODULE_LINES
    )
    assert too_long == [], (
        f"product modules over {MAX_PRODUCT_MODULE_LINES} lines (split them along their seams): {too_long}"
    )


# What each product package may import besides itself: the README's "What is where" says so.
ALLOWED_LAYERS = {
    "common": set(),
    "connectors": {"common"},
    "warehouse": {"common", "connectors"},
    "dashboards": {"common"},
    "flows": {"common", "connectors", "warehouse", "dashboards"},
}


def _layer_breaches(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module.split(".")[0] in ALLOWED_LAYERS
        for target in targets
        if target.split(".")[0] in ALLOWED_LAYERS
        and target.split(".")[0] != module.split(".")[0]
        and target.split(".")[0] not in ALLOWED_LAYERS[module.split(".")[0]]
    )


def test_layers_import_one_way() -> None:
    breaches = _layer_breaches(GRAPH)
    assert breaches == [], f"imports against the layering the README describes: {breaches}"


def test_layer_check_finds_a_planted_breach() -> None:
    assert _layer_breaches({"warehouse.x": {"flows.y", "common.z"}, "flows.a": {"warehouse.x"}}) == [
        "warehouse.x -> flows.y"
    ]


README = ROOT / "README.md"
_PATH = re.compile(r"\b(?:common|connectors|warehouse|flows|dashboards)/[\w./]*")


def _readme_block(begin: str, end: str) -> str:
    text = README.read_text()
    assert begin in text and end in text, f"README has no {begin} ... {end} block"
    return text.split(begin, 1)[1].split(end, 1)[0]


def test_readme_pipeline_names_real_paths() -> None:
    # The diagram is the newcomer's map: a box naming a module that moved sends them nowhere.
    block = _readme_block("<!-- pipeline:begin -->", "<!-- pipeline:end -->")
    paths = sorted(set(_PATH.findall(block)))
    assert len(paths) >= 10, f"the pipeline diagram names too few paths to be the map: {paths}"
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert missing == [], f"README pipeline diagram names paths that do not exist: {missing}"


def test_readme_pipeline_runs_in_writer_order() -> None:
    block = _readme_block("<!-- pipeline:begin -->", "<!-- pipeline:end -->")
    stages = ["http", "GP Connect client", "landing", "load", "validate", "fold", "models", "publish",
              "dashboard figures", "pages"]
    starts = [line.split("  ")[0] for line in block.splitlines() if line[:1].isalpha()]
    assert [s for s in starts if s in stages] == stages, f"pipeline boxes out of order: {starts}"


def test_readme_what_is_where_names_real_files() -> None:
    section = README.read_text().split("## What is where", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)/` \| (.*) \|$", section, flags=re.MULTILINE)
    assert {folder for folder, _ in rows} >= {*PRODUCT, *LAB}, "a package has no row in What is where"
    missing = []
    for folder, text in rows:
        # A name may sit inside a sub-folder the row has just named (`release/`: ... `releasers.py`).
        within = {f"/{p.relative_to(ROOT / folder).as_posix()}/" for p in (ROOT / folder).rglob("*")}
        for name in re.findall(r"`([\w./]+(?:\.py|\.sql|/))`", text):
            tail = f"/{name.rstrip('/')}/"
            if not ((ROOT / name).exists() or any(w.endswith(tail) for w in within)):
                missing.append(f"{folder}/: {name}")
    assert missing == [], f"What is where names files that do not exist: {missing}"
    listed = {f"{folder}/{name}" for folder, text in rows
              for name in re.findall(r"`([\w./]+\.py)`", text)}
    unlisted = sorted(
        path.relative_to(ROOT).as_posix()
        for package in PRODUCT for path in (ROOT / package).glob("*.py")
        if path.name != "__init__.py" and path.relative_to(ROOT).as_posix() not in listed
    )
    assert unlisted == [], f"product modules What is where does not mention: {unlisted}"
