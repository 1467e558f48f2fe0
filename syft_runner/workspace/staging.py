"""Staging: a runner-owned copy of an approved submission, and the folders a job container gets.

The submission itself is never mounted: its submitter keeps write access to it. Instead every
file `walk_submission` lists (which lstat'ed each one) is copied with descriptors opened from the
job folder downward, each component with O_NOFOLLOW, into the job's runner folder; the copy is
then hashed and must equal the approved hash, which closes the window between the approval check
and the run. The job's writable outputs folder sits inside the staged copy (mounted over it at
/job/outputs), owned by the job uid.

Per job (`<state dir>/<owner>/`): `scratch/<job-id>/fs/` holds `job/` (the staged copy) and
`job/outputs/`; it is its own capped filesystem when the runner can mount one (workspace.jobfs,
image in `volumes/<job-id>.img`), so outputs cannot fill the host disk and the job's mount table
shows `/job` and `/job/outputs`, not host paths. `scratch/<job-id>/data/` holds datasets.

Datasets: only those named in the approved config.yaml are mounted, read-only, the mock for
`mode: mock` and the private data for `mode: real` (workspace.mounts), and only if the job user
can read every file. A dataset that cannot be mounted ends the job with an error before anything
runs. For real data that message names no private path (the submitter reads it): the owner gets
the details, with the fix, as `DatasetUnavailableError.detail` (the runner's log). Private data
is hardlinked under its public names (`<scratch>/data/<dataset>/<entry>`) and mounted from there,
because a job can read every bind mount's source path in /proc/self/mountinfo; where that is
impossible the job is not run rather than shown the private file's name.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import logging
import os
import secrets
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from syft_core.datasets import DatasetError, DatasetNotFoundError
from syft_core.errors import JobError, UnsafePathError
from syft_core.jobs import JobConfig, JobFolder, UnsafeSubmissionError, submission_hash
from syft_core.jobs.config import SYFT_JOB_PROTOCOL
from syft_core.jobs.submission import (
    CODE_OUTPUTS,
    MAX_SUBMISSION_BYTES,
    open_dir_beneath,
    open_submitted,
    walk_submission,
)
from syft_core.safefile import copy_capped
from syft_runner.sandbox.container import (
    CODE_OUTPUTS_DIR,
    DATA_DIR,
    JOB_DIR,
    JOB_GID,
    OUTPUTS_DIR,
    SYFTBOX_MOUNT,
    Mount,
    job_user,
)
from syft_runner.workspace.jobfs import (
    FormattedPool,
    image_size,
    mount_jobfs,
    noexec,
    unmount_jobfs,
)
from syft_runner.workspace.mounts import SYFT_DATASETS_DIR, dataset_mounts, syft_dataset_mounts
from syft_runner.workspace.outputs import OutputCaps

log = logging.getLogger(__name__)

RUNNER_STATE_DIR = ".syft-runner"  # beside the datasites; not an email, so never synced
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SubmissionChangedError(JobError):
    """The submission no longer matches its approval; it must be approved again."""


class DatasetUnavailableError(JobError):
    """A requested dataset cannot be mounted. The message is safe to show the submitter (public
    names only); `detail` says what exactly is wrong and how to fix it, for the owner."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


def job_id(job: JobFolder, content_hash: str) -> str:
    """Deterministic id of one approved version of a job: names its container and folders.
    The syftbox's realpath is part of it because container names are global on the engine: two
    syftboxes holding the same job must not contend for one name (409), while the same job in
    the same syftbox keeps its one name, the lock against running it twice."""
    syftbox = os.path.realpath(job.datasite_root.parent)
    key = f"{syftbox}\0{job.owner}\0{job.submitter}\0{job.name}\0{content_hash}"
    return hashlib.sha256(key.encode()).hexdigest()[:JOB_ID_LENGTH]


JOB_ID_LENGTH = 20


def is_job_id(text: str) -> bool:
    """What job_id makes: ids also come back from engine labels, which are not ours alone."""
    return len(text) == JOB_ID_LENGTH and all(c in "0123456789abcdef" for c in text)


def _checked(jid: str) -> str:
    """Every runner path of a job is built from its id: one that is empty or `..` would name
    the folder of all jobs (or one above it), which RunnerDirs.remove would delete."""
    if not is_job_id(jid):
        raise ValueError(f"{jid!r} is not a job id")
    return jid


