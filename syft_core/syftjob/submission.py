"""What a scientist's Syft client writes into `inbox/<ds>/[v1/]JOB/`: run.sh, config.yaml, code/.

The folder is hostile input: it is walked without following links, every name checked, sizes
capped (syft_core.jobs.submission's rules), and its top level must be exactly what their clients
write (their runner's scan rejects anything else too). `code/outputs/` and `code/.venv/` are left
out: under OpenMined's runner the job itself writes them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from syft_core.datasite import PERMISSION_FILE
from syft_core.errors import JobError
from syft_core.jobs.config import MAX_CONFIG_BYTES, describe_problems
from syft_core.jobs.submission import (
    MAX_DEPTH,
    MAX_SUBMISSION_BYTES,
    MAX_SUBMISSION_FILES,
    UnsafeSubmissionError,
)
from syft_core.names import name_problem, visible
from syft_core.safefile import file_kind
from syft_core.syftjob.layout import SyftJobRef
from syft_core.yamlio import read_untrusted_yaml

TOP_LEVEL = frozenset({"run.sh", "config.yaml", "code"})
JOB_WRITTEN = frozenset({"outputs", ".venv"})  # under code/: written by the job at run time


class SyftJobConfig(BaseModel):
    """The fields of their `config.yaml` a runner needs; the others are kept by the file."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=200)
    type: Literal["python", "bash"]
    entrypoint: str | None = None
    dependencies: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)
    submitted_at: str | None = None

    @field_validator("dependencies", "files", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return [] if value is None else value

    @field_validator("submitted_at", mode="before")
    @classmethod
    def _stamp_text(cls, value: object) -> object:
        return None if value is None else str(value)

    @property
    def install_source(self) -> str | None:
        """A python job's first dependency: their client's own package, which the job imports
        to find its data (`syft`, `syft-client`)."""
        return self.dependencies[0] if self.type == "python" and self.dependencies else None


def read_config(ref: SyftJobRef) -> SyftJobConfig:
    """JobError naming the file and the reason when it is missing or unusable."""
    path = ref.inbox / "config.yaml"
    try:
        data = read_untrusted_yaml(path, max_bytes=MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise JobError(f"{path}: missing config.yaml") from None
    except ValueError as exc:
        raise JobError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise JobError(f"{path}: expected a mapping, got {type(data).__name__}")
    try:
        return SyftJobConfig.model_validate(data)
    except ValidationError as exc:
        raise JobError(f"{path}: invalid Syft job config: {describe_problems(exc)}") from None


def submission_files(ref: SyftJobRef) -> list[tuple[str, Path]]:
    """(relpath, path) of run.sh, config.yaml and every file under code/, sorted.
    UnsafeSubmissionError naming the entry for anything else at the top level, links, special
    files, hardlinks, unusable names, or a submission over the limits."""
    top = _listing(ref.inbox, ref.inbox)
    extra = sorted(set(top) - TOP_LEVEL - {PERMISSION_FILE})
    if extra:
        raise UnsafeSubmissionError(
            f"{ref.inbox}: refused, {visible(extra[0])!r} is not part of a Syft job "
            "(run.sh, config.yaml, code/)"
        )
    found: list[tuple[str, Path]] = []
    for name in ("run.sh", "config.yaml"):
        if name not in top:
            raise UnsafeSubmissionError(f"{ref.inbox}: refused, {name} is missing")
        _check_file(ref.inbox / name, name, top[name])
        found.append((name, ref.inbox / name))
    if "code" in top:
        if not stat.S_ISDIR(top["code"].st_mode):
            raise UnsafeSubmissionError(f"{ref.inbox}/code: refused, it is not a folder")
        _walk_code(ref.inbox, found)
    if sum(path.lstat().st_size for _, path in found) > MAX_SUBMISSION_BYTES:
        raise UnsafeSubmissionError(f"{ref.inbox}: over {MAX_SUBMISSION_BYTES} bytes")
    return sorted(found)


def _walk_code(job_dir: Path, found: list[tuple[str, Path]]) -> None:
    stack: list[tuple[Path, int]] = [(job_dir / "code", 0)]
    while stack:
        folder, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UnsafeSubmissionError(f"{folder}: nested deeper than {MAX_DEPTH}")
        for name, st in _listing(folder, job_dir).items():
            relpath = (folder / name).relative_to(job_dir).as_posix()
            if depth == 0 and name in JOB_WRITTEN:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append((folder / name, depth + 1))
                continue
            _check_file(folder / name, relpath, st)
            found.append((relpath, folder / name))
            if len(found) > MAX_SUBMISSION_FILES:
                raise UnsafeSubmissionError(f"{job_dir}: more than {MAX_SUBMISSION_FILES} files")


def _listing(folder: Path, job_dir: Path) -> dict[str, os.stat_result]:
    """The entries of `folder` with their lstat, each name checked."""
    try:
        with os.scandir(folder) as entries:
            listed = {e.name: e.stat(follow_symlinks=False) for e in entries}
    except NotADirectoryError:
        raise UnsafeSubmissionError(f"{folder}: refused, not a folder") from None
    for name in listed:
        problem = name_problem(name)
        if problem:
            where = (folder / visible(name)).relative_to(job_dir).as_posix()
            raise UnsafeSubmissionError(f"{job_dir}/{where}: refused, {problem}")
    return listed


def _check_file(path: Path, relpath: str, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeSubmissionError(f"{relpath}: refused, it is {file_kind(st.st_mode)}")
    if st.st_nlink > 1:
        raise UnsafeSubmissionError(f"{relpath}: refused, it is a hardlink ({st.st_nlink} links)")
    if relpath.rsplit("/", 1)[-1].casefold() == PERMISSION_FILE:
        raise UnsafeSubmissionError(f"{relpath}: refused, a permission file in a submission")
