"""The per-job filesystem: mounted, capped, and gone without a trace when removed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from syft_runner.workspace.jobfs import (
    FormattedPool,
    image_size,
    mount_jobfs,
    noexec,
    supported,
    unmount_jobfs,
)

pytestmark = pytest.mark.skipif(not supported(), reason="needs root, mkfs.ext4 and loop devices")


def _loop_devices_backed_by(folder: Path) -> list[str]:
    out = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if str(folder) in line]


def test_stacked_mounts_are_all_removed(tmp_path: Path) -> None:
    # A retry can mount a new filesystem over one that was never unmounted: cleanup must
    # remove both layers and free both loop devices, not only the top one.
    mountpoint = tmp_path / "fs"
    assert mount_jobfs(tmp_path / "a.img", mountpoint, 1 << 20, 100)
    assert mount_jobfs(tmp_path / "b.img", mountpoint, 1 << 20, 100)
    unmount_jobfs(tmp_path / "b.img", mountpoint)  # the one cleanup call a job gets
    assert not os.path.ismount(mountpoint)
    assert _loop_devices_backed_by(tmp_path) == []


def test_the_filesystem_caps_bytes(tmp_path: Path) -> None:
    mountpoint = tmp_path / "fs"
    assert mount_jobfs(tmp_path / "j.img", mountpoint, 1 << 20, 100)
    try:
        with pytest.raises(OSError, match="No space left"), (mountpoint / "big").open("wb") as fh:
            for _ in range(64):
                fh.write(b"\0" * (1 << 20))
                fh.flush()
                os.fsync(fh.fileno())
    finally:
        unmount_jobfs(tmp_path / "j.img", mountpoint)
    assert not os.path.ismount(mountpoint)


def test_the_filesystem_is_noexec_nosuid_nodev(tmp_path: Path) -> None:
    # The job's writable /job/outputs is a bind mount of this filesystem and inherits its flags.
    mountpoint = tmp_path / "fs"
    assert mount_jobfs(tmp_path / "x.img", mountpoint, 1 << 20, 100)
    try:
        flags = os.statvfs(mountpoint).f_flag
        assert flags & os.ST_NOEXEC and flags & os.ST_NOSUID and flags & os.ST_NODEV
        assert noexec(mountpoint) and not noexec(tmp_path)
        binary = mountpoint / "true"
        shutil.copyfile("/bin/true", binary)
        binary.chmod(0o755)
        with pytest.raises(PermissionError):
            subprocess.run([str(binary)], check=False)
    finally:
        unmount_jobfs(tmp_path / "x.img", mountpoint)


def _wait_pool(folder: Path, count: int, timeout: float = 30) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = sorted(folder.glob("*.img"))
        if len(ready) >= count:
            return ready
        time.sleep(0.05)
    raise AssertionError(f"{folder}: fewer than {count} images after {timeout} s")


def test_a_pool_formats_ahead_and_a_taken_image_is_only_mounted(tmp_path: Path) -> None:
    size = image_size(1 << 20, 100)
    pool = FormattedPool(tmp_path / "pool", size, 100, keep=2)
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "half-formatted.tmp").write_bytes(b"\0")  # a crash mid-mkfs
    first = tmp_path / "first.img"
    assert mount_jobfs(first, tmp_path / "fs1", 1 << 20, 100, pool)  # none ready: formatted now
    ready = _wait_pool(tmp_path / "pool", 2)
    assert not list((tmp_path / "pool").glob("*.tmp"))
    second = tmp_path / "second.img"
    assert mount_jobfs(second, tmp_path / "fs2", 1 << 20, 100, pool)
    try:
        assert not ready[0].exists() or not ready[1].exists()  # one was taken, by a rename
        assert second.stat().st_size == size and os.path.ismount(tmp_path / "fs2")
        (tmp_path / "fs2" / "x").write_bytes(b"data")  # a working, empty ext4
        assert sorted(p.name for p in (tmp_path / "fs2").iterdir()) == ["lost+found", "x"]
    finally:
        unmount_jobfs(first, tmp_path / "fs1")
        unmount_jobfs(second, tmp_path / "fs2")


def test_a_pool_never_hands_out_an_image_of_another_size(tmp_path: Path) -> None:
    pool = FormattedPool(tmp_path / "pool", image_size(1 << 20, 100), 100, keep=1)
    other = tmp_path / "other.img"
    assert not pool.take(image_size(2 << 20, 100), 100, other)
    assert not pool.take(image_size(1 << 20, 200), 200, other)
    assert not other.exists()
