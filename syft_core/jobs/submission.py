"""What a submitter wrote: run.sh, config.yaml and code/**, walked without following anything.

Every path is lstat'ed: symlinks, hardlinks (st_nlink > 1), devices, fifos and sockets are refused,
because the runner copies these files on the host and must never be led elsewhere by them. The same
walk gives the content hash that approval binds to.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from syft_core.errors import JobError

SUBMISSION_FILES = ("run.sh", "config.yaml")
CODE_DIR = "code"
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


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages: "a symlink", "a fifo", "a device", ..."""
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISFIFO(mode):
        return "a fifo"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _check_regular(path: Path, relpath: str, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeSubmissionError(f"{relpath}: refused, it is {file_kind(st.st_mode)}")
    if st.st_nlink > 1:
        raise UnsafeSubmissionError(f"{relpath}: refused, it is a hardlink ({st.st_nlink} links)")


def _check_name(where: str, name: str) -> None:
    """Refuse names that cannot travel or be shown safely: not UTF-8 (they would break hashing,
    sync and every listing) or holding control characters (newlines, terminal escapes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeSubmissionError(
            f"{where}/{name!r}: refused, the name is not valid UTF-8"
        ) from None
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UnsafeSubmissionError(f"{where}/{name!r}: refused, the name has control characters")


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
                if stat.S_ISDIR(st.st_mode):
                    stack.append((path, depth + 1))
                    continue
                _check_regular(path, relpath, st)
                found.append(SubmittedFile(relpath, path, st.st_size))
                if len(found) > MAX_SUBMISSION_FILES:
                    raise UnsafeSubmissionError(f"more than {MAX_SUBMISSION_FILES} files submitted")


def walk_submission(job_dir: Path) -> list[SubmittedFile]:
    """The submitted files in a stable order; UnsafeSubmissionError on anything unsafe/too big."""
    found: list[SubmittedFile] = []
    for name in SUBMISSION_FILES:
        path = job_dir / name
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


def file_sha256(path: Path) -> str:
    """sha256 of a regular file, opened without following a symlink at the last component."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _files_hash(files: list[SubmittedFile]) -> str:
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.relpath}\0{f.size}\0{file_sha256(f.path)}\n".encode())
    return "sha256:" + digest.hexdigest()


def submission_hash(job_dir: Path) -> str:
    """sha256 over (path, size, content sha256) of every submitted file: what approval binds to."""
    return _files_hash(walk_submission(job_dir))


def code_hash(job_dir: Path) -> str:
    """Like submission_hash, over run.sh and code/** only. config.yaml is left out because every
    re-submission carries a new name and timestamp there; job policies use this to recognise the
    same code sent again (their conditions check the config's datasets and mode separately)."""
    return _files_hash([f for f in walk_submission(job_dir) if f.relpath != "config.yaml"])
