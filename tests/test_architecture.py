"""The layering the architecture doc promises, checked on the source: one-way imports
(curation <- training <- evals <- studio), no import circles, and a front end that neither
runs SQL nor looks library functions up by name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = {"kernel": -1, "curation": 0, "training": 1, "evals": 2, "studio": 3}
# Circles that another change removes (the evals backends registry package); keep empty after it.
KNOWN_CIRCLES: set[frozenset[str]] = set()


def import_graph() -> dict[str, set[str]]:
    """module -> project modules it imports (at the top or inside functions)."""
    sources = {}
    for package in LAYERS:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            sources[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in sources.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps.add(node.module)
                deps.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = {d for d in deps if d in sources and d != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

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
            comp = set()
            while True:
                w = stack.pop()
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(frozenset(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_imports_go_one_way_and_make_no_circles():
    graph = import_graph()
    upward = [f"{m} -> {d}" for m, deps in graph.items() for d in deps
              if LAYERS[d.split(".")[0]] > LAYERS[m.split(".")[0]]]
    assert upward == []
    assert [sorted(c) for c in circles(graph) if c not in KNOWN_CIRCLES] == []


def test_the_checker_sees_a_circle():
    assert circles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [frozenset({"a", "b"})]


def code_lines(path: Path) -> list[tuple[int, str]]:
    """Lines of a file with comments removed (strings kept: SQL lives in strings)."""
    out = []
    for no, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        out.append((no, stripped))
    return out


def test_front_end_runs_no_sql_and_looks_nothing_up_by_name():
    sql = re.compile(r"SELECT|INSERT|UPDATE ")
    found = [f"{p.relative_to(REPO)}:{no}" for p in (REPO / "studio").rglob("*.py")
             for no, line in code_lines(p) if sql.search(line) or "importlib" in line]
    assert found == []
