"""Whole jobs on the Swarm backend: the job-level tests the local backend passes (success with
outputs, failure, timeout, OOM, no network, the isolation probe), plus what only a cluster has:
jobs spread over both workers, a dataset's jobs kept on its node, a worker's dockerd killed
mid-job, and the runner killed and restarted while jobs run on the workers.

The syftbox and the runner's state folder live in the cluster's shared folder: every node sees
it at the same path, as NFS or CephFS would in a real deployment."""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from syft_core.datasite import Datasite
from syft_core.jobs import Outcome, Status
from syft_runner.cli.doctor import SWARM_NOT_JUDGED, swarm_node_checks
from syft_runner.config import RunnerConfig
from syft_runner.executor.backends import make_backend
from syft_runner.executor.backends.swarm import SwarmBackend
from syft_runner.executor.job import Executor, RunResult
from syft_runner.service import RunnerService
from tests.fixtures_runner import (
    OWNER,
    SYFT_RUNNER,
    ServeProcess,
    approve,
    results_of,
    runner_config,
    start_serve,
    wait_done,
    wait_for,
    write_job,
)
from tests.swarm.cluster import SwarmCluster

pytestmark = pytest.mark.docker

NODE_LOST_SECONDS = 3.0
LOST_WITHIN_SECONDS = 12 + NODE_LOST_SECONDS + 20  # the manager notices in ~12 s


def swarm_settings(cluster: SwarmCluster, **overrides: Any) -> dict[str, Any]:
    return {
        "backend": "swarm",
        "swarm": {
            "manager": cluster.manager_socket,
            "workers": cluster.worker_sockets,
            "node_lost_seconds": NODE_LOST_SECONDS,
            **overrides,
        },
    }


@pytest.fixture
def box(swarm_cluster: SwarmCluster) -> Iterator[Path]:
    """A syftbox (with the runner's state folder beside it) on the cluster's shared storage."""
    root = swarm_cluster.shared_dir / f"box-{secrets.token_hex(4)}"
    Datasite(root / "syftbox", OWNER).init()
    yield root / "syftbox"


def config_for(cluster: SwarmCluster, box: Path, **overrides: Any) -> RunnerConfig:
    swarm = overrides.pop("swarm", {})
    return runner_config(
        state_dir=str(box.parent / "state"),
        runner_id=f"swarm-{box.parent.name}",
        **swarm_settings(cluster, **swarm),
        **overrides,
    )


@pytest.fixture
def main_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


def executor(
    cluster: SwarmCluster, box: Path, client: docker.DockerClient, **overrides: Any
) -> Executor:
    config = config_for(cluster, box, **overrides)
    return Executor(client, config, box, OWNER, backend=make_backend(config, client))


def leftovers(cluster: SwarmCluster, box: Path) -> list[str]:
    manager = cluster.client()
    runner = f"org.syft.runner=swarm-{box.parent.name}"
    return [s.name for s in manager.services.list(filters={"label": runner})]


def test_a_job_runs_on_a_worker_with_its_logs_and_outputs(
    swarm_cluster: SwarmCluster, box: Path, main_client: docker.DockerClient
) -> None:
    script = "echo hello; echo warn >&2; printf 'region,n\\nnorth,40\\n' > outputs/n.csv\n"
    job = approve(write_job(box, "ok", script, config={"runtime": "minimal"}))
    assert executor(swarm_cluster, box, main_client).run(job) is RunResult.FINISHED
    done = wait_done(job, 1)
    assert done.outcome is Outcome.SUCCEEDED, (done.message, job.stderr_path.read_text())
    assert job.stdout_path.read_text() == "hello\n" and job.stderr_path.read_text() == "warn\n"
    assert (job.path / "outputs" / "n.csv").read_text() == "region,n\nnorth,40\n"
    report = results_of(job)
    assert report.outputs == ["n.csv"] and report.node in swarm_cluster.worker_sockets
    assert done.image_id == main_client.images.get("syft-runner/minimal:latest").id
    assert leftovers(swarm_cluster, box) == []


