"""The runner applies the owner's job policies and releases results the owner agreed to in advance:
no policy means every job waits; mock runs are released at once; a release policy releases real
runs; nothing is released once the submission differs from what ran. And the job environment."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from syft_core.datasite import Datasite
from syft_core.jobs import ApprovedMarker, JobFolder, Outcome, Status
from syft_core.jobs.markers import read_marker
from syft_core.jobs.snapshot import Snapshot
from syft_core.policies import policies_dir
from syft_core.release import results_waiting
from syft_runner.service import RunnerService
from tests.fixtures_runner import (
    OWNER,
    SCIENTIST,
    StartRunner,
    approve,
    runner_config,
    wait_done,
    wait_for,
    write_job,
)

pytestmark = pytest.mark.docker


def write_policy(syftbox: Path, name: str, **fields: Any) -> None:
    body = {"name": name, "submitters": [SCIENTIST], "mode": "any", **fields}
    path = policies_dir(Datasite(syftbox, OWNER)) / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(body))


def serve_once(syftbox: Path, client: docker.DockerClient) -> None:
    RunnerService(syftbox, OWNER, runner_config(), client).run(threading.Event(), once=True)


def test_without_policies_every_job_waits_for_the_owner(
    syftbox: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    job = write_job(syftbox, "waits", "echo hi\n")
    serve_once(syftbox, docker_client)
    assert job.state().status is Status.INBOX
    assert not job.marker_path("approved").exists() and not job.logs_dir.exists()


def test_an_approving_policy_lets_the_serve_loop_approve_and_run_new_jobs(
    syftbox: Path, start_runner: StartRunner
) -> None:
    write_policy(syftbox, "team", auto_approve=True)
    start_runner()
    job = write_job(syftbox, "by-policy", "echo ran\n")
    done = wait_done(job)
    assert done.outcome is Outcome.SUCCEEDED
    approved = read_marker(job.marker_path("approved"), ApprovedMarker)
    assert approved is not None and approved.method == "policy:team"
    # Approved by policy is not released by policy: real results still wait.
    assert results_waiting(job) and job.state().released is None
    other = write_job(syftbox, "stranger", "echo no\n", submitter="ds2@example.org")
    wait_for(lambda: job.state().status is Status.DONE)
    assert other.state().status is Status.INBOX  # the policy names its submitters


def test_a_release_policy_releases_real_results_when_done(
    syftbox: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    write_policy(syftbox, "counts", auto_release=True, mode="real")
    # A table of large counts: the policy releases only outputs that pass every check.
    job = approve(write_job(syftbox, "real", "printf 'region,n\\nnorth,40\\n' > outputs/n.csv\n"))
    serve_once(syftbox, docker_client)
    released = job.state().released
    assert released is not None and released.method == "policy:counts"
    assert yaml.safe_load((job.path / "syft.pub.yaml").read_text())["rules"][-1] == {
        "pattern": "**",
        "access": {"read": [SCIENTIST]},
    }


def test_mock_runs_are_released_at_once_and_real_runs_are_kept(
    syftbox: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    mock = approve(write_job(syftbox, "mock", "echo m\n", config={"mode": "mock"}))
    real = approve(write_job(syftbox, "real", "echo r\n"))
    serve_once(syftbox, docker_client)
    released = mock.state().released
    assert released is not None and released.method == "auto:mock"
    assert real.state().released is None and results_waiting(real)


def _edit_while_running(
    syftbox: Path, client: docker.DockerClient, job: JobFolder, edit: dict[str, Any]
) -> None:
    """Serve the job; while it runs, the submitter edits its config.yaml (their right)."""
    serving = threading.Thread(target=serve_once, args=(syftbox, client))
    serving.start()
    wait_for(lambda: job.state().status is Status.RUNNING, what="the job to start")
    config = yaml.safe_load(job.config_path.read_text())
    job.config_path.write_text(yaml.safe_dump({**config, **edit}))
    serving.join(timeout=60)
    assert not serving.is_alive()


def test_a_real_run_flipped_to_mock_while_running_is_not_released(
    syftbox: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    # The policy releases mock runs only; the live config claims mock once the job ran.
    write_policy(syftbox, "mocks", auto_release=True, mode="mock")
    job = approve(write_job(syftbox, "flip", "sleep 1; echo secret > outputs/s\n"))
    _edit_while_running(syftbox, docker_client, job, {"mode": "mock"})
    done = job.state().done
    assert done is not None and done.outcome is Outcome.SUCCEEDED
    assert job.state().released is None and not (job.path / "syft.pub.yaml").exists()


def test_a_mock_run_edited_while_running_is_not_released(
    syftbox: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    job = approve(write_job(syftbox, "edit", "sleep 1\n", config={"mode": "mock"}))
    _edit_while_running(syftbox, docker_client, job, {"description": "changed"})
    assert job.state().done is not None and job.state().released is None


def test_the_job_environment_says_mode_datasite_and_name(
    syftbox: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    job = approve(write_job(syftbox, "env", "env | grep ^SYFT | sort\n", config={"mode": "mock"}))
    serve_once(syftbox, docker_client)
    assert job.stdout_path.read_text().splitlines() == [
        f"SYFTBOX_EMAIL={OWNER}",
        "SYFTBOX_FOLDER=/syftbox",
        f"SYFT_DATASITE={OWNER}",
        "SYFT_DATA_DIR=/data",
        "SYFT_IS_IN_JOB=true",
        "SYFT_OUTPUT_DIR=/job/outputs",
        "SYFT_RUN_MODE=mock",
    ]


def test_inbox_jobs_no_policy_approves_cost_no_hashing_pass_after_pass(
    syftbox: Path,
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A submitter filling the inbox must not make every rescan hash every job: a submitter no
    # auto-approving policy admits costs no hashing at all, and an admitted one's job the policy
    # refused is evaluated again only once its files (or the policies) change.
    write_policy(syftbox, "proven", auto_approve=True, same_code_as_approved=True)
    admitted = [write_job(syftbox, f"a{i}", "echo\n") for i in range(4)]
    others = [write_job(syftbox, f"o{i}", "echo\n", submitter="ds2@example.org") for i in range(4)]
    hashed: list[Path] = []
    take = Snapshot.take.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Snapshot], /, folder: Path, **kwargs: Any) -> Snapshot:
        hashed.append(Path(folder))
        return take(cls, folder, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(Snapshot, "take", classmethod(counting))
    service = RunnerService(syftbox, OWNER, runner_config(), docker_client)
    folders = [job.path for job in admitted + others]
    service._consider(folders)
    assert sorted(hashed) == sorted(job.path for job in admitted)
    service._consider(folders)
    service._consider(folders)
    assert len(hashed) == len(admitted)  # nothing changed: nothing hashed again
    (admitted[0].path / "run.sh").write_text("echo changed\n")
    service._consider(folders)
    assert hashed[len(admitted) :] == [admitted[0].path]
    assert all(job.state().status is Status.INBOX for job in admitted + others)