JOB_NOTE = "job"  # in scratch/<id>/: the job relpath the id belongs to


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

    def scratch(self, jid: str) -> Path:
        return self.root / "scratch" / _checked(jid)

    def jobfs(self, jid: str) -> Path:
        """The job's own filesystem (or plain folder): the staged job and its outputs."""
        return self.scratch(jid) / "fs"

    def volume(self, jid: str) -> Path:
        """The image file backing `jobfs(jid)` when it is a mounted filesystem."""
        return self.root / "volumes" / f"{_checked(jid)}.img"

    def staging(self, jid: str) -> Path:
        return self.jobfs(jid) / "job"

    def staged_config(self, jid: str) -> Path:
        """The approved config.yaml: beside the staged job, not in it, so the job never sees its
        metadata (name, times); see JobConfig.run_fields."""
        return self.jobfs(jid) / "config.yaml"

    def outputs(self, jid: str) -> Path:
        return self.staging(jid) / "outputs"

    def data(self, jid: str) -> Path:
        """Where private data is hardlinked under its public names (on the host filesystem)."""
        return self.scratch(jid) / "data"

    def job_ids(self) -> set[str]:
        """Ids with a runner folder or an image on disk."""
        found: set[str] = set()
        scratch = self.root / "scratch"
        if scratch.is_dir():
            found.update(entry.name for entry in os.scandir(scratch))
        volumes = self.root / "volumes"
        if volumes.is_dir():
            found.update(e.name.removesuffix(".img") for e in os.scandir(volumes))
        return found

    def remember_job(self, jid: str, relpath: str) -> None:
        """Note which job `jid` belongs to, so a restarted runner can tell from leftovers."""
        (self.scratch(jid) / JOB_NOTE).write_text(relpath, encoding="utf-8")

    def job_relpath(self, jid: str) -> str | None:
        """The job relpath `remember_job` noted for `jid`, if any."""
        try:
            return (self.scratch(jid) / JOB_NOTE).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def remove(self, jid: str) -> None:
        """Unmount and delete the folders of `jid`; nothing when it is not a job id (a task's
        label that names none: no runner folder can be named that)."""
        if not is_job_id(jid):
            return
        unmount_jobfs(self.volume(jid), self.jobfs(jid))
        remove_tree(self.scratch(jid))


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
    # Another remover may be at work on the same tree (a job's own clean-up and recovery's): an
    # entry, or the folder itself, gone meanwhile is removed all the same.
    try:
        while names := _names(top):
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    _clear_entry(top, name, fresh)
    finally:
        os.close(top)
    with contextlib.suppress(FileNotFoundError):
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


_ADDED_FOLDERS_BYTES = 3 * 4096  # one ext4 block each
# Submissions up to this size share one filesystem size, formatted ahead (FormattedPool).
POOL_SUBMISSION_BYTES = 1024 * 1024


def job_fs_pool(dirs: RunnerDirs, caps: OutputCaps, keep: int) -> FormattedPool:
    """The pool of `keep` filesystems formatted ahead for the small submissions of `dirs`' owner
    under `caps` (in `<runner dir>/volume-pool/`)."""
    content = POOL_SUBMISSION_BYTES + caps.max_total_bytes + _ADDED_FOLDERS_BYTES
    return FormattedPool(
        dirs.root / "volume-pool", image_size(content, caps.max_files), caps.max_files, keep
    )


@dataclass(frozen=True)
class StagedJob:
    job_id: str
    root: Path  # mounted read-only at /job: run.sh and code/
    outputs: Path  # mounted read-write at /job/outputs
    data: Path  # private data hardlinked under its public names

    @property
    def config_path(self) -> Path:
        return staged_config_path(self.root)


def staged_config_path(staged_root: Path) -> Path:
    """Where the approved config.yaml of the staged job at `staged_root` is kept (beside it)."""
    return staged_root.parent / "config.yaml"


