"""Concurrency: N jobs at once, and a fair order across submitters when slots are scarce."""

from __future__ import annotations

from pathlib import Path

import pytest

from syft_core.jobs import Outcome
from tests.fixtures_runner import (
    OTHER_SCIENTIST,
    SCIENTIST,
    StartRunner,
    approve,
    wait_done,
    write_job,
)

pytestmark = pytest.mark.docker


def test_jobs_run_in_parallel_up_to_the_limit(syftbox: Path, start_runner: StartRunner) -> None:
    jobs = [approve(write_job(syftbox, f"p{i}", "sleep 1.5\n")) for i in range(3)]
    start_runner(concurrency=2)
    dones = [wait_done(job) for job in jobs]
    assert all(d.outcome is Outcome.SUCCEEDED for d in dones)
    starts = sorted(d.started_at for d in dones if d.started_at is not None)
    assert len(starts) == 3
    # Two started together; the third only once a slot was free.
    assert (starts[1] - starts[0]).total_seconds() < 1.0
    assert (starts[2] - starts[0]).total_seconds() >= 1.4


def test_submitters_take_turns(syftbox: Path, start_runner: StartRunner) -> None:
    busy = [
        approve(write_job(syftbox, f"a{i}", "sleep 0.2\n", submitter=SCIENTIST)) for i in range(3)
    ]
    other = approve(write_job(syftbox, "b0", "sleep 0.2\n", submitter=OTHER_SCIENTIST))
    start_runner(concurrency=1)
    order = sorted((wait_done(job).started_at, job.name) for job in [*busy, other])
    assert [name for _, name in order] == ["a0", "b0", "a1", "a2"]
