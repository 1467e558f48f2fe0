"""The serve loop: notice approved jobs, queue them fairly, run up to N at once, never die.

One thread (the caller's) owns all bookkeeping: it rescans the gateway, takes the watcher's hints,
applies the owner's job policies to new jobs (syft_core.policies: with no policy files, nothing is
approved here and every job waits for the owner), queues and dispatches. Each job runs in its own
worker thread through `Executor.run`, which catches every failure of that job. What the loop keeps
in memory (queue, active jobs, approvals found stale) is rebuilt from the job folders after a
restart; the rescan's cache of finished jobs (watcher.PendingScanner) starts empty and is dropped
every few minutes; nothing else is cached.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from syft_core.datasite import Datasite
from syft_core.dependencies import PackageIndex
from syft_core.errors import SyftError
from syft_core.filestamp import Stamp, stamp
from syft_core.jobs import ApprovedMarker, JobFolder
from syft_core.jobs.markers import read_marker
from syft_core.policies import apply_policies, load_policies, policies_dir
from syft_runner.config import RunnerConfig
from syft_runner.executor.contract import Backend
from syft_runner.executor.job import Executor, RunResult
from syft_runner.scheduler import FairQueue, QueuedJob
from syft_runner.syftjob_gateway import SyftJobGateway
from syft_runner.watcher import GatewayWatcher, PendingScanner

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

# Identity of an `approved` marker file: a new approval (a new file) has a new identity.
MarkerIdentity = Stamp
Signature = tuple[tuple[str, Stamp], ...]
RECHECK_SECONDS = 60.0  # an inbox job no policy approved is evaluated again at least this often
STOP_POLL_SECONDS = 0.5
DETACH_SECONDS = 5.0  # how long a stopping runner waits for its workers to let go
RESUME = "resume"


class RunnerServiceError(SyftError):
    """The runner cannot serve this datasite (missing datasite or gateway)."""


@dataclass(frozen=True)
class _Finished:
    key: str
    result: RunResult | None


class RunnerService:
    """Serves one owner's `jobs/` gateway."""

    def __init__(
        self,
        syftbox: Path,
        owner: str,
        config: RunnerConfig,
        client: docker.DockerClient | None,
        *,
        backend: Backend | None = None,
        images: Callable[[str], str] | None = None,
    ) -> None:
        """`client`, `backend`, `images`: as for Executor (default: tasks on `client`)."""
        self.datasite = Datasite(Path(syftbox), owner)
        if not self.datasite.jobs.is_dir():
            raise RunnerServiceError(
                f"{self.datasite.jobs}: no jobs/ folder; is {owner}'s datasite initialised?"
            )
        self.config = config
        self.executor = Executor(
            client, config, Path(syftbox), owner, backend=backend, images=images
        )
        # OpenMined's job gateway, served through ours (its jobs are mirrored into jobs/).
        self.syft_jobs = (
            SyftJobGateway(
                self.datasite,
                lock_dir=self.executor.dirs.root / "syftjob-locks",
                index=PackageIndex(config.index_url, tuple(config.find_links), config.no_index),
                datasets=list(config.syft_job_datasets),
                share_on_completion=config.syft_job_share_on_completion,
            )
            if config.syft_jobs
            else None
        )
        self.queue = FairQueue()
        self.active: dict[str, threading.Thread] = {}
        self._approvals: dict[str, MarkerIdentity] = {}  # queued/active job → its approval
        self._stale: dict[str, MarkerIdentity] = {}  # approvals found stale: not re-checked
        # Inbox jobs no policy approved: not evaluated (hashed) again until their files or the
        # policies change, or RECHECK_SECONDS pass (a condition can depend on other
        # jobs: same_code_as_approved).
        self._not_by_policy: dict[str, tuple[tuple[Signature, Signature], float]] = {}
        self._policy_files: Signature = ()  # the policy files as this pass found them
        self._finished: queue.Queue[_Finished] = queue.Queue()
        self._hints: set[Path] = set()
        self._hints_lock = threading.Lock()
        self._wake = threading.Event()
        self.ready = threading.Event()  # set once serving: lock held, recovery done, watching
        self._lock_fd: int | None = None
        # The rescan's listing cache (finished jobs skipped): memory only, empty at each start.
        self._scanner = PendingScanner(self.datasite.jobs)

    # -- the loop -----------------------------------------------------------------------------
    def run(self, stop: threading.Event, *, once: bool = False) -> None:
        """Serve until `stop` is set; with `once`, until no approved job is left to run.

        Stopping leaves running containers alone: the next start re-attaches to them."""
        self.claim()
        try:
            self._serve(stop, once)
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def claim(self) -> None:
        """Take this datasite's runner lock now (run() takes it otherwise), so that a caller
        learns before starting anything else that another runner serves it:
        RunnerServiceError. Idempotent."""
        if self._lock_fd is None:
            self._lock_fd = self._lock()

    def _lock(self) -> int:
        """One runner per datasite: two would fight over the same staging folders and jobs.
        flock is released by the kernel when the process dies, so a crash never leaves it."""
        path = self.executor.dirs.root / "serve.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunnerServiceError(
                f"{path}: another runner is already serving {self.datasite.email}"
            ) from None
        return fd

    def _serve(self, stop: threading.Event, once: bool) -> None:
        removed = self.executor.recover()
        log.info(
            "runner started",
            extra={
                "owner": self.datasite.email,
                "jobs": str(self.datasite.jobs),
                "concurrency": self.config.concurrency,
                "runner_id": self.config.runner_id,
                "orphans_removed": removed,
            },
        )
        watcher = None if once else GatewayWatcher(self.datasite.jobs, self._hint).start()
        # Continuously, OpenMined's gateway is kept in step by a thread of its own: a slow pass
        # (resolving a new job's packages) never delays our own jobs. With `once`, in line.
        syft_jobs = None if once else self._start_syft_jobs(stop)
        self.ready.set()
        next_rescan = 0.0
        try:
            while not stop.is_set():
                self._wake.clear()
                if time.monotonic() >= next_rescan:
                    if once:
                        self._sync_syft_jobs()
                    self._consider(self._scanner.scan())
                    next_rescan = time.monotonic() + self.config.rescan_seconds
                else:
                    self._consider(self._take_hints())
                self._reap()
                self._dispatch()
                if once and not self.active and not len(self.queue):
                    self._sync_syft_jobs()  # their side learns how the last jobs ended
                    break
                # Capped so that a stop request is noticed promptly even when nothing happens.
                self._wake.wait(min(STOP_POLL_SECONDS, max(0.0, next_rescan - time.monotonic())))
        finally:
            if watcher is not None:
                watcher.stop()
            if syft_jobs is not None:
                syft_jobs.join(timeout=DETACH_SECONDS)
            in_flight = len(self.active)
            self.executor.detach()
            for thread in list(self.active.values()):
                thread.join(timeout=DETACH_SECONDS)
        log.info("runner stopped", extra={"jobs_in_flight": in_flight})

    def _sync_syft_jobs(self) -> None:
        # Mirrors it writes or approves are found by the watcher or the rescan, like any job.
        if self.syft_jobs is not None:
            self.syft_jobs.sync()

    def _start_syft_jobs(self, stop: threading.Event) -> threading.Thread | None:
        if self.syft_jobs is None:
            return None

        def loop() -> None:
            while not stop.is_set():
                try:
                    self._sync_syft_jobs()
                except Exception:  # sync is fail-soft per job; this is the last line of defence
                    log.exception("syft job gateway pass failed")
                stop.wait(self.config.rescan_seconds)

        thread = threading.Thread(target=loop, daemon=True, name="syft-jobs")
        thread.start()
        return thread

    def _hint(self, folders: set[Path]) -> None:
        with self._hints_lock:
            self._hints.update(folders)
        self._wake.set()

    def _take_hints(self) -> list[Path]:
        with self._hints_lock:
            hints, self._hints = self._hints, set()
        return sorted(hints)

    # -- finding work -------------------------------------------------------------------------
    def _consider(self, folders: list[Path]) -> None:
        found: list[QueuedJob] = []
        # Read once per pass: without an auto-approving policy, new jobs cost no config parsing.
        policies = bool(folders) and any(p.auto_approve for p in load_policies(self.datasite)[0])
        if policies:  # stat'ed once a pass, not once per inbox job
            self._policy_files = _tree_signature(policies_dir(self.datasite))
        for folder in folders:
            key = str(folder)
            if key in self.active or key in self.queue:
                continue
            try:
                item = self._candidate(folder, policies)
            except (SyftError, OSError) as exc:  # a badly named or unreadable folder: not a job
                log.debug("skipping job folder", extra={"folder": key, "error": str(exc)})
                continue
            if isinstance(item, QueuedJob):
                found.append(item)
            elif item == RESUME:
                self._launch(key, resumed=True)
        for item in sorted(found):  # oldest approval first; the queue then rotates submitters
            self.queue.push(item)

    def _candidate(self, folder: Path, policies: bool) -> QueuedJob | str | None:
        """'resume' for a job whose container this runner must re-attach to, a QueuedJob for a
        newly approved one, else None. Cheap: a few lstat calls, no hashing, unless `policies`
        (an auto-approving policy exists) and the job is new: that is evaluated."""
        # Plain string paths and no JobFolder until a job is queued: every live job in the
        # gateway (an inbox of a thousand) is looked at again on every rescan.
        # An inbox job costs three lstat calls (done, running, approved).
        key = str(folder)
        if _lexists(f"{key}/done"):
            return None
        if _lexists(f"{key}/running"):
            JobFolder(folder)  # a folder that names no job (a submitter that is no email) raises
            return RESUME
        try:
            st = os.lstat(f"{key}/approved")
        except FileNotFoundError:
            if not policies or _lexists(f"{key}/rejected"):
                return None
            if not self._approved_by_policy(folder):
                return None
            st = os.lstat(f"{key}/approved")
        if _lexists(f"{key}/rejected"):
            return None
        identity = stamp(st)
        if self._stale.get(key) == identity:
            return None
        approved = read_marker(folder / "approved", ApprovedMarker)
        if approved is None:
            return None
        self._approvals[key] = identity
        return QueuedJob(approved.at, key, JobFolder(folder).submitter)

    def _approved_by_policy(self, folder: Path) -> bool:
        """Approve a new job if one of the owner's policies says so. Only jobs never approved: one
        changed after an approval waits for the owner again, whoever approved it first."""
        key, now = str(folder), time.monotonic()
        signature = (_tree_signature(folder), self._policy_files)
        refused = self._not_by_policy.get(key)
        if refused is not None and refused[0] == signature and now - refused[1] < RECHECK_SECONDS:
            return False
        job = JobFolder(folder)
        try:
            policy = apply_policies(self.datasite, job, self.datasite.email)
        except (SyftError, OSError) as exc:
            log.warning(
                "job policies not applied", extra={"folder": str(job.path), "error": str(exc)}
            )
            return False
        if policy is None:
            self._not_by_policy[key] = (signature, now)
            return False
        self._not_by_policy.pop(key, None)
        log.info("job approved by policy", extra={"folder": str(job.path), "policy": policy})
        return True

    # -- running work -------------------------------------------------------------------------
    def _dispatch(self) -> None:
        while len(self.active) < self.config.concurrency:
            item = self.queue.pop()
            if item is None:
                return
            self._launch(item.key, resumed=False)

    def _launch(self, key: str, *, resumed: bool) -> None:
        # Resumed jobs already hold a container, so they do not wait for a free slot.
        thread = threading.Thread(target=self._work, args=(key,), daemon=True, name=f"job:{key}")
        self.active[key] = thread
        if resumed:
            log.info("re-attaching to a running job", extra={"folder": key})
        thread.start()

    def _work(self, key: str) -> None:
        result: RunResult | None = None
        try:
            result = self.executor.run(JobFolder(Path(key)))
        except Exception:  # Executor.run is fail-soft; this is the last line of defence
            log.exception("unexpected error in a job worker", extra={"folder": key})
        finally:
            self._finished.put(_Finished(key, result))
            self._wake.set()

    def _reap(self) -> None:
        while True:
            try:
                finished = self._finished.get_nowait()
            except queue.Empty:
                return
            self.active.pop(finished.key, None)
            identity = self._approvals.pop(finished.key, None)
            if finished.result is RunResult.STALE and identity is not None:
                self._stale[finished.key] = identity
            else:
                self._stale.pop(finished.key, None)


def _tree_signature(root: Path) -> Signature:
    """Every entry under `root` with its stamp, links not followed: what changes when any file
    or folder there does, read with one lstat each and no file opened."""
    found: list[tuple[str, Stamp]] = []
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            found.append((entry.path, stamp(st)))
            if entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
    return tuple(sorted(found))


def _lexists(path: str) -> bool:
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    return True
