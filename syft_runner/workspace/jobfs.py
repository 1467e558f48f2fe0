"""A capped filesystem per job: the staged job and its outputs live on their own small ext4.

A job's outputs folder is writable from inside the container, so on the host it needs a hard
bound, not a check after the fact: writes into the page cache outrun any periodic scan. Each job
therefore gets a sparse image file (`<runner dir>/volumes/<job-id>.img`) formatted as ext4 with
room for the staged submission plus the owner's output caps (`output_max_total_bytes`, and
`output_max_files` inodes), loop-mounted at the job's folder. A job that writes more gets ENOSPC;
the host never holds more than the image's size. Overshoot (docs/runner.md): up to
`METADATA_SLACK_BYTES` plus the inode tables in bytes, and `INODE_SLACK` entries (so deep or wide
trees still reach the collector, which enforces the exact caps).

The mount is also what keeps host paths out of the job's /proc/self/mountinfo: a bind mount's
"root" there is its source path within its own filesystem, here `/job` and `/job/outputs`, the
paths the job already knows.

It is mounted `noexec,nosuid,nodev`, and a bind mount inherits its source mount's flags: the
job's writable `/job/outputs` is therefore noexec too, so a job cannot run (execve, the ELF
loader, an executable mapping of a library) a file it wrote there. Interpreters reading a script
are unaffected: `/bin/bash /job/run.sh` and `python3 /job/code/main.py` run as before. (Docker
remounts the read-only `/job` bind, which drops the flags on that one; it is not writable.)

Needs root (mount) and mkfs.ext4. Without them `mount_jobfs` returns False and the folder stays
a plain one on the host: outputs are then only bounded by the runner's free-disk reserve while the
job runs, and executable unless the host filesystem under the runner's state folder is itself
mounted noexec (the runner logs both once; see `noexec`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import secrets
import shutil
import subprocess
import threading
from pathlib import Path

log = logging.getLogger(__name__)

METADATA_SLACK_BYTES = 1024 * 1024  # block and inode bitmaps, group descriptors, root folders
INODE_SLACK = 4096  # entries beyond output_max_files: root, lost+found, the staged job, folders
INODE_BYTES = 256
# noexec: what a job writes into its outputs can never be executed (see the module docstring).
MOUNT_OPTIONS = "loop,noexec,nosuid,nodev"
_TOOL_SECONDS = 30
MAX_STACKED_MOUNTS = 16  # unmount_jobfs gives up after this many layers


class JobFsError(OSError):
    """The per-job filesystem could not be made or mounted."""


def supported() -> bool:
    """Whether this process can make and mount per-job filesystems."""
    return os.geteuid() == 0 and all(shutil.which(t) for t in ("mkfs.ext4", "mount", "umount"))


def noexec(path: Path) -> bool:
    """Whether files under `path` cannot be executed: its filesystem is mounted noexec (the job
    filesystem is; a plain host folder, the fallback, is unless its host mount is)."""
    return bool(os.statvfs(path).f_flag & os.ST_NOEXEC)


def image_size(content_bytes: int, max_entries: int) -> int:
    """Bytes of the image for `content_bytes` of files and `max_entries` entries."""
    inodes = max_entries + INODE_SLACK
    return content_bytes + METADATA_SLACK_BYTES + inodes * INODE_BYTES


def mount_jobfs(
    image: Path,
    mountpoint: Path,
    content_bytes: int,
    max_entries: int,
    pool: FormattedPool | None = None,
) -> bool:
    """Make `image` (sparse) and mount it at `mountpoint`: taken from `pool` when it holds one
    of this size, else formatted now. False when unsupported here; JobFsError when it should work
    and did not."""
    if not supported():
        return False
    image.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    mountpoint.mkdir(mode=0o755, parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        image.unlink()
    size = image_size(content_bytes, max_entries)
    if pool is None or not pool.take(size, max_entries, image):
        _format(image, size, max_entries)
    try:
        _mount_loop(image, mountpoint)
    except _NoLoopConfigure:  # kernels before 5.8: mount(8) does the same in three steps
        _tool("mount", "-o", MOUNT_OPTIONS, str(image), str(mountpoint))
    mountpoint.chmod(0o755)
    return True


# <linux/loop.h>, <sys/mount.h>: what `mount -o loop,noexec,nosuid,nodev` does, without starting
# a process (two per job, about 10 ms each from a large Python process).
_LOOP_CTL_GET_FREE = 0x4C82
_LOOP_CONFIGURE = 0x4C0A
_LOOP_CLR_FD = 0x4C01
_LO_FLAGS_AUTOCLEAR = 4  # the loop device detaches itself when the filesystem is unmounted
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8
_MNT_DETACH = 2
_LOOP_TRIES = 16  # another process may take the free device between asking and binding it


class _LoopInfo64(ctypes.Structure):
    _fields_ = [
        ("lo_device", ctypes.c_uint64),
        ("lo_inode", ctypes.c_uint64),
        ("lo_rdevice", ctypes.c_uint64),
        ("lo_offset", ctypes.c_uint64),
        ("lo_sizelimit", ctypes.c_uint64),
        ("lo_number", ctypes.c_uint32),
        ("lo_encrypt_type", ctypes.c_uint32),
        ("lo_encrypt_key_size", ctypes.c_uint32),
        ("lo_flags", ctypes.c_uint32),
        ("lo_file_name", ctypes.c_uint8 * 64),
        ("lo_crypt_name", ctypes.c_uint8 * 64),
        ("lo_encrypt_key", ctypes.c_uint8 * 32),
        ("lo_init", ctypes.c_uint64 * 2),
    ]


class _LoopConfig(ctypes.Structure):
    _fields_ = [
        ("fd", ctypes.c_uint32),
        ("block_size", ctypes.c_uint32),
        ("info", _LoopInfo64),
        ("reserved", ctypes.c_uint64 * 8),
    ]


class _NoLoopConfigure(Exception):
    """This kernel has no LOOP_CONFIGURE (before 5.8)."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _mount_loop(image: Path, mountpoint: Path) -> None:
    """Bind `image` to a free loop device (autoclear) and mount it noexec,nosuid,nodev."""
    image_fd = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
        try:
            for _ in range(_LOOP_TRIES):
                device = f"/dev/loop{fcntl.ioctl(control, _LOOP_CTL_GET_FREE)}"
                if _bind_and_mount(device, image_fd, mountpoint):
                    return
        finally:
            os.close(control)
    finally:
        os.close(image_fd)
    raise JobFsError(f"mount {image}: no free loop device after {_LOOP_TRIES} tries")


