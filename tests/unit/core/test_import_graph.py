"""Arrows point down: the package's import graph has no cycles, and only ``__main__`` imports the CLI.

The graph is read from the source with ``ast`` (nothing is imported). Its nodes are the modules under
``platform/laborlm``; an edge ``a -> b`` means module ``a`` imports ``laborlm`` module ``b``.

Which imports count, and why:

- Every ``import laborlm...`` / ``from laborlm... import`` (and relative import) counts wherever it is written:
  at module level, inside a function or method, in a ``try`` block. A function-level import is how a cycle
  hides (it works until someone moves it to the top of the file), so it is a dependency like any other.
- Imports under ``if TYPE_CHECKING:`` do not count: they never run, and annotations naming a type from a
  module that imports this one are not a dependency of the running code.
- ``from laborlm.pkg import name`` is an edge to ``laborlm.pkg.name`` when that is a module, else to
  ``laborlm.pkg`` (its ``__init__``). The implicit import of a parent package (``laborlm.pkg`` for
  ``laborlm.pkg.mod``) is not an edge: a package ``__init__`` that re-exports its submodules would otherwise
  form a cycle with each of them, although Python runs that order without trouble.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[3] / "platform" / "laborlm"
CLI = "laborlm.cli"
MAY_IMPORT_CLI = {"laborlm.__main__"}  # `python -m laborlm` is the console command


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of a module, except those in the body of ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:  # the else branch runs
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _targets(
    module: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]
) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    if node.level:  # relative: resolve against this module's package
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        base = ".".join(base_parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if base != "laborlm" and not base.startswith("laborlm."):
        return set()
    out = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        out.add(sub if sub in modules else base)
    return {t for t in out if t in modules}


def import_graph() -> dict[str, set[str]]:
    """``module -> the laborlm modules it imports`` (self-imports dropped)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for node in _imports(tree):
            edges |= _targets(name, path, node, modules)
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(found, key=lambda c: (-len(c), c))


def _a_cycle(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete import loop inside a component, for the failure message (a -> b -> ... -> a)."""
    members, start = set(component), component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    return component


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert len(graph) > 50 and CLI in graph
    assert "laborlm.config" in graph["laborlm.training.config"]  # a module-level import
    assert "laborlm.cli" in graph["laborlm.__main__"]


def test_the_graph_counts_function_level_imports_and_skips_type_checking(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from laborlm.errors import ConfigError\n"
        "def f():\n    from laborlm.config import build\n    from . import paths\n"
    )
    tree = ast.parse(source)
    modules = _modules()
    targets = set().union(
        *(_targets("laborlm.jobs", PACKAGE_ROOT / "jobs.py", n, modules) for n in _imports(tree))
    )
    assert targets == {"laborlm.config", "laborlm.paths"}


def test_cycles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert _a_cycle(["a", "b", "c"], graph) == ["a", "b", "c", "a"]


def test_no_library_module_imports_the_cli() -> None:
    importers = sorted(m for m, edges in import_graph().items() if CLI in edges and m not in MAY_IMPORT_CLI)
    assert not importers, (
        f"library modules import {CLI} (arrows point down; move the code they need): {importers}"
    )


def test_the_import_graph_is_acyclic() -> None:
    graph = import_graph()
    found = cycles(graph)
    loops = "\n".join(f"  {' -> '.join(_a_cycle(c, graph))}   (component: {', '.join(c)})" for c in found)
    assert not found, f"{len(found)} import cycles:\n{loops}"
