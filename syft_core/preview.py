"""Bounded, inert previews of what a job produced, for the review console and the notebook repr.

Every byte here was written by a job, so it is untrusted: files are opened without following links
(syft_core.safefile), never read past a limit, and reduced to plain data (text, rows of cells, the
bytes of a PNG whose signature was checked). Turning that data into HTML, escaped, is the caller's
job; nothing here decides that a file is safe to hand to a browser as it is, except a PNG, whose
type is known from its signature rather than from a name the job chose.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from syft_core.safefile import open_regular, read_capped

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CSV_PREVIEW_BYTES = 64 * 1024
CSV_PREVIEW_ROWS = 20
CSV_PREVIEW_COLUMNS = 20
CELL_CHARS = 200
PNG_PREVIEW_BYTES = 2 * 1024 * 1024
TAIL_BYTES = 16 * 1024
TAIL_LINES = 60

PreviewKind = Literal["csv", "png", "file"]


@dataclass(frozen=True)
class Preview:
    """An output file as it may be shown: a table of its first rows, a PNG, or a download."""

    relpath: str
    size: int
    kind: PreviewKind
    rows: tuple[tuple[str, ...], ...] = ()


def read_head(path: Path, limit: int) -> bytes:
    """At most `limit` bytes from the start of the regular file at `path` (a link, a fifo or a
    folder raises NotRegularFileError)."""
    return read_capped(path, limit)


def read_tail(path: Path, limit: int = TAIL_BYTES) -> bytes:
    """At most the last `limit` bytes of the regular file at `path`; b"" when it is absent."""
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        return b""
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, limit, max(0, size - limit))
    finally:
        os.close(fd)


def log_tail(path: Path, lines: int = TAIL_LINES, limit: int = TAIL_BYTES) -> str:
    """The last `lines` lines of a log (within its last `limit` bytes), decoded leniently."""
    text = read_tail(path, limit).decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def is_png(data: bytes) -> bool:
    return data.startswith(PNG_SIGNATURE)


def csv_rows(data: bytes, rows: int = CSV_PREVIEW_ROWS) -> tuple[tuple[str, ...], ...]:
    """The first `rows` rows of CSV `data`, each cut to CSV_PREVIEW_COLUMNS cells of at most
    CELL_CHARS characters. The last line may be cut short by the caller's read limit."""
    reader = csv.reader(io.StringIO(data.decode("utf-8", errors="replace"), newline=""))
    found: list[tuple[str, ...]] = []
    try:
        for row in reader:
            found.append(tuple(cell[:CELL_CHARS] for cell in row[:CSV_PREVIEW_COLUMNS]))
            if len(found) >= rows:
                break
    except csv.Error:
        pass  # a malformed line ends the preview; the download still has it all
    return tuple(found)


def preview(outputs_dir: Path, path: Path) -> Preview:
    """What can be shown of the output at `path` (under `outputs_dir`) without trusting it."""
    relpath = PurePosixPath(path.relative_to(outputs_dir)).as_posix()
    size = path.lstat().st_size
    if path.suffix.lower() == ".csv":
        return Preview(relpath, size, "csv", rows=csv_rows(read_head(path, CSV_PREVIEW_BYTES)))
    if size <= PNG_PREVIEW_BYTES and is_png(read_head(path, len(PNG_SIGNATURE))):
        return Preview(relpath, size, "png")
    return Preview(relpath, size, "file")


def png_bytes(path: Path) -> bytes | None:
    """The bytes of the PNG at `path`, checked again as they are read (the job's files may change
    between listing and reading); None when they are not a PNG or too large to inline."""
    data = read_head(path, PNG_PREVIEW_BYTES + 1)
    return data if is_png(data) and len(data) <= PNG_PREVIEW_BYTES else None