def _bind_and_mount(device: str, image_fd: int, mountpoint: Path) -> bool:
    """False when another process took `device` first."""
    loop_fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    try:
        config = _LoopConfig(fd=image_fd)
        config.info.lo_flags = _LO_FLAGS_AUTOCLEAR
        try:
            fcntl.ioctl(loop_fd, _LOOP_CONFIGURE, bytes(config))
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                return False
            if exc.errno in (errno.EINVAL, errno.ENOTTY):
                raise _NoLoopConfigure from None
            raise JobFsError(f"binding {device}: {exc.strerror}") from None
        flags = _MS_NOEXEC | _MS_NOSUID | _MS_NODEV
        if _libc().mount(device.encode(), os.fsencode(mountpoint), b"ext4", flags, None) != 0:
            code = ctypes.get_errno()
            fcntl.ioctl(loop_fd, _LOOP_CLR_FD)
            raise JobFsError(f"mount {device} at {mountpoint}: {os.strerror(code)}")
        return True
    finally:
        os.close(loop_fd)  # the mount holds the device now; autoclear frees it at unmount


def _format(image: Path, size: int, max_entries: int) -> None:
    with open(image, "xb") as fh:
        fh.truncate(size)
    _tool(
        "mkfs.ext4",
        "-q",
        "-F",
        "-O",
        "^has_journal,^resize_inode",
        "-E",
        "lazy_itable_init=1,nodiscard,root_owner=0:0",
        "-m",
        "0",
        "-I",
        str(INODE_BYTES),
        "-N",
        str(max_entries + INODE_SLACK),
        str(image),
    )


