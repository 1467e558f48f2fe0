"""Results leave only with the owner's consent, enforced through permission files.

The default jobs/ rules (syft_core.datasite.default_permission_files) let a submitter read their own
job folder EXCEPT logs/** and outputs/**, so the sync, which only publishes what a peer may read,
never carries results out by itself. Releasing a done job writes a `released` marker and a
`syft.pub.yaml` in the job folder granting the submitter read of everything in it. That file is
then the nearest one and governs alone (no fallthrough to jobs/syft.pub.yaml), so it restates the
submitter's write rights on run.sh, config.yaml and code/**, and grants nothing else: markers stay
writable by the owner only.

Mock runs (config `mode: mock`) read only public mocks; the runner releases them at once with
method "auto:mock".

Real runs are checked first (syft_core.output_checks, `logs/checks.yaml`): an output that fails a
rule leaves only with an override reason (recorded in the event log), and a policy releases only
outputs that pass every rule. A release can be partial (`only`, or a policy's): the folder is the
state. The `released` marker says `scope: partial` with counts; `logs/release.yaml` (ReleaseReport)
lists each released file and why, and counts the withheld ones by reason without naming them: the
job chose those names and the check details quote their contents, so they stay in checks.yaml,
the owner's (`show` lists them from there); the job folder's
syft.pub.yaml then grants the submitter read of exactly those released files, one rule each, plus
the submission, the status markers and logs/release.yaml, nothing else (not results.yaml nor
checks.yaml, which name and describe what was withheld in detail). A later release widens a
partial one; a full release grants everything, as before.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from syft_core.atomic import atomic_write_text
from syft_core.datasite import PERMISSION_FILE, STATUS_MARKERS, SUBMITTED
from syft_core.errors import JobError
from syft_core.events import utcnow
from syft_core.jobs.folder import JobFolder, Status
from syft_core.jobs.markers import ReleasedMarker
from syft_core.output_checks import (
    ChecksReport,
    OutputRules,
    check_outputs,
    read_checks,
    write_checks,
)
from syft_core.permissions.matching import escape_literal
from syft_core.yamlio import read_untrusted_yaml

AUTO_MOCK = "auto:mock"
_METHOD_RE = re.compile(r"manual|auto:mock|policy:[a-z0-9][a-z0-9_-]*")
RELEASE_REPORT = "logs/release.yaml"
MAX_RELEASE_REPORT_BYTES = 4 * 1024 * 1024


class ReleaseRefusedError(JobError):
    """Outputs that fail a disclosure rule were asked for without an override reason."""


class OutputDecision(BaseModel):
    path: str  # relative to the job folder
    decision: Literal["released", "withheld"]
    check: Literal["pass", "fail", "review"] | None = None
    reason: str  # why, in words the scientist can act on
    override: str | None = None  # the owner's reason for releasing an output that failed a rule


class ReleaseReport(BaseModel):
    """`logs/release.yaml`, which the submitter reads: each file released to them and why, and
    how many were withheld for each reason. A withheld file is never named here, nor its check
    detail quoted: both are the job's own writing about data not released."""

    at: datetime = Field(default_factory=utcnow)
    by: str
    method: str
    scope: Literal["all", "partial"]
    outputs: list[OutputDecision]  # the released files (a report from before: every file)
    withheld: dict[str, int] = Field(default_factory=dict)  # reason -> how many files

    @property
    def released(self) -> list[str]:
        return [d.path for d in self.outputs if d.decision == "released"]


def release_permissions(submitter: str) -> dict[str, Any]:
    """The job-folder syft.pub.yaml after release. Exact emails, not USER: outside a
    `{{.UserEmail}}` pattern USER would mean everyone."""
    return {
        "terminal": False,
        "rules": [
            {"pattern": "run.sh", "access": {"write": [submitter]}},
            {"pattern": "config.yaml", "access": {"write": [submitter]}},
            {"pattern": "code/**", "access": {"write": [submitter]}},
            {"pattern": "**", "access": {"read": [submitter]}},
        ],
    }


