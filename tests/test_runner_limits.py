"""Limits enforced on real containers: wall-clock timeout, memory, pids, cancel."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from syft_core.jobs import Outcome
from tests.fixtures_runner import (
    OWNER,
    StartRunner,
    approve,
    host_processes,
    results_of,
    wait_done,
    wait_for,
    write_job,
)

pytestmark = pytest.mark.docker


def test_timeout_kills_every_process(syftbox: Path, start_runner: StartRunner) -> None:
    # Ignores SIGTERM and leaves a double-forked daemon behind: only SIGKILL of the container's
    # init (its pid namespace) gets rid of both.
    job = approve(
        write_job(
            syftbox,
            "forever",
            "trap '' TERM\n(setsid sleep 4711 &)\necho started\nsleep 4711\n",
            config={"timeout_seconds": 2},
        )
    )
    start_runner(grace_seconds=1)
    wait_for(lambda: bool(host_processes("sleep 4711")), what="the job to start")
    done = wait_done(job, timeout=30)
    assert done.outcome is Outcome.TIMED_OUT
    assert "time limit of 2 s" in done.message
    assert done.timeout_seconds == 2
    assert done.duration_seconds is not None and 2 <= done.duration_seconds < 6
    assert job.stdout_path.read_text() == "started\n"
    assert host_processes("sleep 4711") == []


def test_oom_is_reported_with_the_limit(syftbox: Path, start_runner: StartRunner) -> None:
    job = approve(
        write_job(
            syftbox,
            "hungry",
            "python3 main.py\n",
            job_type="python",
            code={"main.py": "x = bytearray(400 * 1024 * 1024)\nprint('survived')\n"},
            config={"resources": {"memory_mb": 64}},
        )
    )
    start_runner()
    done = wait_done(job)
    assert done.outcome is Outcome.OOM_KILLED, done.message
    assert "64 MiB" in done.message
    assert done.memory_limit_mb == 64
    assert "survived" not in job.stdout_path.read_text()


def test_fork_bomb_is_capped_and_the_runner_carries_on(
    syftbox: Path, start_runner: StartRunner
) -> None:
    bomb = approve(
        write_job(
            syftbox,
            "bomb",
            "bomb() { bomb | bomb & }\nbomb\nsleep 3\n",
            config={"resources": {"pids": 32}, "timeout_seconds": 5},
        )
    )
    start_runner(grace_seconds=1)
    done = wait_done(bomb, timeout=30)
    assert done.outcome in (Outcome.TIMED_OUT, Outcome.SUCCEEDED, Outcome.FAILED)
    assert "Resource temporarily unavailable" in bomb.stderr_path.read_text()
    after = approve(write_job(syftbox, "after-bomb", "echo fine\n"))
    assert wait_done(after).outcome is Outcome.SUCCEEDED


def test_cancel_stops_a_running_job(syftbox: Path, start_runner: StartRunner) -> None:
    job = approve(write_job(syftbox, "long", "echo begun\nsleep 600\n"))
    start_runner(grace_seconds=1)
    wait_for(lambda: job.marker_path("running").exists(), what="the job to run")
    wait_for(lambda: job.stdout_path.exists() and job.stdout_path.read_text() != "", what="output")
    asked = time.monotonic()
    job.request_cancel(OWNER, "wrong dataset")
    done = wait_done(job)
    assert time.monotonic() - asked < 5
    assert done.outcome is Outcome.CANCELLED
    assert OWNER in done.message and "wrong dataset" in done.message
    assert job.stdout_path.read_text() == "begun\n"


def test_huge_stdout_is_capped_with_a_marker(syftbox: Path, start_runner: StartRunner) -> None:
    job = approve(write_job(syftbox, "yes", "yes | head -c 3000000\necho done >&2\n"))
    start_runner(log_max_bytes=100_000)
    done = wait_done(job)
    assert done.outcome is Outcome.SUCCEEDED
    assert results_of(job).stdout_truncated and not results_of(job).stderr_truncated
    text = job.stdout_path.read_bytes()
    assert text.startswith(b"y\ny\n")
    assert text.endswith(
        b"stdout truncated: the job wrote more than 100000 bytes; the rest was discarded\n"
    )
    assert 100_000 < len(text) < 100_200
    assert job.stderr_path.read_text() == "done\n"


def test_a_job_is_stopped_when_the_disk_reserve_is_reached(
    syftbox: Path, start_runner: StartRunner
) -> None:
    job = approve(write_job(syftbox, "filler", "echo writing\nsleep 30\n"))
    start_runner(min_free_disk_mb=10**9)  # more than any disk here: the reserve is "reached"
    done = wait_done(job)
    assert done.outcome is Outcome.ERROR
    assert "reserve of free space" in done.message
    assert done.duration_seconds is not None and done.duration_seconds < 10
