"""The layering the code promises, checked on every file's imports (module level and inside
functions, TYPE_CHECKING included):

* between packages: the shared library ``personas`` depends on no service, a service depends only
  on ``personas``, the operations package ``infra`` (stack, demo, soak) may drive services, and only
  the ``persona`` command (``persona_cli``) knows every package;
* inside every package: no module imports a module that imports it back;
* inside ``stream_app``: two engines (ways in) around one pipeline (way through) — the engines
  never import each other, the shared part imports no engine, only the composition root picks one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("producer", "stream_app", "monitor", "trainer", "serving")
PACKAGES = ("persona_cli", "personas", "infra", *SERVICES)

#: package -> the other project packages it may import.
ALLOWED: dict[str, set[str]] = {
    "personas": set(),
    **{service: {"personas"} for service in SERVICES},
    "infra": {"personas", *SERVICES},
    "persona_cli": {"personas"},  # services are loaded by name (importlib), one per command group
}


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: str, root: Path = REPO) -> dict[str, set[str]]:
    """Every module of ``package`` -> every project module or package it imports, anywhere in
    the file (``from a.b import c`` counts as ``a.b`` and ``a.b.c``)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((root / package).rglob("*.py")):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        graph[_module_name(path, root)] = {m for m in found if m.split(".")[0] in PACKAGES}
    return graph


def project_imports(package: str, root: Path = REPO) -> dict[str, set[str]]:
    """Each other project package ``package`` imports -> the modules that do."""
    found: dict[str, set[str]] = {}
    for module, imported in import_graph(package, root).items():
        for name in imported:
            top = name.split(".")[0]
            if top != package:
                found.setdefault(top, set()).add(module)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), edges to outside ignored."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v] & graph.keys()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_its_layer_allows(package: str) -> None:
    forbidden = {
        other: modules
        for other, modules in project_imports(package).items()
        if other not in ALLOWED[package]
    }
    assert not forbidden, f"{package} imports {forbidden}"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_imports_a_module_that_imports_it_back(package: str) -> None:
    assert cycles(import_graph(package)) == []


def test_stream_app_has_two_ways_in_and_one_way_through() -> None:
    graph = import_graph("stream_app")
    batch, agent = "stream_app.engines.batch", "stream_app.engines.agent"
    assert agent not in graph[batch] and batch not in graph[agent]
    for engine in (batch, agent):
        assert "stream_app.runtime" in graph[engine]
    # The shared part knows no engine and no host; only the composition root picks one.
    shared = ("stream_app.runtime", "stream_app.pipeline", "stream_app.web", "stream_app.app")
    for name in shared:
        assert not {m for m in graph[name] if m.startswith("stream_app.engines")}, name
    importers = {m for m, deps in graph.items() if batch in deps or agent in deps}
    assert importers <= {"stream_app.worker", "stream_app.engines"}


def test_the_scan_sees_nested_and_type_checking_imports_and_cycles(tmp_path: Path) -> None:
    """Guard against checks that cannot fail."""
    (tmp_path / "personas").mkdir()
    (tmp_path / "personas" / "x.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "def f():\n    from monitor.store import claim\n"
        "if TYPE_CHECKING:\n    import trainer.ledger\n"
        "from . import y\nfrom personas import z\n"
    )
    (tmp_path / "personas" / "z.py").write_text("def g():\n    from personas.x import f\n")
    assert project_imports("personas", tmp_path) == {
        "monitor": {"personas.x"},
        "trainer": {"personas.x"},
    }
    assert cycles(import_graph("personas", tmp_path)) == [["personas.x", "personas.z"]]
