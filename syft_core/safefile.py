"""Opening a file someone else could have put there: never a link, never blocking, never a folder.

A path a peer, a submitter or a job controls may name a symlink (to be followed elsewhere), a fifo
(to hang the reader), a device or a folder (to crash a reader that expects bytes). `open_regular`
opens without following a link at the last component, without blocking, and checks the opened
file itself (fstat), so a swap after any earlier check is caught too.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


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
    """The path is a link, fifo, device, socket or folder; the message says which."""


def open_regular(path: Path | str) -> int:
    """A read descriptor of the regular file at `path` (the caller closes it). FileNotFoundError
    when absent; NotRegularFileError for anything else than a regular file."""
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFileError(
                f"{path}: is a symlink, not a regular file (not followed)"
            ) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else file_kind(st.st_mode)
        raise NotRegularFileError(f"{path}: is {kind}, not a regular file")
    return fd
