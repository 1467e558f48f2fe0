"""The per-job filesystem: mounted, capped, and gone without a trace when removed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from syft_runner.jobfs import mount_jobfs, supported, unmount_jobfs

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
