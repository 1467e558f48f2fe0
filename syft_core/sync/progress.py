"""How the sync reports transfer progress: the engine counts bytes, the caller draws (or not)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

Advance = Callable[[int], None]


class Progress(Protocol):
    def transfer(self, description: str, total_bytes: int) -> AbstractContextManager[Advance]:
        """A context for one batch transfer; the yielded callable is told each chunk's size."""
        ...


class NoProgress:
    @contextmanager
    def transfer(self, description: str, total_bytes: int) -> Iterator[Advance]:
        yield lambda _n: None
