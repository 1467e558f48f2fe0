"""Collecting a job's outputs from its scratch folder into `<job>/outputs/`, following nothing.

The scratch folder was writable by the job, so everything in it is hostile: it is walked with
directory descriptors (`dir_fd`, O_NOFOLLOW), only regular files are copied, sizes and counts are
capped, and names must pass the one output-name policy (syft_core.jobs.outputs: nothing that could
act as a permission file or marker, nothing hidden or misleading). What is refused is reported in
the results report, not silently dropped. Files are copied into
`outputs.partial/` and renamed to `outputs/` only when complete, so a crash never leaves partial
outputs that look finished.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from syft_core.jobs import RefusedOutput
from syft_core.jobs.outputs import output_name_problem
from syft_core.names import visible
from syft_core.safefile import copy_capped, file_kind

# A dot-folder: no `*`/`**` permission rule matches it, so nothing half-copied is ever synced.
PARTIAL_DIR = ".outputs.partial"
LEGACY_PARTIAL_DIR = "outputs.partial"  # an earlier runner's, readable under the earlier rules
MAX_DEPTH = 32
# What `done` lists is bounded by size, so the marker stays far below MAX_MARKER_BYTES (256 KiB)
# whatever the names; the files themselves are all in outputs/ and refusals are all counted.
MAX_LISTED = 500
LISTED_BUDGET = 96 * 1024
MAX_REFUSED_LISTED = 100
REFUSED_BUDGET = 64 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class OutputCaps:
    max_file_bytes: int
    max_total_bytes: int
    max_files: int


@dataclass
class CollectedOutputs:
    files: list[str] = field(default_factory=list)
    refused: list[RefusedOutput] = field(default_factory=list)
    total_bytes: int = 0
    refused_count: int = 0
    stopped: str | None = None  # why the walk ended early, if it did
    folders: set[str] = field(default_factory=set)  # created in outputs/, to hold files
    _refused_size: int = 0

    def refuse(self, path: str, reason: str) -> None:
        self.refused_count += 1
        size = yaml_size(path) + yaml_size(reason)
        if len(self.refused) < MAX_REFUSED_LISTED and self._refused_size + size <= REFUSED_BUDGET:
            self.refused.append(RefusedOutput(path=path, reason=reason))
            self._refused_size += size

    @property
    def listed(self) -> list[str]:
        """The first output paths, as many as fit the size budget."""
        shown: list[str] = []
        size = 0
        for path in self.files[:MAX_LISTED]:
            size += yaml_size(path)
            if size > LISTED_BUDGET:
                break
            shown.append(path)
        return shown

    def summary(self) -> str:
        """Counts and fixed reasons only: it goes into `done`, readable before release."""
        text = f"{len(self.files)} output file(s)"
        if self.refused_count:
            text += f"; {self.refused_count} refused (which and why: logs/results.yaml)"
        if self.stopped:
            text += f"; {self.stopped}"
        return text


def yaml_size(text: str) -> int:
    """An upper bound of `text`'s size as a YAML list item: an escaped astral character takes
    10 bytes (\\UXXXXXXXX), any other non-ASCII one at most 6, ASCII at most 2."""
    return 8 + sum(10 if ord(c) > 0xFFFF else 6 if ord(c) > 0x7F else 2 for c in text)


def collect_outputs(scratch: Path, job_dir: Path, caps: OutputCaps) -> CollectedOutputs:
    """Copy the acceptable files of `scratch` into `job_dir/outputs/` (replacing any)."""
    partial = job_dir / PARTIAL_DIR
    final = job_dir / "outputs"
    for stale in (partial, final, job_dir / LEGACY_PARTIAL_DIR):
        _remove(stale)
    partial.mkdir(mode=0o755)
    result = CollectedOutputs()
    try:
        root_fd = os.open(scratch, _DIR_FLAGS)
    except FileNotFoundError:
        result.stopped = "the job's outputs folder was gone"
    else:
        try:
            _walk(root_fd, "", 0, partial, caps, result)
        finally:
            os.close(root_fd)
    result.files.sort()
    os.rename(partial, final)
    return result


def _remove(path: Path) -> None:
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


class _Refused(Exception):
    """An entry that is not collected, and why."""


def _walk(
    dir_fd: int, rel: str, depth: int, dest: Path, caps: OutputCaps, result: CollectedOutputs
) -> None:
    """Collect one folder, depth-first: only the folders on the current path are open (two
    descriptors per level, at most MAX_DEPTH levels), however wide the tree. Unsorted on purpose:
    a job that made a million files must not make the runner read them all; the walk stops at
    the file cap."""
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if result.stopped:
                return
            child = f"{rel}{entry.name}"
            try:
                sub = _visit(dir_fd, entry.name, child, depth, dest, caps, result)
            except FileNotFoundError:
                continue  # gone since it was listed: nothing to collect
            except _Refused as refusal:
                result.refuse(visible(child), str(refusal))
                continue
            if sub is not None:
                try:
                    _walk(sub, f"{child}/", depth + 1, dest, caps, result)
                finally:
                    os.close(sub)


def _visit(
    dir_fd: int,
    name: str,
    relpath: str,
    depth: int,
    dest: Path,
    caps: OutputCaps,
    result: CollectedOutputs,
) -> int | None:
    """Handle one entry; returns a directory descriptor to descend into, or None.
    _Refused for anything not collected."""
    problem = output_name_problem(relpath)
    if problem:
        raise _Refused(problem)
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        if depth >= MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} folders")
        # Folders are created only to hold a collected file (see _make_parents): empty ones are
        # not outputs, and a job making thousands of them must not fill the owner's datasite.
        return _open(name, _DIR_FLAGS, dir_fd)
    if not stat.S_ISREG(st.st_mode):
        raise _Refused(f"refused: {file_kind(st.st_mode)} (not followed)")
    parents = _missing_parents(relpath, result)
    if len(result.files) + len(result.folders) + len(parents) >= caps.max_files:
        result.stopped = (
            f"more than {caps.max_files} files and folders; the rest were not collected"
        )
        raise _Refused(f"over the limit of {caps.max_files} files and folders")
    if st.st_size > caps.max_file_bytes:
        raise _Refused(f"{st.st_size} bytes, over the per-file limit of {caps.max_file_bytes}")
    if result.total_bytes + st.st_size > caps.max_total_bytes:
        raise _Refused(f"would exceed the total limit of {caps.max_total_bytes} bytes")
    for folder in parents:
        (dest / folder).mkdir(mode=0o755)
        result.folders.add(folder)
    result.total_bytes += _copy_file(dir_fd, name, dest / relpath, st.st_size)
    result.files.append(relpath)
    return None


def _missing_parents(relpath: str, result: CollectedOutputs) -> list[str]:
    """The folders of `relpath` not yet created in outputs/, outermost first."""
    parts = relpath.split("/")[:-1]
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return [p for p in prefixes if p not in result.folders]


def _open(name: str, flags: int, dir_fd: int) -> int:
    """openat without following a link; an entry swapped since it was lstat'ed is refused."""
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _Refused(
                "refused: a symlink (not followed) swapped in during collection"
            ) from None
        if isinstance(exc, FileNotFoundError):
            raise
        raise _Refused(f"could not be read: {exc.strerror}") from None


def _copy_file(dir_fd: int, name: str, dest: Path, size: int) -> int:
    src = _open(name, _FILE_FLAGS, dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(src).st_mode):
            raise _Refused("refused: not a regular file any more")
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            # Never more than lstat said: the job is stopped, but a cap is a cap.
            return copy_capped(src, out, size)
        except OSError as exc:
            dest.unlink()
            raise _Refused(f"could not be read: {exc.strerror}") from None
        finally:
            os.close(out)
    finally:
        os.close(src)
