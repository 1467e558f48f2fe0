"""syft_runner's layers, read from the source (AST): the job state machine, the serve loop, the
scheduler and the job's workspace talk to an engine only through the executor contract, so none
of them imports docker-py at run time (a type-only import under `if TYPE_CHECKING:` is allowed:
it names the local engine's client in a signature, nothing more). The engine layer is
`sandbox/` (container spec, images, environments), `executor/backends/` and the probe."""

from __future__ import annotations

import ast
from pathlib import Path

import syft_runner

RUNNER = Path(syft_runner.__file__).parent
ENGINE_FREE = [
    "executor/contract.py",
    "executor/job.py",
    "executor/labels.py",
    "executor/outcome.py",
    "executor/backends/fake.py",
    "service.py",
    "scheduler.py",
    "watcher.py",
    *(str(p.relative_to(RUNNER)) for p in sorted((RUNNER / "workspace").glob("*.py"))),
]


def _runtime_imports(path: Path) -> set[str]:
    """Top-level names of every import that runs (those under `if TYPE_CHECKING:` do not)."""
    tree = ast.parse(path.read_text(), str(path))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            type_only.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_only_the_engine_layer_imports_docker_py() -> None:
    offenders = [rel for rel in ENGINE_FREE if "docker" in _runtime_imports(RUNNER / rel)]
    assert offenders == []


def test_the_local_backend_is_made_lazily_by_the_state_machine() -> None:
    """The one place executor/job.py reaches a backend module is the default's factory."""
    source = (RUNNER / "executor" / "job.py").read_text()
    assert source.count("syft_runner.executor.backends.docker") == 1


def test_the_checker_sees_a_runtime_import_and_ignores_a_type_only_one(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import docker\n"
        "def f() -> None:\n    from requests import get\n"
    )
    assert _runtime_imports(sample) == {"typing", "requests"}
