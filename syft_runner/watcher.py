"""Noticing work in the owner's `jobs/` gateway: a watcher for speed, a rescan for truth.

The watcher (inotify, through libc) reports job folders whose `approved` or `cancel` marker was
written, and new job folders, within milliseconds. It watches `jobs/`, each submitter folder and
each job folder that is not finished: a finished job (a `done` marker) costs no inotify watch, so
a gateway holding 100,000 finished jobs needs as many watches as it has live jobs. It may miss
events (a full queue, a folder moved in by sync, the watch limit), so the periodic rescan is what
the runner relies on.

The rescan (`PendingScanner`) costs one `lstat` per submitter folder and one per live job: a
submitter folder whose stamp (syft_core.filestamp: adding, removing or renaming an entry changes
it) is unchanged (and not changed in the last two seconds: mtime ticks are coarse) is not listed
again, and its finished jobs are not looked at. A changed folder is listed again and each of its
jobs looked at once more (O(jobs of that submitter), once per change). The memory is only a
cache of what the folder says: a new runner (after a crash too) starts with none and looks at
every job, and every `verify_seconds` the cache is dropped and every job is looked at again.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path

from syft_core.filestamp import Stamp, is_racy, stamp
from syft_core.inotify import (
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DONT_FOLLOW,
    IN_IGNORED,
    IN_ISDIR,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    Inotify,
)

log = logging.getLogger(__name__)

WATCHED_MARKERS = frozenset({"approved", "cancel"})
DONE = "done"
VERIFY_SECONDS = 600.0  # the rescan looks at every finished job again this often
POLL_SECONDS = 0.2  # how often the watcher thread checks for a stop request


def pending_job_folders(jobs_root: Path) -> list[Path]:
    """Every `jobs/<submitter>/<job>/` folder without a `done` marker (links never followed)."""
    return PendingScanner(jobs_root).scan()


def job_folder_of(jobs_root: Path, path: Path) -> Path | None:
    """The `jobs/<submitter>/<job>` folder `path` is in or is, if any."""
    try:
        parts = path.relative_to(jobs_root).parts
    except ValueError:
        return None
    if len(parts) < 2:
        return None
    return jobs_root / parts[0] / parts[1]


class _Submitter:
    __slots__ = ("identity", "live")

    def __init__(self) -> None:
        self.identity: Stamp | None = None
        self.live: list[str] = []  # the listed job folders not yet seen with `done`


class PendingScanner:
    """`pending_job_folders` for a caller that rescans again and again (the serve loop): the
    cost of a pass is O(submitters + live jobs); finished jobs cost nothing (module doc)."""

    def __init__(self, jobs_root: Path, verify_seconds: float = VERIFY_SECONDS) -> None:
        self.jobs_root = jobs_root
        self.verify_seconds = verify_seconds
        self._submitters: dict[str, _Submitter] = {}
        self._verified = time.monotonic()

    def scan(self) -> list[Path]:
        if time.monotonic() - self._verified >= self.verify_seconds:
            self._submitters.clear()
            self._verified = time.monotonic()
        found: list[Path] = []
        seen: set[str] = set()
        try:
            submitters = os.scandir(self.jobs_root)
        except FileNotFoundError:
            self._submitters.clear()
            return found
        with submitters:
            for entry in submitters:
                if entry.is_dir(follow_symlinks=False):
                    seen.add(entry.name)
                    found.extend(Path(entry.path, name) for name in self._pending_in(entry))
        for gone in set(self._submitters) - seen:
            del self._submitters[gone]
        return found

    def _pending_in(self, entry: os.DirEntry[str]) -> list[str]:
        # Relative lookups from the folder's descriptor: the cheapest stat there is.
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            self._submitters.pop(entry.name, None)
            return []
        try:
            st = os.fstat(fd)
            identity = stamp(st)
            state = self._submitters.get(entry.name)
            if state is None:
                state = self._submitters[entry.name] = _Submitter()
            if state.identity != identity:
                # Listed again, and every job looked at again: a folder replaced under the same
                # name may even have the same inode. The identity is taken before the listing;
                # one changed within the last RACY_NS may change again within the same mtime
                # tick, so it is not trusted: listed again next pass.
                state.live = _job_dirs(fd)
                state.identity = None if is_racy(st) else identity
            pending: list[str] = []
            live: list[str] = []
            for name in state.live:  # a pass walks the live jobs only, never the finished ones
                try:
                    os.lstat(f"{name}/{DONE}", dir_fd=fd)
                except FileNotFoundError:
                    pending.append(name)
                    live.append(name)
                except OSError:
                    live.append(name)  # looked at again next pass
            state.live = live
            return pending
        finally:
            os.close(fd)


def _job_dirs(fd: int) -> list[str]:
    with os.scandir(fd) as jobs:
        return [
            j.name for j in jobs if not j.name.startswith(".") and j.is_dir(follow_symlinks=False)
        ]


# -- inotify ---------------------------------------------------------------------------------
_DIR_MASK = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR | IN_DONT_FOLLOW
_JOB_MASK = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR | IN_DONT_FOLLOW


class GatewayWatcher:
    """Calls `notify(job_folders)` from its own thread when markers appear in the gateway."""

    def __init__(self, jobs_root: Path, notify: Callable[[set[Path]], None]) -> None:
        self.jobs_root = jobs_root
        self._notify = notify
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="gateway-watcher")
        self._paths: dict[int, Path] = {}  # watch descriptor -> folder
        self._wds: dict[Path, int] = {}
        self._limit_logged = False
        self._inotify: Inotify | None = None

    @property
    def watches(self) -> int:
        """How many folders are watched (jobs/, submitters, live jobs)."""
        return len(self._wds)

    def start(self) -> GatewayWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            self._inotify = Inotify()
            try:
                self._watch_root()
                while not self._stop.is_set():
                    ready, _, _ = select.select([self._inotify.fd], [], [], POLL_SECONDS)
                    if ready:
                        self._handle(self._inotify.read())
            finally:
                self._inotify.close()
        except Exception as exc:  # the rescan still finds everything, only later
            log.warning(
                "gateway watcher stopped; relying on the periodic rescan",
                extra={"error": str(exc), "jobs": str(self.jobs_root)},
            )

    # -- watches ------------------------------------------------------------------------------
    def _add(self, path: Path, mask: int) -> bool:
        assert self._inotify is not None
        try:
            wd = self._inotify.add(path, mask)
        except OSError as exc:
            if exc.errno == errno.ENOSPC and not self._limit_logged:
                self._limit_logged = True
                log.warning(
                    "inotify watch limit reached (fs.inotify.max_user_watches); the periodic "
                    "rescan finds the jobs not watched",
                    extra={"jobs": str(self.jobs_root), "watches": len(self._wds)},
                )
            return False  # gone already, a link, or the limit: the rescan covers it
        self._paths[wd] = path
        self._wds[path] = wd
        return True

    def _unwatch(self, path: Path) -> None:
        wd = self._wds.pop(path, None)
        if wd is not None and self._inotify is not None:
            self._paths.pop(wd, None)
            self._inotify.remove(wd)

    def _watch_root(self) -> None:
        if not self._add(self.jobs_root, _DIR_MASK):
            raise OSError(f"{self.jobs_root}: cannot be watched")
        with os.scandir(self.jobs_root) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    self._watch_submitter(Path(entry.path), notify=False)

    def _watch_submitter(self, folder: Path, *, notify: bool) -> None:
        """Watch a submitter folder, then its live jobs (watch first: nothing falls between)."""
        if not self._add(folder, _DIR_MASK):
            return
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return
        try:
            names = _job_dirs(fd)
        finally:
            os.close(fd)
        for name in names:
            self._watch_job(folder / name, notify=notify)

    def _watch_job(self, folder: Path, *, notify: bool) -> None:
        if os.path.lexists(folder / DONE) or not self._add(folder, _JOB_MASK):
            return
        if os.path.lexists(folder / DONE):  # finished between the check and the watch
            self._unwatch(folder)
        elif notify:  # markers written before the watch was in place are found by the service
            self._notify({folder})

    def _handle(self, events: list[tuple[int, int, str]]) -> None:
        hints: set[Path] = set()
        for wd, mask, name in events:
            if mask & IN_Q_OVERFLOW:
                log.debug("gateway watcher queue overflowed; the rescan catches up")
                continue
            if mask & IN_IGNORED:
                path = self._paths.pop(wd, None)
                if path is not None and self._wds.get(path) == wd:
                    del self._wds[path]
                continue
            parent = self._paths.get(wd)
            if parent is None or not name:
                continue
            path = parent / name
            depth = len(path.relative_to(self.jobs_root).parts)
            if depth <= 2:  # a submitter folder (1) or a job folder (2)
                if not mask & IN_ISDIR or name.startswith("."):
                    continue
                if mask & (IN_MOVED_FROM | IN_DELETE):
                    self._unwatch_tree(path)
                elif depth == 1:
                    self._watch_submitter(path, notify=True)
                else:
                    self._watch_job(path, notify=False)
                    hints.add(path)
            elif name in WATCHED_MARKERS:
                hints.add(parent)
            elif name == DONE:
                self._unwatch(parent)  # finished: a finished job needs no watch
        if hints:
            self._notify(hints)

    def _unwatch_tree(self, folder: Path) -> None:
        for path in [p for p in self._wds if p == folder or folder in p.parents]:
            self._unwatch(path)