@pytest.mark.parametrize(
    ("script", "limits", "outcome", "phrase"),
    [
        ("exit 3\n", {}, Outcome.FAILED, "exited with code 3"),
        ("sleep 60\n", {"timeout_seconds": 2}, Outcome.TIMED_OUT, "time limit of 2 s"),
        # `tail` keeps all it reads: 200 MiB against a 64 MiB limit.
        ("head -c 200m /dev/zero | tail\n", {"memory_mb": 64}, Outcome.OOM_KILLED, "memory"),
    ],
)
def test_how_a_job_ends_on_a_worker(
    swarm_cluster: SwarmCluster,
    box: Path,
    main_client: docker.DockerClient,
    script: str,
    limits: dict[str, int],
    outcome: Outcome,
    phrase: str,
) -> None:
    config: dict[str, Any] = {"runtime": "minimal"}
    if "timeout_seconds" in limits:
        config["timeout_seconds"] = limits["timeout_seconds"]
    if "memory_mb" in limits:
        config["resources"] = {"memory_mb": limits["memory_mb"]}
    job = approve(write_job(box, "ends", script, config=config))
    started = time.monotonic()
    executor(swarm_cluster, box, main_client).run(job)
    done = wait_done(job, 1)
    assert done.outcome is outcome and phrase in done.message, done.message
    assert time.monotonic() - started < 30  # a timeout stops it in seconds, not Swarm's 25-46
    assert leftovers(swarm_cluster, box) == []


NETWORK_SCRIPT = """
cat /proc/net/route
for target in 172.17.0.1/2375 1.1.1.1/53 {manager}/2377; do
  (exec 3<>/dev/tcp/${{target%/*}}/${{target#*/}}) 2>/dev/null && echo "reached $target"
done
echo checked
"""


def test_a_job_has_no_network_out(
    swarm_cluster: SwarmCluster, box: Path, main_client: docker.DockerClient
) -> None:
    script = NETWORK_SCRIPT.format(manager=swarm_cluster.manager_address)
    job = approve(write_job(box, "net", script, config={"runtime": "minimal"}))
    executor(swarm_cluster, box, main_client).run(job)
    assert wait_done(job, 1).outcome is Outcome.SUCCEEDED, job.stderr_path.read_text()
    out = job.stdout_path.read_text()
    assert "checked" in out and "reached" not in out
    routes = [line.split() for line in out.splitlines()[1:] if line.count("\t") > 3]
    assert routes and all(fields[1] != "00000000" for fields in routes)  # no default route


def test_doctor_runs_the_isolation_probe_on_every_worker(
    swarm_cluster: SwarmCluster, box: Path, main_client: docker.DockerClient
) -> None:
    config = config_for(swarm_cluster, box)
    checks = swarm_node_checks(config, main_client)
    for node in swarm_cluster.worker_sockets:
        mine = {c.name.removeprefix(f"{node}: "): c for c in checks if c.name.startswith(node)}
        assert all(c.ok for c in mine.values()), [c for c in mine.values() if not c.ok]
        # Judged as locally, node-level settings included; only the listed ones are not.
        assert mine["run without a seccomp filter: blocked"].ok
        assert mine["gain privileges through exec: blocked"].ok
        assert mine["execute a file from /job/outputs: blocked"].ok
        assert {n.rsplit(": ", 1)[0] for n in mine if n.endswith("not judged")} == set(
            SWARM_NOT_JUDGED
        )


def test_jobs_spread_over_both_workers(
    swarm_cluster: SwarmCluster, box: Path, main_client: docker.DockerClient
) -> None:
    jobs = [
        approve(write_job(box, f"j{i}", "sleep 2\n", config={"runtime": "minimal"}))
        for i in range(4)
    ]
    config = config_for(swarm_cluster, box, concurrency=4)
    service = RunnerService(
        box, OWNER, config, main_client, backend=make_backend(config, main_client)
    )
    service.run(threading.Event(), once=True)
    ended = {job.relpath: wait_done(job, 1) for job in jobs}
    assert all(done.outcome is Outcome.SUCCEEDED for done in ended.values()), {
        name: (done.outcome, done.message) for name, done in ended.items()
    }
    assert {results_of(job).node for job in jobs} == set(swarm_cluster.worker_sockets)


