"""BoundedLog: the first `cap` bytes, then one explicit marker; never through a link."""

from __future__ import annotations

import os
from pathlib import Path

from syft_runner.workspace.logs import BoundedLog, prepare_logs_dir, truncation_line


def test_writes_up_to_the_cap_then_one_marker(tmp_path: Path) -> None:
    sink = BoundedLog(tmp_path / "out.txt", 10, "stdout")
    assert sink.write(b"12345")
    assert not sink.write(b"6789012345")
    assert not sink.write(b"more")
    sink.close()
    assert sink.truncated
    assert (tmp_path / "out.txt").read_bytes() == b"1234567890" + truncation_line("stdout", 10)


def test_exactly_the_cap_is_not_truncated(tmp_path: Path) -> None:
    sink = BoundedLog(tmp_path / "out.txt", 4, "stderr")
    assert sink.write(b"abcd")
    sink.close()
    assert not sink.truncated and (tmp_path / "out.txt").read_bytes() == b"abcd"


def test_reopening_rewrites_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_bytes(b"stale content from before a restart")
    sink = BoundedLog(path, 100, "stdout")
    sink.write(b"fresh")
    sink.close()
    assert path.read_bytes() == b"fresh"


def test_a_planted_link_is_replaced_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    logs = tmp_path / "logs"
    os.symlink(target, logs)
    prepare_logs_dir(logs)
    assert logs.is_dir() and not logs.is_symlink()
    BoundedLog(logs / "stdout.txt", 10, "stdout").close()
    assert os.listdir(target) == []
