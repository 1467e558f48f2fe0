"""Job policies (the seed's principle 7: manual review first, policies second).

An owner may write policy files, `<datasite>/.syft/policies/<name>.yaml`; `.syft` is a dot-folder,
which no `*`/`**` permission rule ever matches, so policies never sync. With no policy files,
every job waits for a manual decision. Example:

    name: team-mock-runs
    description: my team may run anything on the mocks
    auto_approve: true
    auto_release: true
    submitters: ["*@lab.example.org"]   # emails or fnmatch globs; ["*"] means anyone
    datasets: [customers]                # the job's datasets must be a subset; ["*"] means any
    mode: mock                           # mock | real | any
    same_code_as_approved: false         # true: run.sh, code/ and every config field the job can
                                         # see (all but name, description, submitted_at/_by)
                                         # identical to a job of the same submitter that the owner
                                         # approved by hand with a reviewed hash and that succeeded

All conditions must hold. Policies are tried in name order; the first that applies decides. A
policy file that is malformed is ignored with a logged error naming the file: it never approves.
A policy decides on one read of the job and approves exactly the content it read; a job with
review warnings (syft_core.jobs.snapshot) is never approved by a policy.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from syft_core.datasite import Datasite
from syft_core.errors import JobError, SyftError
from syft_core.identity import is_valid_email
from syft_core.jobs.config import MAX_CONFIG_BYTES, JobConfig, describe_problems
from syft_core.jobs.folder import ContentChangedError, JobFolder, Status, iter_job_folders
from syft_core.jobs.markers import ApprovedMarker, DoneMarker, Outcome, read_marker
from syft_core.jobs.snapshot import Snapshot
from syft_core.yamlio import read_untrusted_yaml

logger = logging.getLogger(__name__)

POLICY_DIR = ".syft/policies"
MAX_POLICY_BYTES = 64 * 1024
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_EMAIL_GLOB_RE = re.compile(r"[A-Za-z0-9_%+.*?@-]+")


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    auto_approve: bool = False
    auto_release: bool = False
    submitters: list[str] = Field(min_length=1)
    datasets: list[str] = Field(default_factory=list)
    mode: Literal["mock", "real", "any"]
    same_code_as_approved: bool = False

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME_RE.fullmatch(value):
            raise ValueError("use a-z, 0-9, '_' and '-', starting with a letter or digit")
        return value

    @field_validator("submitters")
    @classmethod
    def _emails_or_globs(cls, values: list[str]) -> list[str]:
        for value in values:
            is_glob = any(c in value for c in "*?") and _EMAIL_GLOB_RE.fullmatch(value)
            if not (is_valid_email(value) or is_glob):
                raise ValueError(f"{value!r} is neither an email nor an email glob")
        return values

    def admits_submitter(self, submitter: str) -> bool:
        return any(fnmatch.fnmatchcase(submitter, pattern) for pattern in self.submitters)

    def admits_datasets(self, requested: list[str]) -> bool:
        return "*" in self.datasets or set(requested) <= set(self.datasets)

    def admits_mode(self, mode: str) -> bool:
        return self.mode in ("any", mode)


class PolicyFileError(SyftError):
    """A policy file that is ignored, and why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def policies_dir(datasite: Datasite) -> Path:
    return datasite.root / POLICY_DIR


def load_policies(datasite: Datasite) -> tuple[list[Policy], list[PolicyFileError]]:
    """The valid policies in name order, and an error per file that was ignored."""
    folder = policies_dir(datasite)
    if not folder.is_dir():
        return [], []
    policies: list[Policy] = []
    errors: list[PolicyFileError] = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            policies.append(_load_policy(path))
        except PolicyFileError as error:
            logger.error("ignored policy file: %s", error)
            errors.append(error)
    return sorted(policies, key=lambda p: p.name), errors


def _load_policy(path: Path) -> Policy:
    try:
        data = read_untrusted_yaml(path, max_bytes=MAX_POLICY_BYTES)
    except OSError as exc:
        raise PolicyFileError(path, f"unreadable: {exc.strerror}") from None
    except ValueError as exc:
        raise PolicyFileError(path, str(exc)) from None
    if not isinstance(data, dict):
        raise PolicyFileError(path, "expected a mapping of keys to values")
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyFileError(path, f"invalid policy: {describe_problems(exc)}") from None
    if policy.name != path.stem:
        raise PolicyFileError(path, f"names policy {policy.name!r}, the file is {path.name}")
    return policy


