"""The per-job filesystem: mounted, capped, and gone without a trace when removed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from syft_runner.workspace.jobfs import mount_jobfs, noexec, supported, unmount_jobfs

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
