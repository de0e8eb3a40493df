"""The layout of stream_app: no import cycles (TYPE_CHECKING and function-local imports count),
two engines that share the runtime and pipeline but never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "stream_app"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every stream_app module → the stream_app modules it imports, anywhere in the file."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    assert _cycles(_imports()) == []


def test_the_checker_sees_a_cycle_hidden_under_type_checking() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_two_ways_in_one_way_through() -> None:
    graph = _imports()
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
