"""The job state machine, the serve loop, recovery and release policies on the in-memory backend:
the contract's behaviour without an engine (the same properties run on real containers in
test_runner_executor.py and on a Swarm cluster in tests/swarm/)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from syft_core.datasite import Datasite
from syft_core.jobs import CancelMarker, JobFolder, Outcome, Status
from syft_core.jobs.markers import write_marker
from syft_core.policies import policies_dir
from syft_runner.executor.backends.fake import FakeBackend, FakeRun
from syft_runner.executor.contract import TaskSpec, TaskState, TaskStatus
from syft_runner.executor.job import ExecState, Executor, RunResult
from syft_runner.executor.labels import LABEL_JOB_ID
from syft_runner.service import RunnerService
from tests.fixtures_runner import (
    OWNER,
    SCIENTIST,
    approve,
    done_of,
    results_of,
    runner_config,
    wait_done,
    wait_for,
    write_job,
)


def fake_images(runtime: str) -> str:
    return f"sha256:{runtime:0<64}"[:71]


def executor(syftbox: Path, backend: FakeBackend, **config: Any) -> Executor:
    return Executor(
        None, runner_config(**config), syftbox, OWNER, backend=backend, images=fake_images
    )


def run_in_thread(ex: Executor, job: JobFolder) -> tuple[threading.Thread, list[RunResult]]:
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(ex.run(job)), daemon=True)
    thread.start()
    return thread, results


def test_a_job_runs_to_done_with_its_logs_and_outputs(syftbox: Path) -> None:
    backend = FakeBackend(
        lambda spec: FakeRun(stdout=b"hello\n", stderr=b"warn\n", outputs={"n.csv": b"a,b\n"})
    )
    job = approve(write_job(syftbox, "ok", "echo hello\n"))
    assert executor(syftbox, backend).run(job) is RunResult.FINISHED
    done = done_of(job)
    assert done is not None and done.outcome is Outcome.SUCCEEDED and done.exit_code == 0
    assert job.stdout_path.read_text() == "hello\n" and job.stderr_path.read_text() == "warn\n"
    assert results_of(job).outputs == ["n.csv"]
    assert (job.path / "outputs" / "n.csv").read_bytes() == b"a,b\n"
    assert backend.tasks({}) == []  # cleaned up


def test_the_task_gets_the_hardened_spec_the_owner_approved(syftbox: Path) -> None:
    seen: list[TaskSpec] = []

    def record(spec: TaskSpec) -> FakeRun:
        seen.append(spec)
        return FakeRun()

    backend = FakeBackend(record)
    job = approve(write_job(syftbox, "spec", "true\n", config={"resources": {"memory_mb": 200}}))
    executor(syftbox, backend).run(job)
    [spec] = seen
    assert spec.image == fake_images("scientific") and spec.limits.memory_mb == 200
    assert spec.user[0] >= 2_000_000_000 and spec.workdir == "/job/code"
    assert {m.target: m.read_only for m in spec.mounts}["/job"] is True
    assert {m.target: m.read_only for m in spec.mounts}["/job/outputs"] is False
    assert "PYTHONPATH" not in spec.environment and spec.placement == ()


@pytest.mark.parametrize(
    ("run", "outcome", "phrase"),
    [
        (FakeRun(exit_code=3), Outcome.FAILED, "exited with code 3"),
        (FakeRun(exit_code=137, oom_killed=True), Outcome.OOM_KILLED, "ran out of memory"),
    ],
)
def test_how_a_task_ended_becomes_the_outcome(
    syftbox: Path, run: FakeRun, outcome: Outcome, phrase: str
) -> None:
    job = approve(write_job(syftbox, "ends", "exit 3\n"))
    executor(syftbox, FakeBackend(lambda spec: run)).run(job)
    done = done_of(job)
    assert done is not None and done.outcome is outcome and phrase in done.message


def test_a_task_past_its_time_limit_is_stopped(syftbox: Path) -> None:
    backend = FakeBackend(lambda spec: FakeRun(seconds=60))
    job = approve(write_job(syftbox, "slow", "sleep 60\n", config={"timeout_seconds": 1}))
    started = time.monotonic()
    executor(syftbox, backend).run(job)
    done = done_of(job)
    assert done is not None and done.outcome is Outcome.TIMED_OUT
    assert time.monotonic() - started < 5


def test_a_cancel_marker_stops_the_task(syftbox: Path) -> None:
    backend = FakeBackend(lambda spec: FakeRun(seconds=60))
    job = approve(write_job(syftbox, "cancel", "sleep 60\n"))
    thread, _ = run_in_thread(executor(syftbox, backend), job)
    wait_for(lambda: job.state().status is Status.RUNNING, what="running")
    write_marker(job.marker_path("cancel"), CancelMarker(by=OWNER, reason="enough"))
    thread.join(10)
    done = done_of(job)
    assert done is not None and done.outcome is Outcome.CANCELLED and "enough" in done.message


def test_a_restarted_runner_reattaches_and_never_runs_a_job_twice(syftbox: Path) -> None:
    backend = FakeBackend(lambda spec: FakeRun(seconds=1.0, stdout=b"once\n"))
    job = approve(write_job(syftbox, "reattach", "echo once\n"))
    first = executor(syftbox, backend)
    thread, results = run_in_thread(first, job)
    wait_for(lambda: job.state().status is Status.RUNNING, what="running")
    first.detach()  # the runner stops; the task runs on
    thread.join(10)
    assert results == [RunResult.DETACHED] and done_of(job) is None
    second = executor(syftbox, backend)
    assert second.recover() == 0  # the running job's task is kept
    assert second.get_status(job).state is ExecState.EXECUTING
    assert second.run(job) is RunResult.FINISHED
    assert wait_done(job, 1).outcome is Outcome.SUCCEEDED
    assert len(backend.started) == 1 and job.stdout_path.read_text() == "once\n"


def test_a_task_prepared_before_a_crash_is_removed_and_made_again(
    syftbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = FakeBackend()
    job = approve(write_job(syftbox, "early-crash", "true\n"))

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # stands in for SIGKILL between prepare and `running`

    with monkeypatch.context() as patch:
        patch.setattr(JobFolder, "start", crash)
        with pytest.raises(KeyboardInterrupt):
            executor(syftbox, backend).run(job)
    [leftover] = backend.tasks({})
    assert leftover.state is TaskState.PREPARED and job.state().status is Status.APPROVED
    again = executor(syftbox, backend)
    assert again.recover() == 1
    assert again.run(job) is RunResult.FINISHED and backend.started == [leftover.name]


def test_a_lost_task_ends_the_job_as_an_error_naming_where_never_re_run(syftbox: Path) -> None:
    backend = FakeBackend(lambda spec: FakeRun(seconds=60))
    job = approve(write_job(syftbox, "lost", "sleep 60\n"))
    first = executor(syftbox, backend)
    thread, _ = run_in_thread(first, job)
    wait_for(lambda: job.state().status is Status.RUNNING, what="running")
    [task] = backend.tasks({})
    backend.lose(task.name, "worker node w1 is down")
    thread.join(10)
    done = done_of(job)
    assert done is not None and done.outcome is Outcome.ERROR
    assert "worker node w1 is down" in done.message and "not re-run" in done.message
    assert backend.started == [task.name] and backend.tasks({}) == []


def test_an_unreachable_engine_decides_nothing_and_the_job_runs_later(syftbox: Path) -> None:
    backend = FakeBackend()
    job = approve(write_job(syftbox, "retry", "true\n"))
    backend.unavailable = True
    assert executor(syftbox, backend).run(job) is RunResult.RETRY
    assert job.state().status is Status.APPROVED and done_of(job) is None
    backend.unavailable = False
    assert executor(syftbox, backend).run(job) is RunResult.FINISHED
    assert wait_done(job, 1).outcome is Outcome.SUCCEEDED


def test_a_start_the_engine_refused_is_tried_once_more_when_nothing_ran(
    syftbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = FakeBackend(lambda spec: FakeRun(stdout=b"ran\n"))
    backend.refuse_starts = 1
    job = approve(write_job(syftbox, "refused-once", "echo ran\n"))
    assert executor(syftbox, backend).run(job) is RunResult.FINISHED
    assert wait_done(job, 1).outcome is Outcome.SUCCEEDED
    assert len(backend.started) == 1 and job.stdout_path.read_text() == "ran\n"
    assert "trying once more" in caplog.text


def test_a_start_refused_twice_ends_the_job_an_error_and_leaves_nothing_behind(
    syftbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # the error path logs at INFO: a serving runner's level
    backend = FakeBackend()
    backend.refuse_starts = 2
    job = approve(write_job(syftbox, "refused-twice", "true\n"))
    ex = executor(syftbox, backend)
    ex.run(job)
    assert wait_done(job, 1).outcome is Outcome.ERROR
    assert backend.started == [] and backend.tasks({}) == []
    assert ex.dirs.job_ids() == set(), "the job's runner folders were left behind"
    assert "could not" not in caplog.text  # the error path itself ran to its end


def test_a_running_marker_in_a_folder_that_names_no_job_starts_no_worker(
    syftbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Planted gateway state: a `running` marker under a submitter folder that is no email is
    not a job to re-attach to (it used to start a worker that failed on every rescan)."""
    planted = syftbox / OWNER / "jobs" / "not-an-email" / "x"
    planted.mkdir(parents=True)
    (planted / "running").write_text("{}")
    service = RunnerService(
        syftbox, OWNER, runner_config(), None, backend=FakeBackend(), images=fake_images
    )
    service.run(threading.Event(), once=True)
    assert "unexpected error in a job worker" not in caplog.text
    assert not service.active


