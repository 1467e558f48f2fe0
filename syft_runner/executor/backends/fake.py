"""An in-memory backend: tasks that "run" a scripted behaviour, for the scheduler, recovery and
policy tests, which then need no engine (httpx's MockTransport is the model).

It keeps the contract's rules like a real engine: a name is taken once, a task is started at
most once, state survives the runner (a new Executor given the same FakeBackend finds every task
as a restarted runner finds containers), and `unavailable` makes every call fail as an engine
that went away. A task's outputs are written into the spec's outputs mount, its stdout and
stderr handed to the LogStreamer, and it ends `seconds` after it started, unless terminated.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from syft_runner.executor.contract import (
    BackendUnavailable,
    TaskExists,
    TaskLost,
    TaskResult,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from syft_runner.sandbox.container import OUTPUTS_DIR
from syft_runner.workspace.logs import LogStreamer

SIGTERM_EXIT = 143


@dataclass(frozen=True)
class FakeRun:
    """What a fake task does once started."""

    exit_code: int = 0
    stdout: bytes = b""
    stderr: bytes = b""
    seconds: float = 0.0
    oom_killed: bool = False
    outputs: Mapping[str, bytes] = field(default_factory=dict)  # relative path → bytes


@dataclass
class _Task:
    spec: TaskSpec
    state: TaskState = TaskState.PREPARED
    run: FakeRun | None = None
    started: float | None = None
    ends: float | None = None
    exit_code: int | None = None
    detail: str | None = None


class FakeBackend:
    name = "fake"
    runs_on_this_host = True

    def __init__(self, behaviour: Callable[[TaskSpec], FakeRun] = lambda spec: FakeRun()) -> None:
        self.behaviour = behaviour
        self.unavailable = False
        self.refuse_starts = 0  # the next N starts fail as runc's do when a prestart hook fails
        self.started: list[str] = []  # every start, in order: a job run twice shows twice
        self._tasks: dict[str, _Task] = {}
        self._lock = threading.Lock()

    # -- the contract -------------------------------------------------------------------------
    def prepare(self, spec: TaskSpec) -> TaskStatus:
        with self._reachable():
            existing = self._tasks.get(spec.name)
            if existing is not None and existing.spec.labels != spec.labels:
                raise TaskExists(f"{spec.name} exists already")
            task = self._tasks.setdefault(spec.name, _Task(spec))
            return self._status(spec.name, task)

    def execute(self, name: str, logs: LogStreamer) -> TaskStatus:
        with self._reachable():
            task = self._require(name)
            if task.state is TaskState.PREPARED and self.refuse_starts > 0:
                self.refuse_starts -= 1  # the task stays PREPARED: nothing of it ran
                raise RuntimeError(f"the engine refused to start {name}")
            if task.state is TaskState.PREPARED:
                self._start(name, task)
                self._stream(task, logs)
            return self._status(name, task)

    def follow(self, name: str, logs: LogStreamer) -> None:
        with self._reachable():
            self._stream(self._require(name), logs)

    def wait(self, name: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            with self._reachable():
                if self._state(self._require(name)) in (TaskState.EXECUTED, TaskState.LOST):
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.02, timeout))

    def get_status(self, name: str) -> TaskStatus:
        with self._reachable():
            task = self._tasks.get(name)
            if task is None:
                return TaskStatus(name=name, state=TaskState.ABSENT)
            return self._status(name, task)

    def tasks(self, selector: Mapping[str, str]) -> list[TaskStatus]:
        with self._reachable():
            return [
                self._status(name, task)
                for name, task in self._tasks.items()
                if all(task.spec.labels.get(k) == v for k, v in selector.items())
            ]

    def terminate(self, name: str, grace_seconds: float) -> None:
        with self._reachable():
            task = self._require(name)
            if self._state(task) is TaskState.EXECUTING:
                task.ends = time.time()
                task.exit_code = SIGTERM_EXIT

    def finalize(self, name: str) -> TaskResult:
        with self._reachable():
            task = self._require(name)
            if task.state is TaskState.LOST:
                raise TaskLost(task.detail or "lost")
            assert task.run is not None and task.started is not None and task.ends is not None
            return TaskResult(
                exit_code=task.exit_code if task.exit_code is not None else task.run.exit_code,
                oom_killed=task.run.oom_killed,
                started_at=datetime.fromtimestamp(task.started, UTC),
                finished_at=datetime.fromtimestamp(task.ends, UTC),
                image_id=task.spec.image,
            )

    def cleanup(self, name: str) -> None:
        with self._reachable():
            self._tasks.pop(name, None)

    # -- what a test does to the "engine" -----------------------------------------------------
    def lose(self, name: str, detail: str) -> None:
        """The task's node went away: its end can no longer be known."""
        with self._lock:
            task = self._require(name)
            task.state, task.detail = TaskState.LOST, detail

    # -- internals ----------------------------------------------------------------------------
    def _start(self, name: str, task: _Task) -> None:
        run = self.behaviour(task.spec)
        task.run, task.state = run, TaskState.EXECUTING
        task.started = time.time()
        task.ends = task.started + run.seconds
        self.started.append(name)
        outputs = _outputs_folder(task.spec)
        for relpath, data in run.outputs.items():
            target = outputs / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    @staticmethod
    def _stream(task: _Task, logs: LogStreamer) -> None:
        run = task.run or FakeRun()
        logs.stream("stdout", iter([run.stdout]), _nothing)
        logs.stream("stderr", iter([run.stderr]), _nothing)

    def _state(self, task: _Task) -> TaskState:
        if task.state is TaskState.EXECUTING and task.ends is not None and time.time() >= task.ends:
            task.state = TaskState.EXECUTED
        return task.state

    def _status(self, name: str, task: _Task) -> TaskStatus:
        started = None if task.started is None else datetime.fromtimestamp(task.started, UTC)
        return TaskStatus(
            name=name,
            state=self._state(task),
            labels=dict(task.spec.labels),
            started_at=started,
            detail=task.detail,
        )

    def _require(self, name: str) -> _Task:
        task = self._tasks.get(name)
        if task is None:
            raise KeyError(f"no task {name}")
        return task

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        """The backend's lock, once the "engine" answers (`unavailable`: it does not)."""
        if self.unavailable:
            raise BackendUnavailable("the fake engine is unavailable")
        with self._lock:
            yield


def _outputs_folder(spec: TaskSpec) -> Path:
    return next(m.source for m in spec.mounts if m.target == OUTPUTS_DIR)


def _nothing() -> None:
    return None
