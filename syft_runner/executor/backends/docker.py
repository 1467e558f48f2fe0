"""The local backend: each task is one hardened container on this machine's Docker engine.

The container is made from `sandbox.container.container_kwargs` (per-job uid, seccomp, masked
paths, no network, limits, capped daemon logs); the job's own filesystem and outputs are the
workspace's business, mounted as the spec says. Evidence is the container found by name and
labels: created and never started (PREPARED), running (EXECUTING), exited (EXECUTED).

In memory only, and only as an optimisation or for what a restarted runner cannot know anyway:
the thread blocked on `docker wait`, the cgroup sampler (peak memory, CPU time), and which
containers this runner stopped itself or saw the engine vanish under.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import docker
import requests
from docker.models.containers import Container
from docker.utils.socket import frames_iter

from syft_runner.executor.backends.engine_calls import engine_calls, parse_moment, stop_container
from syft_runner.executor.contract import (
    BackendUnavailable,
    TaskExists,
    TaskResult,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from syft_runner.executor.outcome import Usage
from syft_runner.sandbox.container import container_kwargs, create_container
from syft_runner.workspace.logs import LogStreamer, socket_closer

# Exit codes of a container whose init was ended by SIGTERM (143) or SIGKILL (137).
SIGNALLED_EXIT_CODES = (137, 143)
ENGINE_STOP_SLACK_SECONDS = 5.0  # the engine stops containers just before its socket closes
_STREAMS = {1: "stdout", 2: "stderr"}  # the attach protocol's stream ids


class DockerBackend:
    """Tasks as containers of one Docker engine; safe to use from several threads, one task
    each. `runner_label`: the label (key, value) that marks this runner's containers."""

    name = "docker"
    runs_on_this_host = True

    def __init__(self, client: docker.DockerClient, runner_label: tuple[str, str]) -> None:
        self.client = client
        self._runner_label = runner_label
        self._live: dict[str, _Live] = {}
        self._lock = threading.Lock()
        self._terminated: set[str] = set()  # stopped by this runner: not the engine's doing
        self._engine_lost: dict[str, float] = {}  # name → when the engine went away under it
        # name → the container prepare() just made: execute() needs no lookup of it (after a
        # restart, it looks it up by name).
        self._created: dict[str, Container] = {}

    # -- prepare / execute --------------------------------------------------------------------
    def prepare(self, spec: TaskSpec) -> TaskStatus:
        kwargs = container_kwargs(
            image=spec.image,
            name=spec.name,
            labels=spec.labels,
            command=list(spec.command),
            environment=spec.environment,
            mounts=list(spec.mounts),
            workdir=spec.workdir,
            limits=spec.limits,
            user=spec.user,
        )
        with engine_calls("the Docker engine"):
            try:
                container = create_container(self.client, **kwargs)
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise
                found = self._container(spec.name)
                # Taken as made by an earlier call only if it is ours and carries every label
                # this spec gives (the job, its content hash, limits, image): the container
                # also carries its image's labels, so it is a superset, never equal.
                if found is None or not self._ours(found) or not _labelled(found, spec.labels):
                    raise TaskExists(f"{spec.name} exists already: {exc.explanation}") from None
                container = found
        with self._lock:
            self._created[spec.name] = container
        return _status(container)

    def execute(self, name: str, logs: LogStreamer) -> TaskStatus:
        with self._lock:
            container = self._created.pop(name, None)
        with engine_calls("the Docker engine"):
            if container is None:
                container = self._require(name)
            if _state(container) is not TaskState.PREPARED:
                return _status(container)
            self._attach(container.id, logs)
            try:
                container.start()
            except BaseException:
                logs.close()
                raise
            container.reload()
            return _status(container)

    def _attach(self, container_id: str, logs: LogStreamer) -> None:
        """Before the container starts: one live, lossless connection carrying both outputs,
        each frame tagged with its stream (like `docker run`)."""
        params = {"stdout": 1, "stderr": 1, "stream": 1}
        sock = self.client.api.attach_socket(container_id, params=params)
        raw = getattr(sock, "_sock", sock)
        raw.settimeout(None)  # a job may stay silent for hours
        frames = ((_STREAMS.get(kind, ""), data) for kind, data in frames_iter(sock, tty=False))
        logs.stream_both(frames, socket_closer(sock, raw))

    def follow(self, name: str, logs: LogStreamer) -> None:
        """The daemon's own copy of the output (bounded by the container's log options)."""
        with engine_calls("the Docker engine"):
            container = self._require(name)
            for stream in ("stdout", "stderr"):
                chunks: Iterator[bytes] = container.logs(
                    stream=True, follow=True, stdout=stream == "stdout", stderr=stream == "stderr"
                )
                logs.stream(stream, chunks, getattr(chunks, "close", _nothing))

    # -- wait / status ------------------------------------------------------------------------
    def wait(self, name: str, timeout: float) -> bool:
        live = self._live_of(name)
        live.sampler.sample()
        if not live.exited.wait(timeout):
            return False
        if isinstance(live.error, requests.exceptions.ConnectionError):
            self._engine_lost[name] = time.time()
            with self._lock:
                self._live.pop(name, None)
            raise BackendUnavailable(f"the engine went away while {name} ran")
        if live.error is not None and not isinstance(live.error, docker.errors.NotFound):
            raise live.error
        return True

    def _live_of(self, name: str) -> _Live:
        with self._lock:
            live = self._live.get(name)
        if live is not None:
            return live
        with engine_calls("the Docker engine"):
            container = self._require(name)
            live = _Live(container, CgroupSampler(int(container.attrs["State"].get("Pid") or 0)))
        live.start()
        with self._lock:
            return self._live.setdefault(name, live)

    def get_status(self, name: str) -> TaskStatus:
        with engine_calls("the Docker engine"):
            container = self._container(name)
        return (
            TaskStatus(name=name, state=TaskState.ABSENT)
            if container is None
            else _status(container)
        )

    def tasks(self, selector: Mapping[str, str]) -> list[TaskStatus]:
        labels = [f"{k}={v}" for k, v in {**selector, **dict([self._runner_label])}.items()]
        with engine_calls("the Docker engine"):
            found = self.client.containers.list(
                all=True, ignore_removed=True, filters={"label": labels}
            )
        return [_status(c) for c in found]

    # -- terminate / finalize / cleanup -------------------------------------------------------
    def terminate(self, name: str, grace_seconds: float) -> None:
        """SIGTERM, then SIGKILL after the grace period; the container's init dies and with it
        every process of the job (its own pid namespace)."""
        self._terminated.add(name)
        with engine_calls("the Docker engine"), contextlib.suppress(docker.errors.NotFound):
            stop_container(self._require(name), grace_seconds)

    def finalize(self, name: str) -> TaskResult:
        with self._lock:
            live = self._live.pop(name, None)
        with engine_calls("the Docker engine"):
            container = self._require(name)
        state = container.attrs["State"]
        started = parse_moment(state["StartedAt"])
        finished = parse_moment(state["FinishedAt"]) or datetime.now(UTC)
        exit_code = int(state["ExitCode"])
        external = self._stopped_by_engine(name, finished) or (
            name not in self._terminated
            and exit_code in SIGNALLED_EXIT_CODES
            and started is not None
            and self._signalled_through_engine(container, started)
        )
        self._terminated.discard(name)
        usage = live.sampler.usage if live is not None else Usage()
        return TaskResult(
            exit_code=exit_code,
            oom_killed=bool(state.get("OOMKilled")),
            started_at=started,
            finished_at=finished,
            image_id=str(container.attrs.get("Image")),
            stopped_externally=external,
            peak_memory_bytes=usage.peak_memory_bytes,
            cpu_seconds=usage.cpu_seconds,
        )

    def cleanup(self, name: str) -> None:
        with self._lock:
            self._live.pop(name, None)
            self._created.pop(name, None)
        with engine_calls("the Docker engine"), contextlib.suppress(docker.errors.NotFound):
            self.client.api.remove_container(name, force=True)

    # -- evidence -----------------------------------------------------------------------------
    def _container(self, name: str) -> Container | None:
        try:
            return self.client.containers.get(name)
        except docker.errors.NotFound:
            return None

    def _require(self, name: str) -> Container:
        container = self._container(name)
        if container is None:
            raise docker.errors.NotFound(f"no container {name}")
        return container

    def _ours(self, container: Container) -> bool:
        key, value = self._runner_label
        return bool(container.labels.get(key) == value)

    def _stopped_by_engine(self, name: str, finished: datetime) -> bool:
        """Whether the container ended when the engine went away under this runner: the engine
        stops its containers (SIGTERM) as it shuts down, which is not the job's doing."""
        lost_at = self._engine_lost.pop(name, None)
        return lost_at is not None and finished.timestamp() >= lost_at - ENGINE_STOP_SLACK_SECONDS

    def _signalled_through_engine(self, container: Container, started: datetime) -> bool:
        """Whether something other than this runner stopped the container through the engine:
        the engine shutting down (it stops every container first, before its API goes away) or
        an administrator's `docker stop`. Both leave a `kill` event; a job that signals itself,
        or the kernel's OOM killer, leaves none."""
        try:
            events = self.client.events(
                since=int(started.timestamp()),
                # As "seconds.nanoseconds": docker-py would floor a datetime to whole seconds and
                # miss an event of this very second.
                until=f"{time.time():.9f}",
                filters={"container": container.id, "event": "kill"},
                decode=True,
            )
            return any(True for _ in events)
        except requests.exceptions.ConnectionError:
            # Signalled by nobody in this runner and the engine stopped answering meanwhile:
            # it is shutting down (it stops its containers before its API goes away).
            return True
        except (docker.errors.APIError, requests.exceptions.RequestException):
            return False