def release_job(
    job: JobFolder,
    by: str,
    method: str = "manual",
    *,
    only: list[str] | None = None,
    override: str | None = None,
    rules: OutputRules | None = None,
) -> ReleasedMarker:
    """Let the submitter read a done job's logs and outputs. Only the owner, only done jobs.
    `method`: "manual", "policy:<name>", or "auto:mock" (only for jobs whose config says mock).
    A real run's outputs are checked (logs/checks.yaml, made now with `rules` if the runner has
    not): outputs failing a rule need `override`; a policy releases only outputs passing every
    rule; `only` (paths relative to the job folder, or to outputs/) releases a subset. A full
    release is idempotent; a partial one is widened by the next."""
    if not _METHOD_RE.fullmatch(method):
        raise JobError(f"{job.path}: unknown release method {method!r}")
    if method == AUTO_MOCK and job.config().mode != "mock":
        raise JobError(f"{job.path}: {AUTO_MOCK} release is only for mock runs; this job is real")
    job._require_owner(by, "release")
    state = job.state()
    if state.status is not Status.DONE:
        return job.release(by, method)  # raises with the folder's reason
    if state.released is not None and state.released.scope == "all":
        _write_permissions(job, None)
        return state.released
    if method == AUTO_MOCK:
        return _release_all(job, by, method)
    report = read_checks(job.path)
    if report is None:
        report = check_outputs(job.path, rules or OutputRules())
        write_checks(job.path, report)
    previous = set(read_release_report(job).released) if state.released is not None else set()
    everything = [c.path for c in report.outputs]
    if method.startswith("policy:"):
        if only is not None or override is not None:
            raise JobError("a policy releases exactly the outputs that pass every rule")
        wanted = set(report.passed)
        held = [c for c in report.outputs if c.status != "pass"]
        if held and all(c.kind == "empty" for c in report.outputs if c.path in wanted):
            raise ReleaseRefusedError(f"{job.path}: no output passes every rule")
    elif only is not None:
        wanted = {_resolve(job, report, path) for path in only}
    else:
        wanted = set(everything)
    failing = sorted(p for p in wanted - previous if report.status_of(p) == "fail")
    if failing and not override:
        raise ReleaseRefusedError(
            f"{job.path}: outputs fail the disclosure rules: "
            + "; ".join(f"{p}: {_reason(report, p)}" for p in failing)
            + ' (release without them with --only, or give --override "reason")'
        )
    released = previous | wanted
    scope: Literal["all", "partial"] = "all" if released >= set(everything) else "partial"
    decisions = [
        _decision(report, path, path in released, override if path in failing else None, method)
        for path in everything
    ]
    release_report = ReleaseReport(
        by=by,
        method=method,
        scope=scope,
        outputs=[d for d in decisions if d.decision == "released"],
        withheld=dict(Counter(d.reason for d in decisions if d.decision == "withheld")),
    )
    atomic_write_text(
        job.path / RELEASE_REPORT,
        yaml.safe_dump(release_report.model_dump(mode="json", exclude_none=True), sort_keys=False),
    )
    if failing:
        job.events.append(by, "job.release_override", job.relpath, outputs=failing, reason=override)
    marker = job.release(
        by,
        method,
        scope=scope,
        released_count=len(released),
        withheld_count=len(everything) - len(released & set(everything)),
    )
    _write_permissions(job, None if scope == "all" else sorted(released))
    return marker


def _release_all(job: JobFolder, by: str, method: str) -> ReleasedMarker:
    # The marker first: it checks owner and status, and if writing the permission file then
    # fails, the results stay private (the safe side) until a retry completes the release.
    marker = job.release(by, method)
    _write_permissions(job, None)
    return marker


