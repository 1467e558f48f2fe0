"""The executor's state machine: outcomes, and resuming from every crash point."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

from syft_core.jobs import CancelMarker, JobFolder, Outcome, Status
from syft_runner.executor.backends.docker import DockerBackend
from syft_runner.executor.contract import TaskExists, TaskSpec, TaskState, TaskStatus
from syft_runner.executor.job import ExecState, Executor, RunResult
from syft_runner.executor.labels import LABEL_OWNER, LABEL_RUNNER, LABEL_SYFTBOX
from syft_runner.executor.outcome import Ending, Usage, classify
from syft_runner.sandbox.container import Limits
from syft_runner.sandbox.envs import LABEL_ENV_BUILD
from syft_runner.workspace.logs import LogStreamer
from tests.fixtures_runner import (
    OWNER,
    StartRunner,
    approve,
    job_containers,
    remove_test_containers,
    runner_config,
    wait_done,
    wait_for,
    write_job,
)

LIMITS = Limits(memory_mb=100, timeout_seconds=60, fsize_mb=5)


def _ending(reason: str = "exited", peak: int | None = None, **kw: object) -> Ending:
    return Ending(reason, Usage(peak_memory_bytes=peak), False, False, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ending", "exit_code", "oom", "outcome", "phrase"),
    [
        (_ending(), 0, False, Outcome.SUCCEEDED, "exited with code 0"),
        (_ending(), 2, False, Outcome.FAILED, "exited with code 2; see logs/stderr.txt"),
        (_ending(), 137, True, Outcome.OOM_KILLED, "the limit is 100 MiB"),
        (_ending(peak=99 * 1024 * 1024), 137, False, Outcome.OOM_KILLED, "100 MiB"),
        (_ending(peak=10 * 1024 * 1024), 137, False, Outcome.FAILED, "SIGKILL"),
        (_ending(), 153, False, Outcome.FAILED, "past the limit of 5 MiB"),
        (_ending("timed_out"), 137, False, Outcome.TIMED_OUT, "time limit of 60 s"),
        (
            _ending("cancelled", cancel=CancelMarker(by=OWNER, reason="oops")),
            137,
            False,
            Outcome.CANCELLED,
            f"cancelled by {OWNER}: oops",
        ),
    ],
)
def test_classify(ending: Ending, exit_code: int, oom: bool, outcome: Outcome, phrase: str) -> None:
    got, message = classify(ending, exit_code, oom, LIMITS)
    assert got is outcome and phrase in message


class _Crash(BaseException):
    """Stands in for SIGKILL: nothing after it runs, nothing catches it."""


@pytest.mark.docker
def test_crash_between_running_marker_and_start_resumes(
    syftbox: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    job = approve(write_job(syftbox, "crashy", "echo ran > outputs/x\necho ran\n"))

    class CrashBeforeStart(Executor):
        def _start(self, job: JobFolder, task: TaskStatus) -> tuple[TaskStatus, LogStreamer]:
            raise _Crash

    crashing = CrashBeforeStart(docker_client, runner_config(), syftbox, OWNER)
    with pytest.raises(_Crash):
        crashing.run(job)
    executor = Executor(docker_client, runner_config(), syftbox, OWNER)
    evidence = executor.get_status(job)
    assert evidence.state is ExecState.CREATED  # running marker, container never started
    assert executor.recover() == 0  # a running job's container is kept
    assert executor.run(job) is RunResult.FINISHED
    done = wait_done(job, timeout=1)
    assert done.outcome is Outcome.SUCCEEDED and job.stdout_path.read_text() == "ran\n"
    assert executor.get_status(job).tasks == []


@pytest.mark.docker
def test_crash_between_create_and_running_marker_recreates(
    syftbox: Path,
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = approve(write_job(syftbox, "early-crash", "echo once\n"))

    def crash(*args: object, **kwargs: object) -> None:
        raise _Crash

    with monkeypatch.context() as patch:
        patch.setattr(JobFolder, "start", crash)
        with pytest.raises(_Crash):
            Executor(docker_client, runner_config(), syftbox, OWNER).run(job)
    executor = Executor(docker_client, runner_config(), syftbox, OWNER)
    assert job.state().status is Status.APPROVED
    assert len(executor.tasks_of(job)) == 1  # created, never started, no marker
    assert executor.recover() == 1
    assert executor.run(job) is RunResult.FINISHED
    assert wait_done(job, timeout=1).outcome is Outcome.SUCCEEDED
    assert job.stdout_path.read_text() == "once\n"


@pytest.mark.docker
@pytest.mark.parametrize("lost", ["running", "done"])
def test_a_crash_between_a_marker_and_its_event_log_line_is_repaired_once(
    lost: str,
    syftbox: Path,
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGKILL after a marker is written and before its event is logged: the restarted runner
    logs it from the marker (the truth), once; the job is neither lost nor run again."""
    job = approve(write_job(syftbox, f"torn-{lost}", "echo once\n"))
    record = JobFolder._record

    def record_or_crash(self: JobFolder, by: str, what: str, **details: object) -> None:
        if what == lost:
            raise _Crash
        record(self, by, what, **details)

    with monkeypatch.context() as patch:
        patch.setattr(JobFolder, "_record", record_or_crash)
        with pytest.raises(_Crash):
            Executor(docker_client, runner_config(), syftbox, OWNER).run(job)
    assert job.marker_path(lost).exists()
    executor = Executor(docker_client, runner_config(), syftbox, OWNER)
    executor.recover()
    executor.recover()  # idempotent: a second start-up adds nothing
    executor.run(job)
    assert wait_done(job, timeout=1).outcome is Outcome.SUCCEEDED
    assert job.stdout_path.read_text() == "once\n"
    events = [e for e in job.events if e.path == job.relpath]
    assert [e.what for e in events] == ["job.approved", "job.running", "job.done"]
    assert [e.details.get("restored") for e in events] == [
        None,
        True if lost == "running" else None,
        True if lost == "done" else None,
    ]
    assert executor.get_status(job).tasks == []


