"""Who stopped the container: a stop from outside the runner (the engine shutting down, an
administrator's `docker stop`) is not the job's failure; a job that signals itself is."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from syft_core.jobs import Outcome
from tests.fixtures_runner import (
    StartRunner,
    approve,
    job_containers,
    wait_done,
    wait_for,
    write_job,
)

pytestmark = pytest.mark.docker


def test_a_stop_from_outside_the_runner_is_an_error_not_the_jobs_failure(
    syftbox: Path, start_runner: StartRunner, docker_client: docker.DockerClient
) -> None:
    job = approve(write_job(syftbox, "stopped", "echo begun\nsleep 60\n"))
    start_runner()
    wait_for(lambda: job.stdout_path.exists() and "begun" in job.stdout_path.read_text(), 30)
    (container,) = job_containers(docker_client, syftbox, include_stopped=False)
    container.stop(timeout=2)  # as an administrator would, from outside the runner
    done = wait_done(job)
    assert done.outcome is Outcome.ERROR, done.message
    assert "Docker engine" in done.message and "resubmitted" in done.message


def test_a_job_that_signals_itself_has_failed(syftbox: Path, start_runner: StartRunner) -> None:
    job = approve(write_job(syftbox, "self", "echo begun\nkill -TERM $$\nsleep 60\n"))
    start_runner()
    done = wait_done(job)
    assert done.outcome is Outcome.FAILED, done.message
    assert done.exit_code == 143 and "SIGTERM" in done.message