def stage(
    job: JobFolder,
    approved_hash: str,
    dirs: RunnerDirs,
    caps: OutputCaps | None = None,
    *,
    here: bool = True,
    pool: FormattedPool | None = None,
) -> StagedJob:
    """Copy the submission into a fresh staging folder and prove it is what was approved. With
    `caps`, the staged job and its outputs get their own filesystem sized by them (jobfs).

    UnsafeSubmissionError: the submission holds a link, device, fifo or is too big.
    SubmissionChangedError: the copy's hash differs from the approval's.
    JobFsError: the job's filesystem could not be made.
    `pool`: filesystems formatted ahead (job_fs_pool), used when the submission is small.
    `here`: the job runs on this machine, so this machine's mount options are the job's (on a
    cluster they are the workers', which `doctor --config` checks).
    """
    jid = job_id(job, approved_hash)
    dirs.remove(jid)  # a previous attempt that died half-way
    files = walk_submission(job.path)
    if caps is not None:
        # + the folders staging adds (outputs/, code/, code/outputs/): the outputs keep their room
        submitted = sum(f.size for f in files)
        # A small submission gets the pool's size: its outputs' room grows by at most
        # POOL_SUBMISSION_BYTES minus its own size, and the collector enforces the exact caps.
        if pool is not None and submitted <= POOL_SUBMISSION_BYTES:
            submitted = POOL_SUBMISSION_BYTES
        content = submitted + caps.max_total_bytes + _ADDED_FOLDERS_BYTES
        if not mount_jobfs(dirs.volume(jid), dirs.jobfs(jid), content, caps.max_files, pool):
            _warn_unbounded_once()
    root = dirs.staging(jid)
    root.mkdir(parents=True, mode=0o755)
    root.chmod(0o755)
    if here and not noexec(root):
        _warn_executable_once(root)
    dirs.remember_job(jid, job.relpath)
    job_fd = _open_job_dir(job)
    try:
        budget = MAX_SUBMISSION_BYTES
        for f in files:
            # config.yaml goes beside the staged job: the job does not see it (run_fields).
            dest = root.parent if f.relpath == "config.yaml" else root
            budget -= _copy_beneath(job_fd, f.relpath, dest, budget)
    finally:
        os.close(job_fd)
    # The outputs mount point must exist in the read-only /job before the container starts.
    (root / "outputs").mkdir(mode=0o755)  # also where the job's outputs folder is
    staged_hash = submission_hash(root, config_path=staged_config_path(root))
    if staged_hash != approved_hash:
        dirs.remove(jid)
        raise SubmissionChangedError(
            f"{job.path}: the submission changed after approval (approved "
            f"{approved_hash[:19]}…, now {staged_hash[:19]}…); it must be approved again"
        )
    # The job's working directory, and the second mount point of its outputs (CODE_OUTPUTS):
    # empty folders, which the hash above does not see.
    (root / CODE_OUTPUTS).mkdir(mode=0o755, parents=True, exist_ok=True)
    (root / CODE_OUTPUTS).parent.chmod(0o755)
    return StagedJob(jid, root, make_outputs(dirs.outputs(jid), job_user(jid)), dirs.data(jid))


_warned_unbounded = threading.Event()


def _warn_unbounded_once() -> None:
    if not _warned_unbounded.is_set():
        _warned_unbounded.set()
        log.warning(
            "job outputs are plain host folders, bounded on disk only by min_free_disk_mb while "
            "a job runs: per-job capped filesystems need the runner to run as root with "
            "mkfs.ext4 installed (docs/runner.md)"
        )


_warned_executable = threading.Event()


def _warn_executable_once(root: Path) -> None:
    if not _warned_executable.is_set():
        _warned_executable.set()
        log.warning(
            "job outputs are executable: %s is on a host filesystem mounted without noexec, so a "
            "job can run files it writes into /job/outputs; per-job filesystems (a root runner "
            "with mkfs.ext4) are noexec, otherwise set state_dir to a folder on a filesystem "
            "mounted noexec,nosuid,nodev (docs/runner.md)",
            root,
        )


def verify_staged(staged_root: Path, approved_hash: str) -> bool:
    """Whether an existing staging folder still holds exactly the approved submission."""
    try:
        config = staged_config_path(staged_root)
        return submission_hash(staged_root, config_path=config) == approved_hash
    except (JobError, OSError):
        return False


