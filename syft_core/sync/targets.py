"""Where one message's changes land: each folder resolved once, through descriptors.

`safe_target` (syft_core.sync.scope) examines every segment of a path by name, each time it is
asked: a thousand files in one folder cost a thousand walks of the same ancestry, twice. A
`Folders` (one per message) opens each folder of the datasite at most once, segment by segment
from the datasite root, every segment opened relative to its parent's descriptor with
O_NOFOLLOW | O_DIRECTORY: a link anywhere on the way is refused (ELOOP), so is anything that is
not a folder (ENOTDIR, never opened: a fifo cannot block). Every later step on a file of that
folder (examine, hash, unlink, rename into place, create a subfolder) goes through the
descriptor, so it acts on the very folder that was checked, whatever is renamed or linked on
the way meanwhile: no path is followed by name again. Before the apply, after the blobs were
fetched, `revalidate` proves each held folder is still what its name leads to (same device and
inode under the same parent), and forgets those that are not, so they are resolved afresh.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from types import TracebackType

from syft_core.errors import UnsafePathError
from syft_core.safefile import NEW_FILE
from syft_core.sync.errors import is_environmental
from syft_core.sync.hashing import digest_fd
from syft_core.sync.scope import PATH_MAX, _byte_length, _shown, check_sync_path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
MAX_HELD = 256  # folder descriptors held at once; beyond, all are let go and resolved again


class Folders:
    """The folders of one datasite, each opened once without following a link (see above)."""

    def __init__(self, root: Path, *, what: str) -> None:
        self.root = root
        self.what = what
        self._fds: dict[str, int] = {}
        self._root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def __enter__(self) -> Folders:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._let_go()
        os.close(self._root_fd)

    def _let_go(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)

    def check(self, rel: str) -> str:
        """`rel` in normal form and a path a file system can hold, else UnsafePathError (the
        checks of safe_target that need no file system)."""
        clean = check_sync_path(rel, what=self.what)
        full = os.path.join(self.root, clean)
        size = _byte_length(full, rel, what=self.what)
        if size >= PATH_MAX:
            raise UnsafePathError(
                f"{self.what} {_shown(rel)} would make a path of {size:,} bytes here; a path "
                f"holds at most {PATH_MAX - 1}"
            )
        return clean

    def folder(self, rel: str, folder: str, *, create: bool) -> int | None:
        """A descriptor of `folder` (datasite-relative, "" the root), on the way to `rel`; None
        if it does not exist (and not `create`). UnsafePathError for a link or a non-folder on
        the way; OSError for a failure of the machine."""
        if not folder:
            return self._root_fd
        fd = self._fds.get(folder)
        if fd is not None:
            return fd
        parent, _, name = folder.rpartition("/")
        parent_fd = self.folder(rel, parent, create=create)
        if parent_fd is None:
            return None
        try:
            fd = self._open_dir(name, parent_fd, create=create)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST):
                what = "is a symlink; refused" if _is_link(name, parent_fd) else "is not a folder"
                shown = f"{self.what} {_shown(rel)}: {_shown(folder)}"
                raise UnsafePathError(f"{shown} {what}") from None
            if is_environmental(exc):
                raise
            raise UnsafePathError(f"{self.what} {_shown(rel)}: {exc.strerror}; refused") from exc
        if fd is None:
            return None
        if len(self._fds) >= MAX_HELD:
            self._let_go()  # the parents are opened again when needed: always by descriptor
        self._fds[folder] = fd
        return fd

    @staticmethod
    def _open_dir(name: str, parent_fd: int, *, create: bool) -> int | None:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                return None
        with contextlib.suppress(FileExistsError):  # made meanwhile: opened below, not followed
            os.mkdir(name, 0o777, dir_fd=parent_fd)
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)

    def examine(self, rel: str, *, create: bool = False) -> tuple[int | None, str, bool]:
        """(descriptor of `rel`'s folder or None if there is none, `rel`'s name, whether a file
        is there). UnsafePathError for a link or non-folder on the way, or something else than
        a regular file at `rel` itself."""
        folder, _, name = rel.rpartition("/")
        fd = self.folder(rel, folder, create=create)
        if fd is None:
            return None, name, False
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return fd, name, False
        except OSError as exc:
            if is_environmental(exc):
                raise
            raise UnsafePathError(f"{self.what} {_shown(rel)}: {exc.strerror}; refused") from exc
        # Datasite-relative in the reason: it is sent back to the peer, and the owner's own disk
        # layout is none of its business.
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePathError(f"{self.what} {_shown(rel)} is a symlink; refused")
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePathError(f"{self.what} {_shown(rel)} exists and is not a regular file")
        return fd, name, True

    def revalidate(self) -> None:
        """Forget every held folder its name no longer leads to (it was moved, removed or
        replaced since it was opened), and the folders under it: resolved afresh when asked."""
        stale: list[str] = []
        for folder, fd in sorted(self._fds.items()):
            if any(folder.startswith(s + "/") for s in stale):
                stale.append(folder)
                continue
            parent, _, name = folder.rpartition("/")
            parent_fd = self._fds.get(parent, self._root_fd if not parent else None)
            held = os.fstat(fd)
            try:
                if parent_fd is None:  # let go of earlier: resolve it afresh
                    raise FileNotFoundError
                now = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            except FileNotFoundError:
                stale.append(folder)
                continue
            if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
                stale.append(folder)
        for folder in stale:
            os.close(self._fds.pop(folder))


def _is_link(name: str, parent_fd: int) -> bool:
    """Whether `name` in the folder `parent_fd` is a link (O_NOFOLLOW | O_DIRECTORY refuses one
    with ELOOP or ENOTDIR alike): only to say so in the refusal."""
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def digest_at(fd: int, name: str) -> str | None:
    """The digest of the regular file `name` in the folder `fd` (not followed if a link:
    ELOOP), or None if there is none."""
    try:
        file_fd = os.open(name, _READ_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        return None
    with open(file_fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(file_fd).st_mode):
            raise UnsafePathError(f"{name} is not a regular file; refused")
        return digest_fd(fh.fileno())


def install_at(staged: Path, fd: int, name: str, *, consume: bool) -> None:
    """Make `name` in the folder `fd` hold the content of `staged`, atomically and durably
    (apply.install is its path form). With `consume`, the staged file itself
    (already made durable by Channel.fetch) is renamed into place; otherwise it is copied to a
    new file beside the target first, flushed, then renamed, so it can serve further targets."""
    if consume:
        try:
            os.replace(staged, name, dst_dir_fd=fd)
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
    # Named after the target, cut short: a name near the 255-byte limit leaves no room to add to.
    prefix = f".{os.fsdecode(os.fsencode(name)[:64])}."
    while True:
        tmp = f"{prefix}{secrets.token_hex(6)}.sync"
        try:
            out = os.open(tmp, NEW_FILE, 0o644, dir_fd=fd)
            break
        except FileExistsError:
            continue
    try:
        try:
            with open(staged, "rb") as source:
                os.fchmod(out, 0o644)
                while chunk := source.read(1 << 20):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(out, view) :]
            os.fsync(out)
        finally:
            os.close(out)
        os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=fd)
        raise
