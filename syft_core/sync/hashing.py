"""Content digests (BLAKE3-256, 64 hex digits) of files, streamed, with a stat-keyed cache so
an unchanged file is not read again.

BLAKE3 names every content the sync moves (blob keys, message ids, the digests in manifests and
in the sync's state): a cryptographic hash like sha256, with the same 256-bit output and the same
collision and preimage resistance, but ~4x faster on one core here (SIMD over independent
chunks), which matters because every byte is hashed by the sender and again by the receiver.

The cache is an optimisation only: an entry is used when the file's stamp (inode, size, mtime,
ctime: syft_core.filestamp) matches, and a file modified within the last RACY_NS is never cached
(its mtime could tick again without changing, the "racy git" problem), so a cached digest is
always the file's current digest.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import BinaryIO

from blake3 import blake3

from syft_core.atomic import atomic_write_text
from syft_core.filestamp import Stamp, is_racy, stamp
from syft_core.safefile import NotRegularFileError, open_regular
from syft_core.sync.errors import SourceChangedError

_READ_BYTES = 1 << 20


def new_hasher() -> blake3:
    """A streaming hasher for content digests: `.update(bytes)`, `.hexdigest()`."""
    return blake3()


def _digest_stream(fh: BinaryIO) -> tuple[str, int]:
    """The digest of `fh` from its position to EOF, and how many bytes that was. Read through one
    reused buffer (never mmap'ed: a file truncated under a mapping kills the reader with SIGBUS)."""
    hasher = blake3()
    buffer = bytearray(_READ_BYTES)
    view = memoryview(buffer)
    total = 0
    while n := fh.readinto(view):  # type: ignore[attr-defined]
        hasher.update(view[:n])
        total += n
    return hasher.hexdigest(), total


def digest_file(path: Path) -> str:
    with open(path, "rb", buffering=0) as fh:
        return _digest_stream(fh)[0]


def digest_fd(fd: int) -> str:
    """The digest of the open file `fd` from offset 0 (its offset is left at EOF)."""
    os.lseek(fd, 0, os.SEEK_SET)
    with open(fd, "rb", buffering=0, closefd=False) as fh:
        return _digest_stream(fh)[0]


def open_to_send(path: Path, st: os.stat_result | None = None) -> int:
    """A read descriptor of the file a sender is about to hash or send (the caller closes it),
    opened without following a link and, given the stat `st` a scan found it with, still that
    very file. SourceChangedError otherwise: a link or another file swapped in since the scan
    is never read, so its bytes never reach a peer's channel, not even as a refused blob."""
    try:
        fd = open_regular(path)
    except NotRegularFileError as exc:
        raise SourceChangedError(f"{path} changed since it was scanned ({exc})") from exc
    now = os.fstat(fd)
    if st is not None and (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
        os.close(fd)
        raise SourceChangedError(f"{path} was replaced since it was scanned")
    return fd


def digest_as_scanned(path: Path, st: os.stat_result) -> str:
    """The digest of `path`, which a scan found with stat `st` (open_to_send). SourceChangedError
    if the content read is not `st.st_size` bytes long: the file is being written, and a digest
    that disagrees with the size a message declares would make the receiver refuse it."""
    with open(open_to_send(path, st), "rb", buffering=0) as fh:
        digest, size = _digest_stream(fh)  # read from 0 to EOF: the bytes the digest covers
    if size != st.st_size:
        raise SourceChangedError(f"{path} changed while it was being read")
    return digest


def digest_bytes(data: bytes | memoryview) -> str:
    return blake3(data).hexdigest()


class HashCache:
    """Digests of files under one root, keyed by their relative path and stat stamp."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self._entries: dict[str, tuple[Stamp, str]] = {}
        self._vouched: dict[str, tuple[Stamp, str]] = {}
        self._dirty = False
        self._load()

    def _load(self) -> None:
        try:
            raw = json.loads(self.store.read_text(encoding="utf-8"))
            self._entries = {k: (_as_stamp(v[0]), str(v[1])) for k, v in raw.items()}
        except (OSError, ValueError, TypeError, KeyError, IndexError):
            self._entries = {}  # a lost or damaged cache only costs re-hashing

    def digest(self, rel: str, path: Path, st: os.stat_result | None = None) -> str:
        st = st or path.stat()
        now = stamp(st)
        cached = self._vouched.get(rel) or self._entries.get(rel)
        if cached is not None and cached[0] == now:
            return cached[1]
        digest = digest_as_scanned(path, st)
        if not is_racy(st):
            self._entries[rel] = (now, digest)
            self._dirty = True
        return digest

    def vouch(self, rel: str, st: os.stat_result, digest: str) -> None:
        """Take `digest` for the file with stamp `st` without reading it: the caller has just
        verified it and put that very inode in place. Kept in memory only, so it serves this
        object's lifetime (one sync pass) and a write within the same mtime tick can delay a
        re-hash by one pass at most; the file is hashed afresh by the next pass's cache."""
        self._vouched[rel] = (stamp(st), digest)

    def begin_pass(self) -> None:
        """Forget what was vouched for: a cache kept between passes vouches for one pass only."""
        self._vouched.clear()

    def keep_only(self, rels: set[str]) -> None:
        stale = set(self._entries) - rels
        for rel in stale:
            del self._entries[rel]
        self._dirty = self._dirty or bool(stale)

    def save(self) -> None:
        if self._dirty:
            atomic_write_text(self.store, json.dumps(self._entries, separators=(",", ":")))
            self._dirty = False


def _as_stamp(raw: object) -> Stamp:
    """A stored stamp; one of another shape (an older cache's) matches no file: re-hashed."""
    if isinstance(raw, list) and len(raw) == 4 and all(isinstance(x, int) for x in raw):
        return (raw[0], raw[1], raw[2], raw[3])
    return (-1, -1, -1, -1)
