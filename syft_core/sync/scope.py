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

from syft_core.datasite import PERMISSION_FILE
from syft_core.errors import UnsafePathError
from syft_core.filestamp import is_racy, stamp
from syft_core.inotify import (
    IN_ATTRIB,
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_DONT_FOLLOW,
    IN_IGNORED,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    IN_UNMOUNT,
    Inotify,
)
from syft_core.paths import normalize_relpath
from syft_core.sync.errors import is_environmental

PRIVATE_FOLDER = "private"
NAME_MAX = 255  # bytes in one file name: ext4, xfs, btrfs, tmpfs, ZFS and APFS alike
PATH_MAX = 4096  # bytes in a path handed to the kernel, its final NUL included (Linux)
MAX_DEPTH = 64  # folders on the way to a file a peer names


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
    if clean.count("/") > MAX_DEPTH:
        # Folders are made and walked one call per level (pathlib, the scanner): a path of
        # 1,500 one-letter folders, well under PATH_MAX, overflowed the stack and stopped every
        # pass, for every peer.
        raise UnsafePathError(f"{what} {_shown(rel)} is more than {MAX_DEPTH} folders deep")
    if PERMISSION_FILE in clean.split("/")[:-1]:
        # A folder by that name would be read as a broken permission file: terminal, granting
        # nothing below it. Making one would take away everyone's access, with a write only.
        raise UnsafePathError(f"{what} {_shown(rel)}: a folder cannot be named {PERMISSION_FILE}")
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
    changed: set[str] | None = None  # (Scanner) appeared, stat changed or gone; None: unknown


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


FULL_SCAN_SECONDS = 60.0  # a watching Scanner stats every file at least this often anyway
_WATCH_MASK = (
    IN_CREATE
    | IN_DELETE
    | IN_MODIFY
    | IN_CLOSE_WRITE
    | IN_ATTRIB
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
)
_REBUILD = IN_MOVE_SELF | IN_UNMOUNT  # a watch no longer matches its path: all set afresh


@dataclass
class _Listing:
    """What one scan found directly in a folder: its syncable names, by kind."""

    signature: tuple[int, int, int]  # the folder's mtime_ns, inode, device when listed
    racy: bool  # listed within RACY_NS of its last change: list it again next time
    files: list[tuple[str, str]]  # (rel, absolute path) of the regular files
    dirs: list[tuple[str, str]]  # (rel, absolute path) of the folders
    skipped: list[str]
    # As last stat'ed (a watching Scanner reuses them while the folder has no event):
    known: dict[str, ScannedFile] | None = None
    subdirs: list[tuple[str, str, os.stat_result]] | None = None


class _Rebuild(Exception):
    """A watching scan met something its watches cannot account for: scan in full."""


