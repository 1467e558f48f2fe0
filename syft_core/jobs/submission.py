"""What a submitter wrote: run.sh, config.yaml and code/**, walked without following anything.

Every path is lstat'ed: symlinks, hardlinks (st_nlink > 1), devices, fifos and sockets are refused,
because the runner copies these files on the host and must never be led elsewhere by them. The same
walk gives the content hash that approval binds to (syft_core.jobs.snapshot).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from syft_core.datasite import PERMISSION_FILE
from syft_core.errors import JobError
from syft_core.names import name_problem, visible
from syft_core.safefile import file_kind

SUBMISSION_FILES = ("run.sh", "config.yaml")
CODE_DIR = "code"
# The job's outputs are mounted here too (workspace.staging): the submission must leave it empty.
CODE_OUTPUTS = f"{CODE_DIR}/outputs"
MAX_SUBMISSION_FILES = 10_000
MAX_SUBMISSION_BYTES = 256 * 1024 * 1024
MAX_DEPTH = 32


class UnsafeSubmissionError(JobError):
    """The submission holds something that is not a plain file or folder."""


@dataclass(frozen=True)
class SubmittedFile:
    relpath: str  # POSIX, relative to the job folder
    path: Path
    size: int


def _check_regular(path: Path, relpath: str, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeSubmissionError(f"{relpath}: refused, it is {file_kind(st.st_mode)}")
    if st.st_nlink > 1:
        raise UnsafeSubmissionError(f"{relpath}: refused, it is a hardlink ({st.st_nlink} links)")


def _check_name(where: str, name: str) -> None:
    """Refuse names that cannot travel or be shown safely (syft_core.names): not UTF-8 (they would
    break hashing, sync and every listing), or holding control, format, bidi or other hidden
    characters, which would make the file reviewed look unlike the file that runs."""
    problem = name_problem(name)
    if problem:
        raise UnsafeSubmissionError(f"{where}/{visible(name)}: refused, {problem}")
    if name.casefold() == PERMISSION_FILE:  # it would govern who reads and writes the job
        raise UnsafeSubmissionError(f"{where}/{name}: refused, a permission file in a submission")


def _check_outputs_mount_point(path: Path, st: os.stat_result) -> None:
    """`code/outputs` is where the job's outputs folder is mounted (so `outputs/x` written from
    the job's working directory, code/, lands in its outputs): a submission may leave an empty
    folder there, never anything the mount would hide from the running job."""
    why = "it must be an empty folder: the job's outputs folder is mounted there"
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeSubmissionError(f"{CODE_OUTPUTS}: refused, {why}")
    with os.scandir(path) as entries:
        if any(True for _ in entries):
            raise UnsafeSubmissionError(
                f"{CODE_OUTPUTS}: refused, {why} (what a submission puts there the job never sees)"
            )


def _walk_code(job_dir: Path, found: list[SubmittedFile]) -> None:
    stack: list[tuple[Path, int]] = [(job_dir / CODE_DIR, 0)]
    while stack:
        folder, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UnsafeSubmissionError(
                f"{folder.relative_to(job_dir)}: nested deeper than {MAX_DEPTH}"
            )
        with os.scandir(folder) as entries:
            for entry in entries:
                path = Path(entry.path)
                _check_name(folder.relative_to(job_dir).as_posix(), entry.name)
                relpath = path.relative_to(job_dir).as_posix()
                st = entry.stat(follow_symlinks=False)
                if relpath == CODE_OUTPUTS:
                    _check_outputs_mount_point(path, st)
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append((path, depth + 1))
                    continue
                _check_regular(path, relpath, st)
                found.append(SubmittedFile(relpath, path, st.st_size))
                if len(found) > MAX_SUBMISSION_FILES:
                    raise UnsafeSubmissionError(f"more than {MAX_SUBMISSION_FILES} files submitted")


def walk_submission(job_dir: Path, *, config_path: Path | None = None) -> list[SubmittedFile]:
    """The submitted files in a stable order; UnsafeSubmissionError on anything unsafe/too big.
    `config_path`: where config.yaml is when not in `job_dir` (the runner's staged copy keeps it
    out of the folder the job sees)."""
    found: list[SubmittedFile] = []
    for name in SUBMISSION_FILES:
        path = config_path if name == "config.yaml" and config_path else job_dir / name
        try:
            st = path.lstat()
        except FileNotFoundError:
            raise JobError(f"{path}: missing {name}") from None
        _check_regular(path, name, st)
        found.append(SubmittedFile(name, path, st.st_size))
    code = job_dir / CODE_DIR
    try:
        code_st = code.lstat()
    except FileNotFoundError:
        code_st = None
    if code_st is not None:
        if not stat.S_ISDIR(code_st.st_mode):
            raise UnsafeSubmissionError(f"{CODE_DIR}: refused, it is {file_kind(code_st.st_mode)}")
        _walk_code(job_dir, found)
    total = sum(f.size for f in found)
    if total > MAX_SUBMISSION_BYTES:
        raise UnsafeSubmissionError(f"submission is {total} bytes, over {MAX_SUBMISSION_BYTES}")
    return sorted(found, key=lambda f: f.relpath)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_dir_beneath(parent_fd: int, name: str, where: Path | str) -> int:
    """Open `name` under `parent_fd` as a directory, no link followed; closes `parent_fd`."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        raise UnsafeSubmissionError(
            f"{where}: cannot open {name!r} as a plain folder: {exc.strerror}"
        ) from None
    finally:
        os.close(parent_fd)


def open_submitted(root_fd: int, relpath: str) -> int:
    """A read descriptor of one submitted file, reached component by component from `root_fd`
    without following any link (a folder swapped for a link after the walk is refused), and
    checked to be still one regular file. The caller closes it."""
    *folders, name = relpath.split("/")
    fd = os.dup(root_fd)
    for part in folders:
        fd = open_dir_beneath(fd, part, relpath)
    try:
        src = os.open(name, _FILE_FLAGS, dir_fd=fd)
    except OSError as exc:
        raise UnsafeSubmissionError(f"{relpath}: cannot open: {exc.strerror}") from None
    finally:
        os.close(fd)
    st = os.fstat(src)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        os.close(src)
        raise UnsafeSubmissionError(f"{relpath}: refused, no longer a single regular file")
    return src
