"""Attack 4: changing run.sh, config.yaml or code/ after the owner approved them. Approval binds
to the content hash: a changed job is not run and its status says why; a change while it runs
does not reach the container (it runs a staged copy)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from syft_core.jobs import JobFolder, Outcome, Status
from tests.attacks.conftest import container_actions
from tests.fixtures_runner import (
    StartRunner,
    approve,
    done_of,
    wait_done,
    wait_for,
    write_job,
)

pytestmark = pytest.mark.docker

Change = Callable[[JobFolder], None]


def _rewrite(rel: str, text: str) -> Change:
    def change(job: JobFolder) -> None:
        (job.path / rel).write_text(text)

    return change


def _append(rel: str, text: str) -> Change:
    def change(job: JobFolder) -> None:
        with (job.path / rel).open("a") as fh:
            fh.write(text)

    return change


def _add_code(job: JobFolder) -> None:
    (job.code_dir / "extra.py").write_text("import os\n")


def _remove_code(job: JobFolder) -> None:
    (job.code_dir / "lib.sh").unlink()


def _rename_code(job: JobFolder) -> None:
    os.rename(job.code_dir / "lib.sh", job.code_dir / "lib2.sh")


CHANGES: dict[str, Change] = {
    "run.sh-same-size": _rewrite("run.sh", "echo evil!\n"),
    "run.sh-appended": _append("run.sh", "cat /etc/passwd\n"),
    "config-resources": _append("config.yaml", "resources: {memory_mb: 4096}\n"),
    "code-added": _add_code,
    "code-removed": _remove_code,
    "code-renamed": _rename_code,
    "code-same-size": _rewrite("code/lib.sh", "echo EVIL\n"),
}


@pytest.mark.parametrize("case", sorted(CHANGES))
def test_changed_after_approval_is_not_run(
    case: str, syftbox: Path, start_runner: StartRunner, docker_client: docker.DockerClient
) -> None:
    since = time.time()
    job = approve(write_job(syftbox, case, "echo approved\n", code={"lib.sh": "echo lib\n"}))
    CHANGES[case](job)
    later = approve(write_job(syftbox, f"{case}-later", "echo later\n"))
    start_runner()
    assert wait_done(later).outcome is Outcome.SUCCEEDED
    state = job.state()
    assert state.status is Status.INBOX
    assert state.reason is not None and "changed after approval" in state.reason
    assert done_of(job) is None and not job.marker_path("running").exists()
    assert container_actions(docker_client, job, since) == []
    assert not job.logs_dir.exists() and not job.outputs_dir.exists()


def test_only_content_counts_not_timestamps(syftbox: Path, start_runner: StartRunner) -> None:
    job = approve(write_job(syftbox, "touched", "echo approved\n", code={"lib.sh": "x\n"}))
    for path in (job.run_sh, job.config_path, job.code_dir / "lib.sh"):
        os.utime(path, (1, 1))
    start_runner()
    done = wait_done(job)
    assert done.outcome is Outcome.SUCCEEDED and job.stdout_path.read_text() == "approved\n"


def test_change_while_running_does_not_reach_the_container(
    syftbox: Path, start_runner: StartRunner
) -> None:
    # bash reads a script as it runs it: were run.sh mounted from the submission, a rewrite
    # mid-run would execute. The job runs a staged copy instead.
    original = "sleep 2\necho original\n"
    job = approve(write_job(syftbox, "mid-run", original))
    approved_hash = job.content_hash()
    start_runner()
    wait_for(lambda: job.marker_path("running").exists(), what="the job to start")
    job.run_sh.write_text("sleep 2\necho EVIL\n")
    (job.code_dir / "added.sh").write_text("echo EVIL\n")
    done = wait_done(job)
    assert done.outcome is Outcome.SUCCEEDED
    assert job.stdout_path.read_text() == "original\n"
    assert done.content_hash == approved_hash != job.content_hash()