class Scanner:
    """`scan_datasite`, kept between passes so that an unchanged folder is not listed again.

    A folder's entries (names and kinds) change only with its mtime: adding, removing, renaming
    or replacing an entry (a file by a link, say) rewrites the folder itself. So a folder whose
    mtime, inode and device are what they were when it was last listed, and which was not changing
    then (its mtime older than RACY_NS: a change within one clock tick could leave the
    mtime as it was), is not listed again: only its files are stat'ed (a file's content changes
    without touching its folder) and its subfolders visited. Anything a stat finds out of place
    (a file gone, or no longer a regular file) lists that folder again. The result is always what
    `scan_datasite` would return; what is remembered is rebuilt from the folder by the first scan.

    With `watch=True` (a long-lived client) it also keeps an inotify watch on every folder it
    lists, added before the folder is stat'ed and listed, so that any later change to its entries
    or to one of its files' content or metadata queues an event. A scan first reads the events:
    a folder with none is taken as it was (its files are not stat'ed); a folder with any is
    scanned as above. A full scan (every file stat'ed) is made by the first scan, after a queue
    overflow, and at least every `full_scan_seconds` (FULL_SCAN_SECONDS): inotify does not see
    writes through a shared mmap nor changes made by another machine to a network file system,
    so that interval bounds how long those go unseen. The first scan, and one after a watched
    folder was moved or unmounted (its watch no longer matches its path), also start a fresh
    inotify instance and set every watch again. Where inotify is unavailable, or a folder cannot
    be watched (the fs.inotify.max_user_watches limit), those folders are simply scanned every
    time.

    `Scan.changed` names the files whose stat differs from the previous scan's, and those gone.
    """

    def __init__(
        self, root: Path, *, watch: bool = False, full_scan_seconds: float = FULL_SCAN_SECONDS
    ) -> None:
        self.root = root
        self.watch = watch
        self.full_scan_seconds = full_scan_seconds
        self.last_full = False
        self._listings: dict[str, _Listing] = {}
        self._files: dict[str, ScannedFile] = {}
        self._inotify: Inotify | None = None
        self._wds: dict[int, str] = {}  # watch descriptor -> folder prefix ("" or "a/b/")
        self._watched: dict[str, int] = {}  # folder prefix -> watch descriptor
        self._dirty: set[str] = set()  # folders with events since they were last scanned
        self._full_due = True
        self._rebuild_due = True  # a fresh inotify instance, every watch set (the first scan)
        self._full_at = 0.0  # time.monotonic() of the last full scan
        self._changed: set[str] = set()
        self._maybe_gone: set[str] = set()

    @property
    def watching(self) -> bool:
        return self._inotify is not None

    def scan_in_full(self) -> None:
        """Make the next scan a full one (every file stat'ed)."""
        self._full_due = True

    def close(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
        self._wds.clear()
        self._watched.clear()
        self._full_due = True

    def scan(self) -> Scan:
        quick = self._events() if self.watch else False
        self._changed, self._maybe_gone = set(), set()
        try:
            return self._scan(quick)
        except _Rebuild:
            self._rebuild_due = True
            return self._scan(quick=False)

    def _events(self) -> bool:
        """Take the queued events; whether this scan may trust the folders without any."""
        if self._inotify is None or self._rebuild_due:
            return False
        due = self._full_due or time.monotonic() - self._full_at >= self.full_scan_seconds
        due = due or "" not in self._watched
        for wd, mask, _name in self._inotify.read_all():
            if mask & _REBUILD:
                self._rebuild_due = True
            if mask & (IN_Q_OVERFLOW | _REBUILD):
                due = True
                continue
            prefix = self._wds.get(wd)
            if prefix is None:
                continue  # a watch already replaced
            self._dirty.add(prefix)
            if mask & (IN_DELETE_SELF | IN_IGNORED):  # gone: its parent is listed again
                del self._wds[wd]
                if self._watched.get(prefix) == wd:
                    del self._watched[prefix]
                self._dirty.add(_parent(prefix))
        return not due

    def _scan(self, quick: bool) -> Scan:
        if self.watch and not quick:
            if self._inotify is None or self._rebuild_due:
                self._restart_watches()
            else:  # the watches stay (each is set again as its folder is visited)
                self._full_due = False
                self._full_at = time.monotonic()
        result = Scan(files={}, skipped=[], changed=None)
        seen: set[str] = set()
        root = os.fspath(self.root)
        try:
            st = os.lstat(root)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            self._visit(root, "", st, result, seen, time.time_ns(), quick)
        for gone in set(self._listings) - seen:
            self._maybe_gone.update(rel for rel, _ in self._listings.pop(gone).files)
            self._unwatch(gone)
        changed = self._changed
        changed.update(rel for rel in self._maybe_gone if rel not in result.files)
        result.changed = changed
        self._files = result.files
        self._dirty.clear()
        self.last_full = not quick
        return result

    # -- watches ---------------------------------------------------------------------------

    def _restart_watches(self) -> None:
        """A fresh inotify instance: nothing queued for, or left of, the old watches."""
        self.close()
        try:
            self._inotify = Inotify()
        except OSError:
            self._inotify = None  # scanned in full each time; tried again next full scan
        self._dirty.clear()
        self._full_due = self._rebuild_due = False
        self._full_at = time.monotonic()

    def _add_watch(self, folder: str, prefix: str) -> None:
        if self._inotify is None:
            return
        try:
            wd = self._inotify.add(folder, _WATCH_MASK)
        except OSError:  # gone, a link now, or the watch limit: scanned every time
            self._unwatch(prefix)
            return
        holder = self._wds.get(wd)
        if holder is not None and holder != prefix:  # one folder at two paths (moved, a bind
            self._unwatch(prefix)  # mount): the watch cannot tell which, so neither is trusted
            self._watched.pop(holder, None)
            return
        old = self._watched.get(prefix)
        if old is not None and old != wd and self._wds.get(old) == prefix:
            del self._wds[old]  # the folder at this path was replaced: its old watch goes
            self._inotify.remove(old)
        self._wds[wd] = prefix
        self._watched[prefix] = wd

    def _unwatch(self, prefix: str) -> None:
        wd = self._watched.pop(prefix, None)
        if wd is not None and self._wds.get(wd) == prefix:
            del self._wds[wd]
            if self._inotify is not None:
                self._inotify.remove(wd)

    # -- visiting --------------------------------------------------------------------------

    def _list(self, folder: str, prefix: str, st: os.stat_result, now: int) -> _Listing:
        listing = _Listing(
            signature=(st.st_mtime_ns, st.st_ino, st.st_dev),
            racy=is_racy(st, now),
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
        quick: bool,
    ) -> None:
        listing = self._listings.get(prefix)
        if (
            quick
            and listing is not None
            and listing.known is not None
            and listing.subdirs is not None
            and prefix not in self._dirty
            and prefix in self._watched
        ):
            # Watched, and no event since it was last scanned: as it was.
            seen.add(prefix)
            result.files.update(listing.known)
            result.skipped.extend(listing.skipped)
            for rel, path, sub_st in listing.subdirs:
                self._visit(path, rel + "/", sub_st, result, seen, now, quick)
            return
        if self.watch:
            # Watched first, then stat'ed afresh: a change after this stat queues an event.
            self._add_watch(folder, prefix)
            try:
                st = os.lstat(folder)
            except FileNotFoundError:
                if quick:
                    raise _Rebuild from None
                return  # gone since its parent listed it: the next scan lists the parent again
            if not stat.S_ISDIR(st.st_mode):
                if quick:
                    raise _Rebuild
                return
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
            if listing is not None:
                self._maybe_gone.update(rel for rel, _ in listing.files)
            listing = self._listings[prefix] = self._list(folder, prefix, st, now)
        assert listing is not None
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
            if known is None or stamp(known.stat) != stamp(file_st):
                known = ScannedFile(rel, Path(path), file_st)
                self._changed.add(rel)
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
                listing.known = {known.rel: known for known in found}
                listing.subdirs = subdirs
                result.files.update(listing.known)
                result.skipped.extend(listing.skipped)
                for rel, path, dir_st in subdirs:
                    self._visit(path, rel + "/", dir_st, result, seen, now, quick)
                return
        # Something changed under a listing that looked current: list the folder again.
        self._maybe_gone.update(rel for rel, _ in self._listings.pop(prefix).files)
        if fresh:  # it changed while being listed: scan it the plain way, once
            self._walk_plain(folder, prefix, result, seen)
            return
        self._visit(folder, prefix, st, result, seen, now, quick)

    def _walk_plain(self, folder: str, prefix: str, result: Scan, seen: set[str]) -> None:
        """`scan_datasite` of one folder, nothing of it remembered: every file under it is
        checked against the last scan, and it is listed (and watched) again next time."""
        seen.add(prefix)
        self._dirty.discard(prefix)
        self._maybe_gone.update(rel for rel in self._files if rel.startswith(prefix))
        plain = Scan(files={}, skipped=[])
        _walk(Path(folder), prefix, plain)
        for rel, found in plain.files.items():
            known = self._files.get(rel)
            if known is None or stamp(known.stat) != stamp(found.stat):
                known = found
                self._changed.add(rel)
            result.files[rel] = known
        result.skipped.extend(plain.skipped)


def _parent(prefix: str) -> str:
    """The folder holding folder `prefix` ("a/b/" -> "a/", "a/" -> "")."""
    head, _, _ = prefix.rstrip("/").rpartition("/")
    return f"{head}/" if head else ""
