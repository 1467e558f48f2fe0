"""Packs: a message's small blobs in a few transport values instead of one value each.

On a transport where each value costs a few system calls of its own (a shared folder: resolve
without following links, create, write, rename; then open, read, unlink on the other side), a
thousand small blobs cost a thousand of each. A pack holds many of them in one value, under the
message like any blob (`blobs/<id>/pack-<n>`), written before the manifest.

Layout: MAGIC, a 4-byte entry count, then per entry its raw 32-byte BLAKE3 digest and 8-byte length,
then the contents in that order. Nothing in a pack is trusted: a reader refuses a pack larger
than MAX_PACK_BYTES, entries longer than PACK_BLOB_BYTES, lengths that do not add up to the
pack (CorruptMessageError, like a bad blob, retried), and entries its message does not declare
or that an earlier pack of it held (InvalidMessageError: refused for good, as a sender packs
each blob once); it proves every content it takes against its digest and the size its message
declares. Contents the reader does not want (changes it refused) are skipped unread. A blob no
pack holds is read as its own value.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from syft_core.safefile import read_fd_capped
from syft_core.sync.errors import CorruptMessageError, InvalidMessageError, SourceChangedError
from syft_core.sync.hashing import digest_bytes, open_to_send

MAGIC = b"syft-pack/1\n"
PACK_BLOB_BYTES = 1 << 20  # blobs up to this size are packed; larger ones travel on their own
PACK_FROM = 16  # small blobs in one message: below this, each travels on its own as before
MAX_PACK_BYTES = 32 << 20  # a writer starts a new pack before this; a reader refuses more
_COUNT = struct.Struct(">I")
_ENTRY = struct.Struct(">32sQ")
MAX_PACK_ENTRIES = (MAX_PACK_BYTES - len(MAGIC) - _COUNT.size) // _ENTRY.size


def pack_name(index: int) -> str:
    return f"pack-{index}"


def read_source(path: Path, sha: str) -> bytes:
    """The content of the regular file `path` if it still hashes to `sha` (the digest a scan
    found), else SourceChangedError: opened without following a link, at most PACK_BLOB_BYTES
    read, so a file replaced or grown since the scan is caught and never sent."""
    try:
        fd = open_to_send(path)
    except FileNotFoundError as exc:
        raise SourceChangedError(f"{path} changed while it was being sent ({exc})") from exc
    try:
        data = read_fd_capped(fd, PACK_BLOB_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > PACK_BLOB_BYTES or digest_bytes(data) != sha:
        raise SourceChangedError(f"{path} changed while it was being sent")
    return data


def read_as_scanned(path: Path, st: os.stat_result) -> bytes:
    """The content of the small file `path`, which a scan found with stat `st`; opened without
    following a link. SourceChangedError if it is no longer a regular file or not `st.st_size`
    bytes long: it is being written (hashing.digest_as_scanned's check). The caller hashes what
    it got and may send these very bytes in a pack: the blob then is what was hashed."""
    fd = open_to_send(path, st)
    try:
        data = read_fd_capped(fd, st.st_size + 1)
    finally:
        os.close(fd)
    if len(data) != st.st_size:
        raise SourceChangedError(f"{path} changed while it was being read")
    return data


def build(blobs: Mapping[str, bytes]) -> bytes:
    """One pack of `blobs` (sha -> content); the caller keeps it within MAX_PACK_BYTES."""
    parts = [MAGIC, _COUNT.pack(len(blobs))]
    parts += [_ENTRY.pack(bytes.fromhex(sha), len(data)) for sha, data in blobs.items()]
    parts += blobs.values()
    return b"".join(parts)


def group(sizes: Mapping[str, int]) -> Iterator[list[str]]:
    """The shas of `sizes` (sha -> size) to pack, split into packs that each stay within
    MAX_PACK_BYTES: those up to PACK_BLOB_BYTES, if there are at least PACK_FROM of them."""
    sizes = {sha: size for sha, size in sizes.items() if size <= PACK_BLOB_BYTES}
    if len(sizes) < PACK_FROM:
        return
    batch: list[str] = []
    total = len(MAGIC) + _COUNT.size
    for sha, size in sizes.items():
        cost = _ENTRY.size + size
        if batch and total + cost > MAX_PACK_BYTES:
            yield batch
            batch, total = [], len(MAGIC) + _COUNT.size
        batch.append(sha)
        total += cost
    if batch:
        yield batch


def unpack(
    data: bytes,
    declared: dict[str, int],
    wanted: Mapping[str, int],
    write: Callable[[str, bytes], None],
    *,
    where: str,
) -> set[str]:
    """Verify the pack `data` and `write(sha, content)` each content of `wanted` (sha -> declared
    size) it holds, after proving it; return those shas. `declared`: the contents the message
    declares that no earlier pack of it held; each entry found is taken out of it.

    InvalidMessageError (refused for good) for an entry the message does not declare, or one an
    earlier pack held: a sender packs each of its blobs once, so such a pack is a flood, and no
    more of it is read than its index up to that entry. CorruptMessageError (retried) for a
    malformed pack, a content longer than declared or one that does not match its digest."""
    if len(data) > MAX_PACK_BYTES:
        raise CorruptMessageError(f"{where} is larger than {MAX_PACK_BYTES:,} bytes")
    head = len(MAGIC) + _COUNT.size
    if len(data) < head or not data.startswith(MAGIC):
        raise CorruptMessageError(f"{where} is not a pack")
    (count,) = _COUNT.unpack_from(data, len(MAGIC))
    body = head + count * _ENTRY.size
    if count > MAX_PACK_ENTRIES or body > len(data):
        raise CorruptMessageError(f"{where}: its index is longer than the pack")
    if count > len(declared):
        raise InvalidMessageError(f"{where} holds more contents than its message declares")
    entries: list[tuple[str, int]] = []
    for i in range(count):
        digest, length = _ENTRY.unpack_from(data, head + i * _ENTRY.size)
        sha = digest.hex()
        if length > PACK_BLOB_BYTES:
            raise CorruptMessageError(f"{where}: an oversized entry")
        size = declared.pop(sha, None)
        if size is None:
            raise InvalidMessageError(
                f"{where} holds content {sha[:12]} its message does not declare, or again"
            )
        if length > size:
            raise CorruptMessageError(
                f"{where} blob {sha[:12]} is longer than its declared {size:,} bytes"
            )
        entries.append((sha, length))
    if sum(length for _, length in entries) != len(data) - body:
        raise CorruptMessageError(f"{where}: its lengths do not add up to its size")
    taken: set[str] = set()
    view = memoryview(data)
    offset = body
    for sha, length in entries:
        start, offset = offset, offset + length
        if sha not in wanted:
            continue  # a content this receiver refused: never looked at
        if length > wanted[sha]:
            raise CorruptMessageError(f"{where} blob {sha[:12]} is longer than declared")
        content = view[start:offset]
        if digest_bytes(content) != sha:
            raise CorruptMessageError(f"{where} blob {sha[:12]} does not match its digest")
        write(sha, bytes(content))
        taken.add(sha)
    return taken
