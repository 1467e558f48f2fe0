"""The Swarm backend against a real 3-node cluster (1 drained manager, 2 workers): results,
hardening and isolation seen from inside a task, fast stop, OOM, spread, a lost worker, a
restarted runner, a node without the image, cleanup."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import psutil
import pytest

from syft_runner.executor.backends.swarm import ImageNotOnNodesError, SwarmBackend
from syft_runner.executor.contract import TaskExists, TaskResult, TaskSpec, TaskState
from syft_runner.sandbox.container import DEFAULT_ENVIRONMENT, JOB_GID, Limits, Mount
from syft_runner.sandbox.images import missing_on_nodes, push_to_nodes
from syft_runner.workspace.logs import LogStreamer
from tests.swarm.cluster import SwarmCluster

pytestmark = pytest.mark.docker

UID = 2_000_000_123
NODE_LOST_SECONDS = 3.0
# The manager marks a node down ~12 s after its dockerd died; then NODE_LOST_SECONDS; margin.
LOST_WITHIN_SECONDS = 12 + NODE_LOST_SECONDS + 15
LIMITS = Limits(memory_mb=64, cpus=0.5, pids=64, tmpfs_mb=8, shm_mb=4)
SELECTOR = "org.syft.test-run"


@dataclass
class Run:
    spec: TaskSpec
    folder: Path
    logs: LogStreamer

    @property
    def stdout(self) -> str:
        return (self.folder / "logs" / "stdout.txt").read_text()

    @property
    def stderr(self) -> str:
        return (self.folder / "logs" / "stderr.txt").read_text()


@pytest.fixture(scope="module")
def image_id() -> str:
    return str(docker.from_env().images.get("syft-runner/minimal:latest").id)


@pytest.fixture(scope="module")
def run_label() -> str:
    return secrets.token_hex(4)


def _backend(cluster: SwarmCluster, runner_id: str = "swarm-tests") -> SwarmBackend:
    workers = {name: cluster.node_client(name) for name in cluster.worker_sockets}
    return SwarmBackend(
        cluster.client(), workers, runner_id=runner_id, node_lost_seconds=NODE_LOST_SECONDS
    )


@pytest.fixture
def backend(swarm_cluster: SwarmCluster) -> Iterator[SwarmBackend]:
    backend = _backend(swarm_cluster)
    yield backend
    leftovers = backend.tasks({})
    for task in leftovers:
        backend.cleanup(task.name)
    backend.close()


def _spec(
    cluster: SwarmCluster,
    image: str,
    script: str,
    run_label: str,
    limits: Limits = LIMITS,
    placement: tuple[str, ...] = (),
) -> tuple[TaskSpec, Path]:
    name = f"syft-job-{secrets.token_hex(6)}"
    folder = cluster.shared_dir / name
    for sub, mode in (("code", 0o755), ("outputs", 0o700)):
        (folder / sub).mkdir(parents=True)
        (folder / sub).chmod(mode)
    os.chown(folder / "outputs", UID, JOB_GID)  # the job's own uid writes there, nobody else
    (folder / "code" / "run.sh").write_text(script)
    spec = TaskSpec(
        name=name,
        image=image,
        command=("bash", "/job/code/run.sh"),
        environment=dict(DEFAULT_ENVIRONMENT),
        mounts=(
            Mount(source=folder / "code", target="/job/code"),
            Mount(source=folder / "outputs", target="/job/outputs", read_only=False),
        ),
        workdir="/job/code",
        limits=limits,
        user=(UID, JOB_GID),
        labels={SELECTOR: run_label, "org.syft.job": name},
        placement=placement,
    )
    return spec, folder


def _start(backend: SwarmBackend, spec: TaskSpec, folder: Path) -> Run:
    backend.prepare(spec)
    logs = LogStreamer(folder / "logs" / "stdout.txt", folder / "logs" / "stderr.txt", 1 << 20)
    backend.execute(spec.name, logs)
    return Run(spec, folder, logs)


def _finish(backend: SwarmBackend, run: Run, timeout: float = 60) -> TaskResult:
    assert backend.wait(run.spec.name, timeout), backend.get_status(run.spec.name)
    assert run.logs.join(10), "log streams did not end"
    return backend.finalize(run.spec.name)


def _wait_running(backend: SwarmBackend, name: str, timeout: float = 30) -> str:
    """The node once the task's container runs there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = backend.get_status(name)
        if status.detail and status.detail.startswith("running") and status.node:
            return status.node
        time.sleep(0.1)
    raise TimeoutError(backend.get_status(name))


