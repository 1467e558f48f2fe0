"""Connecting to the Docker engine, with errors a user can act on, and what the engine offers."""

from __future__ import annotations

import os
from pathlib import Path

import docker
from pydantic import BaseModel

from syft_core.errors import SyftError

MIN_API_VERSION = (1, 41)  # Docker 20.10: per-syscall errnoRet in seccomp profiles, cgroupns
FIX = "run `make setup` (installs docker.io and starts dockerd)"
DEFAULT_SOCKET = Path("/var/run/docker.sock")


class EngineUnavailableError(SyftError):
    """No usable Docker engine: missing, not running, unreachable, or too old."""


class EngineInfo(BaseModel):
    """What `syft-runner doctor` reports about the engine."""

    version: str
    api_version: str
    cgroup_version: str
    cgroup_driver: str
    storage_driver: str
    runtimes: list[str]
    default_runtime: str
    kernel: str
    security_options: list[str]


CONNECTIONS_PER_JOB = 3  # a running job holds a wait, a log stream and the supervisor's calls
SPARE_CONNECTIONS = 4  # the serve loop, recovery, cleanup of finished jobs
DEFAULT_POOL_SIZE = 10  # docker-py's own default


def pool_size(concurrency: int) -> int:
    """Pooled connections a runner with `concurrency` jobs at once needs, so no job's calls wait
    for (or discard) another's connection."""
    return max(DEFAULT_POOL_SIZE, concurrency * CONNECTIONS_PER_JOB + SPARE_CONNECTIONS)


def connect(
    timeout: int = 120, *, concurrency: int = 1, host: str | None = None
) -> docker.DockerClient:
    """A client for the engine at `host` (default: DOCKER_HOST, else the local socket; TLS as
    DOCKER_TLS_VERIFY and DOCKER_CERT_PATH say), checked to answer and to be new enough, with a
    connection pool sized for `concurrency` jobs."""
    environment = {**os.environ, **({"DOCKER_HOST": host} if host else {})}
    try:
        client = docker.from_env(
            timeout=timeout, max_pool_size=pool_size(concurrency), environment=environment
        )
        api_version = str(client.version()["ApiVersion"])
    except docker.errors.DockerException as exc:
        raise EngineUnavailableError(f"{_why_unreachable(exc)}; {FIX}") from exc
    if _parse_api_version(api_version) < MIN_API_VERSION:
        client.close()
        wanted = ".".join(map(str, MIN_API_VERSION))
        raise EngineUnavailableError(
            f"the Docker engine speaks API {api_version}, older than {wanted} (Docker 20.10); "
            f"upgrade it, then {FIX}"
        )
    return client


def engine_info(client: docker.DockerClient) -> EngineInfo:
    info = client.info()
    version = client.version()
    return EngineInfo(
        version=str(version.get("Version", "unknown")),
        api_version=str(version.get("ApiVersion", "unknown")),
        cgroup_version=str(info.get("CgroupVersion", "1")),  # absent before cgroup v2 support
        cgroup_driver=str(info.get("CgroupDriver", "unknown")),
        storage_driver=str(info.get("Driver", "unknown")),
        runtimes=sorted(info.get("Runtimes") or {}),
        default_runtime=str(info.get("DefaultRuntime", "unknown")),
        kernel=str(info.get("KernelVersion", "unknown")),
        security_options=[str(o) for o in info.get("SecurityOptions") or []],
    )


def _parse_api_version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return (0,)


def _why_unreachable(exc: docker.errors.DockerException) -> str:
    host = os.environ.get("DOCKER_HOST")
    if host:
        return f"the Docker engine at DOCKER_HOST={host} does not answer ({exc})"
    if not DEFAULT_SOCKET.exists():
        return (
            f"no Docker engine socket at {DEFAULT_SOCKET}: the engine is not installed or not "
            "running"
        )
    if not os.access(DEFAULT_SOCKET, os.R_OK | os.W_OK):
        return (
            f"no permission on {DEFAULT_SOCKET}: run as root or join the `docker` group "
            "(the runner must be the only holder of this socket)"
        )
    return f"the Docker engine at {DEFAULT_SOCKET} does not answer ({exc})"
