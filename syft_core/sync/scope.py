"""Which files of a datasite ever travel, and the safe way to find and address them.

Hard exclusions, whatever the permission files say: `private/` never leaves the machine, and
neither does any dotfile or dot-folder (`.syft/` holds the event log and peer list; editors and
tools keep secrets in dotfiles). Symlinks are never followed nor sent: one could point anywhere.
A path a peer names is also refused when no file system could hold it: a name over NAME_MAX
bytes, or a whole path over PATH_MAX.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from syft_core.errors import UnsafePathError
from syft_core.paths import normalize_relpath
from syft_core.sync.errors import is_environmental

PRIVATE_FOLDER = "private"
NAME_MAX = 255  # bytes in one file name: ext4, xfs, btrfs, tmpfs, ZFS and APFS alike
PATH_MAX = 4096  # bytes in a path handed to the kernel, its final NUL included (Linux)


def is_syncable(rel: str) -> bool:
    """Whether a (normalized, datasite-relative) path may ever be sent to or taken from a peer."""
    parts = rel.split("/")
    return bool(rel) and parts[0] != PRIVATE_FOLDER and rel[0] != "." and "/." not in rel


def check_sync_path(rel: str, *, what: str) -> str:
    """Normalize a path named by a peer; refuse `..`, absolute, dot and private paths."""
    clean = normalize_relpath(rel, what=what)
    if clean != rel:
        raise UnsafePathError(f"{what} {rel!r} is not in normal form (expected {clean!r})")
    if not is_syncable(clean):
        raise UnsafePathError(f"{what} {rel!r} is private or a dotfile; it never syncs")
    for part in clean.split("/"):
        size = _byte_length(part, rel, what=what)
        if size > NAME_MAX:
            raise UnsafePathError(
                f"{what} {_shown(rel)} has a name of {size:,} bytes; a file name holds at most "
                f"{NAME_MAX}"
            )
    return clean


def _byte_length(text: str, rel: str, *, what: str) -> int:
    try:
        return len(os.fsencode(text))
    except UnicodeEncodeError as exc:  # a lone surrogate: no file name spells it
        raise UnsafePathError(f"{what} {_shown(rel)} cannot be a file name: {exc.reason}") from exc


def _shown(rel: str) -> str:
    """`rel` quoted for a message, cut short: a refused path can be very long."""
    return repr(rel if len(rel) <= 120 else f"{rel[:100]}...({len(rel):,} characters)")


def safe_target(root: Path, rel: str, *, what: str) -> Path:
    """The file `rel` under `root`, refusing any symlink or non-folder on the way.

    Stricter than contained_path: a symlink that stays inside the datasite is refused too, since
    `jobs/me/j/code -> ../../../private` would otherwise let a permitted path write elsewhere.
    A path that cannot be examined for a reason of its own (too long in all, a folder that may
    not be searched) is refused too; one that fails for the machine's state (an I/O error)
    raises OSError.
    """
    clean = check_sync_path(rel, what=what)
    full = os.path.join(root, clean)
    size = _byte_length(full, rel, what=what)
    if size >= PATH_MAX:
        raise UnsafePathError(
            f"{what} {_shown(rel)} would make a path of {size:,} bytes here; a path holds at "
            f"most {PATH_MAX - 1}"
        )
    parts = clean.split("/")
    path = os.fspath(root)  # plain strings: this runs twice per received file
    for i, part in enumerate(parts):
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return Path(os.path.join(path, *parts[i + 1 :]))
        except OSError as exc:
            if is_environmental(exc):
                raise
            raise UnsafePathError(f"{what} {_shown(rel)}: {exc.strerror}; refused") from exc
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePathError(f"{what} {rel!r}: {path} is a symlink; refused")
        last = i == len(parts) - 1
        if not last and not stat.S_ISDIR(st.st_mode):
            raise UnsafePathError(f"{what} {rel!r}: {path} is not a folder")
        if last and not stat.S_ISREG(st.st_mode):
            raise UnsafePathError(f"{what} {rel!r}: {path} exists and is not a regular file")
    return Path(path)


@dataclass(frozen=True)
class ScannedFile:
    rel: str
    path: Path
    stat: os.stat_result


@dataclass
class Scan:
    files: dict[str, ScannedFile]
    skipped: list[str]  # symlinks and special files found (never sent), for the event log


def scan_datasite(root: Path) -> Scan:
    """Every syncable regular file under `root`, without following symlinks."""
    result = Scan(files={}, skipped=[])
    if root.is_dir() and not root.is_symlink():
        _walk(root, "", result)
    return result


def _walk(folder: Path, prefix: str, result: Scan) -> None:
    for kind, rel, entry in _entries(os.fspath(folder), prefix):
        if kind == "dir":
            _walk(Path(entry.path), rel + "/", result)
        elif kind == "file":
            st = entry.stat(follow_symlinks=False)
            result.files[rel] = ScannedFile(rel, Path(entry.path), st)
        else:
            result.skipped.append(rel)


def _entries(folder: str, prefix: str) -> Iterator[tuple[str, str, os.DirEntry[str]]]:
    """("file" | "dir" | "skip", rel, entry) for each syncable name in `folder`: regular files,
    folders, and what is never sent (links, special files), none of them followed."""
    with os.scandir(folder) as entries:
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if not is_syncable(rel) or not _normal(rel):
                continue
            if entry.is_symlink():
                yield "skip", rel, entry
            elif entry.is_dir(follow_symlinks=False):
                yield "dir", rel, entry
            elif entry.is_file(follow_symlinks=False):
                yield "file", rel, entry
            else:
                yield "skip", rel, entry


def _normal(rel: str) -> bool:
    """Names a peer could not address (control characters, non-NFC) are left alone."""
    try:
        return normalize_relpath(rel) == rel
    except UnsafePathError:
        return False


RACY_FOLDER_NS = 2_000_000_000  # a folder changed this recently may change again unseen


@dataclass
class _Listing:
    """What one scan found directly in a folder: its syncable names, by kind."""

    signature: tuple[int, int, int]  # the folder's mtime_ns, inode, device when listed
    racy: bool  # listed within RACY_FOLDER_NS of its last change: list it again next time
    files: list[tuple[str, str]]  # (rel, absolute path) of the regular files
    dirs: list[tuple[str, str]]  # (rel, absolute path) of the folders
    skipped: list[str]


class Scanner:
    """`scan_datasite`, kept between passes so that an unchanged folder is not listed again.

    A folder's entries (names and kinds) change only with its mtime: adding, removing, renaming
    or replacing an entry (a file by a link, say) rewrites the folder itself. So a folder whose
    mtime, inode and device are what they were when it was last listed, and which was not changing
    then (its mtime older than RACY_FOLDER_NS: a change within one clock tick could leave the
    mtime as it was), is not listed again: only its files are stat'ed (a file's content changes
    without touching its folder) and its subfolders visited. Anything a stat finds out of place
    (a file gone, or no longer a regular file) lists that folder again. The result is always what
    `scan_datasite` would return; what is remembered is rebuilt from the folder by the first scan.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._listings: dict[str, _Listing] = {}
        self._files: dict[str, ScannedFile] = {}

    def scan(self) -> Scan:
        result = Scan(files={}, skipped=[])
        seen: set[str] = set()
        root = os.fspath(self.root)
        try:
            st = os.lstat(root)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            self._visit(root, "", st, result, seen, time.time_ns())
        for gone in set(self._listings) - seen:
            del self._listings[gone]
        if len(self._files) > len(result.files):
            self._files = {rel: self._files[rel] for rel in result.files}
        return result

    def _list(self, folder: str, prefix: str, st: os.stat_result, now: int) -> _Listing:
        listing = _Listing(
            signature=(st.st_mtime_ns, st.st_ino, st.st_dev),
            racy=now - st.st_mtime_ns < RACY_FOLDER_NS,
            files=[],
            dirs=[],
            skipped=[],
        )
        for kind, rel, entry in _entries(folder, prefix):
            if kind == "dir":
                listing.dirs.append((rel, entry.path))
            elif kind == "file":
                listing.files.append((rel, entry.path))
            else:
                listing.skipped.append(rel)
        return listing

    def _visit(
        self,
        folder: str,
        prefix: str,
        st: os.stat_result,
        result: Scan,
        seen: set[str],
        now: int,
    ) -> None:
        listing = self._listings.get(prefix)
        fresh = (
            listing is None
            or listing.racy
            or listing.signature
            != (
                st.st_mtime_ns,
                st.st_ino,
                st.st_dev,
            )
        )
        if fresh:
            listing = self._listings[prefix] = self._list(folder, prefix, st, now)
        assert listing is not None
        files = result.files
        found: list[ScannedFile] = []
        subdirs: list[tuple[str, str, os.stat_result]] = []
        for rel, path in listing.files:
            try:
                file_st = os.lstat(path)
            except FileNotFoundError:
                file_st = None
            if file_st is None or not stat.S_ISREG(file_st.st_mode):
                break  # the listing is out of date after all
            known = self._files.get(rel)
            if known is None or not _same(known.stat, file_st):
                known = self._files[rel] = ScannedFile(rel, Path(path), file_st)
            found.append(known)
        else:
            for rel, path in listing.dirs:
                try:
                    dir_st = os.lstat(path)
                except FileNotFoundError:
                    dir_st = None
                if dir_st is None or not stat.S_ISDIR(dir_st.st_mode):
                    break
                subdirs.append((rel, path, dir_st))
            else:
                seen.add(prefix)
                for known in found:
                    files[known.rel] = known
                result.skipped.extend(listing.skipped)
                for rel, path, dir_st in subdirs:
                    self._visit(path, rel + "/", dir_st, result, seen, now)
                return
        # Something changed under a listing that looked current: list the folder again.
        self._listings.pop(prefix, None)
        if fresh:  # it changed while being listed: scan it the plain way, once
            seen.add(prefix)
            _walk(Path(folder), prefix, result)
            return
        self._visit(folder, prefix, st, result, seen, now)


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (
        a.st_mtime_ns == b.st_mtime_ns
        and a.st_size == b.st_size
        and a.st_ino == b.st_ino
        and a.st_ctime_ns == b.st_ctime_ns
    )
