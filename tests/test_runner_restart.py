"""Crash safety: `syft-runner serve` killed with SIGKILL and started again.

Every job must end in exactly one terminal state, no job container may start twice, and no
container or runner folder may be left behind.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest
import yaml

from syft_core.jobs import JobFolder, Outcome
from syft_runner.executor import LABEL_SYFTBOX
from tests.fixtures_runner import OWNER, approve, done_of, wait_done, wait_for, write_job

pytestmark = pytest.mark.docker


def _start_serve(syftbox: Path, config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from syft_runner.cli import main; main()",
                "serve",
                "--syftbox",
                str(syftbox),
                "--email",
                OWNER,
                "--config",
                str(config),
            ],
            stdout=sink,
            stderr=sink,
        )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        _kill(proc)


@pytest.fixture
def runner_config_file(tmp_path: Path) -> Path:
    path = tmp_path / "runner.yaml"
    path.write_text(
        yaml.safe_dump(
            {"rescan_seconds": 0.5, "grace_seconds": 1, "runner_id": "pytest", "concurrency": 2}
        )
    )
    return path


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


def _assert_clean(client: docker.DockerClient, syftbox: Path) -> None:
    label = f"{LABEL_SYFTBOX}={syftbox.resolve()}"
    wait_for(
        lambda: not client.containers.list(all=True, ignore_removed=True, filters={"label": label}),
        what="job containers removed",
    )
    state = syftbox.resolve() / ".syft-runner" / OWNER
    wait_for(
        lambda: not [p for kind in ("staging", "scratch") for p in (state / kind).glob("*")],
        what="runner folders removed",
    )


def test_kill_mid_job_then_restart_reattaches(
    syftbox: Path,
    tmp_path: Path,
    runner_config_file: Path,
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
) -> None:
    since = datetime.now(UTC)
    running = approve(
        write_job(syftbox, "still-running", "echo one\nsleep 3\necho two\necho r > outputs/r\n")
    )
    finishes = approve(write_job(syftbox, "ends-while-down", "echo quick\nsleep 1\n"))
    log = tmp_path / "serve.log"
    proc = _start_serve(syftbox, runner_config_file, log)
    try:
        wait_for(
            lambda: all(j.marker_path("running").exists() for j in (running, finishes)),
            what="both jobs to start",
        )
        _kill(proc)
        time.sleep(1.5)  # `ends-while-down` exits while no runner is watching
        assert done_of(running) is None and done_of(finishes) is None
        proc = _start_serve(syftbox, runner_config_file, log)
        first = wait_done(running, timeout=30)
        second = wait_done(finishes, timeout=30)
        _assert_clean(docker_client, syftbox)
    finally:
        _stop(proc)
    assert first.outcome is Outcome.SUCCEEDED, first.message
    assert running.stdout_path.read_text() == "one\ntwo\n"  # whole, not doubled
    assert (running.outputs_dir / "r").read_text() == "r\n"
    assert second.outcome is Outcome.SUCCEEDED and finishes.stdout_path.read_text() == "quick\n"
    starts = _starts_per_container(docker_client, syftbox, since)
    assert len(starts) == 2 and set(starts.values()) == {1}, starts


def test_kill_at_random_moments_every_job_ends_once(
    syftbox: Path,
    tmp_path: Path,
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
    log = tmp_path / "serve.log"
    for _ in range(10):
        proc = _start_serve(syftbox, runner_config_file, log)
        time.sleep(rng.uniform(0.5, 1.0))
        _kill(proc)
        if all(done_of(job) is not None for job in jobs):
            break
    proc = _start_serve(syftbox, runner_config_file, log)
    try:
        dones = [wait_done(job, timeout=60) for job in jobs]
        # While the last runner serves: it removes what a killed one left behind.
        _assert_clean(docker_client, syftbox)
    finally:
        _stop(proc)
    for i, (job, done) in enumerate(zip(jobs, dones, strict=True)):
        assert done.outcome is Outcome.SUCCEEDED, (job, done.message)
        assert job.stdout_path.read_text() == f"{i}\n"
        assert (job.outputs_dir / "n").read_text() == f"{i}\n"
        assert not (job.path / "outputs.partial").exists()
    starts = _starts_per_container(docker_client, syftbox, since)
    assert set(starts.values()) <= {1}, starts
    assert len(starts) == len(jobs)
