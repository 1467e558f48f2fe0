"""What each page of the review console shows, read from the job folders at every request.

The job page is `syft-runner show` for a browser, from the same single read of the submission
(syft_core.jobs.snapshot): the files displayed, the warnings and the content hash the approve form
sends back all come from one Snapshot, so an approval binds to exactly what the page showed.
Viewing an inbox job records it as shown (syft_core.review), as `show` does, after the page has
taken the difference from what was shown before.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from markupsafe import Markup

from syft_core.client import Client
from syft_core.datasets import get_dataset
from syft_core.errors import JobError, SyftError
from syft_core.job import Job
from syft_core.jobs.folder import JobState, Status
from syft_core.jobs.snapshot import Snapshot
from syft_core.preview import Preview, log_tail, preview
from syft_core.review import changes, last_review, record_review
from syft_runner.config import default_config_path, load_runner_config
from syft_runner.review.checks import check_lines, release_lines
from syft_runner.review.env import review_lines
from syft_runner.sandbox.envs import cache_dir_of
from syft_runner.ui.code import highlighted_lines

LIVE_STATUSES = (Status.APPROVED, Status.RUNNING)


def job_url(job: Job, *rest: str) -> str:
    """`/jobs/<submitter>/<folder>[/rest...]`, each part percent-encoded on its own."""
    parts = [job.submitted_by, job.folder_name, *rest]
    return "/jobs/" + "/".join(quote(p, safe="") for p in parts)


def output_url(job: Job, kind: str, relpath: str) -> str:
    return job_url(job, kind) + "/" + "/".join(quote(p, safe="") for p in relpath.split("/"))


@dataclass(frozen=True)
class JobRow:
    name: str
    key: str
    url: str
    status: str
    reason: str
    outcome: str
    submitted_at: str
    released: bool


def job_rows(jobs: list[Job]) -> Iterator[JobRow]:
    for job in jobs:
        summary = job.summary()
        yield JobRow(
            name=summary["name"],
            key=job.key,
            url=job_url(job),
            status=summary["status"],
            reason=summary["reason"],
            outcome=summary["outcome"],
            submitted_at=summary["submitted_at"],
            released=summary["status"] == Status.DONE and job.released,
        )


@dataclass(frozen=True)
class ShownFile:
    relpath: str
    size: int
    sha256: str
    lines: list[Markup] | None  # None: binary or too large to show


@dataclass(frozen=True)
class ShownOutput:
    preview: Preview
    download_url: str
    image_url: str


@dataclass
class JobPage:
    """Everything on a job's page."""

    job: Job
    state: JobState
    url: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    datasets: list[tuple[str, str]] = field(default_factory=list)
    environment: list[str] = field(default_factory=list)
    # The disclosure checks of a finished job's outputs and the release decisions, as `show`.
    checks: list[str] = field(default_factory=list)
    files: list[ShownFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    content_hash: str | None = None
    unreadable: str | None = None  # why the submission cannot be read (nothing to approve)
    diff: list[str] | None = None  # the changes since the version last shown
    # (decision, changes) since the version last approved / rejected, when it differs
    decision_diffs: list[tuple[str, list[str]]] = field(default_factory=list)
    outputs: list[ShownOutput] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""

    @property
    def live(self) -> bool:
        return self.state.status in LIVE_STATUSES


def job_page(client: Client, job: Job) -> JobPage:
    state = job.state
    page = JobPage(job=job, state=state, url=job_url(job), facts=_facts(job, state))
    try:
        snapshot = Snapshot.take(job.location)
    except JobError as exc:
        page.unreadable = str(exc)
    else:
        _add_submission(client, page, snapshot)
    if state.status in (Status.RUNNING, Status.DONE):
        page.stdout = log_tail(job.folder.stdout_path)
        page.stderr = log_tail(job.folder.stderr_path)
        page.outputs = list(_outputs(job))
        page.checks = check_lines(job.folder.path) + release_lines(job.folder.path)
    return page


def logs_page(job: Job) -> JobPage:
    """Only what the live logs page shows: the status and the log tails."""
    state = job.state
    page = JobPage(job=job, state=state, url=job_url(job), facts=_facts(job, state))
    page.stdout = log_tail(job.folder.stdout_path)
    page.stderr = log_tail(job.folder.stderr_path)
    return page


def _facts(job: Job, state: JobState) -> list[tuple[str, str]]:
    summary = job.summary()
    facts = [
        ("status", summary["status"] + (f" ({state.reason})" if state.reason else "")),
        ("submitted by", job.submitted_by),
        ("submitted at", summary["submitted_at"]),
        ("folder", job.key),
        ("gateway", summary["gateway"]),
    ]
    if state.approved is not None:
        approved = state.approved
        facts.append(("approved", f"by {approved.by} at {approved.at:%Y-%m-%d %H:%M:%S} UTC"))
        if approved.reason:
            facts.append(("approval reason", approved.reason))
    if state.running is not None:
        facts.append(("running in", state.running.image))
    if state.done is not None:
        exit_code = "" if state.done.exit_code is None else f", exit code {state.done.exit_code}"
        facts.append(("outcome", f"{state.done.outcome.value}{exit_code}"))
        facts.append(("released", "yes" if state.released else "no: the submitter sees nothing"))
    return facts


def _add_submission(client: Client, page: JobPage, snapshot: Snapshot) -> None:
    job = page.job
    page.content_hash = snapshot.content_hash
    page.warnings = snapshot.warnings
    for f in snapshot.files:
        text = f.text()
        lines = None if text is None else highlighted_lines(f.relpath, text)
        page.files.append(ShownFile(f.relpath, f.size, f.sha256, lines))
    try:
        config = snapshot.config()
    except JobError as exc:
        page.facts.append(("config", f"INVALID: {exc}"))
    else:
        page.facts.append(("mode", config.mode))
        page.facts.append(("runtime", config.runtime or "the runner's default"))
        page.datasets = [(name, _dataset_line(client, name)) for name in config.datasets]
    page.environment = review_lines(job.folder, snapshot, _env_cache(client))
    page.diff = _diff_since_shown(job, snapshot)
    page.decision_diffs = _diffs_since_decisions(job, snapshot)
    if page.state.status is Status.INBOX:
        record_review(job.folder, snapshot)


def _dataset_line(client: Client, name: str) -> str:
    try:
        dataset = get_dataset(client.datasite, name)
    except SyftError as exc:
        return f"NOT AVAILABLE: {exc}"
    private = dataset.private or "no private data"
    return f"private: {private}; mock: {len(dataset.files)} file(s)"


def _env_cache(client: Client) -> Path | None:
    try:
        settings = load_runner_config(default_config_path(client.syftbox.root, client.email))
    except SyftError:
        return None
    return cache_dir_of(settings, client.syftbox.root)


def _diff_since_shown(job: Job, snapshot: Snapshot) -> list[str] | None:
    """What differs from the version last shown (here or by `show`); None when nothing was shown
    before or it is unchanged."""
    before = last_review(job.folder)
    if before is None or before.content_hash == snapshot.content_hash:
        return None
    return changes(before, snapshot)


def _diffs_since_decisions(job: Job, snapshot: Snapshot) -> list[tuple[str, list[str]]]:
    """What differs from the version last approved and last rejected (as `show` prints)."""
    found = []
    for decision in ("approved", "rejected"):
        before = last_review(job.folder, decision)
        if before is not None and before.content_hash != snapshot.content_hash:
            found.append((decision, changes(before, snapshot, label=decision)))
    return found


def _outputs(job: Job) -> Iterator[ShownOutput]:
    root = job.folder.outputs_dir
    for path in job.outputs:
        try:
            shown = preview(root, path)
        except OSError:
            continue  # replaced by a link or removed since listed: not shown
        yield ShownOutput(
            shown,
            download_url=output_url(job, "outputs", shown.relpath),
            image_url=output_url(job, "png", shown.relpath),
        )


def find_output(job: Job, relpath: str) -> Path | None:
    """The output file `relpath` names, only if it is one of the job's listed outputs."""
    root = job.folder.outputs_dir
    for path in job.outputs:
        if PurePosixPath(path.relative_to(root)).as_posix() == relpath:
            return path
    return None
