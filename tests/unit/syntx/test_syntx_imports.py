"""The operator's tool stands on the shared library alone: no module of syntx/ imports from services/
(at any depth, lazily or not), and the modules of syntx/ import each other without a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

from shared.config import PROJECT_ROOT

SYNTX = PROJECT_ROOT / "syntx"


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}
    return modules


def _module(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def syntx_modules() -> dict[str, set[str]]:
    names = {_module(path): path for path in SYNTX.rglob("*.py")}
    return {name: {m for m in imported_modules(path) if m in names} for name, path in names.items()}


def test_no_module_of_syntx_imports_from_services() -> None:
    offenders = {
        _module(path): sorted(m for m in imported_modules(path) if m.split(".")[0] == "services")
        for path in SYNTX.rglob("*.py")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_modules_of_syntx_import_each_other_without_a_cycle() -> None:
    graph = syntx_modules()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        for needed in graph[module]:
            assert needed not in path, f"import cycle: {' -> '.join([*path, needed])}"
            if needed not in done:
                visit(needed, [*path, needed])
        done.add(module)

    for module in graph:
        visit(module, [module])
    assert "syntx.learningplot" in graph and "syntx.learningplot" in graph["syntx.learningview"]
