"""A job's environment lock, `code/requirements.lock`, and the requirements it was resolved from.

A job declares what it needs (`dependencies` in its config.yaml, `code/requirements.txt`, or the
`[project] dependencies` of `code/pyproject.toml`); at submission the client resolves that with uv
for the job image's Python and platform (`syft_core.dependencies`) and writes this lock into the
job's code, so the content hash the owner approves covers every package file that will be
installed. The runner builds an environment from the lock and from nothing else.

The lock is a pip/uv requirements file that pins each package to an exact version and to the
wheel file(s) built for the target, by sha256 (usually one; a few packages publish a platform
wheel and a pure one, and both are listed):

    # syft-runner lock 1: every package pinned to its wheel files by sha256 (wheels only)
    # target: cp311 x86_64-manylinux_2_36
    numpy==2.4.6 \\
        --hash=sha256:89cd…
        # via contourpy, matplotlib
        # wheel numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl (16918164 bytes)

`# via` names the packages that pulled a package in (`requested` for one the job asked for) and
`# wheel` the file an installer picks and its size, both as uv reported them at submission: they
are for the reviewer and never used to install. Parsing is strict: nothing but pins, hashes and
comments is accepted (no `--index-url`, `-e`, URLs or paths), so a lock cannot point the runner's
build anywhere.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from syft_core.errors import JobError

LOCK_NAME = "requirements.lock"  # under code/
LOCK_RELPATH = f"code/{LOCK_NAME}"
REQUIREMENTS_TXT = "requirements.txt"  # under code/, read at submission
PYPROJECT_TOML = "pyproject.toml"  # under code/: its [project] dependencies
LOCK_FORMAT = "1"
# The job images' interpreter and platform: Debian 12 (glibc 2.36), CPython 3.11, x86_64.
TARGET_PYTHON = "3.11"
TARGET_PLATFORM = "x86_64-manylinux_2_36"
TARGET = f"cp{TARGET_PYTHON.replace('.', '')} {TARGET_PLATFORM}"
REQUESTED = "requested"  # the `via` of a package the job asked for itself
MAX_LOCK_BYTES = 1024 * 1024
MAX_REQUIREMENTS = 500

_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)(\s+\\)?")
_HASH = re.compile(r"\s+--hash=sha256:([0-9a-f]{64})(\s+\\)?")
_VIA = re.compile(r"\s+#\s*via\s+(.*)")
_WHEEL = re.compile(r"\s+#\s*wheel\s+(\S+\.whl)(?:\s+\((\d+) bytes\))?")
_TARGET = re.compile(r"#\s*target:\s*(.+)")


class LockError(JobError):
    """A lock or a list of requirements that cannot be used; the message names the line."""


@dataclass(frozen=True)
class Pin:
    """One locked package: its exact version and the sha256 of the wheel(s) allowed for it."""

    name: str  # canonical (PEP 503): lower case, runs of -_. as one -
    version: str
    hashes: tuple[str, ...]  # hex sha256, sorted
    via: tuple[str, ...] = ()  # what pulled it in; REQUESTED for a direct requirement
    wheel: str | None = None  # the wheel's file name, as resolved
    size: int | None = None  # the wheel's size in bytes, as resolved

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def requested(self) -> bool:
        return REQUESTED in self.via


@dataclass(frozen=True)
class EnvLock:
    pins: tuple[Pin, ...]  # sorted by name
    target: str = TARGET
    text: str = field(default="", compare=False)

    @property
    def digest(self) -> str:
        """What the lock means, as a hash: every name, version and wheel hash, and the target.
        Comments (via, sizes) are not part of it: two locks with the same digest install the
        same files."""
        return _digest(self.target, self.pins)

    @property
    def download_bytes(self) -> int | None:
        sizes = [p.size for p in self.pins]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)

    def requirements_txt(self) -> str:
        """The lock as plain pins and hashes, with no comment: what the runner installs from."""
        lines = []
        for pin in self.pins:
            hashes = " ".join(f"--hash=sha256:{h}" for h in pin.hashes)
            lines.append(f"{pin.spec} {hashes}")
        return "\n".join(lines) + "\n"


def _digest(target: str, pins: Iterable[Pin]) -> str:
    digest = hashlib.sha256(f"syft-lock {LOCK_FORMAT}\0{target}\n".encode())
    for pin in sorted(pins, key=lambda p: p.name):
        digest.update(f"{pin.name}\0{pin.version}\0{','.join(pin.hashes)}\n".encode())
    return "sha256:" + digest.hexdigest()


def render_lock(pins: Sequence[Pin], target: str = TARGET) -> str:
    """The lock file's text (see the module doc)."""
    lines = [
        f"# syft-runner lock {LOCK_FORMAT}: every package pinned to its wheel files by sha256 "
        "(wheels only)",
        f"# target: {target}",
        "# generated at submission by `uv pip compile`; any change sends the job back to review",
    ]
    for pin in sorted(pins, key=lambda p: p.name):
        lines.append(f"{pin.spec} \\")
        for i, digest in enumerate(pin.hashes):
            tail = " \\" if i < len(pin.hashes) - 1 else ""
            lines.append(f"    --hash=sha256:{digest}{tail}")
        if pin.via:
            lines.append(f"    # via {', '.join(pin.via)}")
        if pin.wheel is not None:
            size = f" ({pin.size} bytes)" if pin.size is not None else ""
            lines.append(f"    # wheel {pin.wheel}{size}")
    return "\n".join(lines) + "\n"