class FormattedPool:
    """Empty job filesystems formatted ahead of need: mkfs.ext4 is most of what a job's own
    filesystem costs, and it needs nothing of the job. A job whose image has the pool's size
    takes one (a rename) and only mounts it; a thread formats the next one meanwhile.

    Images are named by size and entries, so a pool left by a runner with other caps is never
    used for this one's, and they are moved into the pool only once formatted (a crash mid-mkfs
    leaves a `.tmp` file, removed on the next fill). They hold no data: never mounted before
    they are taken, and the folder is the runner's own (0700)."""

    def __init__(self, folder: Path, size: int, max_entries: int, keep: int) -> None:
        self.folder = folder
        self.size = size
        self.max_entries = max_entries
        self.keep = keep
        self._lock = threading.Lock()
        self._filling = False

    def take(self, size: int, max_entries: int, target: Path) -> bool:
        """Move a ready image of this size to `target`; False when there is none (format it)."""
        if (size, max_entries) != (self.size, self.max_entries):
            return False
        taken = False
        for ready in sorted(self.folder.glob(f"{self._prefix}*.img")):
            try:
                os.rename(ready, target)
            except FileNotFoundError:  # taken by another job meanwhile
                continue
            taken = True
            break
        self._fill_in_background()
        return taken

    @property
    def _prefix(self) -> str:
        return f"{self.size}-{self.max_entries}-"

    def _fill_in_background(self) -> None:
        with self._lock:
            if self._filling:
                return
            self._filling = True
        threading.Thread(target=self._fill, daemon=True, name="jobfs-pool").start()

    def _fill(self) -> None:
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            for stale in self.folder.glob("*.tmp"):
                stale.unlink(missing_ok=True)
            while len(list(self.folder.glob(f"{self._prefix}*.img"))) < self.keep:
                name = f"{self._prefix}{secrets.token_hex(6)}"
                partial = self.folder / f"{name}.tmp"
                _format(partial, self.size, self.max_entries)
                os.rename(partial, self.folder / f"{name}.img")
        except (OSError, JobFsError) as exc:  # jobs format their own meanwhile
            log.warning("could not format job filesystems ahead", extra={"error": str(exc)})
        finally:
            with self._lock:
                self._filling = False


def unmount_jobfs(image: Path, mountpoint: Path) -> None:
    """Unmount every layer at `mountpoint` (lazily if still busy) and delete the image;
    idempotent. A retry after a lost engine can leave a filesystem mounted over another one;
    removing only the top layer would leak the one below with its loop device."""
    for _ in range(MAX_STACKED_MOUNTS):
        if not os.path.ismount(mountpoint):
            break
        if not _unmount(mountpoint, 0):
            # Still referenced (a container not yet gone): detach now, freed when released.
            _unmount(mountpoint, _MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        image.unlink()


def _unmount(mountpoint: Path, flags: int) -> bool:
    """umount2(2); False when the filesystem is busy. JobFsError for any other failure."""
    if _libc().umount2(os.fsencode(mountpoint), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.EBUSY:
        return False
    raise JobFsError(f"umount {mountpoint}: {os.strerror(code)}")


def _tool(*command: str) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=_TOOL_SECONDS)
    except subprocess.CalledProcessError as exc:
        stderr = exc.stderr.decode("utf-8", "replace").strip()
        raise JobFsError(f"{command[0]} failed (exit {exc.returncode}): {stderr}") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JobFsError(f"{command[0]} failed: {exc}") from None
