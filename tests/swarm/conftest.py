"""The session's Swarm cluster: 1 drained manager + 2 workers with the project images, brought
up once (about 20 s, most of it `docker load` of the two images into both workers) and torn
down at the end of the session (about 3 s). Clusters of killed earlier runs are reaped first."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.swarm.cluster import SwarmCluster, missing_requirements, reap_stale, teardown

# Short on purpose: node unix sockets live under it (a socket path is at most 107 bytes).
SWARM_BASE = Path("/tmp/syftsw-tests")
MINIMAL = "syft-runner/minimal:latest"
SCIENTIFIC = "syft-runner/scientific:latest"
SWARM_IMAGES = [MINIMAL, SCIENTIFIC]


def _skip_reason() -> str | None:
    if (reason := missing_requirements()) is not None:
        return reason
    try:
        main = docker.from_env()
        try:
            for image in SWARM_IMAGES:
                main.images.get(image)
        finally:
            main.close()
    except docker.errors.ImageNotFound as exc:
        return f"job image missing on the main engine (`make images`): {exc}"
    except docker.errors.DockerException as exc:
        return f"main Docker engine unavailable: {exc}"
    return None


@pytest.fixture(scope="session")
def swarm_base() -> Path:
    """Where this session's clusters live; clusters of killed earlier runs are reaped first."""
    if (reason := _skip_reason()) is not None:
        pytest.skip(reason)
    SWARM_BASE.mkdir(parents=True, exist_ok=True)
    reap_stale(SWARM_BASE)
    return SWARM_BASE


@pytest.fixture
def cluster_dir(swarm_base: Path) -> Iterator[Path]:
    """A fresh work dir for a test that brings up a cluster of its own."""
    workdir = Path(tempfile.mkdtemp(prefix="t", dir=swarm_base))
    yield workdir
    teardown(workdir)  # whatever a failed test left up: the state file says what
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def swarm_cluster(swarm_base: Path) -> Iterator[SwarmCluster]:
    workdir = Path(tempfile.mkdtemp(prefix="s", dir=swarm_base))
    with SwarmCluster(workdir, workers=2, images=SWARM_IMAGES) as cluster:
        print(f"\nswarm bring-up: {cluster.timings}")
        yield cluster
    print(f"\nswarm tear-down: {cluster.timings}")
    shutil.rmtree(workdir, ignore_errors=True)
