"""What a scientist's Syft client writes into `inbox/<ds>/[v1/]JOB/`: run.sh, config.yaml, code/.

The folder is hostile input, synced from the scientist: it is walked without following links,
every name checked, sizes capped (syft_core.jobs.submission's limits), and its top level must be
exactly what their clients write (their own scan rejects anything else; a `syft.pub.yaml` there is
ignored). `code/outputs/` and `code/.venv/` are left out: under OpenMined's runner the job itself
writes them into the inbox. Their approval records no content hash, so the hash and the newest
mtime here are what a runner has to tell a job changed after it was approved.
"""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from syft_core.datasite import PERMISSION_FILE
from syft_core.errors import JobError
from syft_core.jobs.config import MAX_CONFIG_BYTES, validated_mapping
from syft_core.jobs.snapshot import digest_entries
from syft_core.jobs.submission import (
    MAX_DEPTH,
    MAX_SUBMISSION_BYTES,
    MAX_SUBMISSION_FILES,
    UnsafeSubmissionError,
    open_submitted,
)
from syft_core.names import name_problem, visible
from syft_core.safefile import file_kind
from syft_core.syftjob.layout import SyftJobRef, inbox_dir
from syft_core.yamlio import read_untrusted_yaml

CONFIG_FILE = "config.yaml"
TOP_LEVEL = frozenset({"run.sh", CONFIG_FILE, "code"})
JOB_WRITTEN = frozenset({"outputs", ".venv"})  # under code/: what the job writes at run time
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SyftJobConfig(BaseModel):
    """The fields of their `config.yaml` a runner needs; the others stay in the file."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1)
    type: Literal["python", "bash"]
    entrypoint: str | None = None
    dependencies: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)
    submitted_at: str | None = None

    @field_validator("dependencies", "files", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        return [] if value is None else value

    @field_validator("submitted_at", mode="before")
    @classmethod
    def _stamp_text(cls, value: object) -> object:
        """PyYAML reads an unquoted timestamp as a datetime; theirs are quoted strings."""
        return value.isoformat() if isinstance(value, datetime) else value

    @property
    def install_source(self) -> str | None:
        """A python job's first dependency: their client's own package (`syft==0.10.0`,
        `syft-client`), which the job imports to find its data. None for bash jobs."""
        return self.dependencies[0] if self.type == "python" and self.dependencies else None

    @property
    def user_dependencies(self) -> list[str]:
        """What the scientist asked for beyond the install source (python jobs only)."""
        return self.dependencies[1:] if self.type == "python" else []


def read_config(ref: SyftJobRef) -> SyftJobConfig:
    """The job's config.yaml; JobError naming the file and the reason when it is missing, a link
    or another non-file, too large, not YAML, or not a config their clients write."""
    path = ref.inbox / CONFIG_FILE
    try:
        data = read_untrusted_yaml(inbox_dir(ref) / CONFIG_FILE, max_bytes=MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise JobError(f"{path}: missing {CONFIG_FILE}") from None
    except ValueError as exc:
        raise JobError(f"{path}: {CONFIG_FILE} {exc}") from None
    return validated_mapping(SyftJobConfig, data, path, "Syft job config")


def submission_files(ref: SyftJobRef) -> list[tuple[str, Path]]:
    """(relpath, path) of run.sh, config.yaml and every file under code/, sorted by relpath.
    UnsafeSubmissionError naming the entry and the reason for anything else at the top level,
    a missing entry, links, special files, hardlinks, unusable names, or a submission over the
    limits."""
    return [(relpath, path) for relpath, path, _ in _walk(ref)]


def _walk(ref: SyftJobRef) -> list[tuple[str, Path, os.stat_result]]:
    try:
        job_dir = inbox_dir(ref, error=UnsafeSubmissionError)
    except FileNotFoundError:
        raise UnsafeSubmissionError(f"{ref.inbox}: refused, the job folder is missing") from None
    top = _top_level(job_dir)
    found = [(name, job_dir / name, top[name]) for name in ("run.sh", CONFIG_FILE)]
    for relpath, _, st in found:
        _check_file(job_dir, relpath, st)
    if not stat.S_ISDIR(top["code"].st_mode):
        raise UnsafeSubmissionError(f"{job_dir}/code: refused, it is {_kind(top['code'])}")
    _walk_code(job_dir, found)
    total = sum(st.st_size for _, _, st in found)
    if total > MAX_SUBMISSION_BYTES:
        raise UnsafeSubmissionError(f"{job_dir}: {total} bytes, over {MAX_SUBMISSION_BYTES}")
    return sorted(found, key=lambda f: f[0])


def _top_level(job_dir: Path) -> dict[str, os.stat_result]:
    """The job folder's entries but syft.pub.yaml, checked to be exactly run.sh, config.yaml
    and code."""
    top = _listing(job_dir, job_dir)
    top.pop(PERMISSION_FILE, None)
    extra = sorted(set(top) - TOP_LEVEL)
    if extra:
        raise UnsafeSubmissionError(
            f"{job_dir}/{visible(extra[0])}: refused, not part of a Syft job "
            "(the top level must be exactly run.sh, config.yaml and code/)"
        )
    missing = sorted(TOP_LEVEL - set(top))
    if missing:
        raise UnsafeSubmissionError(f"{job_dir}/{missing[0]}: refused, missing from the Syft job")
    return top


def _walk_code(job_dir: Path, found: list[tuple[str, Path, os.stat_result]]) -> None:
    stack: list[tuple[Path, int]] = [(job_dir / "code", 0)]
    while stack:
        folder, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UnsafeSubmissionError(f"{folder}: refused, nested deeper than {MAX_DEPTH}")
        for name, st in _listing(folder, job_dir).items():
            if depth == 0 and name in JOB_WRITTEN:
                continue
            relpath = (folder / name).relative_to(job_dir).as_posix()
            if stat.S_ISDIR(st.st_mode):
                stack.append((folder / name, depth + 1))
                continue
            _check_file(job_dir, relpath, st)
            found.append((relpath, folder / name, st))
            if len(found) > MAX_SUBMISSION_FILES:
                raise UnsafeSubmissionError(f"{job_dir}: more than {MAX_SUBMISSION_FILES} files")


def _listing(folder: Path, job_dir: Path) -> dict[str, os.stat_result]:
    """The entries of `folder` with their lstat, each name checked."""
    with os.scandir(folder) as entries:
        listed = {e.name: e.stat(follow_symlinks=False) for e in entries}
    for name in listed:
        problem = name_problem(name)
        if problem:
            raise UnsafeSubmissionError(f"{folder}/{visible(name)}: refused, {problem}")
        if folder != job_dir and name.casefold() == PERMISSION_FILE:
            raise UnsafeSubmissionError(f"{folder}/{name}: refused, a permission file in code/")
    return listed


def _check_file(job_dir: Path, relpath: str, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeSubmissionError(f"{job_dir}/{relpath}: refused, it is {_kind(st)}")
    if st.st_nlink > 1:
        raise UnsafeSubmissionError(
            f"{job_dir}/{relpath}: refused, it is a hardlink ({st.st_nlink} links)"
        )


def _kind(st: os.stat_result) -> str:
    return "a folder" if stat.S_ISDIR(st.st_mode) else file_kind(st.st_mode)


def submission_hash(ref: SyftJobRef) -> str:
    """`sha256:<hex>` over each submission file's relpath, size and content (the framing of
    syft_core.jobs.snapshot), each file opened without following any link on its way."""
    files = submission_files(ref)
    entries: list[tuple[str, int, str]] = []
    budget = MAX_SUBMISSION_BYTES
    try:
        root_fd = os.open(ref.inbox, _DIR_FLAGS)
    except OSError as exc:
        raise UnsafeSubmissionError(f"{ref.inbox}: cannot be opened: {exc.strerror}") from None
    try:
        for relpath, _ in files:
            size, digest = _file_digest(root_fd, relpath, budget)
            budget -= size
            entries.append((relpath, size, digest))
    finally:
        os.close(root_fd)
    return digest_entries(entries)


def _file_digest(root_fd: int, relpath: str, budget: int) -> tuple[int, str]:
    """(size, sha256 hex) of what is read; UnsafeSubmissionError past the byte budget."""
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(open_submitted(root_fd, relpath), "rb") as fh:
        while chunk := fh.read(_CHUNK):
            size += len(chunk)
            if size > budget:
                raise UnsafeSubmissionError(
                    f"{relpath}: refused, over {MAX_SUBMISSION_BYTES} bytes"
                )
            digest.update(chunk)
    return size, digest.hexdigest()


def newest_mtime(ref: SyftJobRef) -> datetime:
    """The newest mtime (UTC) among the submission's files: one written after approval is newer
    than `approved_at`. A file deleted after approval changes no mtime here, only the hash."""
    newest = max(st.st_mtime for _, _, st in _walk(ref))
    return datetime.fromtimestamp(newest, UTC)