@pytest.mark.docker
def test_a_vanished_container_is_an_error_not_a_rerun(
    syftbox: Path, start_runner: StartRunner, docker_client: docker.DockerClient
) -> None:
    job = approve(write_job(syftbox, "vanish", "sleep 60\n"))
    runner = start_runner()
    label = f"{LABEL_SYFTBOX}={syftbox.resolve()}"
    wait_for(
        lambda: bool(job_containers(docker_client, syftbox, include_stopped=False)), what="start"
    )
    runner.shutdown()  # the runner stops; its container keeps running
    remove_test_containers(docker_client, syftbox)
    start_runner()
    done = wait_done(job)
    assert done.outcome is Outcome.ERROR
    assert "not re-run" in done.message
    assert (
        docker_client.containers.list(all=True, ignore_removed=True, filters={"label": label}) == []
    )


def test_an_unreachable_engine_leaves_the_job_for_a_retry(syftbox: Path, tmp_path: Path) -> None:
    job = approve(write_job(syftbox, "patient", "echo hi\n"))
    nowhere = docker.DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock", version="1.41")
    executor = Executor(nowhere, runner_config(), syftbox, OWNER)
    assert executor.run(job) is RunResult.RETRY
    assert job.state().status is Status.APPROVED  # untouched: it runs once the engine is back


@pytest.mark.docker
def test_recover_removes_only_this_runners_build_leftovers(
    syftbox: Path, tmp_path: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    """Runners on one host share the runner id (the host name by default): one starting up
    must not remove another's environment build in progress."""
    config = runner_config(runner_id=f"leftovers-{uuid.uuid4().hex[:8]}")
    executor = Executor(docker_client, config, syftbox, OWNER)
    other = tmp_path / "other-syftbox"
    labels = {LABEL_ENV_BUILD: "k", LABEL_RUNNER: config.runner_id}
    mine = {**labels, **dict(executor.envs.settings.labels)}
    theirs = {**labels, LABEL_SYFTBOX: str(other), LABEL_OWNER: OWNER}
    created = [
        docker_client.containers.create(job_images["minimal"], ["true"], labels=labels)
        for labels in (mine, theirs)
    ]
    try:
        assert executor.recover() == 1
        assert [c.labels[LABEL_SYFTBOX] for c in _existing(docker_client, created)] == [str(other)]
    finally:
        for container in _existing(docker_client, created):
            container.remove(force=True)


def _existing(client: docker.DockerClient, containers: list[Container]) -> list[Container]:
    found = []
    for container in containers:
        with contextlib.suppress(docker.errors.NotFound):
            found.append(client.containers.get(container.id))
    return found


@pytest.mark.docker
def test_a_same_named_container_is_adopted_only_if_it_carries_the_specs_labels(
    docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    # The deterministic name is the lock; a container found under it is taken as made by an
    # earlier call only if it is this runner's and was made for this very spec (job, content).
    runner_label = (LABEL_RUNNER, f"adopt-{uuid.uuid4().hex[:8]}")
    backend = DockerBackend(docker_client, runner_label)
    name = f"syft-job-adopt-{uuid.uuid4().hex[:12]}"
    spec = TaskSpec(
        name=name,
        image=next(iter(job_images.values())),
        command=("true",),
        environment={},
        mounts=(),
        workdir="/",
        limits=Limits(),
        user=(65532, 65532),
        labels={"org.syft.content-hash": "approved", runner_label[0]: runner_label[1]},
    )
    forged = spec.model_copy(update={"labels": {**spec.labels, "org.syft.content-hash": "other"}})
    try:
        backend.prepare(forged)  # under the same name and runner label, for other content
        with pytest.raises(TaskExists):
            backend.prepare(spec)
        backend.cleanup(name)
        first = backend.prepare(spec)
        again = DockerBackend(docker_client, runner_label).prepare(spec)  # a restarted runner
        assert (first.state, again.state) == (TaskState.PREPARED, TaskState.PREPARED)
    finally:
        backend.cleanup(name)
