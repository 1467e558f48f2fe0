"""The Swarm backend: each task is one one-shot service on a Docker Swarm cluster's workers.

A task is a `replicated-job` service (one replica, never restarted) named like the task, on an
`--internal` overlay network of its own (Swarm refuses `--network none`; one network per job, so
no two jobs can reach each other). `prepare` creates the network and stores the TaskSpec in its
labels; `execute` creates the service from that stored spec, so a runner restarted in between
can still start it. Evidence, all read from the manager: the network without a service
(PREPARED), the service's task and the state of its node (EXECUTING, EXECUTED, LOST).

The workers' own daemons (`workers`: node hostname → client) are used for what the manager
cannot do or does slowly: live, lossless logs (the container's log stream on its worker), a fast
stop (removing a job service takes 25–46 s; killing its container through the worker, 0.3 s), the
OOM flag (the task shows only exit 137) and the container's own start and end times.

Hardening, per service (set here, checked from inside a task by tests/swarm):
    read-only root filesystem, cap-drop ALL, non-root `uid:gid`, `--init`, hostname `job`,
    pids / memory / CPU limits (memory as a hard limit, no reservation), ulimits nofile, fsize
    and core 0, tmpfs /tmp and /dev/shm with sizes (the daemon mounts them noexec, nosuid,
    nodev), read-only bind mounts (rprivate) of the staged code, datasets and environment, the
    outputs bind read-write, the environment exactly the spec's, labels, placement constraints
    plus `node.role==worker`, json-file logs capped at LOG_MAX_SIZE, no network but the job's own
    internal one.
Node level (API 1.41 has no per-service field; every worker's daemon.json must set them, and
`doctor` checks them from inside a task): the seccomp profile (`seccomp-profile`: the project's
seccomp/job.json), `no-new-privileges: true`, `default-ipc-mode: private`,
`default-cgroupns-mode: private`, no swap on the node (a service cannot set memory-swap, so on a
node with swap a job may swap up to its memory limit again). Not available on Swarm at all:
the extra masked paths of the local backend (Docker's default list applies) and
`oom_score_adj`.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import docker
import requests
from docker.models.containers import Container
from docker.types import (
    ContainerSpec,
    DriverConfig,
    EndpointSpec,
    Placement,
    Resources,
    RestartPolicy,
    ServiceMode,
    TaskTemplate,
)
from docker.types import Mount as DockerMount

from syft_core.errors import JobError
from syft_runner.executor.backends.engine_calls import (
    engine_calls,
    parse_moment,
    parse_time,
    stop_container,
)
from syft_runner.executor.contract import (
    TaskExists,
    TaskLost,
    TaskResult,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from syft_runner.executor.labels import LABEL_RUNNER
from syft_runner.sandbox.container import (
    JOB_HOSTNAME,
    LOG_MAX_SIZE,
    TMP_DIR,
    Limits,
    docker_mount,
    validate_environment,
)
from syft_runner.sandbox.images import missing_on_nodes
from syft_runner.workspace.logs import LogStreamer

LABEL_SPEC = "org.syft.task-spec"  # on the job network: the TaskSpec as JSON
LABEL_SERVICE_NAME = "com.docker.swarm.service.name"  # Swarm's own label on task containers
POLL_SECONDS = 0.2
# Before a task's container is known, the manager is asked this often (no worker event told):
# each ask is 2-3 API calls, and a starting job has three askers (wait, two log streams).
MANAGER_ASK_SECONDS = 1.0
WATCH_RETRY_SECONDS = 1.0  # a worker's event stream broke: reconnect after this long
IMAGE_SEEN_TTL_SECONDS = 60.0  # an image found on a node is not asked about again meanwhile
NODES_TTL_SECONDS = 1.0
# A service whose first task has not appeared after this long lost it (the manager creates it
# within milliseconds); before then "no task" only means "not yet".
NO_TASK_GRACE_SECONDS = 10.0
TERMINATE_WAIT_SECONDS = 10.0  # after the kill, for the manager to record the task's end
NETWORK_REMOVE_TRIES = 20  # the network stays in use until the task's container is gone
NETWORK_REMOVE_PAUSE_SECONDS = 0.5
# Task states (swarmkit's TaskState, lower case as the API shows them).
ENDED_STATES = frozenset({"complete", "failed", "rejected", "shutdown", "remove"})
ON_NODE_STATES = frozenset({"assigned", "accepted", "preparing", "ready", "starting", "running"})
# Docker's code for "the container could not be run at all" (`docker run` exit 125).
NOT_RUN_EXIT_CODE = 125
# The manager not answering, or failing inside (5xx: about the cluster, not the job), is
# BackendUnavailable: decide nothing.
_manager = functools.partial(engine_calls, "the swarm manager", server_errors=True)


class ImageNotOnNodesError(JobError):
    """The job's image is missing on (or cannot be checked on) worker nodes: its task would sit
    pending forever, so the job ends with this error, naming the nodes and the image."""


class SwarmBackend:
    """Tasks as one-shot services of a Swarm cluster. `manager`: a client of a manager node;
    `workers`: node hostname → client of that node's daemon; `node_lost_seconds`: how long a
    node may be down with a task on it before the task is LOST. Thread-safe: no shared state
    but the clients (docker-py's connection pools)."""

    name = "swarm"
    runs_on_this_host = False  # a job's folders must be on storage every node mounts

    def __init__(
        self,
        manager: docker.DockerClient,
        workers: Mapping[str, docker.DockerClient],
        *,
        runner_id: str,
        node_lost_seconds: float = 30.0,
    ) -> None:
        self.manager = manager
        self.workers = dict(workers)
        self.runner_id = runner_id
        self.node_lost_seconds = node_lost_seconds
        # Task name → a thread blocked on `docker wait` on its worker: the end is seen at once,
        # with no polling of the manager (which records it later). Memory only: rebuilt by the
        # next wait() after a restart.
        self._waiters: dict[str, _Waiter] = {}
        self._waiters_lock = threading.Lock()
        self._nodes_seen: tuple[float, dict[str, Any]] = (-NODES_TTL_SECONDS, {})
        self._nodes_lock = threading.Lock()
        # Task name -> (node hostname, container id), from the workers' own event streams: a
        # task's container is known the moment it starts, without asking the manager. Memory
        # only, a shortcut: the manager's evidence is still asked (less often) and decides.
        self._started: dict[str, tuple[str, str]] = {}
        self._started_cond = threading.Condition()
        self._watch_stop = threading.Event()
        self._watch_close: dict[str, Callable[[], None]] = {}  # node -> its stream's close
        self._watching = False
        self._manager_asked: dict[str, float] = {}  # task name -> when wait() last asked
        self._images_seen: dict[tuple[str, str], float] = {}  # (node, image) -> when found
        self._ended_unstarted: dict[str, TaskResult] = {}  # terminated before reaching a node

    # -- prepare / execute --------------------------------------------------------------------
    def prepare(self, spec: TaskSpec) -> TaskStatus:
        validate_environment(spec.environment)  # refused now rather than at execute
        with _manager():
            if self._claim(spec):
                return self.get_status(spec.name)  # made by an earlier call: as it is
            labels = {**self._labels(spec.labels), LABEL_SPEC: spec.model_dump_json()}
            try:
                self.manager.api.create_network(
                    spec.name,
                    driver="overlay",
                    internal=True,
                    attachable=False,
                    scope="swarm",
                    labels=labels,
                    check_duplicate=True,
                )
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise
                self._claim(spec)  # created meanwhile: by us, or raise TaskExists
                return self.get_status(spec.name)
        # Made just now, and no service by this name existed: PREPARED, with no more asking.
        return TaskStatus(
            name=spec.name, state=TaskState.PREPARED, labels=self._labels(spec.labels)
        )

    def execute(self, name: str, logs: LogStreamer) -> TaskStatus:
        self._watch()  # before the service exists: its container's start is seen at once
        created: TaskSpec | None = None
        with _manager():
            if self._service(name) is None:
                spec = self._prepared_spec(name)
                self._check_image(spec.image)
                self._create_service(spec)
                created = spec
        if created is None:
            self._stream_logs(name, logs)
            return self.get_status(name)
        # Created just now: its task is new or pending, no container yet. The manager is asked
        # about it a MANAGER_ASK_SECONDS from now; the worker's start event comes first.
        self._manager_asked[name] = time.monotonic()
        self._stream_logs(name, logs, fresh=True)
        return TaskStatus(name=name, state=TaskState.EXECUTING, labels=self._labels(created.labels))

    def _prepared_spec(self, name: str) -> TaskSpec:
        """The spec `prepare` left on the job's network (made by this runner: `_claim`)."""
        network = self._network(name)
        if network is None:
            raise docker.errors.NotFound(f"no task {name} (never prepared, or cleaned up)")
        return TaskSpec.model_validate_json((network.get("Labels") or {})[LABEL_SPEC])

    def _spec_image(self, name: str) -> str:
        with _manager(), contextlib.suppress(docker.errors.NotFound, KeyError, ValueError):
            return self._prepared_spec(name).image
        return ""

    def follow(self, name: str, logs: LogStreamer) -> None:
        """The container's log on its worker, from its first byte (bounded by LOG_MAX_SIZE)."""
        self._watch()
        self._stream_logs(name, logs)

    def _create_service(self, spec: TaskSpec) -> None:
        try:
            self.manager.api.create_service(
                _task_template(spec, self._labels(spec.labels)),
                name=spec.name,
                labels=self._labels(spec.labels),
                mode=ServiceMode("replicated-job", replicas=1),
                networks=[spec.name],
                endpoint_spec=EndpointSpec(mode="dnsrr"),  # no IPVS needed (nor present here)
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # created by an earlier call: started once only
                raise

    def _check_image(self, image: str) -> None:
        """Every worker a task could land on must hold `image`: no registry, so a node without
        it would keep the task pending (and a node unknown to the runner could not be stopped
        or read)."""
        eligible = [_hostname(n) for n in self._nodes().values() if _schedulable(n)]
        unknown = sorted(h for h in eligible if h not in self.workers)
        now = time.monotonic()
        ask = {
            h: self.workers[h]
            for h in eligible
            if h in self.workers
            and now - self._images_seen.get((h, image), -IMAGE_SEEN_TTL_SECONDS)
            >= IMAGE_SEEN_TTL_SECONDS
        }
        missing = missing_on_nodes(ask, image) if ask else []
        for host in ask:
            if host not in missing:
                self._images_seen[(host, image)] = now
        if not unknown and not missing:
            return
        parts = []
        if missing:
            parts.append(f"image {image} is missing on node(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"node(s) {', '.join(unknown)} are not among the runner's workers")
        raise ImageNotOnNodesError(
            f"not run: {'; '.join(parts)}; load it with `syft-runner images push-nodes`"
        )

    # -- logs ---------------------------------------------------------------------------------
    def _stream_logs(self, name: str, logs: LogStreamer, *, fresh: bool = False) -> None:
        for stream in ("stdout", "stderr"):
            source = _LogSource(self, name, stream, fresh=fresh)
            logs.stream(stream, source.chunks(), source.close)

    def _container(
        self, name: str, stop: threading.Event, *, fresh: bool = False
    ) -> Container | None:
        """The task's container on its worker once it exists; None if the task ended (or went
        away) without one, or `stop` was set. Told by the worker's event at once; the manager
        is asked once a MANAGER_ASK_SECONDS meanwhile (a container that started before this
        runner watched, a task that ended without one)."""
        next_ask = time.monotonic() + MANAGER_ASK_SECONDS if fresh else 0.0
        while not stop.is_set():
            ask = time.monotonic() >= next_ask
            waiter = self._waiter(name, ask_manager=ask)  # shared with wait()
            if waiter is not None:
                return waiter.container
            if ask:
                if self.get_status(name).state not in (TaskState.PREPARED, TaskState.EXECUTING):
                    return None
                next_ask = time.monotonic() + MANAGER_ASK_SECONDS
            self._await_start(name, POLL_SECONDS)
        return None

    def _task_container(self, name: str, *, started: bool = False) -> Container | None:
        """The task's container on its worker, as the manager names it. `started`: only once it
        has started — the manager names it from `ready` on, and a created container's `docker
        wait` returns at once and its log stream ends empty."""
        task = self._latest_task(name)
        if task is None:
            return None
        container_id = _container_id(task)
        worker = self._worker_of(task)
        if container_id is None or worker is None:
            return None
        try:
            container = worker.containers.get(container_id)
        except docker.errors.NotFound:
            return None
        return None if started and container.status == "created" else container

    # -- wait / status ------------------------------------------------------------------------
    def wait(self, name: str, timeout: float) -> bool:
        """On the task's worker once its container exists (`docker wait`: the end at once);
        else, or once that worker stops answering, by the manager's evidence (which is how a
        lost worker becomes LOST), asked once a MANAGER_ASK_SECONDS until a worker's event
        names the container."""
        self._watch()
        deadline = time.monotonic() + timeout
        while True:
            ask = time.monotonic() - self._manager_asked.get(name, 0.0) >= MANAGER_ASK_SECONDS
            waiter = self._waiter(name, ask_manager=ask)
            left = deadline - time.monotonic()
            if waiter is not None:
                if not waiter.exited.wait(max(0.0, left)):
                    return False
                if waiter.reached_end:
                    return True
                self._forget(name)  # the worker went away: the manager decides from here
                ask = True
            if ask:
                self._manager_asked[name] = time.monotonic()
                if self.get_status(name).state not in (TaskState.PREPARED, TaskState.EXECUTING):
                    return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._await_start(name, min(POLL_SECONDS, left))

    def _waiter(self, name: str, *, ask_manager: bool = True) -> _Waiter | None:
        with self._waiters_lock:
            if name in self._waiters:
                return self._waiters[name]
        container = self._started_container(name)
        if container is None and ask_manager:
            try:
                container = self._task_container(name, started=True)
            except (docker.errors.DockerException, requests.RequestException):
                return None  # its worker does not answer: the manager's evidence decides
        if container is None:
            return None
        with self._waiters_lock:
            return self._waiters.setdefault(name, _Waiter(container))

    def _forget(self, name: str) -> None:
        with self._waiters_lock:
            self._waiters.pop(name, None)
        with self._started_cond:
            self._started.pop(name, None)

    # -- the workers' event streams -----------------------------------------------------------
    def _watch(self) -> None:
        """Follow every worker's container `start` events of this runner's tasks (a thread per
        worker, reconnecting after a break and replaying from the last event seen)."""
        with self._started_cond:
            if self._watching:
                return
            self._watching = True
        since = int(time.time()) - 1
        for host, client in self.workers.items():
            threading.Thread(
                target=self._watch_worker,
                args=(host, client, since),
                daemon=True,
                name=f"swarm-events:{host}",
            ).start()

    def _watch_worker(self, host: str, client: docker.DockerClient, since: int) -> None:
        filters = {
            "type": "container",
            "event": "start",
            "label": f"{LABEL_RUNNER}={self.runner_id}",
        }
        while not self._watch_stop.is_set():
            try:
                events = client.events(decode=True, since=since, filters=filters)
                self._watch_close[host] = events.close
                for event in events:
                    since = max(since, int(event.get("time") or since))
                    actor = event.get("Actor") or {}
                    name = (actor.get("Attributes") or {}).get(LABEL_SERVICE_NAME)
                    if name and actor.get("ID"):
                        with self._started_cond:
                            self._started[name] = (host, str(actor["ID"]))
                            self._started_cond.notify_all()
            except Exception:  # the worker went away (the manager decides meanwhile)
                pass
            self._watch_stop.wait(WATCH_RETRY_SECONDS)

    def close(self) -> None:
        """Stop following the workers' events (tests; a runner just exits)."""
        self._watch_stop.set()
        for close in list(self._watch_close.values()):
            with contextlib.suppress(Exception):
                close()

    def _await_start(self, name: str, timeout: float) -> None:
        with self._started_cond:
            if name not in self._started:
                self._started_cond.wait(timeout)

    def _started_container(self, name: str) -> Container | None:
        with self._started_cond:
            found = self._started.get(name)
        if found is None:
            return None
        worker = self.workers.get(found[0])
        # No inspect: `docker wait` and the log stream need only the id.
        return None if worker is None else worker.containers.prepare_model({"Id": found[1]})

    def get_status(self, name: str) -> TaskStatus:
        with _manager():
            service = self._service(name)
            if service is None:
                network = self._network(name)
                if network is None:
                    return TaskStatus(name=name, state=TaskState.ABSENT)
                return TaskStatus(name=name, state=TaskState.PREPARED, labels=_spec_labels(network))
            return self._service_status(service, self._tasks(service), self._nodes())

    def tasks(self, selector: Mapping[str, str]) -> list[TaskStatus]:
        filters = {"label": [f"{k}={v}" for k, v in self._labels(selector).items()]}
        with _manager():
            services = self.manager.api.services(filters=filters)
            networks = self.manager.api.networks(filters=filters)
            nodes = self._nodes()
            found = [self._service_status(s, self._tasks(s), nodes) for s in services]
        started = {s["Spec"]["Name"] for s in services}
        prepared = [
            TaskStatus(name=n["Name"], state=TaskState.PREPARED, labels=_spec_labels(n))
            for n in networks
            if n["Name"] not in started
        ]
        return found + prepared

    def _service_status(
        self, service: dict[str, Any], tasks: list[dict[str, Any]], nodes: dict[str, Any]
    ) -> TaskStatus:
        name = service["Spec"]["Name"]
        labels = _own_labels(service["Spec"].get("Labels") or {})
        task = _latest(tasks)
        if task is None:
            age = time.time() - parse_time(service["CreatedAt"]).timestamp()
            if age < NO_TASK_GRACE_SECONDS:
                return TaskStatus(name=name, state=TaskState.EXECUTING, labels=labels)
            return TaskStatus(
                name=name,
                state=TaskState.LOST,
                labels=labels,
                detail="the service has no task left to say how it ended",
            )
        state, detail = self._task_state(task, nodes)
        node = nodes.get(task.get("NodeID", ""))
        hostname = _hostname(node) if node is not None else None
        return TaskStatus(
            name=name,
            state=state,
            labels=labels,
            node=hostname,
            started_at=_started_at(task),
            detail=detail,
        )

    def _task_state(self, task: dict[str, Any], nodes: dict[str, Any]) -> tuple[TaskState, str]:
        status = task["Status"]
        state = status["State"]
        said = status.get("Err") or status.get("Message") or ""
        if state in ENDED_STATES:
            return TaskState.EXECUTED, f"{state}: {said}"
        if state == "orphaned":  # Swarm gave up on its node: how it ended is unknown
            return TaskState.LOST, f"orphaned on node {task.get('NodeID')}: {said}"
        node = nodes.get(task.get("NodeID", ""))
        if state not in ON_NODE_STATES or node is None:
            # new/pending/allocated: no node can take it yet (resources, constraint): the
            # job's own timeout ends it; the reason is shown meanwhile.
            return TaskState.EXECUTING, f"{state}: {said}"
        down_for = _down_for(node)
        if down_for is None:
            return TaskState.EXECUTING, f"{state} on {_hostname(node)}"
        where = f"node {_hostname(node)} is {node['Status']['State']} since {down_for:.0f} s"
        if down_for >= self.node_lost_seconds:
            return TaskState.LOST, f"{where}: its task's end cannot be known"
        return TaskState.EXECUTING, f"{state}; {where}"

    # -- terminate / finalize / cleanup -------------------------------------------------------
    def terminate(self, name: str, grace_seconds: float) -> None:
        """Stop the task's container through its worker (SIGTERM, SIGKILL after the grace): the
        manager sees the task fail within a second. A task that never reached a node has nothing
        to stop: its service and network are removed, and `finalize` then reports it ended
        without starting (kept in memory only: after a crash the job has no task, an error)."""
        deadline = time.monotonic() + grace_seconds + TERMINATE_WAIT_SECONDS
        while time.monotonic() < deadline:
            status = self.get_status(name)
            if status.state not in (TaskState.PREPARED, TaskState.EXECUTING):
                return
            task = self._latest_task(name)
            if status.state is TaskState.PREPARED or task is None or _unplaced(task):
                image = task["Spec"]["ContainerSpec"]["Image"] if task else self._spec_image(name)
                self.cleanup(name)
                self._ended_unstarted[name] = TaskResult(
                    exit_code=NOT_RUN_EXIT_CODE,
                    oom_killed=False,
                    started_at=None,
                    finished_at=datetime.now(UTC),
                    image_id=image,
                )
                return
            container = self._task_container(name)
            if container is not None:
                with contextlib.suppress(docker.errors.APIError):
                    stop_container(container, grace_seconds)
            time.sleep(POLL_SECONDS)

    def finalize(self, name: str) -> TaskResult:
        unstarted = self._ended_unstarted.pop(name, None)
        if unstarted is not None:  # stopped before it reached a node
            return unstarted
        with _manager():  # one read of the service and its tasks serves the status and result
            service = self._service(name)
            if service is None:
                raise docker.errors.NotFound(f"no task of {name} to finalize")
            tasks, nodes = self._tasks(service), self._nodes()
            found = self._service_status(service, tasks, nodes)
            if found.state is TaskState.LOST:
                raise TaskLost(found.detail or f"{name}: lost")
            task = _latest(tasks)
            if task is None:
                raise docker.errors.NotFound(f"no task of {name} to finalize")
            node = nodes.get(task.get("NodeID", ""))
        hostname = _hostname(node) if node is not None else None
        container = self._inspect_on_worker(task)
        status = task["Status"]
        state = container.get("State", {}) if container else {}
        # The worker's word first: the manager records the end a moment later than it happens.
        exited = state.get("Status") in ("exited", "dead")
        exit_code = state.get("ExitCode") if exited else None
        if exit_code is None:
            exit_code = status.get("ContainerStatus", {}).get("ExitCode")
        started = parse_moment(state.get("StartedAt"))
        finished = parse_moment(state.get("FinishedAt")) or parse_time(status["Timestamp"])
        image = (container or {}).get("Image") or task["Spec"]["ContainerSpec"]["Image"]
        return TaskResult(
            exit_code=NOT_RUN_EXIT_CODE if exit_code is None else int(exit_code),
            oom_killed=bool(state.get("OOMKilled")),
            started_at=started,
            finished_at=finished,
            image_id=str(image),
            # Shut down by Swarm itself (node drained, service removed by an administrator).
            stopped_externally=status["State"] == "shutdown",
            node=hostname,
        )

    def cleanup(self, name: str) -> None:
        """The task's containers on every worker (force), the service, then the network, which
        Swarm frees only once the container is gone: retried a few times."""
        self._forget(name)
        self._manager_asked.pop(name, None)
        self._remove_containers(name)
        with _manager(), contextlib.suppress(docker.errors.NotFound):
            self.manager.api.remove_service(name)
        with _manager():
            for _ in range(NETWORK_REMOVE_TRIES):
                try:
                    # By name: the engine matches an exact id, then an exact name, before any
                    # id prefix, and a task name (with "-") is no id prefix.
                    self.manager.api.remove_network(name)
                    return
                except docker.errors.NotFound:
                    return
                except docker.errors.APIError:  # in use until the task's endpoint is released
                    time.sleep(NETWORK_REMOVE_PAUSE_SECONDS)
            self.manager.api.remove_network(name)  # the last try reports why

    def _remove_containers(self, name: str) -> None:
        def remove(worker: docker.DockerClient) -> None:
            with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
                for container in worker.containers.list(
                    all=True, filters={"label": f"{LABEL_SERVICE_NAME}={name}"}
                ):
                    with contextlib.suppress(docker.errors.NotFound):
                        container.remove(force=True)

        # An unreachable worker is skipped: its daemon removes the container once it is back
        # and learns that the service is gone.
        with ThreadPoolExecutor(max_workers=max(1, len(self.workers))) as pool:
            list(pool.map(remove, self.workers.values()))

    # -- evidence -----------------------------------------------------------------------------
    def _labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        return {**labels, LABEL_RUNNER: self.runner_id}

    def _claim(self, spec: TaskSpec) -> bool:
        """Whether a network or service by the spec's name exists, made by this runner for this
        spec (every label of it: job, content hash, limits); TaskExists otherwise."""
        name, wanted = spec.name, self._labels(spec.labels)
        found = [item for item in (self._network(name), self._service(name)) if item is not None]
        for item in found:
            labels = item.get("Labels") or item.get("Spec", {}).get("Labels") or {}
            if labels.get(LABEL_RUNNER) != self.runner_id:
                raise TaskExists(f"{name} exists already and is not runner {self.runner_id}'s")
            if any(labels.get(key) != value for key, value in wanted.items()):
                raise TaskExists(f"{name} exists already, made for another spec")
        return bool(found)

    def _service(self, name: str) -> dict[str, Any] | None:
        found = self.manager.api.services(filters={"name": name})
        # The name filter matches prefixes: keep the exact one.
        return next((s for s in found if s["Spec"]["Name"] == name), None)

    def _network(self, name: str) -> dict[str, Any] | None:
        found = self.manager.api.networks(names=[name])
        return next((n for n in found if n["Name"] == name), None)

    def _tasks(self, service: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self.manager.api.tasks(filters={"service": service["ID"]}))

    def _latest_task(self, name: str) -> dict[str, Any] | None:
        with _manager():
            service = self._service(name)
            return None if service is None else _latest(self._tasks(service))

    def _nodes(self) -> dict[str, Any]:
        """The cluster's nodes by id, at most NODES_TTL_SECONDS old: every running task's waiter
        and log streams ask, and a node's state matters on the scale of seconds."""
        with self._nodes_lock:
            read_at, nodes = self._nodes_seen
            if time.monotonic() - read_at > NODES_TTL_SECONDS:
                nodes = {n["ID"]: n for n in self.manager.api.nodes()}
                self._nodes_seen = (time.monotonic(), nodes)
            return nodes

    def _worker_of(self, task: dict[str, Any]) -> docker.DockerClient | None:
        node = self._nodes().get(task.get("NodeID", ""))
        return None if node is None else self.workers.get(_hostname(node))

    def _inspect_on_worker(self, task: dict[str, Any]) -> dict[str, Any] | None:
        """The task's container as its worker sees it; None when it is gone or unreachable
        (the task's own status then has to do)."""
        container_id = _container_id(task)
        try:
            worker = self._worker_of(task)
            if worker is None or container_id is None:
                return None
            return dict(worker.api.inspect_container(container_id))
        except (docker.errors.DockerException, requests.RequestException):
            return None


class _Waiter:
    """`docker wait` on a task's container, on its worker, in a thread of its own."""

    def __init__(self, container: Container) -> None:
        self.exited = threading.Event()
        self.reached_end = False  # False: the wait failed (the worker went away)
        self.container = container
        threading.Thread(target=self._wait, daemon=True, name="swarm-wait").start()

    def _wait(self) -> None:
        try:
            self.container.wait()
            self.reached_end = True
        except docker.errors.NotFound:  # removed: ended (its task's status says how)
            self.reached_end = True
        except Exception:  # the worker's daemon went away: not an end
            self.reached_end = False
        finally:
            self.exited.set()


class _LogSource:
    """One output stream of a task: waits for its container on its worker, then follows that
    container's log from the first byte. `close` ends it early (cap reached, runner detaching)."""

    def __init__(self, backend: SwarmBackend, name: str, stream: str, *, fresh: bool) -> None:
        self._backend = backend
        self._name = name
        self._stream = stream
        self._fresh = fresh  # its service was created just now: no container to ask for yet
        self._stop = threading.Event()
        self._close_stream: Callable[[], None] | None = None

    def chunks(self) -> Iterator[bytes]:
        container = self._backend._container(self._name, self._stop, fresh=self._fresh)
        if container is None:
            return
        stream = container.logs(
            stream=True,
            follow=True,
            stdout=self._stream == "stdout",
            stderr=self._stream == "stderr",
        )
        self._close_stream = getattr(stream, "close", None)
        if self._stop.is_set():  # closed while the stream was being opened
            self.close()
        yield from stream

    def close(self) -> None:
        self._stop.set()
        if self._close_stream is not None:
            with contextlib.suppress(Exception):
                self._close_stream()


def _task_template(spec: TaskSpec, labels: dict[str, str]) -> TaskTemplate:
    container = ContainerSpec(
        image=spec.image,
        command=list(spec.command),
        hostname=JOB_HOSTNAME,
        env=validate_environment(spec.environment),
        workdir=spec.workdir,
        user=f"{spec.user[0]}:{spec.user[1]}",
        labels=labels,
        mounts=[*map(docker_mount, spec.mounts), *_tmpfs_mounts(spec.limits)],
        read_only=True,
        init=True,  # the daemon-level `init` is not applied to tasks
        cap_drop=["ALL"],
    )
    container["Ulimits"] = _ulimits(spec.limits)  # no docker-py model; the API (1.41) has it
    return TaskTemplate(
        container_spec=container,
        resources=_resources(spec.limits),
        restart_policy=RestartPolicy(condition="none"),
        placement=Placement(constraints=[*spec.placement, "node.role==worker"]),
        log_driver=DriverConfig("json-file", {"max-size": LOG_MAX_SIZE, "max-file": "1"}),
    )


def _tmpfs_mounts(limits: Limits) -> list[DockerMount]:
    # The only writable paths besides the outputs. Swarm (API 1.41) takes a size and a mode
    # only; the daemon mounts every tmpfs noexec, nosuid, nodev.
    mib = 1024 * 1024
    return [
        DockerMount(
            TMP_DIR, None, type="tmpfs", tmpfs_size=limits.tmpfs_mb * mib, tmpfs_mode=0o1777
        ),
        # /dev/shm: a service cannot set shm_size; a tmpfs mount there replaces the daemon's.
        DockerMount(
            "/dev/shm", None, type="tmpfs", tmpfs_size=limits.shm_mb * mib, tmpfs_mode=0o1777
        ),
    ]


def _resources(limits: Limits) -> Resources:
    # Limits only, no reservation: a reservation would keep tasks pending on a busy node
    # instead of sharing it as the local engine does.
    resources = Resources(
        cpu_limit=round(limits.cpus * 1e9), mem_limit=limits.memory_mb * 1024 * 1024
    )
    resources["Limits"]["Pids"] = limits.pids  # no docker-py parameter; the API (1.41) has it
    return resources


def _ulimits(limits: Limits) -> list[dict[str, Any]]:
    # As the local backend: no nproc (counted per uid across the host; Pids bounds the task).
    fsize = limits.fsize_mb * 1024 * 1024
    return [
        {"Name": "nofile", "Soft": limits.nofile, "Hard": limits.nofile},
        {"Name": "fsize", "Soft": fsize, "Hard": fsize},
        {"Name": "core", "Soft": 0, "Hard": 0},
    ]


def _latest(tasks: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(tasks, key=lambda t: (t["Version"]["Index"], t["CreatedAt"]), default=None)


def _unplaced(task: dict[str, Any]) -> bool:
    return not task.get("NodeID") and task["Status"]["State"] not in ENDED_STATES


def _container_id(task: dict[str, Any]) -> str | None:
    found = task["Status"].get("ContainerStatus", {}).get("ContainerID")
    return str(found) if found else None


def _hostname(node: dict[str, Any]) -> str:
    return str(node["Description"]["Hostname"])


def _schedulable(node: dict[str, Any]) -> bool:
    return bool(
        node["Spec"].get("Role") == "worker"
        and node["Spec"].get("Availability") == "active"
        and node["Status"].get("State") == "ready"
    )


def _down_for(node: dict[str, Any]) -> float | None:
    """Seconds since a node that is not ready changed state (its UpdatedAt); None if ready."""
    if node["Status"].get("State") == "ready":
        return None
    return max(0.0, time.time() - parse_time(node["UpdatedAt"]).timestamp())


def _own_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != LABEL_SPEC}


def _spec_labels(network: dict[str, Any]) -> dict[str, str]:
    return _own_labels(network.get("Labels") or {})


def _started_at(task: dict[str, Any]) -> datetime | None:
    """When a running task started: its status changes last when it becomes `running`."""
    status = task["Status"]
    return parse_time(status["Timestamp"]) if status["State"] == "running" else None
