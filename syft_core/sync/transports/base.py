"""The transport interface: a flat key/value store of byte streams that both peers can reach.

Like httpx's `_transports/`, each concrete transport lives in its own module and the sync engine
sees only this interface. Keys are `/`-separated, relative, and never contain `..`, empty or
dot-led segments (dot names are reserved for a transport's own temporary files).
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from syft_core.sync.errors import (
    InvalidKeyError,
    MalformedValueError,
    OversizeError,
    SourceChangedError,
)
from syft_core.sync.hashing import new_hasher, open_to_send

CHUNK_SIZE = 1 << 20
ProgressCallback = Callable[[int], None]


def _no_progress(_: int) -> None:
    return None


def check_key(key: str) -> str:
    """Return `key` if it is a safe transport key, else raise InvalidKeyError."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidKeyError(f"transport key {key!r} is empty, absolute or has a bad character")
    for segment in key.split("/"):
        if not segment or segment.startswith(".") or segment == "..":
            raise InvalidKeyError(f"transport key {key!r} has an empty, '..' or dot segment")
    return key


def oversize(key: str, max_bytes: int) -> OversizeError:
    return OversizeError(f"transport key {key!r} holds more than the {max_bytes:,} bytes expected")


def check_prefix(prefix: str) -> str:
    """A listing prefix: a key, a key followed by `/`, or empty (everything)."""
    if prefix:
        check_key(prefix.removesuffix("/"))
    return prefix


class HashingReader(io.RawIOBase):
    """A forward-only reader that hashes everything read through it."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self._digest = new_hasher()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        self._digest.update(data)
        buffer[: len(data)] = data
        return len(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class Transport(ABC):
    """A place both peers can reach. Writing a key is atomic: readers never see half a value."""

    # Whether blobs should be moved several at a time: yes where each transfer waits on a network
    # round trip; no where a transfer is a few local system calls and threads only add hand-offs.
    parallel_transfers: ClassVar[bool] = True
    # Whether a message's small blobs should travel in packs (syft_core.sync.packs): yes where
    # each value costs system calls of its own and a pack only a few more bytes in one value.
    pack_small_blobs: ClassVar[bool] = False

    @abstractmethod
    def put(self, key: str, stream: BinaryIO, callback: ProgressCallback = _no_progress) -> None:
        """Store everything `stream` yields under `key`, replacing any earlier value."""

    @abstractmethod
    def get(self, key: str) -> BinaryIO:
        """A readable stream of the value at `key` (caller closes it); MissingKeyError if absent."""

    @abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]:
        """Every key starting with `prefix`, sorted."""

    @abstractmethod
    def list_dirs(self, prefix: str) -> list[str]:
        """The names of the `/`-separated children directly under `prefix/` that hold keys."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; removing an absent key is not an error (deletes are idempotent)."""

    def put_bytes(self, key: str, data: bytes) -> None:
        self.put(key, io.BytesIO(data))

    def get_bytes(self, key: str, *, max_size: int) -> bytes:
        """The whole value at `key`, refused if larger than `max_size` bytes (a
        MalformedValueError: whoever wrote it is at fault, re-reading it would not help)."""
        parts: list[bytes] = []
        size = 0
        with self.get(key) as stream:  # chunked: read(max_size) would allocate max_size at once
            while chunk := stream.read(CHUNK_SIZE):
                size += len(chunk)
                if size > max_size:
                    raise MalformedValueError(
                        f"transport key {key!r} is larger than {max_size:,} bytes; refused"
                    )
                parts.append(chunk)
        return b"".join(parts)

    def put_file(
        self, key: str, path: Path, expected_sha: str, callback: ProgressCallback = _no_progress
    ) -> None:
        """Store the file at `path` under `key` only if its content hashes to `expected_sha`.

        The content is hashed as it is sent, so a file modified since it was scanned is caught
        (SourceChangedError) instead of becoming a blob whose key lies about its content.
        """
        with open(open_to_send(path), "rb") as fh:
            reader = HashingReader(fh)
            self.put(key, io.BufferedReader(reader, CHUNK_SIZE), callback)
        if reader.hexdigest() != expected_sha:
            self.delete(key)
            raise SourceChangedError(f"{path} changed while it was being sent")

    def get_file(
        self, key: str, dest: Path, callback: ProgressCallback = _no_progress, *, max_bytes: int
    ) -> str:
        """Write the value at `key` to the new file `dest` in chunks; return its content digest.
        OversizeError as soon as it turns out longer than `max_bytes`."""
        digest = new_hasher()
        total = 0
        with self.get(key) as stream, dest.open("xb") as out:
            while chunk := stream.read(CHUNK_SIZE):
                total += len(chunk)
                if total > max_bytes:
                    raise oversize(key, max_bytes)
                digest.update(chunk)
                out.write(chunk)
                callback(len(chunk))
        return digest.hexdigest()

    def delete_prefix(self, prefix: str) -> None:
        for key in self.list_keys(check_prefix(prefix)):
            self.delete(key)

    def describe(self) -> str:
        return type(self).__name__
