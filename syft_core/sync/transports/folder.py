"""A transport that is just a folder both peers can reach (same machine or a network share).

Zero set-up: point both peers at the same path. Each value is written to a dot-named temporary
file beside its final name and renamed into place, so a reader never sees half a value. Because
the folder is shared, another peer could plant a symlink in it; every key is resolved without
following symlinks so that a write can never be redirected outside the folder.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from syft_core.sync.errors import MissingKeyError, SourceChangedError, TransportError
from syft_core.sync.hashing import sha256_bytes, sha256_file
from syft_core.sync.transports.base import (
    CHUNK_SIZE,
    ProgressCallback,
    Transport,
    _no_progress,
    check_key,
    check_prefix,
    oversize,
)

SMALL_FILE_BYTES = 1 << 20  # below this, one read and write beat a kernel copy's set-up


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _read_upto(stream: BinaryIO, limit: int) -> bytes:
    """What is left in `stream`, but never more than `limit` + 1 bytes (so "too long" shows)."""
    parts: list[bytes] = []
    left = limit + 1
    while left > 0 and (chunk := stream.read(min(left, CHUNK_SIZE))):
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _read_small(path: Path) -> bytes | None:
    """The whole content of `path` if it is a small file, else None (it is copied by the kernel).
    The file may grow while it is read: whatever is read is hashed and checked by the caller."""
    with open(path, "rb", buffering=0) as stream:
        size = os.fstat(stream.fileno()).st_size
        if size > SMALL_FILE_BYTES:
            return None
        return stream.readall()  # to EOF, however far: a grown file then fails its sha check


_NO_KERNEL_COPY = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}


def _copy_upto(source: int, dest: int, limit: int) -> int:
    """Copy from `source` to `dest` in the kernel until EOF or `limit` + 1 bytes; return how
    many. copy_file_range where the filesystems allow it, sendfile otherwise."""
    copied = 0
    kernel_copy = True
    while copied <= limit:
        count = min(limit + 1 - copied, 1 << 30)
        if kernel_copy:
            try:
                moved = os.copy_file_range(source, dest, count)
            except OSError as exc:
                if exc.errno not in _NO_KERNEL_COPY or copied:
                    raise
                kernel_copy = False
                continue
        else:
            moved = os.sendfile(dest, source, None, count)
        if moved == 0:
            break
        copied += moved
    return copied


def _create_temporary(target: Path) -> tuple[str, int]:
    """A new dot-named file beside `target` (invisible to listings), opened for writing."""
    while True:
        tmp = os.path.join(target.parent, f".{target.name}.{secrets.token_hex(6)}.part")
        try:
            return tmp, os.open(tmp, _NEW_FILE, 0o644)
        except FileExistsError:
            continue


@contextmanager
def _os_errors(what: str) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError as exc:
        raise MissingKeyError(f"{what}: not found ({exc.filename})") from exc
    except OSError as exc:
        raise TransportError(f"{what}: {exc.strerror or exc}") from exc


class FolderTransport(Transport):
    parallel_transfers = False  # local system calls: threads only add hand-offs

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()

    def describe(self) -> str:
        return f"folder:{self.root}"

    def _require_root(self) -> None:
        # The folder is never created here: a missing root usually means an unmounted share, and
        # recreating it would silently split the peers onto two different folders.
        if not self.root.is_dir():
            raise TransportError(f"transport folder {self.root} is missing (share not mounted?)")

    def _path(self, key: str) -> Path:
        """The file for `key`, refusing any symlink on the way from the root."""
        self._require_root()
        path = os.fspath(self.root)  # plain strings: this runs several times per file
        for segment in check_key(key).split("/"):
            path = os.path.join(path, segment)
            if os.path.islink(path):
                raise TransportError(f"transport key {key!r}: {path} is a symlink; refused")
        return Path(path)

    def _mkparents(self, path: Path) -> None:
        with _os_errors(f"creating folder for {path}"):
            path.parent.mkdir(parents=True, exist_ok=True)

    def _commit(self, key: str, fill: Callable[[str], None]) -> None:
        """Write `key` through `fill(temp_path)` and rename it into place."""
        target = self._path(key)
        self._mkparents(target)
        with _os_errors(f"writing transport key {key!r}"):
            tmp, fd = _create_temporary(target)
            os.close(fd)
            try:
                fill(tmp)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def put(self, key: str, stream: BinaryIO, callback: ProgressCallback = _no_progress) -> None:
        def fill(tmp: str) -> None:
            with open(tmp, "wb") as out:
                while chunk := stream.read(CHUNK_SIZE):
                    out.write(chunk)
                    callback(len(chunk))

        self._commit(key, fill)

    def put_file(
        self, key: str, path: Path, expected_sha: str, callback: ProgressCallback = _no_progress
    ) -> None:
        data = _read_small(path)
        if data is None:
            self._put_large(key, path, expected_sha)
        else:
            # Hashed before anything is written: a changed source leaves no trace at all.
            if sha256_bytes(data) != expected_sha:
                raise SourceChangedError(f"{path} changed while it was being sent")
            self._write_small(key, data)
        callback(len(data) if data is not None else path.stat().st_size)

    def _write_small(self, key: str, data: bytes) -> None:
        """Write `key` in one go: create a fresh temporary file, write, rename into place."""
        target = self._path(key)
        self._mkparents(target)
        with _os_errors(f"writing transport key {key!r}"):
            tmp, fd = _create_temporary(target)
            try:
                with os.fdopen(fd, "wb", buffering=0) as out:
                    out.write(data)
                os.replace(tmp, target)
            except BaseException:
                os.unlink(tmp)
                raise

    def _put_large(self, key: str, path: Path, expected_sha: str) -> None:
        def fill(tmp: str) -> None:
            # shutil.copyfile uses the kernel's copy_file_range/sendfile (no bytes pass through
            # Python); the copy is then hashed from the page cache.
            shutil.copyfile(path, tmp)
            if sha256_file(Path(tmp)) != expected_sha:
                raise SourceChangedError(f"{path} changed while it was being sent")

        self._commit(key, fill)

    def get(self, key: str) -> BinaryIO:
        path = self._path(key)
        with _os_errors(f"reading transport key {key!r}"):
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            return os.fdopen(fd, "rb")

    def get_file(
        self, key: str, dest: Path, callback: ProgressCallback = _no_progress, *, max_bytes: int
    ) -> str:
        source = self._path(key)
        with _os_errors(f"reading transport key {key!r}"):
            fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb", buffering=0) as stream:
                size = os.fstat(fd).st_size
                if size > max_bytes:
                    raise oversize(key, max_bytes)
                if size <= SMALL_FILE_BYTES:
                    data = _read_upto(stream, max_bytes)
                    if len(data) > max_bytes:  # it grew since
                        raise oversize(key, max_bytes)
                    with open(os.open(dest, _NEW_FILE, 0o644), "wb", buffering=0) as out:
                        out.write(data)
                    callback(len(data))
                    return sha256_bytes(data)
                # A kernel copy, then the sha256 of what landed (from the page cache): about
                # twice as fast as hashing chunk by chunk while copying through Python.
                with open(os.open(dest, _NEW_FILE, 0o644), "wb", buffering=0) as out:
                    copied = _copy_upto(fd, out.fileno(), max_bytes)
            if copied > max_bytes:
                raise oversize(key, max_bytes)
            callback(copied)
            return sha256_file(dest)

    def list_keys(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        self._require_root()
        base_dir = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / base_dir if base_dir else self.root
        if not start.is_dir() or start.is_symlink():
            return []
        keys: list[str] = []
        with _os_errors(f"listing transport prefix {prefix!r}"):
            for dirpath, dirnames, filenames in os.walk(start):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                rel_dir = Path(dirpath).relative_to(self.root).as_posix()
                for name in filenames:
                    if name.startswith("."):
                        continue
                    key = name if rel_dir == "." else f"{rel_dir}/{name}"
                    if key.startswith(prefix) and not Path(dirpath, name).is_symlink():
                        keys.append(key)
        return sorted(keys)

    def list_dirs(self, prefix: str) -> list[str]:
        folder = self._path(prefix.rstrip("/"))
        if not folder.is_dir():
            return []
        with _os_errors(f"listing transport prefix {prefix!r}"):
            return sorted(
                e.name
                for e in os.scandir(folder)
                if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
            )

    def delete_prefix(self, prefix: str) -> None:
        if not prefix.endswith("/"):
            super().delete_prefix(prefix)
            return
        folder = self._path(prefix.rstrip("/"))
        with _os_errors(f"deleting transport prefix {prefix!r}"):
            shutil.rmtree(folder, ignore_errors=not folder.exists())  # never follows symlinks
        self._prune(folder.parent)

    def delete(self, key: str) -> None:
        path = self._path(key)
        with _os_errors(f"deleting transport key {key!r}"):
            path.unlink(missing_ok=True)
        self._prune(path.parent)

    def _prune(self, folder: Path) -> None:
        """Remove folders left empty by a delete, up to (not including) the root."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent
