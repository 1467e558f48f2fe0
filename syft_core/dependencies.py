"""Resolving what a job declares into its lock, at submission, with uv.

uv (the `uv` package ships its binary) resolves for the job image, not for this machine:
`--python-version 3.11 --python-platform x86_64-manylinux_2_36`, wheels only (`--no-build`), so
the owner's runner never builds a package (no package code runs at install time). Two passes:

1. `--format pylock.toml` (PEP 751) gives, for each package, the one wheel that fits the target:
   its file name, size and sha256;
2. the same requirements, constrained to exactly those versions, in requirements format gives
   uv's `# via` annotations (who pulled each package in).

An unresolvable list raises DependencyError with uv's own reason (a conflict, no such version or
package, no wheel) and a hint; the caller writes nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from syft_core.errors import JobError
from syft_core.jobs.lock import (
    REQUESTED,
    TARGET,
    TARGET_PLATFORM,
    TARGET_PYTHON,
    Pin,
    Requested,
    render_lock,
)

RESOLVE_TIMEOUT_SECONDS = 600
_INPUT_NAME = "requested.in"
_VIA_LINE = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s+#\s*via\s+(.*)")


class DependencyError(JobError):
    """The declared dependencies cannot be resolved into a lock; the message says why (uv's own
    words) and what to try."""


@dataclass(frozen=True)
class PackageIndex:
    """Where packages are resolved from: PyPI by default; `index_url` for a mirror, `find_links`
    for folders or pages of wheels, `no_index` to use only those."""

    index_url: str | None = None
    find_links: Sequence[str] = field(default_factory=tuple)
    no_index: bool = False

    def uv_args(self) -> list[str]:
        args: list[str] = []
        if self.index_url:
            args += ["--index-url", self.index_url]
        for link in self.find_links:
            args += ["--find-links", str(link)]
        if self.no_index:
            args.append("--no-index")
        return args


def uv_binary() -> str:
    """The uv executable shipped by the `uv` package (or on PATH)."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder) / "uv"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise DependencyError("uv is not installed: `pip install uv` (syft-runner depends on it)")


def resolve_lock(requested: Sequence[Requested], index: PackageIndex | None = None) -> str:
    """The lock text for `requested` (see syft_core.jobs.lock). DependencyError when uv cannot
    resolve it for the job image."""
    if not requested:
        raise DependencyError("no dependencies to resolve")
    index = index or PackageIndex()
    with tempfile.TemporaryDirectory(prefix="syft-lock-") as tmp:
        folder = Path(tmp)
        source = folder / _INPUT_NAME
        source.write_text("".join(f"{r.requirement}\n" for r in requested))
        wheels = _wheels(folder, source, index)
        constraints = folder / "constraints.txt"
        constraints.write_text("".join(f"{name}=={v}\n" for name, (v, _, _, _) in wheels.items()))
        via = _via(folder, source, constraints, index)
    pins = []
    for name, (version, digests, filename, size) in wheels.items():
        found_version, pulled_by = via.get(name, (version, ()))
        if found_version != version:
            raise DependencyError(
                f"uv resolved {name} to {version} and then to {found_version}; the package "
                "index changed during submission: submit again"
            )
        pins.append(Pin(name, version, tuple(sorted(digests)), pulled_by, filename, size))
    return render_lock(pins, TARGET)


def _compile_args(index: PackageIndex) -> list[str]:
    return [
        uv_binary(),
        "pip",
        "compile",
        "--quiet",
        "--no-config",
        "--no-header",
        "--no-build",
        "--python-version",
        TARGET_PYTHON,
        "--python-platform",
        TARGET_PLATFORM,
        *index.uv_args(),
    ]


def _run_uv(args: list[str], cwd: Path) -> None:
    try:
        result = subprocess.run(
            args,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=RESOLVE_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DependencyError(
            f"resolving the dependencies took longer than {RESOLVE_TIMEOUT_SECONDS} s; "
            "is the package index reachable?"
        ) from None
    if result.returncode != 0:
        raise DependencyError(_explain(result.stderr.strip() or result.stdout.strip()))


def _wheels(
    folder: Path, source: Path, index: PackageIndex
) -> dict[str, tuple[str, tuple[str, ...], str, int | None]]:
    """name → (version, sha256 of each wheel that fits the target, the wheel an installer picks
    (a platform wheel before a pure one), its size), from uv's PEP 751 output."""
    out = folder / "pylock.toml"
    _run_uv([*_compile_args(index), "--format", "pylock.toml", "-o", str(out), str(source)], folder)
    data = tomllib.loads(out.read_text())
    found: dict[str, tuple[str, tuple[str, ...], str, int | None]] = {}
    for package in data.get("packages", []):
        name = canonicalize_name(str(package["name"]))
        files: list[tuple[str, str, int | None]] = []
        for wheel in package.get("wheels") or []:
            digest = str(wheel.get("hashes", {}).get("sha256", ""))
            filename = str(wheel.get("name") or wheel.get("url") or wheel.get("path") or "")
            filename = filename.rsplit("/", 1)[-1].split("#", 1)[0]
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise DependencyError(f"{name}: the package index gave no sha256 for {filename}")
            size = wheel.get("size")  # absent for find-links folders
            files.append((digest, filename, int(size) if size is not None else None))
        if not files:
            raise DependencyError(f"{name} {package.get('version')}: no wheel for {TARGET}")
        files.sort(key=lambda f: f[1].endswith("-none-any.whl"))  # stable: platform wheels first
        _, chosen, size = files[0]
        found[name] = (str(package["version"]), tuple(f[0] for f in files), chosen, size)
    return found


def _via(
    folder: Path, source: Path, constraints: Path, index: PackageIndex
) -> dict[str, tuple[str, tuple[str, ...]]]:
    """name → (version, who pulled it in), from uv's requirements-format annotations."""
    out = folder / "via.txt"
    args = [*_compile_args(index), "--annotation-style", "line", "-c", str(constraints)]
    _run_uv([*args, "-o", str(out), str(source)], folder)
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in out.read_text().splitlines():
        match = _VIA_LINE.fullmatch(line.strip())
        if match is None:
            continue
        pulled_by = []
        for item in match.group(3).split(","):
            item = item.strip()
            if item.startswith(("-r ", "-c ")):
                if item.startswith("-r "):
                    pulled_by.append(REQUESTED)
                continue
            pulled_by.append(canonicalize_name(item))
        found[canonicalize_name(match.group(1))] = (match.group(2), tuple(dict.fromkeys(pulled_by)))
    return found


def _explain(message: str) -> str:
    """uv's reason, with a hint on what to change."""
    text = message.replace(f"-r {_INPUT_NAME}", "your dependencies")
    lower = " ".join(text.lower().split())  # uv wraps long lines
    if "no usable wheels" in lower or "building from source is disabled" in lower:
        hint = (
            f"jobs install wheels only (built for {TARGET}); pick a version of that package "
            "that publishes such a wheel, or ask the owner whether the runtime image has it"
        )
    elif "there is no version of" in lower:
        hint = "check the version against the package index, or loosen the pin"
    elif "not found in the package registry" in lower or "was not found in the provided" in lower:
        hint = "check the package's name (as published on the package index)"
    elif "unsatisfiable" in lower:
        hint = "these requirements conflict: loosen or drop one of the pins uv names"
    elif "requires-python" in lower or "python>=" in lower:
        hint = f"the job image runs Python {TARGET_PYTHON}: choose a version that supports it"
    else:
        hint = "is the package index reachable from this machine?"
    return f"cannot resolve the job's dependencies for {TARGET}:\n{text}\nhint: {hint}"