def job_mounts(
    staged: StagedJob,
    job: JobFolder,
    config: JobConfig,
    data_root: Path | None = None,
    chosen: list[str] | None = None,
) -> list[Mount]:
    """Everything bind-mounted into the job container: the staged job, its outputs, its data.
    `chosen`: the datasets the owner named at approval (ApprovedMarker.datasets), if any."""
    if config.protocol == SYFT_JOB_PROTOCOL:
        data = _linked(syft_mounts_for(job, chosen or [], data_root), staged.data)
        if not data:
            # Their dataset manager creates public/syft_datasets/ before it looks a dataset
            # up: with none chosen, an empty read-only one, so a job asking for one fails with
            # their "not found", naming it, rather than "Read-only file system".
            empty = staged.data / "no-syft-datasets"
            empty.mkdir(parents=True, exist_ok=True)
            target = f"{SYFTBOX_MOUNT}/{job.owner}/public/{SYFT_DATASETS_DIR}"
            data = [Mount(source=empty, target=target, read_only=True)]
    else:
        if chosen is not None:  # narrowed at approval: never more than the config asks for
            config = config.model_copy(
                update={"datasets": [d for d in config.datasets if d in chosen]}
            )
        data = mounts_for(job, config, data_root)
        if config.mode == "real":
            data = _linked(data, staged.data)
    return [
        Mount(source=staged.root, target=JOB_DIR, read_only=True),
        Mount(source=staged.outputs, target=OUTPUTS_DIR, read_only=False),
        # The same folder again under the working directory, so `outputs/x` means it too.
        Mount(source=staged.outputs, target=CODE_OUTPUTS_DIR, read_only=False),
        *data,
    ]


def mounts_for(job: JobFolder, config: JobConfig, data_root: Path | None = None) -> list[Mount]:
    """The datasets named in the approved config, read-only: mocks for `mode: mock`, private data
    for `mode: real`. `data_root` is the syftbox holding the owner's datasets (default: the job's
    own). DatasetUnavailableError if any cannot be mounted."""
    if not config.datasets:
        return []
    root = data_root if data_root is not None else job.datasite_root.parent
    try:
        mounts = dataset_mounts(root, job.owner, config.datasets, config.mode)
    except DatasetNotFoundError as exc:
        raise DatasetUnavailableError(f"not run: {exc}") from None  # public names only
    except (DatasetError, UnsafePathError) as exc:
        raise _unavailable(config, str(exc), root) from None
    for source in dict.fromkeys(m.source for m in mounts):  # each source backs two targets
        problem = unreadable_by_job(source)
        if problem is not None:
            raise _unavailable(config, problem, root)
    return mounts


def syft_mounts_for(job: JobFolder, names: list[str], data_root: Path | None) -> list[Mount]:
    """The owner's Syft datasets chosen at approval, where their client looks for them. A job
    that asks for another one fails in the job, naming it (their `resolve_dataset_file_path`
    raises); a chosen one that cannot be mounted ends the job here."""
    if not names:
        return []
    root = data_root if data_root is not None else job.datasite_root.parent
    try:
        mounts = syft_dataset_mounts(root, job.owner, names)
    except DatasetNotFoundError as exc:
        raise DatasetUnavailableError(f"not run: {exc}") from None
    except (DatasetError, UnsafePathError) as exc:
        raise DatasetUnavailableError(
            "not run: a dataset chosen at approval cannot be mounted", str(exc)
        ) from None
    for mount in mounts:
        problem = unreadable_by_job(mount.source)
        if problem is not None:
            raise DatasetUnavailableError(
                "not run: a dataset chosen at approval cannot be read by jobs", problem
            )
    return mounts


def _unavailable(config: JobConfig, detail: str, root: Path) -> DatasetUnavailableError:
    if config.mode == "mock":
        # Public mocks: the details hide nothing but where the owner keeps the syftbox.
        public = detail
        for prefix in sorted({str(root.resolve()), str(root)}, key=len, reverse=True):
            public = public.replace(prefix, "<syftbox>")
        return DatasetUnavailableError(f"not run: {public}", detail)
    names = ", ".join(repr(n) for n in config.datasets)
    return DatasetUnavailableError(
        f"not run: the private data of the dataset(s) {names} cannot be mounted on this runner; "
        "the owner has to fix the dataset's files or permissions (the runner's log says how)",
        detail,
    )


def unreadable_by_job(source: Path) -> str | None:
    """Why a job cannot read `source` (a file, or a folder and everything in it), with the fix;
    None when it can. Judged from mode bits: a job runs as a uid of its own, which owns no host
    file, in group JOB_GID without supplementary groups; an ACL that would grant more is not
    consulted."""
    for path, st in _entries(source):
        need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else 0)
        allowed = st.st_mode >> 3 if st.st_gid == JOB_GID else st.st_mode
        if allowed & need != need:
            kind = "folder" if stat.S_ISDIR(st.st_mode) else "file"
            recursive = "-R " if source.is_dir() else ""
            return (
                f"a job (gid {JOB_GID}, its own uid) cannot read the {kind} {path} (mode "
                f"{stat.S_IMODE(st.st_mode):04o}, owner {st.st_uid}:{st.st_gid}); let the job "
                f"group read it: `chgrp {recursive}{JOB_GID} {source} && chmod {recursive}g+rX "
                f"{source}` (or everyone: `chmod {recursive}o+rX {source}`)"
            )
    return None


