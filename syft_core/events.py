"""The datasite's append-only event log: one JSON object per line, one line per state change.

Lines are appended with a single `write()` on an O_APPEND descriptor, so concurrent writers (the
runner, the CLI, the sync) never interleave within a line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

_BLOCK = 64 * 1024
CLOCK_SLACK = timedelta(seconds=5)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    when: datetime = Field(default_factory=utcnow)
    who: str
    what: str
    path: str
    details: dict[str, Any] = Field(default_factory=dict)


class EventLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, who: str, what: str, path: str, **details: Any) -> Event:
        event = Event(who=who, what=what, path=path, details=details)
        self._write((event.model_dump_json() + "\n").encode("utf-8"))
        return event

    def append_many(self, events: list[Event]) -> None:
        """Append `events` in order with one write (a sync applying a message logs each of its
        files: one open and write for all, not one each)."""
        if events:
            self._write("".join(e.model_dump_json() + "\n" for e in events).encode("utf-8"))

    def _write(self, lines: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # A crash can leave a torn last line without its newline; start on a fresh line so
            # these events are not glued to it (readers skip the torn one).
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                lines = b"\n" + lines
            os.write(fd, lines)
        finally:
            os.close(fd)

    def __iter__(self) -> Iterator[Event]:
        """Yield events in order; a torn or corrupt line (e.g. after a crash) is skipped."""
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            for raw in fh:
                try:
                    yield Event.model_validate_json(raw)
                except ValueError:
                    continue

    def tail(self, n: int) -> list[Event]:
        return list(self)[-n:]

    def recorded_since(self, what: str, path: str, since: datetime) -> bool:
        """Whether an event `what` on `path` was appended at or after `since`. Reads backwards
        from the end and stops at the first older event, so it costs what happened since, not
        the log's length. Writers' clocks may differ a little: events up to CLOCK_SLACK older
        than `since` are still looked at."""
        stop = since - CLOCK_SLACK
        for raw in self._lines_backwards():
            try:
                event = Event.model_validate_json(raw)
            except ValueError:
                continue
            if event.when < stop:
                return False
            if event.what == what and event.path == path and event.when >= since:
                return True
        return False

    def _lines_backwards(self) -> Iterator[bytes]:
        """The log's lines, last first, read in fixed-size blocks."""
        try:
            fh = self.path.open("rb")
        except FileNotFoundError:
            return
        with fh:
            end = fh.seek(0, os.SEEK_END)
            carry = b""
            while end > 0:
                start = max(0, end - _BLOCK)
                fh.seek(start)
                block = fh.read(end - start) + carry
                end = start
                lines = block.split(b"\n")
                carry = lines.pop(0) if start > 0 else b""
                yield from (line for line in reversed(lines) if line.strip())
            if carry.strip():
                yield carry
