"""Executor backends: one module per engine, each implementing executor.contract.Backend.

docker   this machine's engine: a hardened container per task (the default)
swarm    a Docker Swarm cluster's workers: a one-shot service per task
fake     in memory, for tests of everything above the contract
"""

from __future__ import annotations

import docker

from syft_runner.config import RunnerConfig
from syft_runner.executor.backends.docker import DockerBackend
from syft_runner.executor.contract import Backend
from syft_runner.executor.labels import LABEL_RUNNER
from syft_runner.sandbox.engine import connect


def make_backend(config: RunnerConfig, client: docker.DockerClient) -> Backend:
    """The backend runner.yaml chooses; `client` is this machine's engine (the local backend's)."""
    if config.backend == "docker":
        return DockerBackend(client, (LABEL_RUNNER, config.runner_id))
    from syft_runner.executor.backends.swarm import SwarmBackend

    settings = config.swarm
    assert settings is not None  # RunnerConfig requires it with backend: swarm
    # Every running job holds two log streams on its worker: pools sized as for the local engine.
    workers = {
        node: connect(concurrency=config.concurrency, host=url)
        for node, url in settings.workers.items()
    }
    return SwarmBackend(
        connect(concurrency=config.concurrency, host=settings.manager),
        workers,
        runner_id=config.runner_id,
        node_lost_seconds=settings.node_lost_seconds,
    )
