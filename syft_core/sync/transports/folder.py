"""A transport that is just a folder both peers can reach (same machine or a network share).

Zero set-up: point both peers at the same path. Each value is written to a dot-named temporary
file beside its final name (through the descriptor that created it, never reopened by name) and
renamed into place, so a reader never sees half a value. Because the folder is shared, another
peer could plant anything in it: every key is resolved without following symlinks, so that a
write can never be redirected outside the folder, and every value is opened without following a
link or waiting on a fifo and read only if it is a regular file. Anything else where a value or
a folder of this layout belongs (a link, a folder, fifo, socket or device, a file where a folder
belongs) is a MalformedValueError: its writer's fault, never retried. Other failures (the share
missing, permission denied, an I/O error) are a plain TransportError: retried next pass.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from syft_core.safefile import (
    NotRegularFileError,
    copy_capped,
    open_regular,
    read_fd_capped,
    write_new,
)
from syft_core.sync.errors import (
    MalformedValueError,
    MissingKeyError,
    SourceChangedError,
    TransportError,
)
from syft_core.sync.hashing import digest_bytes, new_hasher, open_to_send
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
PIPELINE_BYTES = 8 << 20  # a large value is copied and hashed in steps of this many bytes


# A temporary value or a large received one: read back through the same descriptor to hash what
# landed.
_NEW_TEMPORARY = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# What these mean on a share whose layout only this code creates (regular files in folders): a
# link (ELOOP), a file where a folder belongs (ENOTDIR, EEXIST), a folder where a file belongs
# (EISDIR), a socket or device (ENXIO) was put there.
_MISSHAPEN = {errno.ELOOP, errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.ENXIO}


def _open_value(path: Path, key: str) -> tuple[int, os.stat_result]:
    """A descriptor of the regular file holding `key`, and its stat: opened neither through a
    link nor waiting on a fifo, and checked once open (syft_core.safefile.open_regular).
    Anything else there is its writer's fault: a MalformedValueError."""
    try:
        fd = open_regular(path)
    except NotRegularFileError as exc:
        raise MalformedValueError(f"transport key {key!r}: {exc}; refused") from exc
    try:
        return fd, os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise


def _read_small(path: Path) -> bytes | None:
    """The whole content of `path` if it is a small file, else None (it is copied by the kernel).
    The file may grow while it is read: whatever is read is hashed and checked by the caller."""
    with open(open_to_send(path), "rb", buffering=0) as stream:
        size = os.fstat(stream.fileno()).st_size
        if size > SMALL_FILE_BYTES:
            return None
        return stream.readall()  # to EOF, however far: a grown file then fails its sha check


def _create_temporary(target: Path) -> tuple[str, int]:
    """A new dot-named file beside `target` (invisible to listings), open to write and read."""
    while True:
        tmp = os.path.join(target.parent, f".{target.name}.{secrets.token_hex(6)}.part")
        try:
            return tmp, os.open(tmp, _NEW_TEMPORARY, 0o644)
        except FileExistsError:
            continue


def _copy_digesting(source: int, dest: int, limit: int) -> tuple[int, str]:
    """Copy from `source` to `dest` (kernel copies, as copy_capped) until end of file or `limit`
    bytes, and return how many were copied with the digest of what landed in `dest`: each step is
    read back from `dest` (through the page cache) and hashed on a second thread while the next
    step is copied, so copying and hashing overlap instead of taking turns."""
    hasher = new_hasher()
    buffer = bytearray(PIPELINE_BYTES)

    def digest_landed(offset: int, length: int) -> None:
        view = memoryview(buffer)[:length]
        done = 0
        while done < length:  # a short read: the copy was cut short under us; the digest shows it
            got = os.preadv(dest, [view[done:]], offset + done)
            if got == 0:
                break
            done += got
        hasher.update(view[:done])

    copied = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest-landed") as worker:
        step: Future[None] | None = None
        while copied < limit:
            moved = copy_capped(source, dest, min(PIPELINE_BYTES, limit - copied))
            if step is not None:
                step.result()  # one buffer: the previous step is hashed before it is reused
            if moved == 0:
                step = None
                break
            step = worker.submit(digest_landed, copied, moved)
            copied += moved
        if step is not None:
            step.result()
    return copied, hasher.hexdigest()


def _write_all(fd: int, data: bytes) -> None:
    with open(fd, "wb", closefd=False) as out:
        out.write(data)


@contextmanager
def _os_errors(what: str) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError as exc:
        raise MissingKeyError(f"{what}: not found ({exc.filename})") from exc
    except OSError as exc:
        if exc.errno in _MISSHAPEN:
            raise MalformedValueError(
                f"{what}: {exc.strerror} (something else than this transport's files was put "
                "there); refused"
            ) from exc
        raise TransportError(f"{what}: {exc.strerror or exc}") from exc


