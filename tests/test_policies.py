"""Job policies: each condition, malformed files never approve, the method is recorded."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from syft_core.datasite import Datasite
from syft_core.errors import JobError
from syft_core.jobs import Snapshot
from syft_core.jobs.config import JobConfig
from syft_core.jobs.folder import JobFolder, Status
from syft_core.jobs.markers import DoneMarker, Outcome
from syft_core.policies import (
    apply_policies,
    decide_approval,
    decide_release,
    load_policies,
    policies_dir,
)
from syft_core.release import release_job

OWNER = "do@example.org"
ALICE = "alice@lab.example.org"
MALLORY = "mallory@evil.example.com"
CODE = "print('mean age')\n"


@pytest.fixture
def datasite(tmp_path: Path) -> Datasite:
    return Datasite(tmp_path / "syftbox", OWNER).init()


def make_job(
    ds: Datasite,
    name: str,
    *,
    submitter: str = ALICE,
    code: str = CODE,
    datasets: list[str] | None = None,
    mode: str = "real",
) -> JobFolder:
    job = JobFolder.at(ds.syftbox_root, ds.email, submitter, name)
    (job.path / "code").mkdir(parents=True)
    (job.path / "run.sh").write_text("#!/bin/bash\nexec python3 main.py\n")
    (job.path / "code" / "main.py").write_text(code)
    config = JobConfig(
        name=name,
        type="bash",
        datasets=datasets or [],
        mode=mode,
        submitted_by=submitter,
    )
    (job.path / "config.yaml").write_text(config.to_yaml())
    return job


def finish(job: JobFolder, outcome: Outcome = Outcome.SUCCEEDED) -> JobFolder:
    content_hash = job.content_hash()
    job.start(OWNER, container="c", image="i", image_id="sha256:1", content_hash=content_hash)
    job.finish(DoneMarker(by=OWNER, outcome=outcome, message="", content_hash=content_hash))
    return job


def write_policy(ds: Datasite, name: str, **fields: Any) -> Path:
    body: dict[str, Any] = {
        "name": name,
        "auto_approve": True,
        "submitters": [ALICE],
        "mode": "any",
    }
    body.update(fields)
    path = policies_dir(ds) / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(body))
    return path


def test_no_policies_means_manual(datasite: Datasite) -> None:
    job = make_job(datasite, "j")
    assert load_policies(datasite) == ([], [])
    assert decide_approval(datasite, job) is None
    assert apply_policies(datasite, job, OWNER) is None
    assert job.state().status is Status.INBOX


def test_policies_never_sync(datasite: Datasite) -> None:
    from syft_core.permissions import SyftPermContext

    path = write_policy(datasite, "p")
    rel = datasite.relpath(path)
    ctx = SyftPermContext(datasite=datasite.root)
    assert not ctx.open(rel).has_read_access(ALICE) and not ctx.open(rel).has_read_access("*")


def test_apply_records_the_method_in_marker_and_event_log(datasite: Datasite) -> None:
    write_policy(datasite, "trusted-alice")
    job = make_job(datasite, "j")
    assert apply_policies(datasite, job, OWNER) == "trusted-alice"
    state = job.state()
    assert state.status is Status.APPROVED
    assert state.approved is not None and state.approved.method == "policy:trusted-alice"
    event = [e for e in datasite.events if e.what == "job.approved"][-1]
    assert event.details["method"] == "policy:trusted-alice"
    assert apply_policies(datasite, job, OWNER) is None  # no longer in the inbox


@pytest.mark.parametrize(
    ("submitters", "submitter", "applies"),
    [
        ([ALICE], ALICE, True),
        ([ALICE], MALLORY, False),
        (["*@lab.example.org"], ALICE, True),
        (["*@lab.example.org"], "bob@lab.example.org.evil.com", False),
        (["*@lab.example.org"], MALLORY, False),
        (["*"], MALLORY, True),
    ],
)
def test_submitters_condition(
    datasite: Datasite, submitters: list[str], submitter: str, applies: bool
) -> None:
    write_policy(datasite, "p", submitters=submitters)
    job = make_job(datasite, "j", submitter=submitter)
    assert (decide_approval(datasite, job) is not None) is applies


@pytest.mark.parametrize(
    ("allowed", "requested", "applies"),
    [
        ([], [], True),
        ([], ["customers"], False),
        (["customers", "visits"], ["customers"], True),
        (["customers"], ["customers", "visits"], False),
        (["*"], ["anything"], True),
    ],
)
def test_datasets_condition(
    datasite: Datasite, allowed: list[str], requested: list[str], applies: bool
) -> None:
    write_policy(datasite, "p", datasets=allowed)
    job = make_job(datasite, "j", datasets=requested)
    assert (decide_approval(datasite, job) is not None) is applies


@pytest.mark.parametrize(
    ("policy_mode", "job_mode", "applies"),
    [
        ("mock", "mock", True),
        ("mock", "real", False),
        ("real", "real", True),
        ("any", "real", True),
    ],
)
def test_mode_condition(datasite: Datasite, policy_mode: str, job_mode: str, applies: bool) -> None:
    write_policy(datasite, "p", mode=policy_mode)
    job = make_job(datasite, "j", mode=job_mode)
    assert (decide_approval(datasite, job) is not None) is applies


def test_same_code_as_manually_approved_succeeded_job(datasite: Datasite) -> None:
    write_policy(datasite, "rerun", same_code_as_approved=True)
    first = make_job(datasite, "first")
    resubmitted = make_job(datasite, "second")  # same run.sh and code/, new config
    assert Snapshot.take(first.path).run_hash == Snapshot.take(resubmitted.path).run_hash
    assert first.content_hash() != resubmitted.content_hash()
    assert decide_approval(datasite, resubmitted) is None  # `first` is not approved yet
    first.approve(OWNER, expected_hash=first.content_hash())
    assert decide_approval(datasite, resubmitted) is None  # approved but not finished
    finish(first)
    assert decide_approval(datasite, resubmitted) is not None
    changed = make_job(datasite, "third", code=CODE + "print('all rows')\n")
    assert decide_approval(datasite, changed) is None


def test_same_code_needs_a_manual_approval_and_success(datasite: Datasite) -> None:
    write_policy(datasite, "rerun", same_code_as_approved=True)
    failed = make_job(datasite, "failed")
    failed.approve(OWNER, expected_hash=failed.content_hash())
    finish(failed, Outcome.FAILED)
    by_policy = make_job(datasite, "by-policy")
    by_policy.approve(OWNER, expected_hash=by_policy.content_hash(), method="policy:other")
    finish(by_policy)
    assert decide_approval(datasite, make_job(datasite, "new")) is None


def test_same_code_from_another_submitter_does_not_count(datasite: Datasite) -> None:
    write_policy(datasite, "rerun", submitters=["*"], same_code_as_approved=True)
    approved = make_job(datasite, "approved", submitter=ALICE)
    approved.approve(OWNER, expected_hash=approved.content_hash())
    finish(approved)
    assert decide_approval(datasite, make_job(datasite, "copy", submitter=MALLORY)) is None


def test_a_finished_job_edited_afterwards_does_not_count(datasite: Datasite) -> None:
    # The submitter keeps write access to run.sh: editing an approved job after it finished
    # must not turn its hash into a key for approving the new code.
    write_policy(datasite, "rerun", same_code_as_approved=True)
    approved = make_job(datasite, "approved")
    approved.approve(OWNER, expected_hash=approved.content_hash())
    finish(approved)
    evil = "import os; os.system('curl evil')\n"
    (approved.path / "code" / "main.py").write_text(evil)
    assert decide_approval(datasite, make_job(datasite, "evil", code=evil)) is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("name: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("name: bad\nauto_approve: true\nsubmitters: ['*']\n", "mode: Field required"),
        ("name: bad\nauto_approve: true\nmode: any\n", "submitters: Field required"),
        ("name: bad\nauto_approve: yes please\nsubmitters: ['*']\nmode: any\n", "auto_approve"),
        ("name: bad\nsubmitters: ['*']\nmode: any\nauto_aprove: true\n", "auto_aprove"),
        ("name: bad\nsubmitters: ['not an email']\nmode: any\n", "neither an email"),
        ("name: bad\nsubmitters: ['*']\nmode: sometimes\n", "mode"),
        ("name: other\nsubmitters: ['*']\nmode: any\nauto_approve: true\n", "the file is bad.yaml"),
    ],
)
def test_malformed_policy_is_ignored_and_never_approves(
    datasite: Datasite, caplog: pytest.LogCaptureFixture, content: str, reason: str
) -> None:
    path = policies_dir(datasite) / "bad.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    job = make_job(datasite, "j")
    with caplog.at_level(logging.ERROR, logger="syft_core.policies"):
        policies, errors = load_policies(datasite)
        assert apply_policies(datasite, job, OWNER) is None
    assert policies == []
    assert len(errors) == 1 and errors[0].path == path and reason in errors[0].reason
    assert str(path) in caplog.text
    assert job.state().status is Status.INBOX


def test_a_symlinked_policy_file_is_ignored(datasite: Datasite, tmp_path: Path) -> None:
    path = write_policy(datasite, "real")
    target = tmp_path / "real.yaml"
    path.rename(target)
    path.symlink_to(target)
    policies, errors = load_policies(datasite)
    assert policies == [] and "not a regular file" in errors[0].reason


def test_first_policy_by_name_decides(datasite: Datasite) -> None:
    write_policy(datasite, "b-second")
    write_policy(datasite, "a-first")
    write_policy(datasite, "0-release-only", auto_approve=False, auto_release=True)
    assert [p.name for p in load_policies(datasite)[0]] == ["0-release-only", "a-first", "b-second"]
    decided = decide_approval(datasite, make_job(datasite, "j"))
    assert decided is not None and decided.policy.name == "a-first"


def test_decide_release(datasite: Datasite) -> None:
    write_policy(datasite, "approve-only")
    job = make_job(datasite, "j", datasets=["customers"])
    job.approve(OWNER, expected_hash=job.content_hash())
    ran = job.config()
    assert decide_release(datasite, job, ran) is None  # not done yet
    finish(job)
    assert decide_release(datasite, job, ran) is None  # no policy releases
    write_policy(datasite, "release", auto_approve=False, auto_release=True, datasets=["*"])
    decided = decide_release(datasite, job, ran)
    assert decided is not None and decided.name == "release"
    release_job(job, OWNER, method=f"policy:{decided.name}")
    assert decide_release(datasite, job, ran) is None  # already released


def test_job_from_another_datasite_is_refused(datasite: Datasite, tmp_path: Path) -> None:
    other = Datasite(tmp_path / "syftbox", "other@example.org").init()
    with pytest.raises(JobError, match="not a job in"):
        decide_approval(datasite, make_job(other, "j"))


def test_invalid_config_is_never_approved(datasite: Datasite) -> None:
    write_policy(datasite, "p", submitters=["*"])
    job = make_job(datasite, "j")
    (job.path / "config.yaml").write_text("type: nonsense\n")
    assert apply_policies(datasite, job, OWNER) is None
