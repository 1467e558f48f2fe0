"""Noticing work in the owner's `jobs/` gateway: a watcher for speed, a rescan for truth.

The watcher (watchfiles: inotify) reports job folders whose `approved` or `cancel` marker was
written, and new job folders, within tens of milliseconds. It may miss events (a full queue, a
folder moved in by sync, a watch limit), so the periodic rescan is what the runner relies on; its
cost is one directory read per submitter and one stat per job folder: a finished job costs a
single failed-or-found `lstat` of its `done` marker and nothing else.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import watchfiles

log = logging.getLogger(__name__)

WATCHED_MARKERS = frozenset({"approved", "cancel"})
# Small batching windows: approval-to-start latency is a target (≤ 250 ms).
DEBOUNCE_MS = 100
STEP_MS = 10


def pending_job_folders(jobs_root: Path) -> list[Path]:
    """Every `jobs/<submitter>/<job>/` folder without a `done` marker (links never followed)."""
    found: list[Path] = []
    try:
        submitters = os.scandir(jobs_root)
    except FileNotFoundError:
        return found
    with submitters:
        for submitter in submitters:
            if submitter.is_dir(follow_symlinks=False):
                found.extend(Path(submitter.path, name) for name in _pending_in(submitter.path))
    return found


def _pending_in(submitter_dir: str) -> list[str]:
    # Relative lookups from the folder's descriptor: the cheapest stat there is, which matters
    # when thousands of finished jobs are checked on every rescan.
    try:
        fd = os.open(submitter_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return []
    pending: list[str] = []
    try:
        with os.scandir(fd) as jobs:
            for job in jobs:
                name = job.name
                if name.startswith(".") or not job.is_dir(follow_symlinks=False):
                    continue
                try:
                    os.lstat(f"{name}/done", dir_fd=fd)
                except FileNotFoundError:
                    pending.append(name)
                except OSError:
                    continue
    finally:
        os.close(fd)
    return pending


def job_folder_of(jobs_root: Path, path: Path) -> Path | None:
    """The `jobs/<submitter>/<job>` folder `path` is in or is, if any."""
    try:
        parts = path.relative_to(jobs_root).parts
    except ValueError:
        return None
    if len(parts) < 2:
        return None
    return jobs_root / parts[0] / parts[1]


class GatewayWatcher:
    """Calls `notify(job_folders)` from its own thread when markers appear in the gateway."""

    def __init__(self, jobs_root: Path, notify: Callable[[set[Path]], None]) -> None:
        self.jobs_root = jobs_root
        self._notify = notify
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="gateway-watcher")

    def start(self) -> GatewayWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _relevant(self, change: watchfiles.Change, path: str) -> bool:
        parts = Path(path).relative_to(self.jobs_root).parts
        if len(parts) == 3:
            return parts[2] in WATCHED_MARKERS
        return len(parts) == 2 and change is watchfiles.Change.added

    def _run(self) -> None:
        try:
            for changes in watchfiles.watch(
                self.jobs_root,
                watch_filter=self._relevant,
                debounce=DEBOUNCE_MS,
                step=STEP_MS,
                stop_event=self._stop,
                raise_interrupt=False,
                ignore_permission_denied=True,
            ):
                folders = {job_folder_of(self.jobs_root, Path(p)) for _, p in changes}
                self._notify({f for f in folders if f is not None})
        except Exception as exc:  # the rescan still finds everything, only later
            log.warning(
                "gateway watcher stopped; relying on the periodic rescan",
                extra={"error": str(exc), "jobs": str(self.jobs_root)},
            )
