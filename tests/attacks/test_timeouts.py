"""Attack 10: outliving the time limit. Sleeping forever, ignoring SIGTERM, double-forked daemons
(with the main process gone or still there), stopping itself with SIGSTOP: each job ends within
its timeout plus the grace period, and no container or process of it survives on the host."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from syft_core.jobs import Outcome
from tests.attacks.conftest import PeakSampler, run_jobs
from tests.fixtures_runner import StartRunner, host_processes, job_containers, wait_for

pytestmark = pytest.mark.docker

TIMEOUT = 2
GRACE = 1
SLACK = 3.0  # docker stop/kill and the runner's quarter-second tick

# name → (run.sh, expected outcome, a token naming the job's long-lived host processes)
CASES: dict[str, tuple[str, Outcome, str | None]] = {
    "sleep-forever": ("sleep 47110001\n", Outcome.TIMED_OUT, "sleep 47110001"),
    "ignore-term": (
        "trap '' TERM\nwhile :; do sleep 47110002; done\n",
        Outcome.TIMED_OUT,
        "sleep 47110002",
    ),
    "daemon-main-exits": (
        "(setsid sleep 47110003 &)\n(setsid bash -c 'trap \"\" TERM; sleep 47110003' &)\n"
        "sleep 0.5\necho main-done\n",
        Outcome.SUCCEEDED,
        "sleep 47110003",
    ),
    "daemon-main-stays": (
        "(setsid nohup sleep 47110004 >/dev/null 2>&1 &)\ntrap '' TERM\nsleep 47110004\n",
        Outcome.TIMED_OUT,
        "sleep 47110004",
    ),
    "sigstop-self": ("echo stopping\nkill -STOP $$\necho resumed\n", Outcome.TIMED_OUT, None),
    "sigstop-init": (
        "kill -STOP 1\nkill -KILL 1\nsleep 47110006\n",
        Outcome.TIMED_OUT,
        "sleep 47110006",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_job_ends_within_timeout_and_leaves_nothing(
    case: str, syftbox: Path, start_runner: StartRunner, docker_client: docker.DockerClient
) -> None:
    script, outcome, token = CASES[case]
    with PeakSampler(lambda: len(host_processes(token or "\0")), 0.1) as seen:
        results = run_jobs(
            syftbox,
            start_runner,
            {case: script},
            runner={"grace_seconds": GRACE},
            config={"timeout_seconds": TIMEOUT},
            timeout=30,
        )
    done = results[case][1]
    assert done.outcome is outcome, done.message
    assert done.duration_seconds is not None
    assert done.duration_seconds < TIMEOUT + GRACE + SLACK, done.duration_seconds
    if outcome is Outcome.TIMED_OUT:
        assert f"time limit of {TIMEOUT} s" in done.message
    wait_for(lambda: not job_containers(docker_client, syftbox), 10, "the container removed")
    if token is not None:
        assert seen.peak >= 1, f"{token!r} never ran: the test proves nothing"
        assert host_processes(token) == []