def test_a_task_label_naming_no_job_never_reaches_other_jobs_folders(syftbox: Path) -> None:
    """Engine metadata is not the runner's alone: a task whose job-id label is missing, empty or
    a path must not turn `cleanup` into a removal of every job's runner folder."""
    backend = FakeBackend(lambda spec: FakeRun(seconds=60))
    job = approve(write_job(syftbox, "bystander", "sleep 60\n"))
    ex = executor(syftbox, backend)
    thread, _ = run_in_thread(ex, job)
    wait_for(lambda: job.state().status is Status.RUNNING, what="running")
    held = ex.dirs.job_ids()
    assert held
    for bad in ("", "..", "../..", "scratch"):
        ex.cleanup(
            [TaskStatus(name="syft-job-x", state=TaskState.EXECUTED, labels={LABEL_JOB_ID: bad})]
        )
    assert ex.dirs.job_ids() == held
    ex.cleanup(backend.tasks({}))
    thread.join(10)


def test_the_serve_loop_runs_at_most_its_concurrency_at_once(syftbox: Path) -> None:
    starts: list[float] = []

    def timed(spec: TaskSpec) -> FakeRun:
        starts.append(time.monotonic())
        return FakeRun(seconds=0.4)

    backend = FakeBackend(timed)
    jobs = [approve(write_job(syftbox, f"j{i}", "true\n")) for i in range(5)]
    service = RunnerService(
        syftbox, OWNER, runner_config(concurrency=2), None, backend=backend, images=fake_images
    )
    service.run(threading.Event(), once=True)
    assert all(wait_done(job, 1).outcome is Outcome.SUCCEEDED for job in jobs)
    overlap = max(sum(1 for s in starts if s <= t < s + 0.4) for t in starts)
    assert len(starts) == 5 and overlap <= 2


def test_mock_runs_are_released_at_once_and_real_runs_wait(syftbox: Path) -> None:
    backend = FakeBackend()
    mock = approve(write_job(syftbox, "mock", "true\n", config={"mode": "mock"}))
    real = approve(write_job(syftbox, "real", "true\n"))
    ex = executor(syftbox, backend)
    ex.run(mock)
    ex.run(real)
    released = mock.state().released
    assert released is not None and released.method == "auto:mock"
    assert real.state().released is None


def test_a_release_policy_releases_a_real_run_whose_outputs_pass(syftbox: Path) -> None:
    path = policies_dir(Datasite(syftbox, OWNER)) / "counts.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    policy = {"name": "counts", "submitters": [SCIENTIST], "mode": "real", "auto_release": True}
    path.write_text(yaml.safe_dump(policy))
    table = b"region,n\nnorth,40\n"
    job = approve(write_job(syftbox, "real", "true\n"))
    executor(syftbox, FakeBackend(lambda spec: FakeRun(outputs={"n.csv": table}))).run(job)
    released = job.state().released
    assert released is not None and released.method == "policy:counts"
