"""The import graph of the production packages, read from the source: who may import whom.

- nats-py is imported only inside :mod:`shared.messaging` (the bus hands out no raw client), anywhere in a
  module, lazily or not;
- the layers point one way: ``shared`` imports nothing from ``services`` or ``syntx``, ``services`` nothing
  from ``syntx`` (anywhere in a module);
- :mod:`shared.queue` imports nothing from :mod:`shared.messaging` (it reports with its own records);
- no import cycle among the modules of ``shared``, ``services`` and ``syntx`` at load time (an import
  inside a function runs when it is called, after every module has loaded, and is not counted).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from shared.config import PROJECT_ROOT

ROOT = PROJECT_ROOT
PACKAGES = ("shared", "services", "syntx")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
    }


def imported(path: Path, *, lazily: bool = False) -> Iterator[str]:
    """Every module ``path`` imports when it loads (with ``lazily``, in its functions too): ``from a import
    b`` imports ``a.b`` when that is a module of ours (a submodule, not the package's face), else ``a``."""
    known = set(modules())
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree) if lazily else loaded(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in known else node.module


def loaded(tree: ast.AST) -> Iterator[ast.AST]:
    """The nodes of ``tree`` that run when the module loads: everything outside function bodies."""
    for node in ast.iter_child_nodes(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield node
            yield from loaded(node)


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_no_module_outside_messaging_imports_nats() -> None:
    found = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if not within(name, "shared.messaging")
        for target in imported(path, lazily=True)
        if within(target, "nats")
    ]
    assert found == []


HIGHER = {"shared": ("services", "syntx"), "services": ("syntx",), "syntx": ()}  # what a layer may not import


def test_no_layer_imports_one_above_it() -> None:
    found = [
        f"{name} imports {target}"
        for name, path in modules().items()
        for target in imported(path, lazily=True)
        if any(within(target, higher) for higher in HIGHER[name.split(".")[0]])
    ]
    assert found == []


def test_the_queue_imports_nothing_from_messaging() -> None:
    found = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if within(name, "shared.queue")
        for target in imported(path)
        if within(target, "shared.messaging")
    ]
    assert found == []


def graph() -> dict[str, set[str]]:
    """Module -> the production modules it imports (a package's face counts as the package)."""
    known = modules()
    return {
        name: {target for target in imported(path) if target in known} - {name}
        for name, path in known.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            component.append(node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_production_modules_import_each_other_without_a_cycle() -> None:
    assert cycles(graph()) == []
