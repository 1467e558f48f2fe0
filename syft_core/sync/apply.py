"""Putting received content in place: staged, verified, then renamed (a reader sees old or new)."""

from __future__ import annotations

import ctypes
import os
import shutil
from pathlib import Path
from types import TracebackType

from syft_core.sync.hashing import digest_file
from syft_core.sync.targets import install_at


class Staging:
    """Where one message's blobs wait while they are verified and checked; removed afterwards.

    It sits under the syftbox (`.syft-sync/staging/<id>/`), so the final rename into a datasite
    stays on one filesystem and is atomic.
    """

    def __init__(self, staging_root: Path, message_id: str) -> None:
        self.folder = staging_root / message_id

    def __enter__(self) -> Staging:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def path_for(self, sha: str) -> Path:
        return self.folder / sha


def clear_staging(staging_root: Path) -> None:
    """Drop what an interrupted sync left staged (it is fetched again from the transport)."""
    shutil.rmtree(staging_root, ignore_errors=True)


def install(staged: Path, target: Path, *, consume: bool) -> None:
    """Make `target` hold the content of `staged`, atomically and durably: targets.install_at on
    the target's folder, for a caller that has checked the path itself (the scientist's side,
    through safe_target). With `consume` the staged file is renamed into place; otherwise it is
    copied first, so it can serve further targets."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        install_at(staged, fd, target.name, consume=consume)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_libc = ctypes.CDLL(None, use_errno=True)
_syncfs = getattr(_libc, "syncfs", None)
SYNCFS_FROM = 16  # files: below this, one fsync each is cheaper than flushing a filesystem


def fsync_files(paths: list[Path], folder: Path) -> None:
    """Make every file in `paths` (all on the filesystem of `folder`) durable. Many small files
    are flushed by one syncfs(2) of that filesystem (one journal commit, where an fsync each
    costs one commit per file: 1,000 received files took 1,000 commits); a few, or where
    syncfs is not available, by one fsync each."""
    if len(paths) >= SYNCFS_FROM and _syncfs is not None:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in paths:
        fsync_file(path)


def current_sha(target: Path) -> str | None:
    """The digest of the file at `target` (exact, never cached), or None if there is none."""
    try:
        return digest_file(target)
    except FileNotFoundError:
        return None