def parse_lock(text: str, where: str = LOCK_RELPATH) -> EnvLock:
    """Parse a lock strictly; LockError naming the line for anything else than the format."""
    if len(text.encode("utf-8", errors="replace")) > MAX_LOCK_BYTES:
        raise LockError(f"{where}: larger than {MAX_LOCK_BYTES} bytes")
    target: str | None = None
    pins: list[dict[str, object]] = []
    continued = False  # the previous line ended with a backslash
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            if continued:
                raise LockError(f"{where}:{number}: a line continued with \\ is followed by none")
            continue
        hash_match = _HASH.fullmatch(line)
        if continued or hash_match:
            if not (continued and hash_match and pins):
                raise LockError(f"{where}:{number}: expected `    --hash=sha256:<64 hex digits>`")
            hashes = pins[-1]["hashes"]
            assert isinstance(hashes, list)
            hashes.append(hash_match.group(1))
            continued = hash_match.group(2) is not None
            continue
        if line.lstrip().startswith("#"):
            _comment(line, pins, where, number)
            if not pins and (found := _TARGET.fullmatch(line.strip())):
                target = found.group(1).strip()
            continue
        pin = _PIN.fullmatch(line)
        if pin is None:
            raise LockError(
                f"{where}:{number}: not a pinned package (`name==version \\` followed by its "
                f"hashes): {line.strip()[:80]!r}; a lock holds pins and hashes only"
            )
        pins.append({"name": pin.group(1), "version": pin.group(2), "hashes": [], "via": ()})
        continued = pin.group(3) is not None
    if continued:
        raise LockError(f"{where}: ends with a line continued by \\")
    return EnvLock(_pins(pins, where), target or "", text)


def _comment(line: str, pins: list[dict[str, object]], where: str, number: int) -> None:
    if not pins:
        return
    if via := _VIA.fullmatch(line):
        pins[-1]["via"] = tuple(v.strip() for v in via.group(1).split(",") if v.strip())
    elif wheel := _WHEEL.fullmatch(line):
        pins[-1]["wheel"] = wheel.group(1)
        if wheel.group(2) is not None:
            pins[-1]["size"] = int(wheel.group(2))


def _pins(found: list[dict[str, object]], where: str) -> tuple[Pin, ...]:
    pins: dict[str, Pin] = {}
    for item in found:
        name = canonicalize_name(str(item["name"]))
        hashes = item["hashes"]
        assert isinstance(hashes, list)
        if not hashes:
            raise LockError(f"{where}: {name} has no --hash: every package must be pinned by hash")
        if name in pins:
            raise LockError(f"{where}: {name} is pinned twice")
        via = item["via"]
        size = item.get("size")
        wheel = item.get("wheel")
        pins[name] = Pin(
            name=name,
            version=str(item["version"]),
            hashes=tuple(sorted(set(hashes))),
            via=tuple(str(v) for v in via) if isinstance(via, tuple) else (),
            wheel=str(wheel) if wheel is not None else None,
            size=int(size) if isinstance(size, int) else None,
        )
    if not pins:
        raise LockError(f"{where}: pins no package")
    return tuple(sorted(pins.values(), key=lambda p: p.name))


