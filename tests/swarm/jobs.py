"""One-shot Swarm jobs for the cluster tests: a `replicated-job` service (restart none, dnsrr,
since this kernel has no IPVS) on an `--internal` overlay network of its own (`none` is refused
by Swarm; one network per job so tasks of different jobs cannot reach each other)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import docker
from docker.types import EndpointSpec, RestartPolicy, ServiceMode

from tests.swarm.cluster import SwarmCluster

ENDED = frozenset({"complete", "failed", "rejected", "shutdown", "orphaned"})


@dataclass(frozen=True)
class JobResult:
    state: str
    exit_code: int | None
    node: str
    stdout: str
    stderr: str


class Job:
    def __init__(self, cluster: SwarmCluster, client: docker.DockerClient, service: Any) -> None:
        self.cluster = cluster
        self.client = client
        self.service = service

    def task(self) -> dict[str, Any] | None:
        tasks: list[dict[str, Any]] = self.service.tasks()
        return tasks[0] if tasks else None

    def wait(self, states: frozenset[str] = ENDED, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.task()
            if task is not None and task["Status"]["State"] in states:
                return task
            time.sleep(0.1)
        raise TimeoutError(f"task of {self.service.name} not in {sorted(states)}: {self.task()}")

    def node_name(self, task: dict[str, Any]) -> str:
        return str(self.client.nodes.get(task["NodeID"]).attrs["Description"]["Hostname"])

    def container(self, task: dict[str, Any]) -> Any:
        """The task's container, through the worker's own socket."""
        container_id = task["Status"]["ContainerStatus"]["ContainerID"]
        return self.cluster.node_client(self.node_name(task)).containers.get(container_id)

    def result(self, timeout: float = 60) -> JobResult:
        task = self.wait(ENDED, timeout)
        container = self.container(task)
        return JobResult(
            state=task["Status"]["State"],
            exit_code=task["Status"]["ContainerStatus"].get("ExitCode"),
            node=self.node_name(task),
            stdout=container.logs(stdout=True, stderr=False).decode(),
            stderr=container.logs(stdout=False, stderr=True).decode(),
        )

    def kill(self) -> None:
        """Kill a running task through its worker: removing a replicated-job service stops its
        container only after 25-46 s, a kill is seen by the manager at once."""
        task = self.task()
        if task is not None and task["Status"]["State"] == "running":
            with suppress(docker.errors.APIError):
                self.container(task).kill()


@contextmanager
def swarm_job(
    cluster: SwarmCluster, image: str, command: list[str], constraints: list[str] | None = None
) -> Iterator[Job]:
    """Run command as a one-shot job; kill it and remove its service and network afterwards."""
    name = f"job-{secrets.token_hex(4)}"
    client = cluster.client()
    network = client.networks.create(name, driver="overlay", internal=True, scope="swarm")
    service = client.services.create(
        image,
        command,
        name=name,
        mode=ServiceMode("replicated-job"),
        restart_policy=RestartPolicy(condition="none"),
        endpoint_spec=EndpointSpec(mode="dnsrr"),
        networks=[network.id],
        constraints=constraints or [],
    )
    job = Job(cluster, client, service)
    try:
        yield job
    finally:
        job.kill()
        service.remove()
        _remove_network(network)
        client.close()


def _remove_network(network: Any, timeout: float = 15) -> None:
    """The network stays in use until the worker has detached the task's container."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            network.remove()
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