def test_exit_code_output_streams_and_outputs(
    swarm_cluster: SwarmCluster, backend: SwarmBackend, image_id: str, run_label: str
) -> None:
    script = "echo to-stdout; echo to-stderr >&2; echo result > /job/outputs/r.txt; exit 3\n"
    spec, folder = _spec(swarm_cluster, image_id, script, run_label)
    run = _start(backend, spec, folder)
    result = _finish(backend, run)
    assert result.exit_code == 3 and not result.oom_killed
    assert run.stdout == "to-stdout\n" and run.stderr == "to-stderr\n"
    assert (folder / "outputs" / "r.txt").read_text() == "result\n"
    assert result.node in swarm_cluster.worker_sockets
    assert result.image_id == image_id
    assert result.started_at is not None and result.started_at <= result.finished_at
    backend.cleanup(spec.name)
    backend.cleanup(spec.name)  # idempotent
    assert backend.get_status(spec.name).state is TaskState.ABSENT
    manager = swarm_cluster.client()
    assert not [s for s in manager.services.list() if s.name == spec.name]
    assert not [n for n in manager.networks.list() if n.name == spec.name]


HARDENING_SCRIPT = """
echo "uid=$(id -u) gid=$(id -g)"
grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status
touch /rootfs-write 2>/dev/null && echo root-writable || echo root-read-only
touch /job/code/x 2>/dev/null && echo code-writable || echo code-read-only
grep -E ' /tmp | /dev/shm ' /proc/mounts
echo "nofile=$(ulimit -n) core=$(ulimit -c) hostname=$(hostname)"
cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>&1
"""


def test_hardening_seen_from_inside(
    swarm_cluster: SwarmCluster, backend: SwarmBackend, image_id: str, run_label: str
) -> None:
    spec, folder = _spec(swarm_cluster, image_id, HARDENING_SCRIPT, run_label)
    run = _start(backend, spec, folder)
    assert _finish(backend, run).exit_code == 0, run.stderr
    out = run.stdout
    assert f"uid={UID} gid={JOB_GID}" in out
    assert "CapEff:\t0000000000000000" in out
    assert "NoNewPrivs:\t1" in out  # node level: the workers' daemon.json
    assert "Seccomp:\t2" in out  # node level: the project's profile on every worker
    assert "root-read-only" in out and "code-read-only" in out
    for target, size in (("/tmp", "size=8192k"), ("/dev/shm", "size=4096k")):
        line = next(x for x in out.splitlines() if f" {target} " in x)
        assert size in line and all(o in line for o in ("noexec", "nosuid", "nodev")), line
    assert "nofile=1024 core=0 hostname=job" in out
    assert f"\n64\n{64 * 1024 * 1024}\n" in out


def _peer_address(backend: SwarmBackend, name: str) -> str:
    task = backend._latest_task(name)
    assert task is not None
    return str(task["NetworksAttachments"][0]["Addresses"][0]).split("/")[0]


def test_no_network(
    swarm_cluster: SwarmCluster, backend: SwarmBackend, image_id: str, run_label: str
) -> None:
    """Two layers, each checked alone. The seccomp profile (node level) refuses every socket
    but AF_UNIX, and under it the task's routing table has no route to any of: the manager's
    address on the cluster's private L2, each worker's, the main engine's docker0 gateway (the
    host), another running job's task (on its own overlay network), two outside addresses (public
    DNS servers) -- nor a default route."""
    peer_spec, peer_folder = _spec(swarm_cluster, image_id, "sleep 30\n", run_label)
    peer = _start(backend, peer_spec, peer_folder)
    _wait_running(backend, peer_spec.name)
    targets = [
        swarm_cluster.manager_address,
        *(_node_address(swarm_cluster, n) for n in swarm_cluster.worker_sockets),
        _docker0_gateway(),
        _peer_address(backend, peer_spec.name),
        "1.1.1.1",
        "8.8.8.8",
    ]
    probes = "".join(
        f"timeout 3 bash -c 'echo > /dev/tcp/{t}/53' 2>/dev/null && echo 'CONNECTED {t}'\n"
        for t in targets
    )
    script = f"cat /proc/net/route\n{probes}"
    spec, folder = _spec(swarm_cluster, image_id, script, run_label)
    run = _start(backend, spec, folder)
    _finish(backend, run)
    backend.terminate(peer_spec.name, 0)
    peer.logs.close()
    assert "CONNECTED" not in run.stdout, run.stdout
    routes = _routes(run.stdout)
    assert routes and all(mask != 0 for _, mask in routes), run.stdout  # no default route
    for target in targets:
        address = int(ipaddress.IPv4Address(target))
        assert not [r for r in routes if address & r[1] == r[0]], (target, run.stdout)


