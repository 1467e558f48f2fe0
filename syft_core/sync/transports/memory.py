"""An in-process transport for unit tests: a dict of bytes behind a lock."""

from __future__ import annotations

import io
import threading
from typing import BinaryIO

from syft_core.sync.errors import MissingKeyError
from syft_core.sync.transports.base import (
    CHUNK_SIZE,
    ProgressCallback,
    Transport,
    _no_progress,
    check_key,
    check_prefix,
)


class MemoryTransport(Transport):
    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, stream: BinaryIO, callback: ProgressCallback = _no_progress) -> None:
        check_key(key)
        parts = []
        while chunk := stream.read(CHUNK_SIZE):
            parts.append(chunk)
            callback(len(chunk))
        with self._lock:
            self._data[key] = b"".join(parts)

    def get(self, key: str) -> BinaryIO:
        check_key(key)
        with self._lock:
            if key not in self._data:
                raise MissingKeyError(f"no key {key!r} in the memory transport")
            return io.BytesIO(self._data[key])

    def list_keys(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        with self._lock:
            return sorted(k for k in self._data if k.startswith(prefix))

    def list_dirs(self, prefix: str) -> list[str]:
        base = check_prefix(prefix.rstrip("/") + "/")
        rests = [k[len(base) :] for k in self.list_keys(base)]
        return sorted({rest.split("/", 1)[0] for rest in rests if "/" in rest})

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._data.pop(key, None)

    def describe(self) -> str:
        return "memory"
