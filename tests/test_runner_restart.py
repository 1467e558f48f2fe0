"""Crash safety: `syft-runner serve` killed with SIGKILL and started again.

Every job must end in exactly one terminal state, no job container may start twice, and no
container or runner folder may be left behind.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest

from syft_core.jobs import JobFolder, Outcome
from syft_runner.executor.labels import LABEL_SYFTBOX
from tests.fixtures_runner import (
    approve,
    done_of,
    start_serve,
    wait_done,
    wait_for,
    wait_runner_clean,
    write_job,
    write_runner_config,
)

pytestmark = pytest.mark.docker


@pytest.fixture
def runner_config_file(syftbox: Path) -> Path:
    return write_runner_config(syftbox, rescan_seconds=0.5, runner_id="pytest")


def _starts_per_container(
    client: docker.DockerClient, syftbox: Path, since: datetime
) -> Counter[str]:
    events = client.events(
        since=since,
        until=datetime.now(UTC),
        decode=True,
        filters={
            "type": "container",
            "event": "start",
            "label": f"{LABEL_SYFTBOX}={syftbox.resolve()}",
        },
    )
    return Counter(event["Actor"]["Attributes"]["name"] for event in events)


def test_kill_mid_job_then_restart_reattaches(
    syftbox: Path,
    runner_config_file: Path,
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
) -> None:
    since = datetime.now(UTC)
    running = approve(
        write_job(syftbox, "still-running", "echo one\nsleep 3\necho two\necho r > outputs/r\n")
    )
    finishes = approve(write_job(syftbox, "ends-while-down", "echo quick\nsleep 1\n"))
    serve = start_serve(syftbox, runner_config_file)
    try:
        wait_for(
            lambda: all(j.marker_path("running").exists() for j in (running, finishes)),
            what="both jobs to start",
        )
        serve.kill9()
        time.sleep(1.5)  # `ends-while-down` exits while no runner is watching
        assert done_of(running) is None and done_of(finishes) is None
        serve = start_serve(syftbox, runner_config_file)
        first = wait_done(running, timeout=30)
        second = wait_done(finishes, timeout=30)
        wait_runner_clean(docker_client, syftbox)
    finally:
        serve.stop()
    assert first.outcome is Outcome.SUCCEEDED, first.message
    assert running.stdout_path.read_text() == "one\ntwo\n"  # whole, not doubled
    assert (running.outputs_dir / "r").read_text() == "r\n"
    assert second.outcome is Outcome.SUCCEEDED and finishes.stdout_path.read_text() == "quick\n"
    starts = _starts_per_container(docker_client, syftbox, since)
    assert len(starts) == 2 and set(starts.values()) == {1}, starts


def test_kill_at_random_moments_every_job_ends_once(
    syftbox: Path,
    runner_config_file: Path,
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
) -> None:
    since = datetime.now(UTC)
    jobs: list[JobFolder] = [
        approve(
            write_job(
                syftbox,
                f"job-{i}",
                f"echo {i}\nsleep 0.{i}\necho {i} > outputs/n\n",
                submitter=("ds@example.org" if i % 2 else "ds2@example.org"),
            )
        )
        for i in range(8)
    ]
    rng = random.Random(1234)
    for _ in range(10):
        serve = start_serve(syftbox, runner_config_file)
        time.sleep(rng.uniform(0.5, 1.0))
        serve.kill9()
        if all(done_of(job) is not None for job in jobs):
            break
    serve = start_serve(syftbox, runner_config_file)
    try:
        dones = [wait_done(job, timeout=60) for job in jobs]
        # While the last runner serves: it removes what a killed one left behind.
        wait_runner_clean(docker_client, syftbox)
    finally:
        serve.stop()
    for i, (job, done) in enumerate(zip(jobs, dones, strict=True)):
        assert done.outcome is Outcome.SUCCEEDED, (job, done.message)
        assert job.stdout_path.read_text() == f"{i}\n"
        assert (job.outputs_dir / "n").read_text() == f"{i}\n"
        assert not (job.path / "outputs.partial").exists()
    starts = _starts_per_container(docker_client, syftbox, since)
    assert set(starts.values()) <= {1}, starts
    assert len(starts) == len(jobs)