def _write_permissions(job: JobFolder, paths: list[str] | None) -> None:
    rules = (
        release_permissions(job.submitter)
        if paths is None
        else partial_release_permissions(job.submitter, paths)
    )
    atomic_write_text(job.path / PERMISSION_FILE, yaml.safe_dump(rules, sort_keys=False))


def partial_release_permissions(submitter: str, paths: list[str]) -> dict[str, Any]:
    """The job-folder syft.pub.yaml of a partial release: the submission (writable, as before),
    the status markers and logs/release.yaml, and each released file, nothing else."""
    writes = [{"pattern": p, "access": {"write": [submitter]}} for p in SUBMITTED]
    reads = [
        {"pattern": p, "access": {"read": [submitter]}}
        for p in (*SUBMITTED, *STATUS_MARKERS, RELEASE_REPORT)
    ]
    files = [{"pattern": _escape(p), "access": {"read": [submitter]}} for p in paths]
    return {"terminal": False, "rules": [*writes, *reads, *files]}


def _escape(path: str) -> str:
    """A pattern matching exactly `path`, as the permission engine reads patterns: a name with
    no glob character is taken literally, so only one with one is escaped (a backslash in a
    literal name would match no file, and the release would silently grant nothing)."""
    return escape_literal(path)


def _resolve(job: JobFolder, report: ChecksReport, path: str) -> str:
    clean = path.strip()
    while clean.startswith("./"):  # a leading "./" only: ".notes.txt" is a name of its own
        clean = clean[2:]
    # From the job folder when it starts with one of the folders a job writes, else from
    # outputs/: never both, so no input can name two files.
    from_job = clean.split("/", 1)[0] in {c.path.split("/", 1)[0] for c in report.outputs}
    candidate = clean if from_job else f"outputs/{clean}"
    if report.check_of(candidate) is not None:
        return candidate
    raise JobError(
        f"{job.path}: {path!r} is not a file the job wrote; it wrote: "
        + ", ".join(c.path for c in report.outputs[:20])
    )


def _reason(report: ChecksReport, path: str) -> str:
    check = report.check_of(path)
    return check.summary if check is not None else "not checked"


def _decision(
    report: ChecksReport, path: str, released: bool, override: str | None, method: str
) -> OutputDecision:
    check = report.check_of(path)
    status = check.status if check is not None else None
    if released:
        reason = (
            "passes every disclosure rule"
            if status == "pass"
            else f"released by the owner ({_reason(report, path)})"
        )
    elif status == "fail":
        reason = "withheld: fails a disclosure rule"
    elif status == "review" and method.startswith("policy:"):
        reason = "withheld until the owner looks: it cannot be checked automatically"
    else:
        reason = "withheld by the owner"
    return OutputDecision(
        path=path,
        decision="released" if released else "withheld",
        check=status,
        reason=reason,
        override=override,
    )


def read_release_report(job: JobFolder | Path) -> ReleaseReport:
    """The release report; an empty one when there is none (a release from before reports)."""
    path = (job.path if isinstance(job, JobFolder) else Path(job)) / RELEASE_REPORT
    try:
        return ReleaseReport.model_validate(
            read_untrusted_yaml(path, max_bytes=MAX_RELEASE_REPORT_BYTES)
        )
    except FileNotFoundError:
        return ReleaseReport(by="", method="", scope="all", outputs=[])
    except ValueError as exc:
        raise JobError(f"{path}: unreadable release report: {exc}") from None


def is_released(job: JobFolder) -> bool:
    return job.state().released is not None


def results_waiting(job: JobFolder) -> bool:
    """Done on real data and not yet released (or only partly, by a policy, with outputs left
    for a person): the scientist's results wait for the owner."""
    state = job.state()
    released = state.released
    if state.status is not Status.DONE:
        return False
    if released is not None:
        return (
            released.scope == "partial"
            and released.withheld_count > 0
            and released.method.startswith("policy:")
        )
    try:
        return job.config().mode == "real"
    except JobError:
        return True  # no readable config: treated as real, so results are kept
