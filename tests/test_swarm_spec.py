"""The Swarm backend's pure parts, without a cluster: the service spec it sends (every per-service
hardening option) and how task and node evidence map onto task states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker

from syft_runner.executor.backends.engine_calls import parse_moment, parse_time
from syft_runner.executor.backends.swarm import SwarmBackend, _task_template
from syft_runner.executor.contract import TaskResult, TaskSpec, TaskState
from syft_runner.sandbox.container import Limits, Mount


def _spec(tmp_path: Path) -> TaskSpec:
    return TaskSpec(
        name="syft-job-abc",
        image="sha256:" + "0" * 64,
        command=("bash", "/job/run.sh"),
        environment={"HOME": "/tmp"},
        mounts=(
            Mount(source=tmp_path, target="/job/code"),
            Mount(source=tmp_path, target="/job/outputs", read_only=False),
        ),
        workdir="/job/code",
        limits=Limits(memory_mb=100, cpus=0.5, pids=50, nofile=64, fsize_mb=2, tmpfs_mb=8),
        user=(2_000_000_123, 65532),
        labels={"org.syft.job": "x"},
        placement=("node.labels.dataset==census",),
    )


def test_service_spec_carries_every_per_service_option(tmp_path: Path) -> None:
    template = _task_template(_spec(tmp_path), {"org.syft.job": "x"})
    container = template["ContainerSpec"]
    assert container["ReadOnly"] is True and container["Init"] is True
    assert container["CapabilityDrop"] == ["ALL"]
    assert container["User"] == "2000000123:65532" and container["Hostname"] == "job"
    assert container["Env"] == ["HOME=/tmp"]
    assert {u["Name"]: u["Hard"] for u in container["Ulimits"]} == {
        "nofile": 64,
        "fsize": 2 * 1024 * 1024,
        "core": 0,
    }
    mounts = {m["Target"]: m for m in container["Mounts"]}
    assert mounts["/job/code"]["ReadOnly"] and not mounts["/job/outputs"]["ReadOnly"]
    assert mounts["/job/code"]["BindOptions"]["Propagation"] == "rprivate"
    assert mounts["/tmp"]["TmpfsOptions"]["SizeBytes"] == 8 * 1024 * 1024
    assert template["Resources"]["Limits"] == {
        "NanoCPUs": 500_000_000,
        "MemoryBytes": 100 * 1024 * 1024,
        "Pids": 50,
    }
    assert "Reservations" not in template["Resources"]
    assert template["RestartPolicy"]["Condition"] == "none"
    assert template["Placement"]["Constraints"] == [
        "node.labels.dataset==census",
        "node.role==worker",
    ]
    assert template["LogDriver"]["Name"] == "json-file"


def _node(state: str, changed_ago: float) -> dict[str, Any]:
    updated = datetime.now(UTC) - timedelta(seconds=changed_ago)
    return {
        "ID": "n1",
        "UpdatedAt": updated.strftime("%Y-%m-%dT%H:%M:%S.%f123Z"),
        "Description": {"Hostname": "worker-1"},
        "Spec": {"Role": "worker", "Availability": "active"},
        "Status": {"State": state},
    }


def _task(state: str) -> dict[str, Any]:
    return {"NodeID": "n1", "Status": {"State": state, "Message": state}}


def _backend() -> SwarmBackend:
    # A pinned API version: no engine is asked for one (none is needed here).
    client = docker.DockerClient(base_url="unix:///nonexistent.sock", version="1.41")
    return SwarmBackend(client, {}, runner_id="r", node_lost_seconds=30)


def test_a_task_on_a_node_down_long_enough_is_lost() -> None:
    backend = _backend()
    for node, expected in (
        (_node("ready", 100), TaskState.EXECUTING),
        (_node("down", 5), TaskState.EXECUTING),
        (_node("down", 31), TaskState.LOST),
    ):
        state, detail = backend._task_state(_task("running"), {"n1": node})
        assert state is expected, detail
    state, detail = backend._task_state(_task("running"), {"n1": _node("down", 31)})
    assert "worker-1" in detail


def test_ended_and_pending_tasks() -> None:
    backend = _backend()
    nodes = {"n1": _node("down", 100)}
    for task_state in ("complete", "failed", "rejected", "shutdown"):
        assert backend._task_state(_task(task_state), nodes)[0] is TaskState.EXECUTED
    pending = {"NodeID": "", "Status": {"State": "pending", "Err": "no suitable node"}}
    assert backend._task_state(pending, nodes) == (TaskState.EXECUTING, "pending: no suitable node")
    assert backend._task_state(_task("orphaned"), nodes)[0] is TaskState.LOST


def test_docker_times_with_nanoseconds() -> None:
    parsed = parse_time("2024-05-01T10:20:30.123456789Z")
    assert parsed == datetime(2024, 5, 1, 10, 20, 30, 123456, tzinfo=UTC)
    assert parse_time("2024-05-01T10:20:30Z").second == 30
    assert parse_moment("0001-01-01T00:00:00Z") is None  # Docker's "never"
    assert parse_moment(None) is None and parse_moment("2024-05-01T10:20:30Z") == parsed.replace(
        microsecond=0
    )


def test_a_task_never_reads_as_starting_after_it_finished() -> None:
    # Docker stamps StartedAt after its start call returns and FinishedAt from the exit event:
    # a process ending within a millisecond reads as finishing first (seen on a swarm worker).
    finished = datetime(2026, 12, 3, 18, 49, 10, 490300, tzinfo=UTC)
    result = TaskResult(
        exit_code=3,
        oom_killed=False,
        started_at=finished + timedelta(microseconds=981),
        finished_at=finished,
        image_id="sha256:x",
    )
    assert result.started_at == finished
    later = TaskResult(
        exit_code=0, oom_killed=False, started_at=None, finished_at=finished, image_id="x"
    )
    assert later.started_at is None
