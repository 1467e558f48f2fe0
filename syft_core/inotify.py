"""inotify(7) through libc (ctypes): one small wrapper shared by the runner's gateway watcher
and the sync's owner scan. Linux only; `Inotify()` raises OSError where it is not available
(another system, or the per-user limit of instances reached), and every caller falls back to
scanning without it.
"""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")


class Inotify:
    """One non-blocking inotify instance: add and remove watches, read what is queued."""

    def __init__(self) -> None:
        try:
            self._libc = ctypes.CDLL(None, use_errno=True)
            init = self._libc.inotify_init1
        except (OSError, AttributeError) as exc:
            raise OSError(f"inotify is not available here: {exc}") from exc
        self.fd = self._check(init(IN_NONBLOCK | IN_CLOEXEC), "inotify_init1")

    @staticmethod
    def _check(result: int, what: str) -> int:
        if result < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"{what}: {os.strerror(code)}")
        return result

    def add(self, path: Path | str, mask: int) -> int:
        return self._check(
            self._libc.inotify_add_watch(self.fd, os.fsencode(path), ctypes.c_uint32(mask)),
            f"inotify_add_watch {path}",
        )

    def remove(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fd, wd)  # EINVAL when already gone: nothing to do

    def read(self) -> list[tuple[int, int, str]]:
        """(watch descriptor, mask, name) of what is queued now, up to 64 KiB of it; [] if none."""
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return []
        events, offset = [], 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size
            name = data[offset : offset + length].rstrip(b"\0")
            offset += length
            events.append((wd, mask, os.fsdecode(name)))
        return events

    def read_all(self) -> list[tuple[int, int, str]]:
        """Everything queued now (read until the queue is empty)."""
        events: list[tuple[int, int, str]] = []
        while chunk := self.read():
            events.extend(chunk)
        return events

    def close(self) -> None:
        os.close(self.fd)
