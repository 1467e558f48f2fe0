"""What every Docker-engine backend reads and does the same way: the engine's timestamps, a
failing engine turned into BackendUnavailable, and stopping one container."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

import docker
import requests
from docker.models.containers import Container

from syft_runner.executor.contract import BackendUnavailable


def parse_time(text: str) -> datetime:
    """Docker's RFC 3339 times with nanoseconds (Python reads microseconds at most)."""
    head, _, rest = text.rstrip("Z").partition(".")
    fraction = "".join(c for c in rest if c.isdigit())[:6]
    return datetime.fromisoformat(f"{head}.{fraction or '0'}").replace(tzinfo=UTC)


def parse_moment(text: str | None) -> datetime | None:
    """A container's StartedAt or FinishedAt: None when it has not happened (absent, or
    Docker's zero time in year 1)."""
    stamp = parse_time(text) if text else None
    return None if stamp is None or stamp.year <= 1 else stamp


@contextlib.contextmanager
def engine_calls(what: str, *, server_errors: bool = False) -> Iterator[None]:
    """The engine not answering is BackendUnavailable: the runner retries later and decides
    nothing. With `server_errors`, so is an HTTP 5xx: a swarm manager's 5xx is about the
    cluster, while a local engine's 5xx (an OCI start failure) is the job's own fault."""
    try:
        yield
    except requests.exceptions.ConnectionError as exc:
        raise BackendUnavailable(f"{what} cannot be reached: {exc}") from exc
    except docker.errors.APIError as exc:
        if server_errors and exc.status_code is not None and exc.status_code >= 500:
            raise BackendUnavailable(f"{what} failed: {exc.explanation}") from exc
        raise


def stop_container(container: Container, grace_seconds: float) -> None:
    """SIGTERM, then SIGKILL after the grace period; a container already gone is stopped."""
    with contextlib.suppress(docker.errors.NotFound):
        container.stop(timeout=int(grace_seconds))
        container.reload()
        if container.status == "running":
            container.kill()
