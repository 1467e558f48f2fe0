"""Opening, reading and copying a file someone else could have put there: never a link, never
blocking, never a folder, never more bytes than the caller allows.

A path a peer, a submitter or a job controls may name a symlink (to be followed elsewhere), a fifo
(to hang the reader), a device or a folder (to crash a reader that expects bytes), or a file far
larger than expected (or growing while it is read). `open_regular` opens without following a link
at the last component, without blocking, and checks the opened file itself (fstat), so a swap
after any earlier check is caught too; `read_capped` reads such a file up to a cap, and
`copy_capped` copies an open one up to a cap. A caller that wants to tell "too large" from "just
fits" asks for one byte more than its limit.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# A file made here is new: never an existing one, never through a link at its name.
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_MAX_KERNEL_COPY = 1 << 30  # per call: copy_file_range and sendfile take a size_t, keep it sane
# copy_file_range cannot copy between these two files (other filesystems, an old kernel): the
# same copy through sendfile works.
_NO_KERNEL_COPY = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}


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


class NotRegularFileError(OSError):
    """The path is a link, fifo, device, socket or folder; `kind` and the message say which."""

    def __init__(self, path: Path | str, kind: str) -> None:
        followed = " (not followed)" if kind == "a symlink" else ""
        super().__init__(f"{path}: is {kind}, not a regular file{followed}")
        self.kind = kind


def open_regular(path: Path | str) -> int:
    """A read descriptor of the regular file at `path` (the caller closes it). FileNotFoundError
    when absent; NotRegularFileError for anything else than a regular file."""
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFileError(path, "a symlink") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else file_kind(st.st_mode)
        raise NotRegularFileError(path, kind)
    return fd


def read_fd_capped(fd: int, limit: int) -> bytes:
    """At most `limit` bytes from `fd`'s offset on, stopping early only at end of file (a short
    read is not the end: the loop goes on)."""
    parts: list[bytes] = []
    left = limit
    while left > 0 and (chunk := os.read(fd, min(left, _CHUNK))):
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def read_capped(path: Path | str, limit: int) -> bytes:
    """At most the first `limit` bytes of the regular file at `path` (open_regular's errors:
    FileNotFoundError, NotRegularFileError, ...). Ask for limit + 1 to see "too large"."""
    fd = open_regular(path)
    try:
        return read_fd_capped(fd, limit)
    finally:
        os.close(fd)


def copy_capped(source: int, dest: int, limit: int) -> int:
    """Copy from descriptor `source` (a regular file, e.g. from open_regular) to `dest` until end
    of file or `limit` bytes, whichever comes first; returns how many were copied. The kernel
    copies (copy_file_range, else sendfile): no byte passes through Python. Ask for limit + 1
    to see "too large"; a file growing while it is copied never gets past the cap."""
    copied = 0
    kernel_copy = True
    while copied < limit:
        count = min(limit - copied, _MAX_KERNEL_COPY)
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


def write_new(path: Path | str, data: bytes) -> None:
    """`data` in the new file `path` (NEW_FILE: never an existing one, never through a link)."""
    fd = os.open(path, NEW_FILE, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