class _JobFacts:
    """What the conditions look at: one snapshot of the job (syft_core.jobs.snapshot), so the
    decision and the approval it leads to bind the same bytes."""

    def __init__(self, job: JobFolder, config: JobConfig, snapshot: Snapshot | None) -> None:
        self.job = job
        self.config = config
        self.snapshot = snapshot

    @cached_property
    def same_code_as_approved(self) -> bool:
        if self.snapshot is None:
            return False
        try:
            current = self.snapshot.run_hash
        except JobError:
            return False
        return any(
            _approved_by_hand_and_succeeded(other, current)
            for other in iter_job_folders(self.job.datasite_root)
            if other.submitter == self.job.submitter and other.path != self.job.path
        )


def _approved_by_hand_and_succeeded(job: JobFolder, wanted_run_hash: str) -> bool:
    """Approved manually with a reviewed hash, finished succeeded, its files still exactly those
    approved (a submitter may edit a finished job's files; such a job no longer counts), and its
    run hash (run.sh, code/ and every config field the job can see) is `wanted_run_hash`."""
    try:
        approved = read_marker(job.marker_path("approved"), ApprovedMarker)
        done = read_marker(job.marker_path("done"), DoneMarker)
        if approved is None or done is None or approved.method != "manual" or approved.unreviewed:
            return False
        if done.outcome is not Outcome.SUCCEEDED:
            return False
        if done.content_hash not in (None, approved.content_hash):
            return False
        snapshot = Snapshot.take(job.path, keep_bytes=MAX_CONFIG_BYTES)
        return snapshot.content_hash == approved.content_hash and snapshot.run_hash == (
            wanted_run_hash
        )
    except JobError:
        return False


def _holds(policy: Policy, facts: _JobFacts) -> bool:
    return (
        policy.admits_submitter(facts.job.submitter)
        and policy.admits_mode(facts.config.mode)
        and policy.admits_datasets(facts.config.datasets)
        and (not policy.same_code_as_approved or facts.same_code_as_approved)
    )


def _check_datasite(datasite: Datasite, job: JobFolder) -> None:
    if job.owner != datasite.email or job.datasite_root != datasite.root:
        raise JobError(f"{job.path}: not a job in {datasite.email}'s datasite")


def _first_holding(
    datasite: Datasite, facts: _JobFacts, enabled: Callable[[Policy], bool]
) -> Policy | None:
    """The first policy, in name order, that is `enabled` for this decision and holds."""
    policies, _ = load_policies(datasite)
    return next((p for p in policies if enabled(p) and _holds(p, facts)), None)


@dataclass(frozen=True)
class ApprovalDecision:
    """A policy approves exactly the content it decided on."""

    policy: Policy
    content_hash: str


def decide_approval(datasite: Datasite, job: JobFolder) -> ApprovalDecision | None:
    """The first policy that auto-approves this inbox job, with the content hash of the one read
    it decided on; None for manual review. A job with review warnings (bytecode, shadowed
    modules, hidden characters ...: Snapshot.warnings) or an invalid config is never approved by
    a policy: a person must read the warnings first."""
    _check_datasite(datasite, job)
    if job.state().status is not Status.INBOX:
        return None
    # Before any hashing: a submitter no auto-approving policy admits costs nothing, however
    # many jobs they leave in the inbox.
    if not any(
        p.auto_approve and p.admits_submitter(job.submitter) for p in load_policies(datasite)[0]
    ):
        return None
    try:
        snapshot = Snapshot.take(job.path)
        facts = _JobFacts(job, snapshot.config(), snapshot)
    except JobError:
        return None
    policy = _first_holding(datasite, facts, lambda p: p.auto_approve)
    if policy is None:
        return None
    if snapshot.warnings:
        logger.info(
            "policy %s would approve %s, but it has review warnings: left for manual review",
            policy.name,
            job.relpath,
        )
        return None
    return ApprovalDecision(policy, snapshot.content_hash)


def decide_release(datasite: Datasite, job: JobFolder, ran: JobConfig) -> Policy | None:
    """The first policy that auto-releases this done, unreleased job's results, or None. `ran` is
    the config the job ran with (the runner's verified copy), never the folder's config.yaml,
    which its submitter may have edited since."""
    _check_datasite(datasite, job)
    state = job.state()
    if state.status is not Status.DONE or state.released is not None:
        return None
    return _first_holding(datasite, _JobFacts(job, ran, None), lambda p: p.auto_release)


def apply_policies(datasite: Datasite, job: JobFolder, by: str) -> str | None:
    """Approve an inbox job if a policy says so (method "policy:<name>", recorded in the approved
    marker and the event log), bound to the content the policy decided on: if the folder changed
    since, the approval fails and the next pass decides again. The policy's name, or None when
    the job stays for manual review."""
    decision = decide_approval(datasite, job)
    if decision is None:
        return None
    name = decision.policy.name
    try:
        job.approve(
            by,
            expected_hash=decision.content_hash,
            reason=f"approved by policy {name}",
            method=f"policy:{name}",
        )
    except ContentChangedError:
        logger.info("%s changed while policy %s decided: not approved", job.relpath, name)
        return None
    return name
