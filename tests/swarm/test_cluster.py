"""The multi-node test cluster itself: nodes, job tasks under the project's seccomp profile and
no network, and a tear-down that leaves nothing behind and the main engine untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docker
import psutil
import pytest

from tests.swarm.cluster import STATE_FILE, SwarmCluster, teardown
from tests.swarm.conftest import MINIMAL, SCIENTIFIC
from tests.swarm.jobs import swarm_job

pytestmark = pytest.mark.docker

MAIN_GATEWAY = "172.17.0.1"  # the main engine's docker0

# Prints, per address, the errno name a TCP connect ends with ("connected" if it succeeds).
CONNECT_PROBE = """
import errno, json, socket, sys
out = {}
for host, port in json.loads(sys.argv[1]):
    try:
        socket.create_connection((host, port), timeout=3).close()
        out[host] = "connected"
    except OSError as exc:
        out[host] = errno.errorcode.get(exc.errno or 0, repr(exc))
print(json.dumps(out))
"""


def _targets(cluster: SwarmCluster) -> str:
    # The manager's Swarm port is open: reachable would mean "connected", not a refusal.
    return json.dumps([[cluster.manager_address, 2377], [MAIN_GATEWAY, 80]])


def test_three_nodes_ready_and_the_manager_drained(swarm_cluster: SwarmCluster) -> None:
    client = swarm_cluster.client()
    nodes = {n.attrs["Description"]["Hostname"]: n.attrs for n in client.nodes.list()}
    client.close()

    assert sorted(nodes) == sorted(swarm_cluster.node_names)
    assert {n["Status"]["State"] for n in nodes.values()} == {"ready"}
    manager = nodes[swarm_cluster.manager.name]
    assert manager["Spec"]["Role"] == "manager"
    assert manager["Spec"]["Availability"] == "drain"
    for name in swarm_cluster.worker_sockets:
        assert nodes[name]["Spec"]["Role"] == "worker"
        assert nodes[name]["Spec"]["Availability"] == "active"


@pytest.mark.parametrize(("code", "state"), [(0, "complete"), (3, "failed")])
def test_a_job_runs_on_a_worker_and_reports_its_exit_code(
    swarm_cluster: SwarmCluster, code: int, state: str
) -> None:
    command = ["bash", "-c", f"echo out; echo err >&2; exit {code}"]
    with swarm_job(swarm_cluster, MINIMAL, command) as job:
        result = job.result()

    assert (result.state, result.exit_code) == (state, code)
    assert result.node in swarm_cluster.worker_sockets
    assert (result.stdout, result.stderr) == ("out\n", "err\n")


def test_a_task_runs_under_the_job_seccomp_profile_without_new_privileges(
    swarm_cluster: SwarmCluster,
) -> None:
    # An AF_INET socket is refused by the project's profile (Docker's default allows it), which
    # tells the node applied seccomp/job.json and not its default profile.
    script = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; exec 3<>/dev/tcp/127.0.0.1/9"
    with swarm_job(swarm_cluster, MINIMAL, ["bash", "-c", script]) as job:
        result = job.result()

    fields = dict(line.split(":\t") for line in result.stdout.splitlines())
    assert fields == {"Seccomp": "2", "NoNewPrivs": "1"}
    assert "socket: Operation not permitted" in result.stderr


def test_a_task_cannot_connect_to_the_manager_nor_the_main_engine(
    swarm_cluster: SwarmCluster,
) -> None:
    command = ["python3", "-c", CONNECT_PROBE, _targets(swarm_cluster)]
    with swarm_job(swarm_cluster, SCIENTIFIC, command) as job:
        result = job.result()

    assert result.exit_code == 0, result.stderr
    outcomes = json.loads(result.stdout)
    assert set(outcomes) == {swarm_cluster.manager_address, MAIN_GATEWAY}
    assert "connected" not in outcomes.values()


def test_a_task_network_has_no_route_out_even_without_seccomp(
    swarm_cluster: SwarmCluster,
) -> None:
    """Seccomp alone already refuses the socket above; this probes the task's network namespace
    itself, from the host's python (no seccomp), so the network isolation is tested too."""
    with swarm_job(swarm_cluster, MINIMAL, ["sleep", "300"]) as job:
        task = job.wait(frozenset({"running"}))
        pid = job.container(task).attrs["State"]["Pid"]
        probe = subprocess.run(
            ["nsenter", f"--target={pid}", "--net", sys.executable, "-c", CONNECT_PROBE,
             _targets(swarm_cluster)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip

    outcomes = json.loads(probe.stdout)
    assert outcomes == {swarm_cluster.manager_address: "ENETUNREACH", MAIN_GATEWAY: "ENETUNREACH"}


def test_node_labels_place_a_job(swarm_cluster: SwarmCluster) -> None:
    target = sorted(swarm_cluster.worker_sockets)[-1]
    swarm_cluster.label_node(target, "dataset", "census")
    constraints = ["node.labels.dataset==census"]
    with swarm_job(swarm_cluster, MINIMAL, ["true"], constraints) as job:
        result = job.result()

    assert (result.state, result.node) == ("complete", target)


# --- tear-down ---------------------------------------------------------------------------------


def _leftovers(workdir: Path, prefix: str) -> list[str]:
    """Everything a cluster could leave behind on the host, described."""
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {line}" for line in netns.splitlines() if line.startswith(prefix)]
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    found += [f"mount {line}" for line in mounts if str(workdir) in line]
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(workdir) in cmdline or prefix in cmdline:
            found.append(f"process {proc.info['pid']} {cmdline}")
    found += [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob(f"*/{prefix}*")]
    found += [f"file {p}" for p in workdir.iterdir()]
    return found


def _assert_main_engine_untouched() -> None:
    assert Path("/sys/class/net/docker0").exists()
    main = docker.from_env()
    try:
        assert main.ping()
    finally:
        main.close()


def test_tear_down_from_the_state_file_leaves_nothing(cluster_dir: Path) -> None:
    """Also what `down` and a crashed run's successor do: only the state file is used."""
    cluster = SwarmCluster(cluster_dir, workers=1)
    cluster.up()
    prefix = json.loads((cluster_dir / STATE_FILE).read_text())["prefix"]
    worker = next(iter(cluster.worker_sockets))
    cluster.kill_worker_daemon(worker)
    cluster.restart_worker_daemon(worker)
    cluster.wait_nodes_ready()

    timings = teardown(cluster_dir)
    cluster.down()  # idempotent: nothing left to do but reaping its children

    assert "teardown total" in timings
    assert _leftovers(cluster_dir, prefix) == []
    _assert_main_engine_untouched()


def test_a_bring_up_failing_half_way_leaves_nothing(cluster_dir: Path) -> None:
    # The image is looked up after the daemons started and while the swarm forms.
    cluster = SwarmCluster(cluster_dir, workers=1, images=["syft-runner/no-such-image:latest"])
    with pytest.raises(docker.errors.ImageNotFound):
        cluster.up()

    assert cluster.nodes, "failed before creating anything: the test proves nothing"
    prefix = cluster.nodes[0].name.rsplit("-", 1)[0]
    assert _leftovers(cluster_dir, prefix) == []
    _assert_main_engine_untouched()