class FolderTransport(Transport):
    parallel_transfers = False  # local system calls: threads only add hand-offs
    pack_small_blobs = True  # one value per small blob costs a resolve, create and rename each

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()

    def describe(self) -> str:
        return f"folder:{self.root}"

    def _require_root(self) -> None:
        # The folder is never created here: a missing root usually means an unmounted share, and
        # recreating it would silently split the peers onto two different folders.
        if not self.root.is_dir():
            raise TransportError(f"transport folder {self.root} is missing (share not mounted?)")

    def _path(self, key: str, *, final_link: bool = False) -> Path:
        """The file for `key`, refusing any symlink on the way from the root (MalformedValueError);
        with `final_link`, the key itself may be one (to remove the link, never its target)."""
        self._require_root()
        path = os.fspath(self.root)  # plain strings: this runs several times per file
        segments = check_key(key).split("/")
        last = len(segments) - 1
        for i, segment in enumerate(segments):
            path = os.path.join(path, segment)
            if os.path.islink(path) and not (final_link and i == last):
                raise MalformedValueError(f"transport key {key!r}: {path} is a symlink; refused")
        return Path(path)

    def _mkparents(self, path: Path) -> None:
        with _os_errors(f"creating folder for {path}"):
            path.parent.mkdir(parents=True, exist_ok=True)

    def _commit(self, key: str, fill: Callable[[int], None]) -> None:
        """Write `key` through `fill(fd)`, `fd` being a new temporary file beside it (written
        through that descriptor only: its name could be swapped for a link meanwhile), and
        rename it into place."""
        target = self._path(key)
        self._mkparents(target)
        with _os_errors(f"writing transport key {key!r}"):
            tmp, fd = _create_temporary(target)
            try:
                try:
                    fill(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def put(self, key: str, stream: BinaryIO, callback: ProgressCallback = _no_progress) -> None:
        def fill(fd: int) -> None:
            with open(fd, "wb", closefd=False) as out:
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
            if digest_bytes(data) != expected_sha:
                raise SourceChangedError(f"{path} changed while it was being sent")
            # One write through the descriptor that created the temporary file.
            self._commit(key, lambda fd: _write_all(fd, data))
        callback(len(data) if data is not None else path.stat().st_size)

    def _put_large(self, key: str, path: Path, expected_sha: str) -> None:
        def fill(fd: int) -> None:
            # Kernel copies (copy_file_range/sendfile: no bytes pass through Python), each
            # hashed from the page cache, read back through the same descriptor, while the next
            # is copied.
            with open(open_to_send(path), "rb", buffering=0) as source:
                _, landed = _copy_digesting(source.fileno(), fd, sys.maxsize)
            if landed != expected_sha:
                raise SourceChangedError(f"{path} changed while it was being sent")

        self._commit(key, fill)

    def get(self, key: str) -> BinaryIO:
        path = self._path(key)
        with _os_errors(f"reading transport key {key!r}"):
            fd, _ = _open_value(path, key)
            return os.fdopen(fd, "rb")

    def get_file(
        self, key: str, dest: Path, callback: ProgressCallback = _no_progress, *, max_bytes: int
    ) -> str:
        source = self._path(key)
        with _os_errors(f"reading transport key {key!r}"):
            fd, st = _open_value(source, key)
            with os.fdopen(fd, "rb", buffering=0) as stream:
                size = st.st_size
                if size > max_bytes:
                    raise oversize(key, max_bytes)
                if size <= SMALL_FILE_BYTES:
                    data = read_fd_capped(stream.fileno(), max_bytes + 1)  # +1: "too long"
                    if len(data) > max_bytes:  # it grew since
                        raise oversize(key, max_bytes)
                    write_new(dest, data)
                    callback(len(data))
                    return digest_bytes(data)
                # Kernel copies, each hashed as it landed (from the page cache) while the next
                # is copied: faster than hashing chunk by chunk while copying through Python.
                with open(os.open(dest, _NEW_TEMPORARY, 0o644), "wb", buffering=0) as out:
                    copied, landed = _copy_digesting(fd, out.fileno(), max_bytes + 1)
            if copied > max_bytes:
                raise oversize(key, max_bytes)
            callback(copied)
            return landed

    def list_keys(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        self._require_root()
        base_dir = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self._folder(base_dir)
        if start is None:
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

    def _folder(self, key: str) -> Path | None:
        """The folder `key` (the root if empty), or None if there is none: a listing never goes
        through a link, on the way or at the end (a linked folder holds no keys)."""
        path = os.fspath(self.root)
        for segment in key.split("/") if key else []:
            path = os.path.join(path, segment)
            try:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    return None
            except OSError:
                return None
        return Path(path)

    def list_dirs(self, prefix: str) -> list[str]:
        self._require_root()
        folder = self._folder(check_prefix(prefix.rstrip("/")))
        if folder is None:
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
        folder = self._path(prefix.rstrip("/"), final_link=True)
        with _os_errors(f"deleting transport prefix {prefix!r}"):
            if folder.is_symlink():  # planted where a folder belongs: the link itself goes
                folder.unlink()
            else:
                shutil.rmtree(folder, ignore_errors=not folder.exists())  # never follows links
        self._prune(folder.parent)

    def delete(self, key: str) -> None:
        # A link at the key itself is removed (unlink never follows it); one on the way is not.
        path = self._path(key, final_link=True)
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
