"""A file's stamp: what changes whenever its content, its inode or its metadata does, read from
one stat without opening the file. Every cache keyed on a file (digests, parsed permission
files, peer lists, job listings) uses it, so "unchanged" means the same thing everywhere.

ctime is in it because no one can set it: a rewrite that puts the old mtime back (`touch -d`,
`rsync -t`, `tar x`, `cp -p`) still moves ctime, where a stamp of size and mtime alone would
keep serving the old digest and never publish the new content.

Timestamps are coarse (a clock tick), so a file changed within RACY_NS of being stamped may
change again without its stamp moving: `is_racy` says when a stamp must not be trusted yet.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

Stamp = tuple[int, int, int, int]  # inode, size, mtime_ns, ctime_ns
RACY_NS = 2_000_000_000


def stamp(st: os.stat_result) -> Stamp:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def lstamp(path: str | Path) -> Stamp | None:
    """The stamp of `path` itself (a link is not followed); None if there is nothing there."""
    try:
        return stamp(os.lstat(path))
    except FileNotFoundError:
        return None


def is_racy(st: os.stat_result, now_ns: int | None = None) -> bool:
    """Whether `st` was changed too recently for its stamp to be trusted."""
    now = time.time_ns() if now_ns is None else now_ns
    return now - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS
