"""A local wheelhouse built in the test session from tiny packages (hermetic: no package index).

`syfttinypkg 1.0` depends on `syfttinydep>=1.0`; both are pure-python wheels built with setuptools
(`pip wheel --no-build-isolation --no-index`) from source trees written here. The built wheels are
cached outside the repository (~/.cache/syft-runner-tests, keyed by the sources), so a second
session does not build them again; every test gets its own copy of the wheelhouse (it may
tamper with it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from syft_core.dependencies import PackageIndex
from syft_runner.config import RunnerConfig
from tests.fixtures_runner import runner_config

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "syft-runner-tests"
GREETING = "hello from the wheelhouse"


def _package(name: str, version: str, body: str, dependencies: list[str]) -> dict[str, str]:
    pyproject = textwrap.dedent(
        f"""\
        [build-system]
        requires = ["setuptools>=70.1"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "{version}"
        dependencies = {json.dumps(dependencies)}

        [tool.setuptools]
        packages = ["{name}"]
        """
    )
    return {"pyproject.toml": pyproject, f"{name}/__init__.py": body}


PACKAGES = {
    "syfttinydep": _package("syfttinydep", "1.0", 'WORD = "wheelhouse"\n', []),
    "syfttinypkg": _package(
        "syfttinypkg",
        "1.0",
        "from syfttinydep import WORD\n\nGREETING = f'hello from the {WORD}'\n",
        ["syfttinydep>=1.0"],
    ),
}
# The same name and version with other content: what a tampering mirror would serve.
TAMPERED = _package(
    "syfttinypkg",
    "1.0",
    "import os\nGREETING = 'tampered'\nos.system('echo pwned')\n",
    ["syfttinydep>=1.0"],
)


def build_wheel(files: dict[str, str], out: Path) -> Path:
    """A wheel of the source tree `files` (path → text), cached by its content."""
    key = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    cached = CACHE / "wheels" / key
    found = sorted(cached.glob("*.whl")) if cached.is_dir() else []
    if not found:
        source = CACHE / "src" / key
        shutil.rmtree(source, ignore_errors=True)
        for rel, text in files.items():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            (source / rel).write_text(text)
        partial = CACHE / "wheels" / f".{key}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"),
                *("--no-build-isolation", "--no-index", "-w", str(partial), str(source)),
            ],
            check=True,
        )
        shutil.rmtree(cached, ignore_errors=True)
        partial.rename(cached)
        shutil.rmtree(source, ignore_errors=True)
        found = sorted(cached.glob("*.whl"))
    [wheel] = found
    out.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(wheel, out / wheel.name))


@dataclass(frozen=True)
class Wheelhouse:
    path: Path

    @property
    def index(self) -> PackageIndex:
        """Only this folder: no package index at all."""
        return PackageIndex(find_links=(str(self.path),), no_index=True)

    def runner_config(self, env_cache: Path, **overrides: object) -> RunnerConfig:
        """Test runner settings that build environments from this wheelhouse only (so the build
        container gets no network), cached in `env_cache`."""
        return runner_config(
            find_links=[str(self.path)], no_index=True, env_cache_dir=env_cache, **overrides
        )

    def tamper(self) -> None:
        """Replace syfttinypkg's wheel by another of the same name and version."""
        [original] = self.path.glob("syfttinypkg-*.whl")
        tampered = build_wheel(TAMPERED, self.path / ".tampered")
        assert tampered.name == original.name
        tampered.replace(original)
        shutil.rmtree(self.path / ".tampered")

    def remove(self, name: str) -> None:
        for wheel in self.path.glob(f"{name}-*.whl"):
            wheel.unlink()


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Wheelhouse:
    folder = tmp_path / "wheelhouse"
    for files in PACKAGES.values():
        build_wheel(files, folder)
    return Wheelhouse(folder)


@pytest.fixture
def env_cache(tmp_path: Path) -> Path:
    return tmp_path / "env-cache"
