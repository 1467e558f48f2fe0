"""A non-editable install works without the source tree: the wheel carries the seccomp profile and
the image definitions (syft_runner/_data/, see setup.py and syft_runner.shipped), the installed
`syft-runner doctor` finds both and runs its probe job under that profile, and the installed
`syft-runner run` runs a job.

The wheel is built from a copy of the project (no build/ left in the repository) without build
isolation (setuptools comes from the dev environment: no index needed) and installed with
--no-deps into a virtual environment cached under ~/.cache/syft-runner-tests/; the installed
package's dependencies come from this environment's site-packages through a .pth file, which
does not make the editable install visible there (only the installed copy is imported, as the
test checks).
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CACHE = Path.home() / ".cache" / "syft-runner-tests"
PROJECT_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
PROJECT_DIRS = ("syft_core", "syft_runner", "images", "seccomp")


def _build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "_data")
    for name in PROJECT_DIRS:
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q"]
    subprocess.run(
        [*build, "--no-build-isolation", "-w", str(wheels)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = wheels.glob("syft_runner-*.whl")
    return wheel


def _fresh_venv() -> Path:
    """A virtual environment for the installed package, cached between runs."""
    venv = CACHE / "packaging-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies: this environment's site-packages, appended to sys.path (a path in a .pth
    # file is added, but the .pth files inside it, such as the editable finder, are not run).
    deps = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    (Path(purelib) / "syft-runner-test-deps.pth").write_text("\n".join(dict.fromkeys(deps)))
    return venv


@pytest.mark.docker
def test_the_installed_wheel_finds_its_profile_and_images(
    tmp_path: Path, job_images: dict[str, str]
) -> None:
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in (
        "syft_runner/_data/seccomp/job.json",
        "syft_runner/_data/images/scientific/Dockerfile",
        "syft_runner/_data/images/minimal/Dockerfile",
        # The isolation probe's in-container program, read as text by diagnostics.probe.
        "syft_runner/diagnostics/probe_program.py",
    ):
        assert shipped in names

    venv = _fresh_venv()
    install = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps"]
    subprocess.run(
        [*install, "--force-reinstall", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    environment = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "COLUMNS": "300"}
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import syft_runner; print(syft_runner.__file__)"],
        cwd=tmp_path,  # not the repository: nothing to fall back to
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert where.startswith(str(venv)), where
    # The wheel declares the local runner syft_core's Client.run_local finds (an entry point).
    finds = "from syft_core.local_runner import find_local_runner as f; print(f().__module__)"
    runner = subprocess.run(
        [str(venv / "bin" / "python"), "-c", finds],
        cwd=tmp_path,
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert runner.strip() == "syft_runner.local_run", runner

    doctor = subprocess.run(
        [str(venv / "bin" / "syft-runner"), "doctor"],
        cwd=tmp_path,
        env={**environment, "HOME": os.environ.get("HOME", "/root")},
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = doctor.stdout
    packaged = f"{venv}/lib/python3.11/site-packages/syft_runner/_data"
    assert f"PASS image definitions: {packaged}/images: minimal, scientific" in out, out
    assert "PASS seccomp profile loads: " in out and f"({packaged}/seccomp/job.json)" in out
    assert "PASS image scientific" in out
    # The probe ran as a real job container under the packaged profile.
    assert "PASS run without a seccomp filter: blocked" in out, out

    # And an ordinary job runs with it: the scientist's local run, in the same sandbox.
    syftbox = tmp_path / "syftbox"
    (syftbox / "alice@example.com").mkdir(parents=True)
    (tmp_path / "hello.py").write_text("print('hello from the wheel')\n")
    ran = subprocess.run(
        [
            str(venv / "bin" / "syft-runner"),
            "run",
            str(tmp_path / "hello.py"),
            "--syftbox",
            str(syftbox),
            "--datasite",
            "alice@example.com",
            "--email",
            "bob@example.org",
        ],
        cwd=tmp_path,
        env={**environment, "HOME": os.environ.get("HOME", "/root")},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "hello from the wheel" in ran.stdout + ran.stderr