# -- what a job asks for --------------------------------------------------------------------------
@dataclass(frozen=True)
class Requested:
    """One requirement a job declared, and where: `config.yaml`, `code/requirements.txt`, ..."""

    requirement: str
    source: str

    @property
    def name(self) -> str:
        return canonicalize_name(Requirement(self.requirement).name)


def check_requirement(text: str, where: str) -> str:
    """`text` as one index requirement (`name[extras] <specifiers> ; markers`): LockError for
    anything that is not one (options, URLs, paths, editable installs)."""
    line = text.strip()
    if line.startswith("-"):
        raise LockError(
            f"{where}: {line[:80]!r}: options are not accepted (the owner's runner chooses the "
            "package index); list package requirements only, e.g. `tabulate>=0.9`"
        )
    try:
        req = Requirement(line)
    except InvalidRequirement as exc:
        raise LockError(f"{where}: {line[:80]!r} is not a requirement: {exc}") from None
    if req.url:
        raise LockError(
            f"{where}: {line[:80]!r} names a URL or a path; only packages from the package "
            "index can be installed (as wheels)"
        )
    return line


def requirements_txt_lines(text: str, where: str) -> list[str]:
    """The requirements of a requirements.txt: one per line, `#` comments, no options."""
    found: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line:
            found.append(check_requirement(line, f"{where}:{number}"))
    return found


def pyproject_dependencies(text: str, where: str) -> list[str]:
    """`[project] dependencies` of a pyproject.toml (none when it has no such table)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockError(f"{where}: not valid TOML: {exc}") from None
    project = data.get("project")
    if not isinstance(project, dict):
        return []
    deps = project.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise LockError(f"{where}: [project] dependencies must be a list of strings")
    return [check_requirement(d, f"{where} [project] dependencies") for d in deps]


def declared_requirements(
    dependencies: Sequence[str],
    requirements_txt: str | None = None,
    pyproject_toml: str | None = None,
) -> list[Requested]:
    """Everything a job asks for, in order, each with its source. LockError for an unusable
    line (naming the file and line) or more than MAX_REQUIREMENTS requirements."""
    found = [
        Requested(check_requirement(d, "config.yaml dependencies"), "config.yaml")
        for d in dependencies
    ]
    if requirements_txt is not None:
        where = f"code/{REQUIREMENTS_TXT}"
        found += [Requested(r, where) for r in requirements_txt_lines(requirements_txt, where)]
    if pyproject_toml is not None:
        where = f"code/{PYPROJECT_TOML}"
        found += [Requested(r, where) for r in pyproject_dependencies(pyproject_toml, where)]
    if len(found) > MAX_REQUIREMENTS:
        raise LockError(f"more than {MAX_REQUIREMENTS} requirements declared")
    return found


def job_lock(dependencies: Sequence[str], read: Callable[[str], str | None]) -> EnvLock | None:
    """The lock a job runs with: `code/requirements.lock`, parsed; None when the job declares
    nothing. `read(relpath)` gives a submitted file's text (None when absent). LockError for an
    invalid lock, or for dependencies declared without one (a job folder not written by the
    client): it would run without what it asked for."""
    text = read(LOCK_RELPATH)
    if text is not None:
        return parse_lock(text)
    requested = declared_requirements(
        dependencies, read(f"code/{REQUIREMENTS_TXT}"), read(f"code/{PYPROJECT_TOML}")
    )
    if requested:
        sources = ", ".join(dict.fromkeys(r.source for r in requested))
        raise LockError(
            f"the job declares dependencies ({sources}) but has no {LOCK_RELPATH}; submit it "
            "with the syft client, which resolves them into that lock"
        )
    return None