def _routes(route_table: str) -> list[tuple[int, int]]:
    """(destination, mask) of each route in /proc/net/route (hex, little-endian)."""
    found = []
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[0] != "Iface":
            destination, mask = (
                int.from_bytes(bytes.fromhex(f), "little") for f in (fields[1], fields[7])
            )
            found.append((destination, mask))
    return found


def _node_address(cluster: SwarmCluster, name: str) -> str:
    node = cluster.client().nodes.get(name)
    return str(node.attrs["Status"]["Addr"])


def _docker0_gateway() -> str:
    """The host's address on the main engine's bridge, read from the interface: the bridge
    network's IPAM record drops `Gateway` after the engine restarts (the suite restarts it)."""
    [address] = [a.address for a in psutil.net_if_addrs()["docker0"] if a.family == socket.AF_INET]
    return address


def test_terminate_is_fast(
    swarm_cluster: SwarmCluster, backend: SwarmBackend, image_id: str, run_label: str
) -> None:
    spec, folder = _spec(swarm_cluster, image_id, "echo started; sleep 300\n", run_label)
    run = _start(backend, spec, folder)
    _wait_running(backend, spec.name)
    started = time.monotonic()
    backend.terminate(spec.name, 2)
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"terminate took {elapsed:.1f} s"
    assert backend.get_status(spec.name).state is TaskState.EXECUTED
    result = _finish(backend, run, timeout=1)
    assert result.exit_code in (137, 143) and not result.oom_killed
    assert run.stdout == "started\n"


def test_oom_flag_read_on_the_worker(
    swarm_cluster: SwarmCluster, backend: SwarmBackend, image_id: str, run_label: str
) -> None:
    # bash holds the whole substitution in memory: 200 MB against a 32 MB limit.
    script = "x=$(head -c 200m /dev/zero | tr '\\0' x)\n"
    limits = LIMITS.model_copy(update={"memory_mb": 32})
    spec, folder = _spec(swarm_cluster, image_id, script, run_label, limits=limits)
    result = _finish(backend, _start(backend, spec, folder))
    assert result.oom_killed, result
    assert result.exit_code == 137


def test_jobs_spread_over_both_workers(
    swarm_cluster: SwarmCluster, backend: SwarmBackend, image_id: str, run_label: str
) -> None:
    specs = [_spec(swarm_cluster, image_id, "sleep 1; echo ok\n", run_label) for _ in range(6)]
    runs = [_start(backend, spec, folder) for spec, folder in specs]
    results = [_finish(backend, run) for run in runs]
    assert [r.exit_code for r in results] == [0] * 6
    assert [run.stdout for run in runs] == ["ok\n"] * 6
    assert {r.node for r in results} == set(swarm_cluster.worker_sockets)


def test_runner_restart_finds_and_finishes_its_tasks(
    swarm_cluster: SwarmCluster, backend: SwarmBackend, image_id: str, run_label: str
) -> None:
    label = secrets.token_hex(4)  # this test's tasks only
    running, running_folder = _spec(swarm_cluster, image_id, "sleep 2; echo done\n", label)
    prepared, prepared_folder = _spec(swarm_cluster, image_id, "echo late\n", label)
    first = _start(backend, running, running_folder)
    backend.prepare(prepared)
    first.logs.close()  # the first runner dies

    restarted = _backend(swarm_cluster)
    found = {t.name: t.state for t in restarted.tasks({SELECTOR: label})}
    assert found == {running.name: TaskState.EXECUTING, prepared.name: TaskState.PREPARED}
    assert not _backend(swarm_cluster, "another-runner").tasks({SELECTOR: label})
    follow = LogStreamer(running_folder / "r.out", running_folder / "r.err", 1 << 20)
    restarted.follow(running.name, follow)
    late = LogStreamer(prepared_folder / "p.out", prepared_folder / "p.err", 1 << 20)
    restarted.execute(prepared.name, late)  # from the spec stored with the network
    for name, logs in ((running.name, follow), (prepared.name, late)):
        assert restarted.wait(name, 60) and logs.join(10)
        assert restarted.finalize(name).exit_code == 0
    assert (running_folder / "r.out").read_text() == "done\n"
    assert (prepared_folder / "p.out").read_text() == "late\n"


