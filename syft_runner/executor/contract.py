"""The executor contract: what the runner asks of a backend that runs one job's task.

Modelled on OpenSAFELY's job-runner `ExecutorAPI`. The runner's job state machine
(`executor/job.py`) owns the job folder: markers, staging, outputs, checks and release. A backend
owns only the *task*: one isolated process tree running the job's `run.sh` in the approved image,
with exactly the mounts, user, limits and labels of a `TaskSpec`, on some engine (the local
Docker engine, a Swarm cluster's workers, memory for tests).

Rules every backend keeps:

- A task is keyed by its name (`syft-job-<job id>`, deterministic: the job id hashes owner,
  submitter, folder and approved content), and carries its spec's labels. The name is the lock
  that stops a job from running twice: `prepare` of a name that exists returns what exists.
- Every method is idempotent: a runner killed at any point calls it again with the same effect.
- Nothing lives only in memory: `get_status` rebuilds the state from the engine's evidence every
  time, so a restarted runner finds every task it had (`tasks(selector)`).
- `get_status` is pure (no side effects) and never raises for a job's own faults; it raises
  `BackendUnavailable` only when the engine cannot be asked, which makes the runner retry later
  instead of deciding a job's fate.
- A task is never started twice, and a task whose fate cannot be known (its node was lost) is
  reported `LOST`: the runner ends the job `error`, never `succeeded`, never re-runs it.

    TaskState   evidence, local Docker                evidence, Swarm
    ABSENT      no container by that name            no network and no service by that name
    PREPARED    container created, never started     job network (holding the spec), no service
    EXECUTING   container running                     service, its task pending or running on a
                                                      node that is up
    EXECUTED    container exited                      task complete/failed/rejected/shutdown
    LOST        (never: the engine is this machine)   task "running" on a node that is down, or
                                                      no task left to say how it ended

The job state machine maps these onto the job folder's markers (see executor/job.py): a task is
prepared before the job's `running` marker is written and executed after it, so a started task
always has its marker.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, model_validator

from syft_runner.sandbox.container import Limits, Mount
from syft_runner.workspace.logs import LogStreamer


class TaskState(StrEnum):
    ABSENT = "absent"  # nothing of this task exists (never prepared, or cleaned up)
    PREPARED = "prepared"  # created, never started: provably never ran
    EXECUTING = "executing"  # started and not ended
    EXECUTED = "executed"  # ended: its result is readable until cleanup
    LOST = "lost"  # may have run, but its end cannot be known: ends as an error, never re-run


class BackendUnavailable(Exception):
    """The engine (or the cluster's manager) cannot be reached: decide nothing, retry later."""


class TaskLost(Exception):
    """The task may have run, but how it ended cannot be known (its node was lost); the message
    says where. The job ends `error` and is never re-run."""


class TaskExists(Exception):
    """A task by this name exists but is not this runner's (another runner holds the job)."""


class TaskSpec(BaseModel):
    """Everything a task runs with; engine-neutral, so each backend maps it onto its own API and
    the spec is what a reviewer of the hardening reads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    image: str  # an image id: what the owner approved, never a tag that could move
    command: tuple[str, ...]
    environment: dict[str, str]
    mounts: tuple[Mount, ...]
    workdir: str
    limits: Limits
    user: tuple[int, int]  # uid, gid: a uid of the job's own (sandbox.container.job_user)
    labels: dict[str, str]
    # Placement constraints (Swarm syntax, `node.labels.<key>==<value>`): where the job's data is.
    placement: tuple[str, ...] = ()


class TaskStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    state: TaskState
    labels: dict[str, str] = {}
    node: str | None = None  # where it runs or ran (Swarm); None on the local engine
    started_at: datetime | None = None  # when it started, by the engine's clock
    detail: str | None = None  # for LOST: why, naming the node


class TaskResult(BaseModel):
    """How an EXECUTED task ended, as the engine saw it."""

    model_config = ConfigDict(frozen=True)

    exit_code: int
    oom_killed: bool
    started_at: datetime | None
    finished_at: datetime
    image_id: str
    # Stopped by the engine itself or its administrator (shutdown, `docker stop`), not by the
    # job nor by this runner: not the job's fault.
    stopped_externally: bool = False
    node: str | None = None
    peak_memory_bytes: int | None = None
    cpu_seconds: float | None = None

    @model_validator(mode="after")
    def _started_before_finished(self) -> TaskResult:
        # Docker stamps StartedAt when its start call returns but FinishedAt from the exit
        # event, so a process that ends within a millisecond reads as finishing before it
        # started. It cannot have started later than it ended: the start is clamped to the end.
        if self.started_at is not None and self.started_at > self.finished_at:
            object.__setattr__(self, "started_at", self.finished_at)
        return self


class Backend(Protocol):
    """One engine's way of running tasks. Every method is idempotent; see the module docstring."""

    name: str
    # Whether tasks run on this machine, so they see mounts the runner makes here after they
    # were set up (a per-job loop filesystem: workspace.jobfs). On a cluster they do not: a
    # job's folders must then be plain folders on the storage every node mounts.
    runs_on_this_host: bool

    def prepare(self, spec: TaskSpec) -> TaskStatus:
        """Create the task without starting it. An existing task of this name and runner is
        returned as it is; one of another runner raises TaskExists."""
        ...

    def execute(self, name: str, logs: LogStreamer) -> TaskStatus:
        """Start a PREPARED task, its stdout/stderr streaming into `logs` from the first byte.
        A task already started is left alone."""
        ...

    def follow(self, name: str, logs: LogStreamer) -> None:
        """Stream an EXECUTING or EXECUTED task's output into `logs` from its first byte, as far
        as the engine kept it (a runner re-attaching after a restart)."""
        ...

    def wait(self, name: str, timeout: float) -> bool:
        """Block up to `timeout` seconds for the task to end; True once it has ended (or is
        LOST). BackendUnavailable when the engine went away meanwhile."""
        ...

    def get_status(self, name: str) -> TaskStatus:
        """The task's state from the engine's evidence; pure."""
        ...

    def tasks(self, selector: Mapping[str, str]) -> list[TaskStatus]:
        """Every task whose labels include all of `selector` (recovery finds its own with it)."""
        ...

    def terminate(self, name: str, grace_seconds: float) -> None:
        """Stop a task: SIGTERM, SIGKILL after the grace period; returns once it has ended."""
        ...

    def finalize(self, name: str) -> TaskResult:
        """How an EXECUTED task ended: exit code, OOM, times, image, usage. TaskLost for a LOST
        one (a task that wait() reported ended may be either)."""
        ...

    def cleanup(self, name: str) -> None:
        """Remove the task and everything the backend made for it (kills it if running)."""
        ...
