"""Staging: a runner-owned copy of an approved submission, and the folders a job container gets.

The submission itself is never mounted: its submitter keeps write access to it. Instead every
file `walk_submission` lists (which lstat'ed each one) is copied with descriptors opened from the
job folder downward, each component with O_NOFOLLOW, into
`<syftbox>/.syft-runner/<owner>/staging/<job-id>/`; the copy is then hashed and must equal the
approved hash, which closes the window between the approval check and the run. The job's writable
outputs folder is a separate runner-owned scratch folder, owned by the job uid.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from syft_core.errors import JobError
from syft_core.jobs import JobConfig, JobFolder, UnsafeSubmissionError, submission_hash
from syft_core.jobs.submission import MAX_SUBMISSION_BYTES, walk_submission
from syft_runner.sandbox import JOB_DIR, JOB_USER, OUTPUTS_DIR, Mount

RUNNER_STATE_DIR = ".syft-runner"  # beside the datasites; not an email, so never synced
_CHUNK = 1024 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SubmissionChangedError(JobError):
    """The submission no longer matches its approval; it must be approved again."""


class DatasetsUnsupportedError(JobError):
    """The job asks for datasets, which this runner cannot mount yet."""


def job_id(job: JobFolder, content_hash: str) -> str:
    """Deterministic id of one approved version of a job: names its container and folders."""
    key = f"{job.owner}\0{job.submitter}\0{job.name}\0{content_hash}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class RunnerDirs:
    """The runner's private folders for one owner: `<state dir>/<owner>/`."""

    root: Path

    @classmethod
    def for_owner(cls, state_dir: Path, owner: str) -> RunnerDirs:
        """`state_dir` is the runner's own folder (default `<syftbox>/.syft-runner`)."""
        base = Path(state_dir).resolve()
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        root = base / owner
        root.mkdir(mode=0o700, exist_ok=True)
        return cls(root)

    def staging(self, jid: str) -> Path:
        return self.root / "staging" / jid

    def scratch(self, jid: str) -> Path:
        return self.root / "scratch" / jid

    def outputs(self, jid: str) -> Path:
        return self.scratch(jid) / "outputs"

    def job_ids(self) -> set[str]:
        """Ids with a staging or scratch folder on disk."""
        found: set[str] = set()
        for kind in ("staging", "scratch"):
            folder = self.root / kind
            if folder.is_dir():
                found.update(entry.name for entry in os.scandir(folder))
        return found

    def remove(self, jid: str) -> None:
        for folder in (self.staging(jid), self.scratch(jid)):
            remove_tree(folder)


def remove_tree(path: Path) -> None:
    """Delete `path` and everything under it, following nothing, in constant memory, stack and
    descriptors: the scratch folder was the job's, and may be thousands of folders deep or wide.

    Works from the top: a sub-folder's entries are hoisted (renamed) into `path` itself until the
    sub-folder is empty, so no walk ever goes deeper than one level."""
    try:
        top = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        path.unlink()
        return
    # Names for hoisted entries: unique to this call, so leftovers of an interrupted one in
    # `path` are never overwritten or collided with.
    fresh = (f".rm-{secrets.token_hex(6)}-{n}" for n in itertools.count())
    try:
        while names := _names(top):
            for name in names:
                _clear_entry(top, name, fresh)
    finally:
        os.close(top)
    os.rmdir(path)


def _names(dir_fd: int) -> list[str]:
    with os.scandir(dir_fd) as entries:
        return [entry.name for entry in entries]


def _clear_entry(top: int, name: str, fresh: Iterator[str]) -> None:
    """Unlink a non-folder; remove an empty folder; else hoist the folder's entries into `top`."""
    if not stat.S_ISDIR(os.stat(name, dir_fd=top, follow_symlinks=False).st_mode):
        os.unlink(name, dir_fd=top)
        return
    sub = os.open(name, _DIR_FLAGS, dir_fd=top)
    try:
        children = _names(sub)
        for child in children:
            os.rename(child, next(fresh), src_dir_fd=sub, dst_dir_fd=top)
    finally:
        os.close(sub)
    if not children:
        os.rmdir(name, dir_fd=top)


@dataclass(frozen=True)
class StagedJob:
    job_id: str
    root: Path  # mounted read-only at /job
    outputs: Path  # mounted read-write at /job/outputs

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"