def test_missing_image_and_unplaceable_task_are_reported(
    swarm_cluster: SwarmCluster, backend: SwarmBackend, run_label: str
) -> None:
    # An image of the main engine that was never loaded onto the nodes.
    absent = str(docker.from_env().images.get("syft-runner/base:bookworm-minbase").id)
    spec, folder = _spec(swarm_cluster, absent, "true\n", run_label)
    backend.prepare(spec)
    logs = LogStreamer(folder / "o", folder / "e", 1024)
    with pytest.raises(ImageNotOnNodesError) as raised:
        backend.execute(spec.name, logs)
    assert absent in str(raised.value)
    assert any(node in str(raised.value) for node in swarm_cluster.worker_sockets)
    backend.cleanup(spec.name)

    image = str(docker.from_env().images.get("syft-runner/minimal:latest").id)
    nowhere = ("node.labels.syft-test-nowhere==true",)
    spec, folder = _spec(swarm_cluster, image, "true\n", run_label, placement=nowhere)
    run = _start(backend, spec, folder)
    time.sleep(1)
    status = backend.get_status(spec.name)
    assert status.state is TaskState.EXECUTING
    assert status.detail is not None and "no suitable node" in status.detail, status
    backend.terminate(spec.name, 1)  # the job's timeout: it never ran, nothing is left
    assert backend.get_status(spec.name).state is TaskState.ABSENT
    assert backend.wait(spec.name, 5)
    # ... and it is finalized as a task that ended without starting, not as a missing one
    # (which would end the job as the runner's own failure instead of its timeout or cancel).
    result = backend.finalize(spec.name)
    assert result.started_at is None and result.exit_code != 0 and result.image_id == image
    backend.cleanup(spec.name)
    run.logs.close()


def test_worker_lost_mid_job(
    swarm_cluster: SwarmCluster, backend: SwarmBackend, image_id: str, run_label: str
) -> None:
    spec, folder = _spec(swarm_cluster, image_id, "sleep 120\n", run_label)
    run = _start(backend, spec, folder)
    node = _wait_running(backend, spec.name)
    swarm_cluster.kill_worker_daemon(node)
    killed = time.monotonic()
    try:
        while backend.get_status(spec.name).state is TaskState.EXECUTING:
            assert time.monotonic() - killed < LOST_WITHIN_SECONDS, backend.get_status(spec.name)
            time.sleep(0.5)
        status = backend.get_status(spec.name)
        assert status.state is TaskState.LOST, status
        assert status.node == node and status.detail is not None and node in status.detail
        assert backend.wait(spec.name, 0)
    finally:
        run.logs.close()
        swarm_cluster.restart_worker_daemon(node)
        swarm_cluster.wait_nodes_ready()
    backend.cleanup(spec.name)
    assert backend.get_status(spec.name).state is TaskState.ABSENT


def test_images_pushed_to_one_node_only_name_the_other(
    swarm_cluster: SwarmCluster, backend: SwarmBackend, run_label: str
) -> None:
    ref = "syft-runner/base:bookworm-minbase"  # never loaded onto the nodes by the fixture
    image = str(docker.from_env().images.get(ref).id)
    first, second = sorted(swarm_cluster.worker_sockets)
    report = push_to_nodes(docker.from_env(), {first: swarm_cluster.node_client(first)}, [ref])
    assert report.loaded == {first: [ref]} and not report.failed
    nodes = {name: swarm_cluster.node_client(name) for name in (first, second)}
    assert missing_on_nodes(nodes, image) == [second]
    spec, folder = _spec(swarm_cluster, image, "true\n", run_label)
    backend.prepare(spec)
    with pytest.raises(ImageNotOnNodesError, match=f"missing on node\\(s\\) {second};"):
        backend.execute(spec.name, LogStreamer(folder / "o", folder / "e", 1024))


def test_a_same_named_task_is_adopted_only_if_made_for_this_spec(
    swarm_cluster: SwarmCluster, backend: SwarmBackend, image_id: str, run_label: str
) -> None:
    # The job's name is the lock. A network or service under it is taken as made by an earlier
    # call only if it is this runner's and carries the spec's labels (job, content hash).
    spec, _ = _spec(swarm_cluster, image_id, "true\n", run_label)
    forged = spec.model_copy(update={"labels": {**spec.labels, "org.syft.job": "other/job"}})
    backend.prepare(forged)
    try:
        with pytest.raises(TaskExists, match="another spec"):
            backend.prepare(spec)
        other_runner = _backend(swarm_cluster, runner_id="someone-else")
        with pytest.raises(TaskExists, match="not runner"):
            other_runner.prepare(forged)
        other_runner.close()
        assert backend.prepare(forged).state is TaskState.PREPARED  # its own: as it is
    finally:
        backend.cleanup(spec.name)
