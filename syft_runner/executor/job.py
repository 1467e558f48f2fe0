"""The job state machine: one approved job, from its folder to a `done` marker.

    prepare ──▶ execute ──▶ supervise ──▶ finalize ──▶ cleanup
     (verify,    (create,      │  └─ terminate (timeout, cancel: stop, then kill after grace)
      stage)      running,     └─ logs streamed, usage sampled
                  start)

Modelled on OpenSAFELY's job-runner executor API. The task itself (a container, a Swarm
service) is a backend's business, behind the contract in `executor/contract.py`; this module owns
the job folder. No step trusts memory: the state is rebuilt every time from evidence — the markers
in the job folder and the backend's tasks found by their labels (each named deterministically
`syft-job-<id>`, the id a hash of owner/submitter/folder and the approved content hash) — and
every step is idempotent, so a runner killed at any moment resumes:

    evidence                                  action
    done                                      cleanup: remove the tasks and runner folders
    approved, no running marker               prepare + execute (a never-started task of an
                                              earlier attempt is removed and made again)
    running, its task PREPARED                start it (provably never ran; staging re-verified)
    running, its task EXECUTING               re-attach: supervise, finalize
    running, its task EXECUTED                finalize from the task (logs are re-read)
    running, no task, or its task LOST        done/error: never re-run (see docs/runner.md)

The task is prepared before the `running` marker is written and started after it, so a started
task always has its marker, and the deterministic name is the lock that stops a job from running
twice.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from pydantic import ValidationError

from syft_core.datasets import get_dataset
from syft_core.datasite import Datasite
from syft_core.errors import JobError, SyftError
from syft_core.jobs import (
    ApprovedMarker,
    CancelMarker,
    DoneMarker,
    JobConfig,
    JobFolder,
    Outcome,
    RunningMarker,
    Status,
    load_config,
    walk_submission,
)
from syft_core.jobs.config import describe_problems
from syft_core.jobs.folder import iter_job_folders
from syft_core.jobs.lock import (
    LOCK_RELPATH,
    MAX_LOCK_BYTES,
    EnvLock,
    LockError,
    job_lock,
    parse_lock,
)
from syft_core.jobs.markers import ResultsReport, read_marker, write_marker
from syft_core.output_checks import check_outputs, write_checks
from syft_core.policies import decide_release
from syft_core.release import AUTO_MOCK, release_job
from syft_core.safefile import read_capped
from syft_runner.config import MiB, RunnerConfig, RuntimeNotAllowedError
from syft_runner.executor.contract import (
    Backend,
    BackendUnavailable,
    TaskExists,
    TaskLost,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from syft_runner.executor.labels import (
    DATASET_NODE_LABEL,
    LABEL_CONTENT_HASH,
    LABEL_IMAGE,
    LABEL_JOB,
    LABEL_JOB_ID,
    LABEL_LIMITS,
    LABEL_OWNER,
    LABEL_RUNNER,
    LABEL_SUBMITTER,
    LABEL_SYFTBOX,
)
from syft_runner.executor.outcome import Ending, StopReason, Usage, classify, with_outputs_note
from syft_runner.sandbox.container import (
    DEFAULT_ENVIRONMENT,
    ENV_DIR,
    JOB_DIR,
    WORKDIR,
    Limits,
    Mount,
    ResourceRequest,
    job_user,
)
from syft_runner.sandbox.envs import (
    LABEL_ENV,
    LABEL_ENV_BUILD,
    EnvCache,
    EnvError,
    EnvIntegrityError,
    EnvSettings,
    Protected,
    ReadyEnv,
    mounted_env_keys,
    remove_build_leftovers,
)
from syft_runner.sandbox.images import ImageMissingError, image_tag, resolve_image
from syft_runner.workspace.jobfs import JobFsError
from syft_runner.workspace.logs import LogStreamer, prepare_logs_dir
from syft_runner.workspace.mounts import job_environment
from syft_runner.workspace.outputs import OutputCaps, collect_outputs
from syft_runner.workspace.staging import (
    RUNNER_STATE_DIR,
    DatasetUnavailableError,
    RunnerDirs,
    StagedJob,
    SubmissionChangedError,
    job_fs_pool,
    job_id,
    job_mounts,
    stage,
    verify_staged,
)

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

COMMAND = ["/bin/bash", f"{JOB_DIR}/run.sh"]
NAME_PREFIX = "syft-job-"
TICK_SECONDS = 0.25  # how often a running job's cancel marker, deadline and usage are checked
LOG_DRAIN_SECONDS = 30.0


def container_name(jid: str) -> str:
    return f"{NAME_PREFIX}{jid}"


class JobFailure(SyftError):
    """The job cannot run; it ends `done`/error with this message (nothing was run)."""


class EnvFailure(JobFailure):
    """The job's environment could not be made ready: nothing ran. `log` (the installer's
    output) goes to the job's logs/stderr.txt."""

    def __init__(self, message: str, log: str) -> None:
        super().__init__(message)
        self.log = log


