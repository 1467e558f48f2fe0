"""Only what pyproject.toml cannot say: the wheel carries the top-level `images/` and `seccomp/`
folders inside the package, as `syft_runner/_data/images/` and `syft_runner/_data/seccomp/`
(syft_runner.shipped finds them there; in the repository they stay at the top level)."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = ("images", "seccomp")  # syft_runner.shipped.SHIPPED


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        for name in SHIPPED:
            target = Path(self.build_lib) / "syft_runner" / "_data" / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(
                HERE / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )


setup(cmdclass={"build_py": BuildWithData})