def test_a_datasets_jobs_stay_on_the_node_holding_it(
    swarm_cluster: SwarmCluster, box: Path, main_client: docker.DockerClient
) -> None:
    holder = sorted(swarm_cluster.worker_sockets)[1]
    swarm_cluster.label_node(holder, "org.syft.dataset.sales", "true")
    private = box / OWNER / "private" / "sales.csv"
    private.parent.mkdir(parents=True, exist_ok=True)
    private.write_text("region,amount\nnorth,10\nsouth,20\n")
    Datasite(box, OWNER).create_dataset("sales", private=private, automock=True)
    jobs = [
        approve(
            write_job(
                box,
                f"sales{i}",
                "wc -l < /data/sales/sales.csv\n",
                config={"runtime": "minimal", "datasets": ["sales"]},
            )
        )
        for i in range(3)
    ]
    ex = executor(swarm_cluster, box, main_client, swarm={"dataset_placement": True})
    for job in jobs:
        ex.run(job)
        assert wait_done(job, 1).outcome is Outcome.SUCCEEDED, job.stderr_path.read_text()
        assert results_of(job).node == holder
        assert job.stdout_path.read_text() == "3\n"


def test_a_worker_lost_mid_job_ends_it_as_an_error_naming_the_node(
    swarm_cluster: SwarmCluster, box: Path, main_client: docker.DockerClient
) -> None:
    job = approve(write_job(box, "lost", "echo once; sleep 120\n", config={"runtime": "minimal"}))
    ex = executor(swarm_cluster, box, main_client)
    backend = ex.backend
    assert isinstance(backend, SwarmBackend)
    results: list[RunResult] = []
    runner = threading.Thread(target=lambda: results.append(ex.run(job)), daemon=True)
    runner.start()
    wait_for(lambda: job.stdout_path.exists() and job.stdout_path.read_text() == "once\n")
    [task] = backend.tasks({"org.syft.job": f"{OWNER}/{job.relpath}"})
    assert task.node is not None
    swarm_cluster.kill_worker_daemon(task.node)
    try:
        runner.join(LOST_WITHIN_SECONDS)
        done = wait_done(job, 1)
        assert done.outcome is Outcome.ERROR and task.node in done.message, done.message
        assert "not re-run" in done.message
    finally:
        swarm_cluster.restart_worker_daemon(task.node)
    assert results == [RunResult.FINISHED]
    # Ended once: nothing of it runs again on the node that came back.
    time.sleep(2)
    assert leftovers(swarm_cluster, box) == []


def _serve(swarm_cluster: SwarmCluster, box: Path) -> tuple[Path, ServeProcess]:
    config = box.parent / "runner.yaml"
    settings = {
        "rescan_seconds": 0.3,
        "grace_seconds": 1,
        "concurrency": 4,
        "runner_id": f"swarm-{box.parent.name}",
        "state_dir": str(box.parent / "state"),
        **swarm_settings(swarm_cluster),
    }
    config.write_text(yaml.safe_dump(settings))
    return config, start_serve(box, config)


def test_the_runner_killed_and_restarted_while_jobs_run_finishes_each_once(
    swarm_cluster: SwarmCluster, box: Path
) -> None:
    jobs = [
        approve(
            write_job(
                box,
                f"long{i}",
                "echo started >> outputs/runs.txt; sleep 6; echo done\n",
                config={"runtime": "minimal"},
            )
        )
        for i in range(3)
    ]
    config, first = _serve(swarm_cluster, box)
    try:
        wait_for(lambda: all(j.state().status is Status.RUNNING for j in jobs), timeout=60)
        first.kill9()
        second = start_serve(box, config)
        try:
            for job in jobs:
                done = wait_done(job, 90)
                assert done.outcome is Outcome.SUCCEEDED, (done.message, _log(second))
                assert (job.path / "outputs" / "runs.txt").read_text() == "started\n"
                assert job.stdout_path.read_text() == "done\n"
        finally:
            second.stop()
    finally:
        first.kill9()
    assert leftovers(swarm_cluster, box) == []


def _log(serve: ServeProcess) -> list[Any]:
    lines = serve.log.read_text().splitlines()[-20:]
    return [json.loads(line) if line.startswith("{") else line for line in lines]


def test_images_push_nodes_reads_the_workers_from_runner_yaml(
    swarm_cluster: SwarmCluster, box: Path
) -> None:
    config = box.parent / "push.yaml"
    config.write_text(yaml.safe_dump(swarm_settings(swarm_cluster)))
    command = [str(SYFT_RUNNER), "images", "push-nodes", "--config", str(config)]
    done = subprocess.run(
        [*command, "--runtime", "minimal"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"1 images on {len(swarm_cluster.worker_sockets)} nodes" in done.stdout
    for node in swarm_cluster.worker_sockets:
        swarm_cluster.node_client(node).images.get("syft-runner/minimal:latest")
