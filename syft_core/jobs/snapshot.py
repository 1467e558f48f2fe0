"""One read of a submission: its content hash, its config and what a reviewer must be warned of.

Deciding on a job and binding the decision must look at the same bytes, or a submitter who swaps a
file between the two reads gets approved what nobody looked at. A `Snapshot` reads every submitted
file once (reached from the job folder without following links, syft_core.jobs.submission), keeps
the small ones, and everything derived from it (the hash an approval binds to, the parsed config,
the hash policies compare, the text `show` prints, the warnings) comes from those bytes only.

Warnings are what makes a submission run other than it reads: Python bytecode and native code
(they run instead of, or without, any source), startup hooks (`sitecustomize.py`, `*.pth`), files
that shadow a well-known module (`code/pandas.py` is imported instead of pandas), hidden or
control characters in text, words or file names that mix scripts (look-alike letters), and an
environment that is not what the job asks for (an invalid `code/requirements.lock`, dependencies
declared without one, a requested package the lock does not pin). A
warning does not stop a manual approval (the owner reads it in `show`) but it stops every policy.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath

from syft_core.errors import JobError
from syft_core.jobs.config import JobConfig, parse_config
from syft_core.jobs.lock import (
    LOCK_RELPATH,
    PYPROJECT_TOML,
    REQUIREMENTS_TXT,
    LockError,
    declared_requirements,
    job_lock,
)
from syft_core.jobs.submission import (
    MAX_SUBMISSION_BYTES,
    UnsafeSubmissionError,
    open_submitted,
    walk_submission,
)
from syft_core.names import describe_char, hidden_chars, mixed_script_words, visible

KEEP_BYTES = 1024 * 1024  # files up to this size are kept in memory: shown, checked, parsed
_CHUNK = 1024 * 1024
_HEAD_BYTES = 4
_ELF_MAGIC = b"\x7fELF"
_BYTECODE_SUFFIXES = (".pyc", ".pyo")
_NATIVE_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
_STARTUP_HOOKS = ("sitecustomize.py", "usercustomize.py")
# Importable names a job's own file must not take: the standard library's, and the packages of
# the runtime images or that scientists commonly import.
WELL_KNOWN_MODULES = frozenset(sys.stdlib_module_names) | {
    "numpy",
    "pandas",
    "scipy",
    "sklearn",
    "matplotlib",
    "statsmodels",
    "seaborn",
    "pyarrow",
    "openpyxl",
    "dateutil",
    "pytz",
    "six",
    "yaml",
    "requests",
    "IPython",
    "ipykernel",
    "nbclient",
    "nbformat",
    "syft_core",
    "syft_runner",
}
RUN_FIELDS_ENTRY = "config.yaml#run"  # how the config's run fields enter the run hash


@dataclass(frozen=True)
class SnapshotFile:
    relpath: str
    size: int
    sha256: str  # hex digest of exactly the bytes read
    data: bytes | None  # the content, when at most KEEP_BYTES
    head: bytes  # the first bytes (magic numbers)

    def text(self) -> str | None:
        """The content as UTF-8 text; None when too big to keep or not UTF-8."""
        if self.data is None:
            return None
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            return None


def digest_entries(entries: Iterable[tuple[str, int, str]]) -> str:
    """The content hash over (relpath, size, sha256 hex) entries: what approval binds to."""
    digest = hashlib.sha256()
    for relpath, size, sha in entries:
        digest.update(f"{relpath}\0{size}\0{sha}\n".encode())
    return "sha256:" + digest.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    job_dir: Path
    files: tuple[SnapshotFile, ...]

    @classmethod
    def take(
        cls, job_dir: Path, *, config_path: Path | None = None, keep_bytes: int = KEEP_BYTES
    ) -> Snapshot:
        """Read the submission in `job_dir` once. UnsafeSubmissionError (a JobError) for links,
        special files, unusable names or a submission over the limits; JobError when run.sh or
        config.yaml is missing. `config_path`: see walk_submission. Files up to `keep_bytes`
        are kept (0: only hashed)."""
        listed = walk_submission(job_dir, config_path=config_path)
        files: list[SnapshotFile] = []
        budget = MAX_SUBMISSION_BYTES
        root_fd = os.open(job_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            for entry in listed:
                if config_path is not None and entry.relpath == "config.yaml":
                    fd = _open_beside(config_path)
                else:
                    fd = open_submitted(root_fd, entry.relpath)
                try:
                    files.append(_read(fd, entry.relpath, budget, keep_bytes))
                finally:
                    os.close(fd)
                budget -= files[-1].size
        finally:
            os.close(root_fd)
        return cls(job_dir, tuple(files))

    # -- identity -------------------------------------------------------------------------------
    @cached_property
    def content_hash(self) -> str:
        return digest_entries((f.relpath, f.size, f.sha256) for f in self.files)

    def file(self, relpath: str) -> SnapshotFile | None:
        return next((f for f in self.files if f.relpath == relpath), None)

    def config(self) -> JobConfig:
        """The config parsed from the bytes read (JobError naming the file when invalid)."""
        found = self.file("config.yaml")
        path = self.job_dir / "config.yaml"
        if found is None or found.data is None:
            raise JobError(f"{path}: missing or too large config.yaml")
        return parse_config(found.data, path)

    @cached_property
    def run_hash(self) -> str:
        """The hash policies compare: run.sh, code/** and the config's run fields (all of the
        config but its metadata, which the job cannot see). JobError when the config is invalid.
        """
        fields = json.dumps(self.config().run_fields(), sort_keys=True).encode()
        entries = [(f.relpath, f.size, f.sha256) for f in self.files if f.relpath != "config.yaml"]
        entries.append((RUN_FIELDS_ENTRY, len(fields), hashlib.sha256(fields).hexdigest()))
        return digest_entries(sorted(entries))

    # -- review ---------------------------------------------------------------------------------
    @cached_property
    def warnings(self) -> list[str]:
        """What makes this submission run other than it reads; see the module doc."""
        found: list[str] = []
        for f in self.files:
            found.extend(f"{visible(f.relpath)}: {w}" for w in _file_warnings(f))
        found.extend(self._environment_warnings())
        return found

    def _environment_warnings(self) -> list[str]:
        """An environment that will not be what was asked for: an unusable lock, dependencies
        declared without one, or a requested package the lock does not pin."""
        try:
            dependencies = self.config().dependencies
        except JobError:
            return []  # an invalid config is reported (and refused) on its own

        def read(relpath: str) -> str | None:
            found = self.file(relpath)
            return None if found is None else found.text() or ""

        try:
            lock = job_lock(dependencies, read)
            requested = declared_requirements(
                dependencies, read(f"code/{REQUIREMENTS_TXT}"), read(f"code/{PYPROJECT_TOML}")
            )
        except LockError as exc:
            return [f"environment: {exc}"]
        if lock is None:
            return []
        missing = sorted({r.name for r in requested} - {p.name for p in lock.pins})
        if missing:
            return [f"{LOCK_RELPATH}: does not pin what the job requests: {', '.join(missing)}"]
        return []


def _open_beside(path: Path) -> int:
    parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return open_submitted(parent, path.name)
    finally:
        os.close(parent)


def _read(fd: int, relpath: str, budget: int, keep_bytes: int) -> SnapshotFile:
    digest = hashlib.sha256()
    kept: list[bytes] = []
    size = 0
    while chunk := os.read(fd, _CHUNK):
        size += len(chunk)
        if size > budget:
            raise UnsafeSubmissionError(
                f"{relpath}: the submission grew past {MAX_SUBMISSION_BYTES} bytes while read"
            )
        digest.update(chunk)
        if size <= keep_bytes:
            kept.append(chunk)
    data = b"".join(kept) if size <= keep_bytes else None
    head = (data or b"")[:_HEAD_BYTES] if data is not None else _head(fd)
    return SnapshotFile(relpath, size, digest.hexdigest(), data, head)


def _head(fd: int) -> bytes:
    return os.pread(fd, _HEAD_BYTES, 0)


def _file_warnings(f: SnapshotFile) -> list[str]:
    path = PurePosixPath(f.relpath)
    found: list[str] = []
    if "__pycache__" in path.parts or path.suffix in _BYTECODE_SUFFIXES:
        found.append("Python bytecode: it runs instead of its source and cannot be reviewed")
    elif path.suffix in _NATIVE_SUFFIXES or f.head == _ELF_MAGIC:
        found.append("native code: it runs unreviewable machine code")
    if path.name in _STARTUP_HOOKS or path.suffix == ".pth":
        found.append("a Python startup hook: it runs before the job's own code")
    if f.relpath.startswith("code/"):
        shadowed = _shadowed_module(path)
        if shadowed:
            found.append(f"shadows the module {shadowed!r}: an import of it loads this file")
    found.extend(_name_warnings(f.relpath))
    found.extend(_text_warnings(f))
    return found


def _shadowed_module(path: PurePosixPath) -> str | None:
    """The well-known module a file under code/ would be imported as, from its own folder (the
    folder of a script is first on sys.path) or as a package (`code/numpy/__init__.py`)."""
    names = [path.stem] if path.suffix == ".py" else []
    names.extend(part for part in path.parts[1:-1])  # folders that may be packages
    return next((n for n in names if n in WELL_KNOWN_MODULES), None)


def _name_warnings(relpath: str) -> list[str]:
    odd = [describe_char(c) for c in dict.fromkeys(relpath) if not c.isascii()]
    if not odd:
        return []
    return [
        "the name has non-ASCII characters, which may imitate other letters ("
        + ", ".join(odd[:5])
        + ")"
    ]


def _text_warnings(f: SnapshotFile) -> list[str]:
    text = f.text()
    if text is None:
        if f.data is not None and (f.relpath in ("run.sh", "config.yaml") or _is_source(f)):
            return ["not UTF-8 text: shown with undecodable bytes replaced"]
        return []
    found: list[str] = []
    # A CR before a newline (Windows line ends) hides nothing; any other hidden character can.
    hidden = list(hidden_chars(text.replace("\r\n", "\n"), keep_newlines=True))
    if hidden:
        found.append(
            "hidden or control characters, escaped in `show` (" + ", ".join(hidden[:5]) + ")"
        )
    mixed = mixed_script_words(text)
    if mixed:
        found.append(
            "words mixing scripts (look-alike letters): " + ", ".join(visible(w) for w in mixed[:5])
        )
    return found


def _is_source(f: SnapshotFile) -> bool:
    return PurePosixPath(f.relpath).suffix in (".py", ".sh", ".r", ".R", ".ipynb", ".sql")


def submission_hash(job_dir: Path, *, config_path: Path | None = None) -> str:
    """The content hash of the submission in `job_dir` (see Snapshot.take)."""
    return Snapshot.take(job_dir, config_path=config_path, keep_bytes=0).content_hash
