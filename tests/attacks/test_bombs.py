"""Attack 9: fork, thread and memory bombs. Each is capped by the container's own limits and
reported (an OOM kill names the limit), the host stays responsive while it runs (a host operation
is timed throughout), and the next job runs normally."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from syft_core.jobs import Outcome
from tests.attacks.conftest import (
    PeakSampler,
    cgroup_value,
    host_latency,
    run_jobs,
    running_container,
)
from tests.fixtures_runner import StartRunner, approve, wait_done, write_job

pytestmark = pytest.mark.docker

# A host operation (fork+exec, a synced 4 KiB write) normally takes milliseconds.
RESPONSIVE_SECONDS = 2.0


def _next_job_runs(syftbox: Path, name: str) -> None:
    after = approve(write_job(syftbox, f"after-{name}", "echo normal\n"))
    done = wait_done(after)
    assert done.outcome is Outcome.SUCCEEDED and after.stdout_path.read_text() == "normal\n"


def test_fork_bomb_is_capped_and_the_host_stays_responsive(
    syftbox: Path, start_runner: StartRunner, docker_client: docker.DockerClient
) -> None:
    pids = lambda: cgroup_value(running_container(docker_client, syftbox), "pids", "pids.current")  # noqa: E731
    with PeakSampler(host_latency, 0.1) as latency, PeakSampler(pids, 0.05) as peak_pids:
        results = run_jobs(
            syftbox,
            start_runner,
            {"fork-bomb": "bomb() { bomb | bomb & }\nbomb\nsleep 30\n"},
            config={"resources": {"pids": 64}, "timeout_seconds": 4},
        )
    job, done = results["fork-bomb"]
    assert done.outcome is Outcome.TIMED_OUT, done.message
    assert "Resource temporarily unavailable" in job.stderr_path.read_text()
    assert peak_pids.samples > 0 and peak_pids.peak <= 64
    assert latency.samples > 10 and latency.peak < RESPONSIVE_SECONDS, latency.peak
    _next_job_runs(syftbox, "fork-bomb")


def test_thread_bomb_is_capped(syftbox: Path, start_runner: StartRunner) -> None:
    program = (
        "import threading, time\n"
        "started = 0\n"
        "try:\n"
        "    while True:\n"
        "        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
        "        started += 1\n"
        "except RuntimeError as exc:\n"
        "    print(started, exc)\n"
    )
    job = approve(
        write_job(
            syftbox,
            "thread-bomb",
            "python3 main.py\n",
            job_type="python",
            code={"main.py": program},
            config={"resources": {"pids": 64}},
        )
    )
    start_runner()
    done = wait_done(job)
    assert done.outcome is Outcome.SUCCEEDED, done.message
    started, _, message = job.stdout_path.read_text().partition(" ")
    assert 0 < int(started) < 64 and "can't start new thread" in message
    _next_job_runs(syftbox, "thread-bomb")


@pytest.mark.parametrize(
    ("name", "script"),
    [
        ("heap", "python3 -c 'x = bytearray(1 << 30); print(\"survived\")'\n"),
        # /tmp is a tmpfs whose pages are charged to the job's memory: above the limit, OOM.
        ("tmpfs", "head -c 60M /dev/zero > /tmp/fill\necho survived\n"),
    ],
    ids=["heap", "tmpfs"],
)
def test_memory_bomb_is_oom_killed_with_the_limit(
    name: str, script: str, syftbox: Path, start_runner: StartRunner
) -> None:
    with PeakSampler(host_latency, 0.1) as latency:
        results = run_jobs(
            syftbox,
            start_runner,
            {name: script},
            job_type="python",  # the heap bomb needs python3 (the default runtime has it)
            config={"resources": {"memory_mb": 48}},
        )
    job, done = results[name]
    assert done.outcome is Outcome.OOM_KILLED, done.message
    assert "48 MiB" in done.message and done.memory_limit_mb == 48
    assert "survived" not in job.stdout_path.read_text()
    assert latency.peak < RESPONSIVE_SECONDS
    _next_job_runs(syftbox, name)


def test_shm_bomb_hits_its_size_cap(syftbox: Path, start_runner: StartRunner) -> None:
    results = run_jobs(
        syftbox, start_runner, {"shm": "head -c 100M /dev/zero > /dev/shm/fill\necho rc=$?\n"}
    )
    job, done = results["shm"]
    assert done.outcome is Outcome.SUCCEEDED
    assert job.stdout_path.read_text() == "rc=1\n"
    assert "No space left on device" in job.stderr_path.read_text()