class ApprovalStale(SyftError):
    """The submission changed after approval; not run, it reads as inbox until re-approved."""


class Detached(SyftError):
    """The runner is stopping: the job's container keeps running for the next runner."""


class NotRunnable(SyftError):
    """Cancelled or rejected while it was being started: nothing to do."""


class RunResult(StrEnum):
    FINISHED = "finished"  # a `done` marker was written
    DETACHED = "detached"  # the runner stopped first; the container runs on
    RETRY = "retry"  # the backend did not answer; markers untouched, the next rescan retries
    STALE = "stale"  # not run: approval no longer matches the submission
    SKIPPED = "skipped"  # nothing to do (already done, rejected, not approved)


class ExecState(StrEnum):
    NOT_APPROVED = "not_approved"
    NOT_STARTED = "not_started"
    CREATED = "created"  # running marker, task never started
    EXECUTING = "executing"
    EXECUTED = "executed"
    LOST = "lost"  # running marker, no task (or a task whose end cannot be known)
    DONE = "done"


# A running job's state from its task's (TaskState.ABSENT: no task at all).
_FROM_TASK = {
    TaskState.PREPARED: ExecState.CREATED,
    TaskState.EXECUTING: ExecState.EXECUTING,
    TaskState.EXECUTED: ExecState.EXECUTED,
    TaskState.LOST: ExecState.LOST,
    TaskState.ABSENT: ExecState.LOST,
}


@dataclass(frozen=True)
class Evidence:
    state: ExecState
    tasks: list[TaskStatus]
    approved: ApprovedMarker | None = None
    running: RunningMarker | None = None
    reason: str | None = None

    @property
    def task(self) -> TaskStatus | None:
        if self.running is None:
            return None
        return _named(self.tasks, self.running.container)


@dataclass(frozen=True)
class RunPlan:
    job: JobFolder
    content_hash: str
    config: JobConfig
    runtime: str
    image_id: str
    limits: Limits
    staged: StagedJob
    mounts: list[Mount]
    env: ReadyEnv | None = None  # the job's Python environment, mounted at ENV_DIR

    @property
    def name(self) -> str:
        return container_name(self.staged.job_id)


