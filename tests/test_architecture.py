"""The house reads as the pipeline: the import graph of the tree, checked.

Every import counts, including those inside functions (they hide circles). Product packages
must not reach the sandbox or the lab, no module may import another that imports it back,
and no product module grows past the size a reader takes in at once.
"""

from __future__ import annotations

import ast
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
