"""The permission files of one datasite, kept in memory and reloaded only where something changed.

A trie keyed by folder segments finds the governing file of a path in one walk. Change detection
uses stat signatures (inode, size, mtime_ns, ctime_ns): a file is re-read only when its signature
changed, and a folder is re-listed (to find new or removed permission files and subfolders) only
when its own signature changed, since creating, deleting or renaming an entry updates the folder's
mtime. Timestamps are coarse (a clock tick), so an entry modified within filestamp.RACY_NS of being
looked at could change again without its signature changing: such entries are re-checked on the
next reload regardless (the "racy" rule git uses for its index).

Like the reference (`Path.rglob`), the scan does not descend into symlinked folders. A
`syft.pub.yaml` that is a symlink is never followed: it counts as a broken file (grants nothing).
Unlike the reference, a `syft.pub.yaml` in or below any folder named `outputs` is ignored: jobs
write those folders, and nothing a job writes may grant access (the nearest file above governs).
"""

from __future__ import annotations

import os
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from syft_core.datasite import PERMISSION_FILE
from syft_core.filestamp import Stamp, is_racy, stamp
from syft_core.permissions.ruleset import (
    CompiledRuleSet,
    broken_ruleset,
    read_permission_file,
    ruleset_from_bytes,
)

OUTPUTS = "outputs"

Signature = Stamp


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def below_outputs(folder: str) -> bool:
    """Whether `folder` is, or is inside, a folder named `outputs`: what a job produced lives
    there, and no file a job wrote may ever act as a permission file, so none there is read."""
    return OUTPUTS in folder.split("/")


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    ruleset: CompiledRuleSet | None = None


@dataclass(slots=True)
class _FileState:
    signature: Signature
    racy: bool
    data: bytes | None  # None when the file could not be read
    ruleset: CompiledRuleSet


@dataclass(slots=True)
class _DirState:
    signature: Signature
    racy: bool
    subdirs: frozenset[str]


@dataclass(slots=True)
class ReloadReport:
    """What one reload did: files (re)compiled, files dropped, folders re-listed."""

    files_loaded: int = 0
    files_removed: int = 0
    dirs_listed: int = 0