def _labelled(container: Container, labels: Mapping[str, str]) -> bool:
    return all(container.labels.get(key) == value for key, value in labels.items())


def _state(container: Container) -> TaskState:
    status = container.status
    if status == "created":
        return TaskState.PREPARED
    if status in ("running", "paused", "restarting"):
        return TaskState.EXECUTING
    return TaskState.EXECUTED  # exited, dead, removing


def _status(container: Container) -> TaskStatus:
    state = _state(container)
    return TaskStatus(
        name=str(container.name),
        state=state,
        labels=container.labels,
        started_at=parse_moment(container.attrs["State"]["StartedAt"]),
    )


def _nothing() -> None:
    return None


@dataclass
class _Live:
    """A started container being waited for: `docker wait` in its own thread, so the runner can
    tick meanwhile, and the cgroup sampled on every tick."""

    container: Container
    sampler: CgroupSampler
    exited: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None

    def start(self) -> None:
        threading.Thread(target=self._wait, daemon=True, name="wait").start()

    def _wait(self) -> None:
        try:
            self.container.wait()
        except Exception as exc:
            self.error = exc
        finally:
            self.exited.set()


class CgroupSampler:
    """Peak memory and CPU time of a running container, read from its cgroup.

    The cgroup disappears the moment the container exits, so it is sampled on every supervisor
    tick and the last reading kept: at most one tick of CPU time and any final memory spike after
    it are missed. Absent (None) when the cgroup is not visible, e.g. a runner in a container."""

    def __init__(self, pid: int) -> None:
        self.usage = Usage()
        self._memory: Path | None = None
        self._cpu: Path | None = None
        self._cpu_scale = 1e9  # cgroup v1 cpuacct.usage is in ns
        if pid > 0:
            self._locate(pid)

    def _locate(self, pid: int) -> None:
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return
        root = Path("/sys/fs/cgroup")
        if (root / "cgroup.controllers").exists():  # cgroup v2: one unified hierarchy
            rel = next(line[3:] for line in lines if line.startswith("0::")).lstrip("/")
            self._memory = root / rel / "memory.peak"
            self._cpu = root / rel / "cpu.stat"
            self._cpu_scale = 1e6  # usage_usec
            return
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(","):
                self._memory = root / controllers / path.lstrip("/") / "memory.max_usage_in_bytes"
            elif "cpuacct" in controllers.split(","):
                self._cpu = root / controllers / path.lstrip("/") / "cpuacct.usage"

    def sample(self) -> None:
        memory = _read_number(self._memory, None)
        if memory is not None:
            self.usage.peak_memory_bytes = max(memory, self.usage.peak_memory_bytes or 0)
        cpu = _read_number(self._cpu, "usage_usec")
        if cpu is not None:
            self.usage.cpu_seconds = round(cpu / self._cpu_scale, 3)


def _read_number(path: Path | None, key: str | None) -> int | None:
    if path is None:
        return None
    try:
        text = path.read_text()
    except OSError:
        return None
    if key is None or path.name != "cpu.stat":
        return int(text.split()[0]) if text.strip() else None
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return None
