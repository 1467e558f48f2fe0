"""Bounded log streaming: a task's stdout and stderr into `logs/stdout.txt`/`stderr.txt`.

A backend (executor/backends/) hands each stream over as an iterator of chunks; a local
container's are attached to before it starts (like `docker run`), lossless and live, so `logs
--follow` on the owner's side sees output while the job runs. Past the cap one explicit marker
line is written and that stream's source is closed, which detaches the runner: the job is never
blocked by a reader that stopped reading. A job re-attached after a runner restart is read from
the engine's own log copy instead, which the task's log options bound, so very chatty jobs may
have lost early lines there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def truncation_line(stream: str, cap: int) -> bytes:
    return (
        f"\n[syft-runner] {stream} truncated: the job wrote more than {cap} bytes; "
        "the rest was discarded\n"
    ).encode()


class BoundedLog:
    """An append-only file that keeps the first `cap` bytes and then one truncation marker."""

    def __init__(self, path: Path, cap: int, stream: str) -> None:
        self.path = path
        self.cap = cap
        self.stream = stream
        self.written = 0
        self.truncated = False
        # O_TRUNC: a re-attached runner rewrites the log from the container's first byte.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        self._fd = os.open(path, flags, 0o644)

    def write(self, data: bytes) -> bool:
        """Append `data` up to the cap; False once the cap is reached (stop reading)."""
        if self.truncated:
            return False
        room = self.cap - self.written
        _write_all(self._fd, data[:room])
        self.written += min(room, len(data))
        if len(data) > room:
            self.truncated = True
            _write_all(self._fd, truncation_line(self.stream, self.cap))
            return False
        return True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def prepare_logs_dir(folder: Path) -> None:
    """Create `folder` as a real directory; a link or file in its place is removed first, so the
    runner never writes through something a peer planted."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        folder.unlink()
    folder.mkdir(mode=0o755, exist_ok=True)


class LogStreamer:
    """Copies both streams of one container into capped files, one thread per stream."""

    def __init__(self, stdout_path: Path, stderr_path: Path, cap: int) -> None:
        prepare_logs_dir(stdout_path.parent)
        self._logs = {
            "stdout": BoundedLog(stdout_path, cap, "stdout"),
            "stderr": BoundedLog(stderr_path, cap, "stderr"),
        }
        self._threads: list[threading.Thread] = []
        self._closers: list[Callable[[], None]] = []
        self.errors: list[str] = []

    def stream(self, name: str, chunks: Iterator[bytes], close: Callable[[], None]) -> None:
        """Copy `chunks` (any engine's output of stream `name`: "stdout" or "stderr") into the
        capped file on a thread of its own; `close` ends the source early (cap reached)."""
        self._spawn(self._copy, (name, chunks, close), close, f"log-{name}")

    def stream_both(self, frames: Iterator[tuple[str, bytes]], close: Callable[[], None]) -> None:
        """Copy one source carrying both streams (frames of ("stdout" | "stderr", bytes), as a
        local container's single attach connection gives them) on one thread. Past one stream's
        cap its frames are read and dropped, so the job never blocks; `close` ends the source
        once both are capped."""
        self._spawn(self._copy_both, (frames, close), close, "log-both")

    def _spawn(
        self,
        target: Callable[..., None],
        args: tuple[Any, ...],
        close: Callable[[], None],
        name: str,
    ) -> None:
        self._closers.append(close)
        thread = threading.Thread(target=target, args=args, daemon=True, name=name)
        self._threads.append(thread)
        thread.start()

    def join(self, timeout: float) -> bool:
        """Wait for both streams to end (they end when the container stops); True if they did."""
        for thread in self._threads:
            thread.join(timeout)
        finished = not any(thread.is_alive() for thread in self._threads)
        if finished:
            for sink in self._logs.values():
                sink.close()
        return finished

    def close(self) -> None:
        """Drop every connection (e.g. the container could not be started)."""
        for close in self._closers:
            with contextlib.suppress(OSError):
                close()

    @property
    def stdout_truncated(self) -> bool:
        return self._logs["stdout"].truncated

    @property
    def stderr_truncated(self) -> bool:
        return self._logs["stderr"].truncated

    def _copy_both(self, frames: Iterator[tuple[str, bytes]], close: Callable[[], None]) -> None:
        try:
            for name, chunk in frames:
                sink = self._logs.get(name)
                if sink is not None:
                    sink.write(chunk)
                if all(log.truncated for log in self._logs.values()):
                    break
        except Exception as exc:  # the engine went away: keep what was written, report it
            log.warning("log stream failed", extra={"stream": "both", "error": str(exc)})
            self.errors.append(f"both: {exc}")
        finally:
            with contextlib.suppress(OSError):
                close()

    def _copy(self, name: str, chunks: Iterator[bytes], close: Callable[[], None]) -> None:
        sink = self._logs[name]
        try:
            for chunk in chunks:
                if not sink.write(chunk):
                    break
        except Exception as exc:  # the engine went away: keep what was written, report it
            log.warning("log stream failed", extra={"stream": name, "error": str(exc)})
            self.errors.append(f"{name}: {exc}")
        finally:
            with contextlib.suppress(OSError):
                close()


def socket_closer(sock: Any, raw: socket.socket) -> Callable[[], None]:
    def close() -> None:
        # shutdown() first: it wakes a reader blocked in recv() on another thread.
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_RDWR)
        raw.close()
        sock.close()

    return close