def stage(job: JobFolder, approved_hash: str, dirs: RunnerDirs) -> StagedJob:
    """Copy the submission into a fresh staging folder and prove it is what was approved.

    UnsafeSubmissionError: the submission holds a link, device, fifo or is too big.
    SubmissionChangedError: the copy's hash differs from the approval's.
    """
    jid = job_id(job, approved_hash)
    dirs.remove(jid)  # a previous attempt that died half-way
    root = dirs.staging(jid)
    root.mkdir(parents=True, mode=0o755)
    files = walk_submission(job.path)
    job_fd = _open_job_dir(job)
    try:
        budget = MAX_SUBMISSION_BYTES
        for f in files:
            budget -= _copy_beneath(job_fd, f.relpath, root, budget)
    finally:
        os.close(job_fd)
    # The outputs mount point must exist in the read-only /job before the container starts.
    (root / "outputs").mkdir(mode=0o755)
    staged_hash = submission_hash(root)
    if staged_hash != approved_hash:
        dirs.remove(jid)
        raise SubmissionChangedError(
            f"{job.path}: the submission changed after approval (approved "
            f"{approved_hash[:19]}…, now {staged_hash[:19]}…); it must be approved again"
        )
    return StagedJob(jid, root, _make_outputs(dirs.outputs(jid)))


def verify_staged(staged_root: Path, approved_hash: str) -> bool:
    """Whether an existing staging folder still holds exactly the approved submission."""
    try:
        return submission_hash(staged_root) == approved_hash
    except (JobError, OSError):
        return False


def job_mounts(staged: StagedJob, job: JobFolder, config: JobConfig) -> list[Mount]:
    """Everything bind-mounted into the job container: the staged job, its outputs, its data."""
    return [
        Mount(source=staged.root, target=JOB_DIR, read_only=True),
        Mount(source=staged.outputs, target=OUTPUTS_DIR, read_only=False),
        *mounts_for(job, config),
    ]


def mounts_for(job: JobFolder, config: JobConfig) -> list[Mount]:
    """The data a job may read. The one place datasets will be resolved and mounted (read-only,
    realpath'ed, inside the owner's datasite); until then a job asking for any is refused."""
    if config.datasets:
        names = ", ".join(config.datasets)
        raise DatasetsUnsupportedError(
            f"{job.config_path}: datasets are not yet supported by this runner (asked for: "
            f"{names}); resubmit without `datasets`"
        )
    return []


def _make_outputs(path: Path) -> Path:
    path.mkdir(parents=True, mode=0o755)
    uid, gid = (int(part) for part in JOB_USER.split(":"))
    if os.geteuid() == 0:
        os.chown(path, uid, gid)
    else:
        # A non-root runner cannot give the folder away; the job uid must still be able to write.
        path.chmod(0o777)
    return path


def _open_job_dir(job: JobFolder) -> int:
    """A descriptor of the job folder, reached from the datasite without following a link."""
    fd = os.open(job.datasite_root, _DIR_FLAGS)
    for part in ("jobs", job.submitter, job.name):
        fd = _openat_dir(fd, part, job.path)
    return fd


def _openat_dir(parent_fd: int, name: str, where: Path) -> int:
    """Open `name` under `parent_fd` as a directory (no link followed); closes `parent_fd`."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        raise UnsafeSubmissionError(
            f"{where}: cannot open {name!r} as a plain folder: {exc.strerror}"
        ) from None
    finally:
        os.close(parent_fd)


def _copy_beneath(job_fd: int, relpath: str, dest_root: Path, budget: int) -> int:
    """Copy one submitted file reached component by component from `job_fd`; returns its size."""
    *folders, name = relpath.split("/")
    fd = os.dup(job_fd)
    for part in folders:
        fd = _openat_dir(fd, part, Path(relpath))
    try:
        src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    except OSError as exc:
        raise UnsafeSubmissionError(f"{relpath}: cannot open: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        st = os.fstat(src)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            raise UnsafeSubmissionError(f"{relpath}: refused, no longer a single regular file")
        dest = dest_root / relpath
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        return _copy_fd(src, dest, budget, relpath)
    finally:
        os.close(src)


def _copy_fd(src: int, dest: Path, budget: int, relpath: str) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    out = os.open(dest, flags, 0o644)
    copied = 0
    try:
        while chunk := os.read(src, _CHUNK):
            copied += len(chunk)
            if copied > budget:
                raise UnsafeSubmissionError(
                    f"{relpath}: the submission grew past {MAX_SUBMISSION_BYTES} bytes while "
                    "being staged"
                )
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view) :]
    finally:
        os.close(out)
    return copied
