"""syft_core.safefile: what a peer, a submitter or a job can put at a path is opened, read and
copied only as a regular file, never through a link, never blocking, never past a cap."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syft_core.safefile import (
    NotRegularFileError,
    copy_capped,
    open_regular,
    read_capped,
    read_fd_capped,
)


def _symlink(tmp_path: Path) -> Path:
    (tmp_path / "target").write_bytes(b"secret")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    return tmp_path / "link"


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "fifo")  # nobody writes: a blocking open would hang the test
    return tmp_path / "fifo"


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "folder").mkdir()
    return tmp_path / "folder"


def _device(tmp_path: Path) -> Path:
    del tmp_path
    return Path("/dev/null")


NOT_REGULAR: dict[str, tuple[Callable[[Path], Path], str]] = {
    "symlink": (_symlink, "is a symlink, not a regular file (not followed)"),
    "fifo": (_fifo, "is a fifo, not a regular file"),
    "folder": (_folder, "is a folder, not a regular file"),
    "device": (_device, "is a device, not a regular file"),
}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 40)  # 10240 bytes
    return path


@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_only_a_regular_file_is_opened_or_read(tmp_path: Path, kind: str) -> None:
    make, message = NOT_REGULAR[kind]
    path = make(tmp_path)
    with pytest.raises(NotRegularFileError, match=f"^{re.escape(f'{path}: {message}')}$") as opened:
        open_regular(path)
    with pytest.raises(NotRegularFileError, match=re.escape(message)) as read:
        read_capped(path, 100)
    assert opened.value.kind == read.value.kind == message.split(",")[0].removeprefix("is ")


def test_an_absent_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_capped(tmp_path / "absent", 10)


def test_read_capped_reads_up_to_the_cap_and_one_more_shows_too_large(data: Path) -> None:
    whole = data.read_bytes()
    assert read_capped(data, 10) == whole[:10]
    assert read_capped(data, len(whole)) == whole
    assert read_capped(data, len(whole) + 1) == whole  # the end of the file comes first
    assert len(read_capped(data, 4096 + 1)) == 4096 + 1  # "over 4096": the caller sees it
    assert read_capped(data, 0) == b""


def test_read_fd_capped_goes_on_after_a_short_read(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: real_read(fd, min(n, 7)))
    fd = open_regular(data)
    try:
        assert read_fd_capped(fd, 100) == data.read_bytes()[:100]
    finally:
        os.close(fd)


def test_a_file_swapped_after_a_check_is_caught_by_the_open_itself(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_text("a,b\n")
    assert path.is_file()  # the check a caller made earlier...
    path.unlink()  # ...then the file is swapped for a link to a secret
    path.symlink_to(_symlink(tmp_path).resolve())
    with pytest.raises(NotRegularFileError, match="is a symlink"):
        read_capped(path, 100)
    path.unlink()
    os.mkfifo(path)  # or for a fifo, to hang the reader
    with pytest.raises(NotRegularFileError, match="is a fifo"):
        read_capped(path, 100)


@pytest.fixture
def pair(data: Path, tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    source = open_regular(data)
    dest_path = tmp_path / "copy.bin"
    dest = os.open(dest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    yield source, dest, dest_path
    os.close(source)
    os.close(dest)


def test_copy_capped_copies_to_the_end_or_to_the_cap(
    data: Path, pair: tuple[int, int, Path]
) -> None:
    source, dest, dest_path = pair
    assert copy_capped(source, dest, 1000) == 1000
    assert dest_path.read_bytes() == data.read_bytes()[:1000]
    assert copy_capped(source, dest, 1 << 40) == 10240 - 1000  # then on from there, to the end
    assert dest_path.read_bytes() == data.read_bytes()


def test_copy_capped_never_passes_the_cap_of_a_growing_file(
    data: Path, pair: tuple[int, int, Path]
) -> None:
    source, dest, dest_path = pair
    with data.open("ab") as grower:
        grower.write(b"x" * 5000)  # grew after it was checked and opened
    assert copy_capped(source, dest, 10240 + 1) == 10240 + 1  # one more: "too large" shows
    assert dest_path.stat().st_size == 10240 + 1


def test_copy_capped_falls_back_to_sendfile(
    data: Path, pair: tuple[int, int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_kernel_copy(*args: object) -> int:
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(os, "copy_file_range", no_kernel_copy)
    source, dest, dest_path = pair
    assert copy_capped(source, dest, 5000) == 5000
    assert dest_path.read_bytes() == data.read_bytes()[:5000]


def test_copy_capped_raises_a_real_error(
    pair: tuple[int, int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args: object) -> int:
        raise OSError(errno.EIO, "input/output error")

    monkeypatch.setattr(os, "copy_file_range", failing)
    source, dest, _ = pair
    with pytest.raises(OSError, match="input/output error"):
        copy_capped(source, dest, 5000)
