"""Result release: logs/outputs are unreadable for the submitter until the owner releases them,
checked with the real permission engine (and the reference engine, to be sure of the semantics)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from syft_permissions import AccessLevel as RefLevel
from syft_permissions import ACLRequest, ACLService, User
from typer.testing import CliRunner

from syft_core.datasite import Datasite
from syft_core.errors import AccessDeniedError, JobError
from syft_core.jobs.config import JobConfig
from syft_core.jobs.folder import JobFolder
from syft_core.jobs.markers import DoneMarker, Outcome
from syft_core.permissions import AccessLevel, SyftPermContext
from syft_core.release import is_released, release_job, results_waiting
from syft_runner.cli import jobs as jobs_cli
from syft_runner.cli import release as release_cli

OWNER = "do@example.org"
SCIENTIST = "ds@example.org"
OTHER = "eve@example.org"
JOB = f"jobs/{SCIENTIST}/analysis"
RESULTS = [f"{JOB}/logs/stdout.txt", f"{JOB}/logs/stderr.txt", f"{JOB}/outputs/result.csv"]
MARKERS = ["approved", "running", "done", "released", "rejected", "cancel"]
SUBMISSION = ["run.sh", "config.yaml", "code/main.py"]


def make_job(ds: Datasite, mode: str = "real", name: str = "analysis") -> JobFolder:
    job = JobFolder.at(ds.syftbox_root, ds.email, SCIENTIST, name)
    (job.path / "code").mkdir(parents=True)
    (job.path / "run.sh").write_text("#!/bin/bash\nexec python3 main.py\n")
    (job.path / "code" / "main.py").write_text("print('hi')\n")
    config = JobConfig(name=name, type="bash", mode=mode, submitted_by=SCIENTIST)
    (job.path / "config.yaml").write_text(config.to_yaml())
    return job


def run_to_done(job: JobFolder) -> JobFolder:
    job.approve(OWNER, expected_hash=job.content_hash())
    content_hash = job.content_hash()
    job.start(OWNER, container="c", image="img", image_id="sha256:1", content_hash=content_hash)
    (job.logs_dir).mkdir()
    job.stdout_path.write_text("42\n")
    job.stderr_path.write_text("")
    job.outputs_dir.mkdir()
    (job.outputs_dir / "result.csv").write_text("answer\n42\n")
    job.finish(DoneMarker(by=OWNER, outcome=Outcome.SUCCEEDED, message="ok", exit_code=0))
    return job


@pytest.fixture
def datasite(tmp_path: Path) -> Datasite:
    return Datasite(tmp_path / "syftbox", OWNER).init()


@pytest.fixture
def done_job(datasite: Datasite) -> JobFolder:
    return run_to_done(make_job(datasite))


def can(ds: Datasite, user: str, rel: str, level: AccessLevel) -> bool:
    """Our engine's answer, asserted equal to the reference engine's on the same files."""
    ours = SyftPermContext(datasite=ds.root).check(user, rel, level)
    reference = ACLService(owner=ds.email)
    reference.load_permissions_from_filesystem(ds.root)
    request = ACLRequest(path=rel, level=RefLevel[level.name], user=User(id=user))
    assert ours == reference.can_access(request), (user, rel, level)
    return ours


def test_results_are_denied_to_the_submitter_before_release(
    datasite: Datasite, done_job: JobFolder
) -> None:
    for rel in RESULTS:
        assert not can(datasite, SCIENTIST, rel, AccessLevel.READ), rel
    ctx = SyftPermContext(datasite=datasite.root)
    assert not ctx.open(f"{JOB}/logs/").has_read_access(SCIENTIST)
    assert not ctx.open(f"{JOB}/outputs/").has_read_access(SCIENTIST)
    # The rest of their own job stays readable, so they can see its status.
    for rel in [*SUBMISSION, "approved", "done"]:
        assert can(datasite, SCIENTIST, f"{JOB}/{rel}", AccessLevel.READ), rel
    for rel in SUBMISSION:
        assert can(datasite, SCIENTIST, f"{JOB}/{rel}", AccessLevel.WRITE), rel
    assert results_waiting(done_job) and not is_released(done_job)


def test_release_lets_the_submitter_read_results(datasite: Datasite, done_job: JobFolder) -> None:
    marker = release_job(done_job, OWNER)
    assert marker.by == OWNER and marker.method == "manual"
    assert (done_job.path / "syft.pub.yaml").is_file()
    for rel in RESULTS:
        assert can(datasite, SCIENTIST, rel, AccessLevel.READ), rel
        assert not can(datasite, OTHER, rel, AccessLevel.READ), rel
    assert (
        SyftPermContext(datasite=datasite.root).open(f"{JOB}/outputs/").has_read_access(SCIENTIST)
    )
    assert is_released(done_job) and not results_waiting(done_job)
    assert done_job.state().released == marker
    events = [e for e in datasite.events if e.what == "job.released"]
    assert len(events) == 1 and events[0].details["method"] == "manual"


def test_after_release_the_submitter_still_cannot_write_markers_or_results(
    datasite: Datasite, done_job: JobFolder
) -> None:
    release_job(done_job, OWNER)
    for rel in [*MARKERS, *(r.removeprefix(f"{JOB}/") for r in RESULTS), "syft.pub.yaml"]:
        assert not can(datasite, SCIENTIST, f"{JOB}/{rel}", AccessLevel.WRITE), rel
    assert not can(datasite, SCIENTIST, f"{JOB}/syft.pub.yaml", AccessLevel.READ)
    assert not can(datasite, SCIENTIST, f"{JOB}/code/syft.pub.yaml", AccessLevel.WRITE)
    for rel in SUBMISSION:  # restated: the job-folder file governs alone
        assert can(datasite, SCIENTIST, f"{JOB}/{rel}", AccessLevel.WRITE), rel
    assert not can(datasite, OTHER, f"{JOB}/run.sh", AccessLevel.WRITE)


def test_other_jobs_stay_closed(datasite: Datasite, done_job: JobFolder) -> None:
    second = run_to_done(make_job(datasite, name="second"))
    release_job(done_job, OWNER)
    rel = f"jobs/{SCIENTIST}/second/outputs/result.csv"
    assert not can(datasite, SCIENTIST, rel, AccessLevel.READ)
    assert results_waiting(second)


def test_only_the_owner_releases(done_job: JobFolder) -> None:
    with pytest.raises(AccessDeniedError, match="only the owner"):
        release_job(done_job, SCIENTIST)
    assert not (done_job.path / "syft.pub.yaml").exists()
    assert not is_released(done_job)


def test_only_done_jobs_are_released(datasite: Datasite) -> None:
    job = make_job(datasite)
    with pytest.raises(JobError, match="cannot release a job that is inbox"):
        release_job(job, OWNER)
    job.approve(OWNER, expected_hash=job.content_hash())
    with pytest.raises(JobError, match="cannot release a job that is approved"):
        release_job(job, OWNER)
    assert not (job.path / "syft.pub.yaml").exists() and not is_released(job)
    assert not results_waiting(job)


def test_release_is_idempotent(datasite: Datasite, done_job: JobFolder) -> None:
    first = release_job(done_job, OWNER)
    (done_job.path / "syft.pub.yaml").unlink()  # e.g. a crash between marker and permissions
    second = release_job(done_job, OWNER, method="policy:trusted")
    assert second == first  # the first release is kept
    assert can(datasite, SCIENTIST, RESULTS[0], AccessLevel.READ)
    assert len([e for e in datasite.events if e.what == "job.released"]) == 1


def test_mock_runs_release_automatically_real_ones_do_not(datasite: Datasite) -> None:
    mock_job = run_to_done(make_job(datasite, mode="mock", name="mock-run"))
    assert not results_waiting(mock_job)  # nothing waits for the owner on a mock run
    assert release_job(mock_job, OWNER, method="auto:mock").method == "auto:mock"
    real_job = run_to_done(make_job(datasite, name="real-run"))
    with pytest.raises(JobError, match="only for mock runs"):
        release_job(real_job, OWNER, method="auto:mock")
    assert not is_released(real_job)


@pytest.mark.parametrize("method", ["", "auto", "policy:", "policy:Bad Name", "automatic"])
def test_unknown_methods_are_refused(done_job: JobFolder, method: str) -> None:
    with pytest.raises(JobError, match="unknown release method"):
        release_job(done_job, OWNER, method=method)


def test_cli_release(datasite: Datasite, done_job: JobFolder) -> None:
    app = typer.Typer()
    jobs_cli.register(app)  # with more than one command, typer keeps `release` as a name
    release_cli.register(app)
    env = {"SYFTBOX_FOLDER": str(datasite.syftbox_root), "SYFTBOX_EMAIL": OWNER, "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["release", f"{SCIENTIST}/analysis"], env=env)
    assert result.exit_code == 0, result.output
    assert f"{SCIENTIST} may now read its logs and outputs" in result.output
    assert is_released(done_job)
    missing = CliRunner().invoke(app, ["release", "nope"], env=env)
    assert missing.exit_code == 1 and "nope" in missing.output
