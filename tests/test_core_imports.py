"""syft_core's import structure, read from the source (AST), not from what happens to be imported:
every import counts, at module level, inside `if TYPE_CHECKING:` and inside functions (an import
moved into a function to dodge a cycle is still the cycle).

- syft_core never imports syft_runner: the runner builds on the core, never the reverse (a local
  run reaches the runner through syft_core.local_runner's entry point).
- syft_core's modules import each other without a cycle, so the layers read one way.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import syft_core

CORE = Path(syft_core.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(CORE.rglob("*.py"))}


def _imported_names(module: str, path: Path) -> Iterator[str]:
    """Every dotted name an import statement in `path` names, relative imports resolved; for
    `from package import name`, `package.name` (a submodule, or an attribute of the package)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _core_module(name: str) -> str | None:
    """The syft_core module `name` is (a submodule) or lives in (an attribute); None outside."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _import_graph() -> dict[str, set[str]]:
    # Only the imports written down: importing `a.b` also runs `a/__init__.py`, but that implicit
    # edge exists for every package that re-exports its submodules and is no design choice.
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets = {_core_module(name) for name in _imported_names(module, path)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as the list of modules along it (first == last), or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(graph[module]):
            if (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        if (cycle := visit(module)) is not None:
            return cycle
    return None


def test_syft_core_never_imports_syft_runner() -> None:
    upward = [
        f"{module}: {name}"
        for module, path in MODULES.items()
        for name in _imported_names(module, path)
        if name == "syft_runner" or name.startswith("syft_runner.")
    ]
    assert upward == [], "syft_core imports syft_runner:\n" + "\n".join(upward)


def test_syft_core_has_no_import_cycle() -> None:
    cycle = _find_cycle(_import_graph())
    assert cycle is None, "import cycle in syft_core: " + " -> ".join(cycle or [])


def test_the_checks_see_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    # The checks are only as good as the graph: a cycle dodged with a function-level import or
    # an `if TYPE_CHECKING:` block is found, and so is an upward import written that way.
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from syft_core.client import Client\n"
        "def f() -> None:\n    from syft_runner.local_run import run_local\n"
        "    from . import datasets\n"
    )
    names = set(_imported_names("syft_core.mod", source))
    assert {"syft_core.client.Client", "syft_runner.local_run.run_local"} <= names
    assert "syft_core.datasets" in names
    assert _core_module("syft_core.client.Client") == "syft_core.client"
    cyclic = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _find_cycle(cyclic) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