class Executor:
    """Runs jobs of one owner's datasite; safe to call from several threads, one job each."""

    def __init__(
        self,
        client: docker.DockerClient | None,
        config: RunnerConfig,
        syftbox: Path,
        owner: str,
        *,
        data_root: Path | None = None,
        backend: Backend | None = None,
        images: Callable[[str], str] | None = None,
    ) -> None:
        """`client`: this machine's engine, which resolves images and builds job environments
        (None: no local engine, e.g. tests on the in-memory backend; then `backend` and `images`
        are required). `backend`: where tasks run (default: containers on `client`; see
        executor/backends/). `images`: runtime name → the image id jobs of it run (default:
        resolved on `client`).
        `data_root`: the syftbox holding the owner's datasets when it is not `syftbox`, as for
        a scientist's local run (syft_runner.local_run) against a synced copy of the mocks."""
        self.client = client
        if client is None and (backend is None or images is None):
            raise ValueError("without a local engine, give the backend and the image resolver")
        self.backend: Backend = backend or _local_backend(_engine(client), config.runner_id)
        self.images = images or (lambda runtime: resolve_image(_engine(client), runtime))
        self.config = config
        self.syftbox = Path(syftbox).resolve()
        self.owner = owner
        self.data_root = data_root
        state_dir = config.state_dir or self.syftbox / RUNNER_STATE_DIR
        self.dirs = RunnerDirs.for_owner(state_dir, owner)
        owned = ((LABEL_SYFTBOX, str(self.syftbox)), (LABEL_OWNER, owner))
        self.envs = EnvCache(replace(EnvSettings.from_config(config, state_dir), labels=owned))
        self._detach = threading.Event()
        self.caps = OutputCaps(
            max_file_bytes=config.output_max_file_bytes,
            max_total_bytes=config.output_max_total_bytes,
            max_files=config.output_max_files,
        )
        # Job filesystems formatted ahead, one per job slot (only where jobs run on this host).
        self.pool = (
            job_fs_pool(self.dirs, self.caps, config.concurrency)
            if self.backend.runs_on_this_host
            else None
        )

    # -- the whole job, fail-soft -------------------------------------------------------------
    def run(self, job: JobFolder) -> RunResult:
        """Advance `job` as far as it goes. Never raises for a bad job: every failure ends the
        job in `done` with a message the submitter can act on."""
        try:
            return self._advance(job)
        except Detached:
            return RunResult.DETACHED
        except NotRunnable:
            return RunResult.SKIPPED
        except (BackendUnavailable, requests.exceptions.ConnectionError) as exc:
            # The engine went away (restart, upgrade). The job's fate is decided from the
            # evidence once it is back, not guessed now: a queued job waits, a running one is
            # re-attached or finalized from its ended task.
            log.warning("engine unreachable", extra=_job_fields(job, error=str(exc)))
            return RunResult.RETRY
        except ApprovalStale as exc:
            log.info("job not run: approval is stale", extra=_job_fields(job, reason=str(exc)))
            return RunResult.STALE
        except JobFailure as exc:
            if isinstance(exc, EnvFailure):
                self._write_stderr(job, exc.log)
            self._end_with_error(job, str(exc))
            return RunResult.FINISHED
        except Exception:
            # The exception's text stays in the owner's log: it may name what the job wrote
            # (an output's file name), and `done` is readable before release.
            log.exception("runner error while running a job", extra=_job_fields(job))
            self._end_with_error(
                job, "the runner failed while running this job; the owner's runner log has why"
            )
            return RunResult.FINISHED

    def detach(self) -> None:
        """Stop supervising: every `run` returns soon, leaving tasks running; a runner started
        later re-attaches to them."""
        self._detach.set()

    def _advance(self, job: JobFolder) -> RunResult:
        evidence = self.get_status(job)
        if evidence.state is ExecState.DONE:
            if evidence.tasks:  # a runner died between `done` and its cleanup
                self._restore_events(job)
            self.cleanup(evidence.tasks)
            return RunResult.SKIPPED
        if evidence.state is ExecState.NOT_APPROVED:
            return RunResult.SKIPPED
        if evidence.state is ExecState.LOST:
            assert evidence.running is not None
            raise JobFailure(_lost_message(evidence.running.container, evidence.reason))
        streamer: LogStreamer | None = None
        if evidence.state is ExecState.NOT_STARTED:
            assert evidence.approved is not None
            self.cleanup(evidence.tasks)  # never-started leftovers of an earlier attempt
            task, streamer = self.execute(self.prepare(job, evidence.approved))
        else:
            found = evidence.task
            assert found is not None
            task = found
            if evidence.state is ExecState.CREATED:
                task, streamer = self._start_created(job, task)
        ending = self.supervise(job, task, streamer)
        self.finalize(job, task, ending)
        self.cleanup([task])
        return RunResult.FINISHED

    # -- get_status ---------------------------------------------------------------------------
    def get_status(self, job: JobFolder) -> Evidence:
        state = job.state()
        tasks = self.tasks_of(job)
        if state.status is Status.DONE:
            return Evidence(ExecState.DONE, tasks)
        if state.status is Status.RUNNING:
            assert state.running is not None
            running = state.running
            found = _named(tasks, running.container)
            exec_state = _FROM_TASK[found.state if found else TaskState.ABSENT]
            reason = found.detail if found is not None else None
            return Evidence(exec_state, tasks, state.approved, running, reason)
        if state.status is Status.APPROVED:
            return Evidence(ExecState.NOT_STARTED, tasks, state.approved)
        if state.status is Status.INBOX and state.approved is not None:
            self._refuse_unsafe(job)
            raise ApprovalStale(state.reason or "submission changed after approval")
        return Evidence(ExecState.NOT_APPROVED, tasks, reason=state.reason)

    def tasks_of(self, job: JobFolder | None = None) -> list[TaskStatus]:
        """This runner's tasks of `job`; without one, of every job of this owner."""
        return self.backend.tasks(self._selector(job))

    def _selector(self, job: JobFolder | None = None) -> dict[str, str]:
        labels = {
            LABEL_RUNNER: self.config.runner_id,
            LABEL_SYFTBOX: str(self.syftbox),
            LABEL_OWNER: self.owner,
        }
        if job is not None:
            labels[LABEL_JOB] = f"{job.owner}/{job.relpath}"
        return labels

    @staticmethod
    def _refuse_unsafe(job: JobFolder) -> None:
        """An approved submission that became unsafe (a link, a device, run.sh gone) can never
        run: it ends with an error instead of waiting for a re-approval that cannot happen."""
        try:
            walk_submission(job.path)
        except JobError as exc:
            raise JobFailure(
                f"not run: the approved submission is not safe to run: {exc}"
            ) from None

    # -- prepare ------------------------------------------------------------------------------
    def prepare(self, job: JobFolder, approved: ApprovedMarker) -> RunPlan:
        """Stage a verified copy and work out image and limits. JobFailure if it cannot run."""
        try:
            # A job's own capped filesystem is a mount on this host: tasks elsewhere would not
            # see it, so there outputs are bounded by the collection caps and the disk reserve.
            here = self.backend.runs_on_this_host
            caps = self.caps if here else None
            staged = stage(job, approved.content_hash, self.dirs, caps, here=here, pool=self.pool)
        except SubmissionChangedError as exc:
            raise ApprovalStale(str(exc)) from None
        except JobFsError as exc:
            log.error("cannot make a job filesystem", extra=_job_fields(job, error=str(exc)))
            raise JobFailure(f"not run: the runner could not prepare its folder: {exc}") from None
        except (JobError, OSError) as exc:
            raise JobFailure(f"not run: the submission could not be staged: {exc}") from None
        try:
            return self._plan(job, approved, staged)
        except BaseException:
            self.dirs.remove(staged.job_id)
            raise

    def _plan(self, job: JobFolder, approved: ApprovedMarker, staged: StagedJob) -> RunPlan:
        try:
            config = load_config(staged.config_path)
        except JobError as exc:
            # Name the submitter's file, not the runner's staged copy of it.
            raise JobFailure(
                str(exc).replace(str(staged.config_path), str(job.config_path))
            ) from None
        try:
            mounts = job_mounts(staged, job, config, self.data_root, approved.datasets)
        except DatasetUnavailableError as exc:
            # The message is the submitter's; what exactly is wrong, and the fix, the owner's.
            log.warning(
                "a requested dataset cannot be mounted",
                extra=_job_fields(job, detail=exc.detail or str(exc)),
            )
            raise JobFailure(str(exc)) from None
        except JobError as exc:
            raise JobFailure(str(exc)) from None
        try:
            runtime = self.config.runtime_for(config.runtime)
        except RuntimeNotAllowedError as exc:
            raise JobFailure(f"not run: {exc}") from None
        try:
            image_id = self.images(runtime)
        except ImageMissingError as exc:
            raise JobFailure(f"not run: {exc}") from None
        env = self._job_environment(job, staged, config, image_id)
        if env is not None:
            mounts = [*mounts, Mount(source=env.path, target=ENV_DIR, read_only=True)]
        return RunPlan(
            job=job,
            content_hash=approved.content_hash,
            config=config,
            runtime=runtime,
            image_id=image_id,
            limits=self._limits(job, config),
            staged=staged,
            mounts=mounts,
            env=env,
        )

    # -- environment --------------------------------------------------------------------------
    def _job_environment(
        self, job: JobFolder, staged: StagedJob, config: JobConfig, image_id: str
    ) -> ReadyEnv | None:
        """The environment built from the approved lock (the staged, hash-verified copy),
        built now if not cached; None for a job that declares no dependencies."""
        try:
            lock = job_lock(config.dependencies, lambda rel: _read_staged(staged.root, rel))
        except LockError as exc:
            raise JobFailure(f"not run: {exc}") from None
        if lock is None:
            return None
        try:
            if self.client is None:
                raise EnvError("this runner has no local engine to build environments with", "")
            return self.envs.ensure(self.client, lock, image_id, self.protected_envs)
        except EnvIntegrityError as exc:
            log.error("environment integrity failure", extra=_job_fields(job, error=str(exc)))
            raise EnvFailure(
                f"not run: {exc}; the package index or wheelhouse served other files than the "
                "approved lock names (logs/stderr.txt has the installer's message)",
                exc.log,
            ) from None
        except EnvError as exc:
            log.warning("environment build failed", extra=_job_fields(job, error=str(exc)))
            raise EnvFailure(
                f"not run: the job's environment could not be built: {exc} (logs/stderr.txt "
                "has the installer's message)",
                exc.log,
            ) from None

    def protected_envs(self) -> Protected:
        """Environments that must not be evicted: those mounted by any job container on this
        engine or by this owner's tasks on the backend, and those of this owner's jobs that are
        approved or running."""
        local = mounted_env_keys(self.client) if self.client is not None else set()
        keys = local | {t.labels[LABEL_ENV] for t in self.tasks_of() if LABEL_ENV in t.labels}
        return Protected(frozenset(keys), frozenset(queued_lock_digests(self.syftbox / self.owner)))

    def _write_stderr(self, job: JobFolder, text: str) -> None:
        """The installer's output as the job's stderr (a build sees no data: it names only
        packages), its tail when long."""
        data = text.encode("utf-8", errors="replace")[-min(self.config.log_max_bytes, 64 * 1024) :]
        try:
            prepare_logs_dir(job.logs_dir)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(job.stderr_path, flags, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("could not write the build log", extra=_job_fields(job, error=str(exc)))

    def _limits(self, job: JobFolder, config: JobConfig) -> Limits:
        resources = config.resources.model_dump(exclude_none=True) if config.resources else {}
        try:
            request = ResourceRequest(timeout_seconds=config.timeout_seconds, **resources)
            return self.config.limits_for(request)
        except ValidationError as exc:
            problems = describe_problems(exc)
            raise JobFailure(f"{job.config_path}: unusable resources: {problems}") from None

    # -- execute ------------------------------------------------------------------------------
    def execute(self, plan: RunPlan) -> tuple[TaskStatus, LogStreamer]:
        """Prepare the task, record `running`, start it with its output streaming."""
        spec = TaskSpec(
            name=plan.name,
            image=plan.image_id,
            command=COMMAND,
            environment=self._environment(plan.config, plan.env),
            mounts=tuple(plan.mounts),
            workdir=WORKDIR,
            limits=plan.limits,
            user=job_user(plan.staged.job_id),
            labels=self._labels(plan),
            placement=self._placement(plan.config),
        )
        try:
            task = self.backend.prepare(spec)
        except TaskExists as exc:  # the name is the lock: another runner holds this job
            log.warning(
                "job task exists but is not this runner's (runner_id changed?)",
                extra=_job_fields(plan.job, task=plan.name),
            )
            raise NotRunnable(str(exc)) from None
        try:
            plan.job.start(
                self.owner,
                container=plan.name,
                image=image_tag(plan.runtime),
                image_id=plan.image_id,
                content_hash=plan.content_hash,
            )
        except JobError as exc:
            # Changed, cancelled or rejected since it was queued: never started, so undo.
            self.cleanup([task])
            if plan.job.state().status is Status.INBOX:
                raise ApprovalStale(str(exc)) from None
            raise NotRunnable(str(exc)) from None
        started, streamer = self._start(plan.job, task)
        log.info("job started", extra=_job_fields(plan.job, container=plan.name))
        return started, streamer

    def _start(self, job: JobFolder, task: TaskStatus) -> tuple[TaskStatus, LogStreamer]:
        """Start the task. An engine can refuse a start for a passing reason of its own (runc's
        network hook failing under load was seen here); a task still PREPARED afterwards provably
        ran nothing, so it is started once more. A second refusal ends the job (fail-soft)."""
        try:
            return self._execute(job, task.name)
        except BackendUnavailable:
            raise
        except Exception:
            if not self._never_ran(task.name):
                raise
            log.warning(
                "the engine refused to start the job; its task never ran: trying once more",
                exc_info=True,
                extra=_job_fields(job, task=task.name),
            )
        return self._execute(job, task.name)

    def _execute(self, job: JobFolder, name: str) -> tuple[TaskStatus, LogStreamer]:
        streamer = self._streamer(job)
        try:
            return self.backend.execute(name, streamer), streamer
        except BaseException:
            streamer.close()
            raise

    def _never_ran(self, name: str) -> bool:
        try:
            return self.backend.get_status(name).state is TaskState.PREPARED
        except BackendUnavailable:
            return False

    def _streamer(self, job: JobFolder) -> LogStreamer:
        return LogStreamer(job.stdout_path, job.stderr_path, self.config.log_max_bytes)

    def _start_created(self, job: JobFolder, task: TaskStatus) -> tuple[TaskStatus, LogStreamer]:
        staged = self.dirs.staging(task.labels.get(LABEL_JOB_ID, ""))
        if not verify_staged(staged, task.labels.get(LABEL_CONTENT_HASH, "")):
            raise JobFailure(
                "not run: the runner restarted before the job started and the staged copy "
                "no longer matches the approval; resubmit it"
            )
        return self._start(job, task)

    def _placement(self, config: JobConfig) -> tuple[str, ...]:
        """On a cluster that places by data: only nodes labelled as holding every dataset the
        job reads (a real run's private data lives on those nodes only)."""
        swarm = self.config.swarm
        if swarm is None or not swarm.dataset_placement:
            return ()
        return tuple(f"node.labels.{DATASET_NODE_LABEL}.{name}==true" for name in config.datasets)

    def _labels(self, plan: RunPlan) -> dict[str, str]:
        job = plan.job
        return {
            LABEL_JOB: f"{job.owner}/{job.relpath}",
            LABEL_OWNER: job.owner,
            LABEL_SUBMITTER: job.submitter,
            LABEL_CONTENT_HASH: plan.content_hash,
            LABEL_RUNNER: self.config.runner_id,
            LABEL_SYFTBOX: str(self.syftbox),
            LABEL_JOB_ID: plan.staged.job_id,
            LABEL_LIMITS: plan.limits.model_dump_json(),
            LABEL_IMAGE: image_tag(plan.runtime),
            **({LABEL_ENV: plan.env.key} if plan.env is not None else {}),
        }

    def _environment(self, config: JobConfig, env: ReadyEnv | None = None) -> dict[str, str]:
        # An allowlist built from nothing: never the runner's own os.environ. Nothing of the
        # config's metadata (its name, times): a job sees only what a policy compares.
        variables = {**DEFAULT_ENVIRONMENT, **job_environment(self.owner, config.mode)}
        if env is not None:
            # The venv first on PATH: `python3` is the environment's. No PYTHONPATH, no system
            # site packages: it never mixes with the image's dist-packages.
            variables["PATH"] = f"{ENV_DIR}/bin:{variables['PATH']}"
            variables["VIRTUAL_ENV"] = ENV_DIR
        return variables

    # -- supervise / terminate ----------------------------------------------------------------
    def supervise(self, job: JobFolder, task: TaskStatus, streamer: LogStreamer | None) -> Ending:
        """Wait for the task while its logs stream, stopping it on timeout or cancel. Without a
        streamer (re-attachment), logs are re-read from the engine's copy."""
        limits = task_limits(task.labels)
        deadline = self._started_at(job, task) + limits.timeout_seconds
        if streamer is None:
            streamer = self._streamer(job)
            self.backend.follow(task.name, streamer)
        reason: StopReason = "exited"
        cancel: CancelMarker | None = None
        try:
            while not self.backend.wait(task.name, TICK_SECONDS):
                if self._detach.is_set():
                    streamer.close()
                    streamer.join(TICK_SECONDS)
                    raise Detached(task.name)
                cancel = _cancel_request(job)
                stop = self._stop_reason(cancel, deadline)
                if stop is not None:
                    reason = stop
                    log.info(f"job {reason}; stopping it", extra=_job_fields(job))
                    self.terminate(task.name)
                    while not self.backend.wait(task.name, TICK_SECONDS):
                        pass
                    break
        except BackendUnavailable:
            streamer.close()
            raise
        if not streamer.join(LOG_DRAIN_SECONDS):
            log.warning("log streams did not end; logs may be incomplete", extra=_job_fields(job))
        return Ending(reason, Usage(), streamer.stdout_truncated, streamer.stderr_truncated, cancel)

    def _started_at(self, job: JobFolder, task: TaskStatus) -> float:
        """When the task started, by the engine's clock; else when `running` was recorded."""
        if task.started_at is not None:
            return task.started_at.timestamp()
        running = job.state().running
        return (running.at if running is not None else datetime.now(UTC)).timestamp()

    def _stop_reason(self, cancel: CancelMarker | None, deadline: float) -> StopReason | None:
        if cancel is not None:
            return "cancelled"
        if time.time() >= deadline:
            return "timed_out"
        # Outputs are a host folder, capped only when collected: a job writing many capped files
        # could fill the disk before then. One statvfs per tick keeps a reserve free.
        disk = os.statvfs(self.dirs.root)
        if disk.f_bavail * disk.f_frsize < self.config.min_free_disk_mb * MiB:
            return "disk_full"
        return None

    def terminate(self, name: str) -> None:
        """SIGTERM, then SIGKILL after the grace period (the backend's job)."""
        self.backend.terminate(name, self.config.grace_seconds)

    # -- finalize -----------------------------------------------------------------------------
    def finalize(self, job: JobFolder, task: TaskStatus, ending: Ending) -> DoneMarker:
        """Collect outputs and write `done` from what the backend reports; then release the
        results if the owner agreed to that in advance (`_release_if_due`)."""
        try:
            result = self.backend.finalize(task.name)
        except TaskLost as exc:  # its end cannot be known: never `succeeded`
            raise JobFailure(_lost_message(task.name, str(exc))) from None
        labels = task.labels
        limits = task_limits(labels)
        usage = Usage(result.peak_memory_bytes, result.cpu_seconds)
        ending = replace(ending, usage=usage)
        if result.stopped_externally:
            ending = replace(ending, reason="engine_stopped")
        outcome, message = classify(ending, result.exit_code, result.oom_killed, limits)
        collected = collect_outputs(self.dirs.outputs(labels[LABEL_JOB_ID]), job.path, self.caps)
        # The report first: a `done` job always has one, and it leaves only with the release.
        write_marker(
            job.results_path,
            ResultsReport(
                outputs=collected.listed,
                output_count=len(collected.files),
                output_bytes=collected.total_bytes,
                refused_outputs=collected.refused,
                refused_count=collected.refused_count,
                note=collected.stopped,
                peak_memory_bytes=usage.peak_memory_bytes,
                stdout_truncated=ending.stdout_truncated,
                stderr_truncated=ending.stderr_truncated,
                node=result.node,
            ),
        )
        started, finished = result.started_at, result.finished_at
        done = DoneMarker(
            by=self.owner,
            outcome=outcome,
            message=with_outputs_note(message, collected),
            exit_code=result.exit_code,
            started_at=started,
            duration_seconds=round(max(0.0, (finished - (started or finished)).total_seconds()), 3),
            cpu_seconds=usage.cpu_seconds,
            memory_limit_mb=limits.memory_mb,
            timeout_seconds=limits.timeout_seconds,
            image_id=result.image_id,
            content_hash=labels.get(LABEL_CONTENT_HASH),
            output_count=len(collected.files),
            refused_count=collected.refused_count,
        )
        self._check_outputs(job, labels)
        job.finish(done)
        log.info(
            "job done",
            extra=_job_fields(job, outcome=outcome.value, exit_code=done.exit_code),
        )
        self._release_if_due(job, labels)
        return done

    def _check_outputs(self, job: JobFolder, labels: Mapping[str, str]) -> None:
        """A real run's outputs, checked against the owner's rules before `done`
        (logs/checks.yaml, syft_core.output_checks). A failure here leaves no report: release
        then checks anew, and nothing is auto-released unchecked."""
        try:
            ran = load_config(self.dirs.staged_config(labels[LABEL_JOB_ID]))
            if ran.mode != "real":
                return
            columns = _dataset_columns(Datasite(job.datasite_root.parent, self.owner), ran)
            write_checks(job.path, check_outputs(job.path, self.config.output_rules, columns))
        except Exception:
            log.exception("could not check the job's outputs", extra=_job_fields(job))

    # -- release ------------------------------------------------------------------------------
    def _release_if_due(self, job: JobFolder, labels: Mapping[str, str]) -> None:
        """Release results the owner agreed to in advance: a mock run's at once ("auto:mock"), a
        real run's when a policy with auto_release admits it ("policy:<name>"). Mock or real is
        read from the approved config (the runner's staged copy), and nothing is released once
        the submission differs from what ran: the submitter may edit config.yaml after the run,
        e.g. to say `mode: mock`. A failure leaves the results for a manual release."""
        try:
            staged = load_config(self.dirs.staged_config(labels[LABEL_JOB_ID]))
            method = AUTO_MOCK if staged.mode == "mock" else self._policy_release(job, staged)
            if method is None:
                return
            # Checked after the decision, so one made on edited files is caught (unless they
            # were restored within these few milliseconds).
            if job.content_hash() != labels.get(LABEL_CONTENT_HASH):
                raise JobError("the submission changed after it ran")
            release_job(job, by=self.owner, method=method, rules=self.config.output_rules)
        except (SyftError, OSError) as exc:
            log.warning("results not released", extra=_job_fields(job, error=str(exc)))
            return
        log.info("results released", extra=_job_fields(job, method=method))

    def _policy_release(self, job: JobFolder, ran: JobConfig) -> str | None:
        policy = decide_release(Datasite(job.datasite_root.parent, self.owner), job, ran)
        return None if policy is None else f"policy:{policy.name}"

    # -- cleanup ------------------------------------------------------------------------------
    def cleanup(self, tasks: list[TaskStatus]) -> None:
        """Remove tasks (killing them if running) and their runner folders; idempotent."""
        for task in tasks:
            try:
                self.backend.cleanup(task.name)
            finally:
                # Unmount and delete the job's folders even when the engine cannot be reached
                # (it may be restarting): a leftover task is removed by the next recover().
                self.dirs.remove(task.labels.get(LABEL_JOB_ID, ""))

    def _end_with_error(self, job: JobFolder, message: str) -> None:
        """The fail-soft path: stop anything of this job, then `done`/error with `message`."""
        try:
            self.cleanup(self.tasks_of(job))
        except Exception:
            log.exception("could not remove the job's tasks", extra=_job_fields(job))
        try:
            state = job.state()
            if state.status in (Status.INBOX, Status.APPROVED, Status.RUNNING):
                job.finish(DoneMarker(by=self.owner, outcome=Outcome.ERROR, message=message))
                log.info("job ended with an error", extra=_job_fields(job, reason=message))
            if state.approved is not None:
                self.dirs.remove(job_id(job, state.approved.content_hash))
        except Exception:
            log.exception("could not write the job's done marker", extra=_job_fields(job))

    # -- recovery -----------------------------------------------------------------------------
    def recover(self) -> int:
        """At start-up: remove this runner's tasks that no running job owns (finished, vanished
        or never started) and runner folders without a task. Returns how many tasks were
        removed. Tasks of running jobs are left for re-attachment."""
        removed = self._remove_build_leftovers()
        kept: set[str] = set()
        for task in self.tasks_of():
            job = self._job_of(task.labels.get(LABEL_JOB, "").partition("/")[2])
            if job is not None:
                self._restore_events(job)
                if self._owned_by_running_job(job, task):
                    kept.add(task.labels.get(LABEL_JOB_ID, ""))
                    continue
            log.info("removing orphaned job task", extra={"container": task.name})
            self.cleanup([task])
            removed += 1
        for jid in self.dirs.job_ids() - kept:
            job = self._job_of(self.dirs.job_relpath(jid) or "")
            if job is not None:
                self._restore_events(job)
            self.dirs.remove(jid)
        return removed

    def _remove_build_leftovers(self) -> int:
        """Environment build containers of this runner left by a runner that died mid-build
        (their half-built folders are removed by the next build of the same key). Only this
        syftbox's and owner's: the runner id alone (the host name by default) is shared by every
        runner on the host, and another one's build may be in progress."""
        labels = [
            LABEL_ENV_BUILD,
            f"{LABEL_RUNNER}={self.config.runner_id}",
            f"{LABEL_SYFTBOX}={self.syftbox}",
            f"{LABEL_OWNER}={self.owner}",
        ]
        return remove_build_leftovers(self.client, labels) if self.client is not None else 0

    def _job_of(self, relpath: str) -> JobFolder | None:
        """The job folder at `relpath` (`jobs/<submitter>/<job>`) in this owner's datasite."""
        if not relpath:
            return None
        try:
            return JobFolder(self.syftbox / self.owner / relpath)
        except (SyftError, OSError):
            return None

    @staticmethod
    def _owned_by_running_job(job: JobFolder, task: TaskStatus) -> bool:
        try:
            state = job.state()
        except (SyftError, OSError):
            return False
        return state.status is Status.RUNNING and (
            state.running is not None and state.running.container == task.name
        )

    def _restore_events(self, job: JobFolder) -> None:
        """Leftovers mean a runner died mid-transition: a marker may lack its event-log line."""
        try:
            restored = job.restore_events(self.owner)
        except (SyftError, OSError) as exc:
            log.warning("could not check the event log", extra=_job_fields(job, error=str(exc)))
            return
        if restored:
            log.info("restored event-log lines", extra=_job_fields(job, events=restored))


def _dataset_columns(datasite: Datasite, config: JobConfig) -> set[str]:
    """Column names of the datasets a job read: an output column by one of these names holds
    that variable's values or statistics, not counts."""
    columns: set[str] = set()
    for name in config.datasets:
        try:
            dataset = get_dataset(datasite, name)
        except SyftError:
            continue
        for mock_file in dataset.files:
            columns.update(c.name for c in mock_file.columns or [])
    return columns


def _read_staged(root: Path, relpath: str) -> str | None:
    """A file of the staged (runner-owned, hash-verified) job as text; None when absent.
    LockError when it is not UTF-8: the review shows such a file as binary (no lock at all),
    so reading it leniently would run with packages the owner was never shown."""
    path = root / relpath
    if not path.is_file():
        return None
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LockError(f"{relpath}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def queued_lock_digests(datasite_root: Path) -> set[str]:
    """The lock digests of the jobs in a datasite that are approved or running (not done):
    their environments must stay cached. Unreadable locks are skipped."""
    found: set[str] = set()
    for job in iter_job_folders(datasite_root):
        if job.marker_path("done").exists() or not job.marker_path("approved").exists():
            continue
        # The submitter's file, which it may have changed since: read without following a link
        # and no further than a lock may be long (the job runs with the staged, checked copy).
        try:
            data = read_capped(job.path / LOCK_RELPATH, MAX_LOCK_BYTES + 1)
            if len(data) <= MAX_LOCK_BYTES:
                found.add(lock_digest_of(data.decode("utf-8")))
        except (OSError, UnicodeDecodeError, LockError):
            continue
    return found


def lock_digest_of(text: str) -> str:
    lock: EnvLock = parse_lock(text)
    return lock.digest


def task_limits(labels: Mapping[str, str]) -> Limits:
    """The limits a task was made with (a label: survives runner restarts)."""
    return Limits.model_validate_json(labels[LABEL_LIMITS])


def _named(tasks: list[TaskStatus], name: str) -> TaskStatus | None:
    return next((t for t in tasks if t.name == name), None)


def _lost_message(name: str, detail: str | None) -> str:
    if detail:  # the backend knows where it was lost (a worker node down)
        return f"lost: {detail}; the job may have run, so it was not re-run: resubmit it"
    return (
        f"the runner restarted and the job's container {name} was gone (removed outside the "
        "runner); it may have run, so it was not re-run: resubmit it"
    )


def _engine(client: docker.DockerClient | None) -> docker.DockerClient:
    assert client is not None  # checked in Executor.__init__
    return client


def _local_backend(client: docker.DockerClient, runner_id: str) -> Backend:
    from syft_runner.executor.backends.docker import DockerBackend

    return DockerBackend(client, (LABEL_RUNNER, runner_id))


def _cancel_request(job: JobFolder) -> CancelMarker | None:
    path = job.marker_path("cancel")
    if not path.exists():
        return None
    try:
        return read_marker(path, CancelMarker)
    except JobError:
        # An unreadable request still asks to stop; who asked is then unknown.
        return CancelMarker(by="unknown")


def _job_fields(job: JobFolder, **more: Any) -> dict[str, Any]:
    return {"job": f"{job.owner}/{job.relpath}", **more}
