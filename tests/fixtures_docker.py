"""Session fixtures for tests that need the Docker engine and the job images.

`docker_client` skips (with the reason) when no engine answers; `job_images` builds the runtime
images once per session (seconds when they are already current); `run_sandboxed` runs one
command in a job container exactly as `container_kwargs` specifies and always removes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import docker
import pytest

from syft_runner.sandbox.container import (
    DEFAULT_ENVIRONMENT,
    WORKDIR,
    Limits,
    Mount,
    container_kwargs,
    create_container,
    job_user,
)
from syft_runner.sandbox.engine import EngineUnavailableError, connect
from syft_runner.sandbox.images import build_images

TEST_LABEL = "org.syft.test"


@dataclass(frozen=True)
class SandboxResult:
    exit_code: int
    stdout: str
    stderr: str
    oom_killed: bool


RunSandboxed = Callable[..., SandboxResult]


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = connect()
    except EngineUnavailableError as exc:
        pytest.skip(f"Docker engine unavailable: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def job_images(docker_client: docker.DockerClient) -> dict[str, str]:
    """Runtime name → image id, built if missing or stale."""
    return build_images(docker_client)


SANDBOX_USER = job_user("0" * 12)  # what run_sandboxed runs as: a job uid, the job gid


@pytest.fixture(scope="session")
def run_sandboxed(docker_client: docker.DockerClient, job_images: dict[str, str]) -> RunSandboxed:
    """run_sandboxed(command, runtime="scientific", limits=..., mounts=..., environment=...,
    overrides={...}) runs to completion (60 s cap) and returns exit code, stdout, stderr."""

    def run(
        command: list[str],
        *,
        runtime: str = "scientific",
        limits: Limits | None = None,
        mounts: list[Mount] | None = None,
        environment: dict[str, str] | None = None,
        overrides: dict[str, Any] | None = None,
        user: tuple[int, int] = SANDBOX_USER,
    ) -> SandboxResult:
        kwargs = container_kwargs(
            image=job_images[runtime],
            name=f"syft-test-{uuid.uuid4().hex[:12]}",
            labels={TEST_LABEL: "sandbox"},
            command=command,
            environment=dict(DEFAULT_ENVIRONMENT) if environment is None else environment,
            mounts=mounts or [],
            workdir=WORKDIR,
            limits=limits or Limits(),
            user=user,
        )
        kwargs.update(overrides or {})
        container = create_container(docker_client, **kwargs)
        try:
            container.start()
            status = container.wait(timeout=60)
            container.reload()
            return SandboxResult(
                exit_code=int(status["StatusCode"]),
                stdout=container.logs(stdout=True, stderr=False).decode(errors="replace"),
                stderr=container.logs(stdout=False, stderr=True).decode(errors="replace"),
                oom_killed=bool(container.attrs["State"]["OOMKilled"]),
            )
        finally:
            container.remove(force=True)

    return run