class PermissionTree:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = os.fspath(root)
        self._trie = _Node()
        self._files: dict[str, _FileState] = {}
        self._dirs: dict[str, _DirState] = {}
        # Reloads and refreshes mutate the index; checks only read it (single dict lookups and
        # attribute reads, safe without the lock).
        self._lock = threading.Lock()

    # -- lookups ---------------------------------------------------------------------------------

    def governing(self, segments: list[str]) -> tuple[CompiledRuleSet | None, int]:
        """The governing rule set of a path and how many leading segments its folder spans.

        Deepest file on the walk from the root, except that the first terminal one stops it.
        """
        node = self._trie
        best = node.ruleset
        depth = 0
        if best is not None and best.terminal:
            return best, 0
        for i, segment in enumerate(segments, 1):
            child = node.children.get(segment)
            if child is None:
                break
            node = child
            ruleset = node.ruleset
            if ruleset is not None:
                best, depth = ruleset, i
                if ruleset.terminal:
                    break
        return best, depth

    def rulesets(self) -> list[CompiledRuleSet]:
        with self._lock:
            return [state.ruleset for state in self._files.values()]

    # -- change detection ------------------------------------------------------------------------

    def reload(self) -> ReloadReport:
        """Bring the tree up to date with the disk, touching only what changed."""
        with self._lock:
            return self._reload()

    def _reload(self) -> ReloadReport:
        now = time.time_ns()
        report = ReloadReport()
        synced: set[str] = set()
        for folder in list(self._dirs):
            state = self._dirs.get(folder)
            if state is None:  # dropped along with its parent folder
                continue
            st = self._stat_dir(folder)
            if st is None:
                self._drop_dir(folder, report)
            elif state.racy or stamp(st) != state.signature:
                self._list_dirs(folder, st, now, report, synced)
        if "" not in self._dirs:
            st = self._stat_dir("")
            if st is not None:
                self._list_dirs("", st, now, report, synced)
        for folder in list(self._files):
            if folder not in synced:
                self._sync_file(folder, now, report)
        return report

    def refresh_path(self, segments: list[str]) -> None:
        """Re-check only the permission files that can govern this path (one per prefix)."""
        with self._lock:
            self._refresh_path(segments)

    def _refresh_path(self, segments: list[str]) -> None:
        now = time.time_ns()
        report = ReloadReport()
        node: _Node | None = self._trie  # the trie node of the prefix, if any file is known below
        for k in range(len(segments) + 1):
            folder = "/".join(segments[:k])
            if k:
                node = node.children.get(segments[k - 1]) if node is not None else None
                if self._stat_dir(folder) is None:
                    # Not a real folder (missing, a file, or a symlink the scan would not
                    # enter): nothing at or below it can govern.
                    if node is not None:
                        self._forget_files_under(folder, report)
                    return
            self._sync_file(folder, now, report)
            state = self._files.get(folder)
            if state is not None and state.ruleset.terminal:
                return

    def _stat_dir(self, folder: str) -> os.stat_result | None:
        path = self._abs(folder)
        try:
            # The datasite root itself may be reached through a symlink; nothing below it may.
            st = os.stat(path) if not folder else os.lstat(path)
        except OSError:
            return None
        return st if stat.S_ISDIR(st.st_mode) else None

    def _list_dirs(
        self, folder: str, st: os.stat_result, now: int, report: ReloadReport, synced: set[str]
    ) -> None:
        """Re-list `folder`, then list every subfolder that is new to us."""
        pending = [(folder, st)]
        while pending:
            current, current_st = pending.pop()
            report.dirs_listed += 1
            subdirs, has_file = self._listing(current)
            old = self._dirs.get(current)
            old_subdirs = old.subdirs if old is not None else frozenset()
            self._dirs[current] = _DirState(stamp(current_st), is_racy(current_st, now), subdirs)
            if has_file or current in self._files:
                self._sync_file(current, now, report)
                synced.add(current)
            for gone in old_subdirs - subdirs:
                self._drop_dir(_join(current, gone), report)
            for name in subdirs - old_subdirs:
                child = _join(current, name)
                child_st = self._stat_dir(child)
                if child_st is not None:
                    pending.append((child, child_st))

    def _listing(self, folder: str) -> tuple[frozenset[str], bool]:
        subdirs: set[str] = set()
        has_file = False
        try:
            with os.scandir(self._abs(folder)) as entries:
                for entry in entries:
                    has_file = has_file or entry.name == PERMISSION_FILE
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.add(entry.name)
        except OSError:
            # Vanished or unreadable: what it held is unknown, so it holds nothing for us; an
            # unreadable permission file inside still shows up via _sync_file as broken.
            pass
        return frozenset(subdirs), has_file

    def _drop_dir(self, folder: str, report: ReloadReport) -> None:
        pending = [folder]
        while pending:
            current = pending.pop()
            state = self._dirs.pop(current, None)
            self._remove_file(current, report)
            if state is not None:
                pending.extend(_join(current, name) for name in state.subdirs)

    def _forget_files_under(self, folder: str, report: ReloadReport) -> None:
        prefix = folder + "/"
        for known in [f for f in self._files if f == folder or f.startswith(prefix)]:
            self._remove_file(known, report)

    def _sync_file(self, folder: str, now: int, report: ReloadReport) -> None:
        path = f"{self._abs(folder)}/{PERMISSION_FILE}"
        st = None if below_outputs(folder) else _lstat(path)
        known = self._files.get(folder)
        if st is None:
            self._remove_file(folder, report)
            return
        if known is not None and not known.racy and known.signature == stamp(st):
            return
        try:
            read_st, data = read_permission_file(Path(path))
        except ValueError as exc:
            # Unreadable: keep re-checking it (racy) but log only when the reason changes.
            if known is None or known.data is not None or known.ruleset.error != str(exc):
                ruleset = broken_ruleset(folder, Path(path), str(exc))
                self._store(folder, _FileState(stamp(st), True, None, ruleset))
                report.files_loaded += 1
            return
        racy = is_racy(read_st, now)
        if known is not None and known.data == data:
            known.signature, known.racy = stamp(read_st), racy
            return
        ruleset = ruleset_from_bytes(data, folder, Path(path))
        self._store(folder, _FileState(stamp(read_st), racy, data, ruleset))
        report.files_loaded += 1

    def _store(self, folder: str, state: _FileState) -> None:
        self._files[folder] = state
        node = self._trie
        for segment in folder.split("/") if folder else []:
            node = node.children.setdefault(segment, _Node())
        node.ruleset = state.ruleset

    def _remove_file(self, folder: str, report: ReloadReport) -> None:
        if self._files.pop(folder, None) is None:
            return
        report.files_removed += 1
        trail = [self._trie]
        for segment in folder.split("/") if folder else []:
            child = trail[-1].children.get(segment)
            if child is None:
                return
            trail.append(child)
        trail[-1].ruleset = None
        # Prune nodes left with neither a rule set nor children.
        segments = folder.split("/") if folder else []
        for segment, parent in zip(reversed(segments), reversed(trail[:-1]), strict=True):
            child = parent.children[segment]
            if child.ruleset is not None or child.children:
                break
            del parent.children[segment]

    def _abs(self, folder: str) -> str:
        return f"{self._root}/{folder}" if folder else self._root