def _entries(source: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """`source` and, for a folder, everything under it, following no link."""
    yield source, source.lstat()
    if not source.is_dir():
        return
    for folder, dirs, files in os.walk(source):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            yield path, path.lstat()


def _linked(mounts: list[Mount], folder: Path) -> list[Mount]:
    """The mounts with each source hardlinked as `folder/<dataset>/<entry>` (its /data path), so
    the job's mount table shows those public names, not the private file's. Where hardlinks are
    impossible (the runner's state folder on another filesystem, or not permitted) the job is
    not run: mounting the private file under its own name would show that name to the job."""
    links: dict[Path, Path] = {}
    for mount in mounts:
        target = PurePosixPath(mount.target)
        if target.parent.parent == PurePosixPath(DATA_DIR):
            dest = folder / target.relative_to(DATA_DIR)
        elif f"/{SYFT_DATASETS_DIR}/" in mount.target:  # a Syft dataset: linked under its path
            dest = folder / SYFT_DATASETS_DIR / target.relative_to(SYFTBOX_MOUNT)
        else:
            continue
        _hardlink(mount.source, dest)
        links[mount.source] = dest
    return [
        Mount(source=links.get(m.source, m.source), target=m.target, read_only=m.read_only)
        for m in mounts
    ]


def _hardlink(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    is_dir = stat.S_ISDIR(source.lstat().st_mode)
    try:
        if is_dir:
            _hardlink_tree(source, dest)
        else:
            os.link(source, dest, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        remove_tree(dest)
        raise DatasetUnavailableError(
            "not run: this runner cannot mount the dataset's private data without showing its "
            "file name to the job; the owner has to move the runner's state folder (the runner's "
            "log says how)",
            f"{source} cannot be hardlinked into {dest.parent} ({exc.strerror}): set state_dir "
            "in runner.yaml to a folder on the same filesystem as the syftbox (outside it)",
        ) from None
    if not is_dir and not stat.S_ISREG(dest.lstat().st_mode):  # swapped after it was resolved
        raise DatasetUnavailableError(
            "not run: a dataset's private data changed while it was being mounted; run it again",
            f"{source} is no longer a regular file",
        )


def _hardlink_tree(source: Path, dest: Path) -> None:
    """Folders recreated (0755), regular files hardlinked; links and special files are left
    out (datasets are plain files: syft_core.datasets)."""
    for folder, dirs, files in os.walk(source):
        here = dest / Path(folder).relative_to(source)
        here.mkdir(mode=0o755)
        here.chmod(0o755)  # whatever the umask
        dirs[:] = [d for d in dirs if stat.S_ISDIR(os.lstat(Path(folder, d)).st_mode)]
        for name in files:
            path = Path(folder, name)
            if stat.S_ISREG(path.lstat().st_mode):
                os.link(path, here / name, follow_symlinks=False)


def make_outputs(path: Path, user: tuple[int, int]) -> Path:
    """The job's writable outputs folder at `path`, writable by the job `user` (uid, gid)."""
    path.mkdir(parents=True, mode=0o755, exist_ok=True)
    uid, gid = user
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
        fd = open_dir_beneath(fd, part, job.path)
    return fd


def _copy_beneath(job_fd: int, relpath: str, dest_root: Path, budget: int) -> int:
    """Copy one submitted file reached component by component from `job_fd`; returns its size."""
    src = open_submitted(job_fd, relpath)
    try:
        dest = dest_root / relpath
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        return _copy_fd(src, dest, budget, relpath)
    finally:
        os.close(src)


def _copy_fd(src: int, dest: Path, budget: int, relpath: str) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    out = os.open(dest, flags, 0o644)
    try:
        copied = copy_capped(src, out, budget + 1)  # one more: a file that grew shows
    finally:
        os.close(out)
    if copied > budget:
        raise UnsafeSubmissionError(
            f"{relpath}: the submission grew past {MAX_SUBMISSION_BYTES} bytes while being staged"
        )
    return copied
