"""Owner commands on the jobs in one's own datasite: `jobs`, `show`, `approve`, `reject`, `logs`,
`cancel`. JOB is `<submitter>/<folder>`, or a job or folder name when only one job has it.

Everything a submitter wrote (names, file names, run.sh, logs) is untrusted: it is printed with
control characters and bidi overrides made visible, so it cannot rewrite the owner's terminal or
hide a line of the script being reviewed, and never interpreted as rich markup.
"""

from __future__ import annotations

import codecs
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Column, Table
from rich.text import Text

from syft_core import get_client
from syft_core.datasite import Datasite
from syft_core.errors import JobError, SyftError
from syft_core.job import Job, typeable_key
from syft_core.jobs.config import SYFT_JOB_PROTOCOL
from syft_core.jobs.folder import JobFolder, Status
from syft_core.jobs.markers import Outcome
from syft_core.jobs.snapshot import Snapshot, SnapshotFile
from syft_core.review import changes, last_review, record_review
from syft_core.safefile import NotRegularFileError, open_regular
from syft_runner.cli.datasite import (
    EmailOption,
    SyftboxOption,
    fail,
    owner_client,
    print_table,
    reported_failures,
    visible,
)
from syft_runner.config import (
    RunnerConfig,
    RuntimeNotAllowedError,
    default_config_path,
    load_runner_config,
)
from syft_runner.review.checks import check_lines, release_lines
from syft_runner.review.env import review_lines
from syft_runner.review.job import dataset_lines, limit_line
from syft_runner.sandbox.envs import cache_dir_of
from syft_runner.sandbox.images import image_tag

FOLLOW_POLL_SECONDS = 0.2
_READ_CHUNK = 1024 * 1024

JobArg = Annotated[
    str,
    typer.Argument(
        metavar="JOB",
        help="<submitter>/<folder> (as `jobs` lists it; for your own submissions "
        "<owner>/<folder>), or a folder or job name if unique; letter case may differ.",
    ),
]


def _echo(text: str) -> None:
    typer.echo(visible(text))


def _note(text: str) -> None:
    """A line for the person, on stderr: stdout stays the log or listing itself."""
    typer.echo(visible(text), err=True)


def find_job(syftbox: Path, email: str, key: str, *, owner_only: bool = False) -> Job:
    """The job KEY names, or exit 1 naming the candidates (or at most 10 keys to type).
    Searched: the jobs in the user's own datasite, then (unless `owner_only`, for approve,
    reject, cancel and release) the jobs the user submitted to other owners' synced datasites,
    so that a scientist's `logs` and `show` work on their own submissions."""
    if owner_only:
        jobs = owner_client(syftbox, email).owner_jobs
    else:
        with reported_failures():
            client = get_client(syftbox, email)
            jobs = client.jobs if client.datasite.exists() else client.submitted_jobs
    try:
        return jobs.find(key)
    except KeyError as exc:
        fail(str(exc))


def _age(when: datetime | None) -> str:
    if when is None:
        return ""
    if when.tzinfo is None:  # a config written without a zone: the protocol's times are UTC
        when = when.replace(tzinfo=UTC)
    seconds = max(0, int((datetime.now(UTC) - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# -- jobs -----------------------------------------------------------------------------------------
def _table(*headers: str) -> Table:
    """The first column holds the key to type: never wrapped (syft_runner.cli.datasite
    print_table); short status words are not wrapped either; free text folds."""
    short = {"via", "status", "age", "outcome", "released"}
    columns = [Column(headers[0], no_wrap=True)]
    columns += [
        Column(h, no_wrap=h in short, min_width=None if h in short else 16) for h in headers[1:]
    ]
    return Table(*columns)


def list_jobs(
    syftbox: SyftboxOption,
    email: EmailOption,
    status: Annotated[
        Status | None, typer.Option("--status", help="Only jobs with this status.")
    ] = None,
    mine: Annotated[
        bool,
        typer.Option(
            "--mine",
            help="Your own submissions, to every owner whose datasite you have synced, with "
            "whether their results are released.",
        ),
    ] = False,
) -> None:
    """List the jobs in your datasite, from every submitter (or, with --mine, your own
    submissions to other owners)."""
    if mine:
        _list_mine(syftbox, email, status)
        return
    client = owner_client(syftbox, email)
    table = _table("job", "name", "via", "status", "age", "outcome")
    rows = 0
    with reported_failures():
        for job in client.owner_jobs:
            s = job.summary()
            if status is not None and s["status"] != status.value:
                continue
            age = _age(job.submitted_at)
            cells = [job.key, s["name"], s["gateway"], s["status"], age, s["outcome"]]
            table.add_row(*(Text(visible(c)) for c in cells))
            rows += 1
        mine_elsewhere = any(j.owner != email for j in client.submitted_jobs)
    print_table(table)
    if not rows and mine_elsewhere:
        _note("no jobs in your datasite; your submissions to others: syft-runner jobs --mine")


def _list_mine(syftbox: Path, email: str, status: Status | None) -> None:
    with reported_failures():
        client = get_client(syftbox, email)
    table = _table("job", "name", "status", "outcome", "released", "age")
    with reported_failures():
        for job in client.submitted_jobs:
            s = job.summary()
            if status is not None and s["status"] != status.value:
                continue
            cells = [
                typeable_key(job),
                s["name"],
                s["status"],
                s["outcome"],
                _released(job),
                _age(job.submitted_at),
            ]
            table.add_row(*(Text(visible(c)) for c in cells))
    print_table(table)


def _released(job: Job) -> str:
    """yes; auto (a mock run: released when done); waiting (done on real data, not released);
    empty while the job is not done."""
    if job.released:
        return "yes"
    try:
        mock = job.config.mode == "mock"
    except JobError:
        mock = False
    if mock:
        return "auto"
    return "waiting" if job.results_waiting else ""


# -- show -----------------------------------------------------------------------------------------
def show(
    syftbox: SyftboxOption,
    email: EmailOption,
    job_key: JobArg,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Runner config, for the runtime the job gets (default "
            "<syftbox>/<email>/.syft/runner.yaml).",
        ),
    ] = None,
) -> None:
    """Everything to review before approving: status, config, the runtime (job image) it gets,
    every file's text, warnings, and the content hash to approve with (`approve JOB --hash
    HASH`)."""
    job = find_job(syftbox, email, job_key)
    settings = _runner_settings(config or default_config_path(syftbox, email))
    with reported_failures():
        _echo(f"job:          {job.name}  ({job.key})")
        _echo(f"location:     {job.location}")
        _show_status(job)
        try:
            snapshot = Snapshot.take(job.location)
        except JobError as exc:
            # Nothing here can be approved; say what is wrong with each part.
            try:
                _echo(f"datasets:     {', '.join(job.config.datasets) or 'none'}")
                _echo(f"runtime:      {runtime_line(job.config.runtime, settings)}")
            except JobError as config_error:
                _echo(f"config:       INVALID: {config_error}")
            _echo(f"files:        UNSAFE OR INCOMPLETE: {exc}")
            return
        environment = review_lines(job.folder, snapshot, _env_cache(settings, syftbox))
        _print_snapshot(snapshot, settings, environment)
        _print_since_decisions(job, snapshot)
        if job.status is Status.INBOX:
            record_review(job.folder, snapshot)


def _print_since_decisions(job: Job, snapshot: Snapshot) -> None:
    """What differs from the version of this job last approved and last rejected, if any."""
    for decision in ("approved", "rejected"):
        before = last_review(job.folder, decision)
        if before is None or before.content_hash == snapshot.content_hash:
            continue
        _echo(f"changes since the last {decision} version ({before.content_hash[:19]}…):")
        for line in changes(before, snapshot, label=decision):
            _echo(f"  {line}")


def _runner_settings(path: Path) -> RunnerConfig | str:
    """The runner config `show` resolves runtimes with, or why it cannot be read."""
    try:
        return load_runner_config(path)
    except SyftError as exc:
        return str(exc)


def runtime_line(requested: str | None, settings: RunnerConfig | str) -> str:
    """Which runtime (job image) a job asking for `requested` gets from this runner, and why."""
    if isinstance(settings, str):
        return f"{requested or 'the default'} (cannot tell what this runner allows: {settings})"
    try:
        runtime = settings.runtime_for(requested)
    except RuntimeNotAllowedError:
        return (
            f"{requested}: NOT ALLOWED on this runner (allowed: "
            f"{', '.join(settings.allowed_runtimes)}); the job would end with an error"
        )
    why = "asked for by the job" if requested else "this runner's default"
    return f"{runtime} ({why}), image {image_tag(runtime)}"


def _show_status(job: Job) -> None:
    state = job.state
    _echo(f"status:       {state.status.value}" + (f" ({state.reason})" if state.reason else ""))
    if state.approved is not None:
        a = state.approved
        _echo(f"approved:     by {a.by} at {a.at.isoformat(timespec='seconds')} ({a.method})")
    if state.running is not None:
        r = state.running
        _echo(f"running in:   {r.image} ({r.image_id[7:19]})")
    if state.done is not None:
        d = state.done
        exit_code = "" if d.exit_code is None else f", exit code {d.exit_code}"
        _echo(f"outcome:      {d.outcome.value}{exit_code}")
        if d.image_id:
            _echo(f"ran in image: {d.image_id[7:19]}")
        _show_results(job)


def _show_results(job: Job) -> None:
    """What the job produced, from the runner's report: the names are the files in outputs/."""
    try:
        report = job.results
    except JobError as exc:
        _echo(f"results:      UNREADABLE: {exc}")
        return
    for line in [*check_lines(job.folder.path), *release_lines(job.folder.path)]:
        _echo(line)
    if report is None:
        return
    _echo(f"outputs:      {report.output_count} file(s), {report.output_bytes} bytes")
    for name in report.outputs:
        _echo(f"  {name}")
    if report.output_count > len(report.outputs):
        _echo(f"  ... and {report.output_count - len(report.outputs)} more in outputs/")
    if report.refused_count:
        _echo(f"refused:      {report.refused_count} (not collected)")
        for refused in report.refused_outputs:
            _echo(f"  {refused.path}: {refused.reason}")


def _env_cache(settings: RunnerConfig | str, syftbox: Path) -> Path | None:
    """The owner's runner's environment cache (from its runner.yaml), if readable."""
    return None if isinstance(settings, str) else cache_dir_of(settings, syftbox)


def _print_snapshot(
    snapshot: Snapshot,
    settings: RunnerConfig | str | None = None,
    environment: list[str] | None = None,
) -> None:
    """The submission as read once: what is printed here is what the hash below stands for;
    with the runner's `settings`, also the runtime the job gets; `environment`: the lines about
    its dependencies (syft_runner.review.env)."""
    try:
        job_config = snapshot.config()
        if job_config.protocol == SYFT_JOB_PROTOCOL:
            lines = _syft_job_lines(settings)
        else:
            lines = dataset_lines(_datasite_of(snapshot), job_config)
        if isinstance(settings, RunnerConfig):
            lines.append(limit_line(settings, job_config))
        if settings is not None:
            lines.append(f"runtime:      {runtime_line(job_config.runtime, settings)}")
        for line in lines:
            _echo(line)
    except JobError as exc:
        _echo(f"config:       INVALID: {exc}")
    _echo("files:")
    for f in snapshot.files:
        _echo(f"  {f.size:>10}  {f.relpath}")
    for f in snapshot.files:
        _print_file(f)
    for line in environment or []:
        _echo(line)
    if snapshot.warnings:
        _echo(f"WARNINGS ({len(snapshot.warnings)}): this submission may run other than it reads")
        for warning in snapshot.warnings:
            _echo(f"  ! {warning}")
    _echo(f"content hash: {snapshot.content_hash}")


def _datasite_of(snapshot: Snapshot) -> Datasite:
    job = JobFolder(snapshot.job_dir)
    return Datasite(job.datasite_root.parent, job.owner)


def _syft_job_lines(settings: RunnerConfig | str | None) -> list[str]:
    """What differs for a job submitted with OpenMined's clients (syft_runner.syftjob_gateway)."""
    default = (
        ", ".join(settings.syft_job_datasets) or "none"
        if isinstance(settings, RunnerConfig)
        else "see runner.yaml syft_job_datasets"
    )
    return [
        "gateway:      Syft job (OpenMined's clients), mirrored from app_data/job/inbox/",
        "  it names no datasets: it reads the Syft datasets you approve it with (`approve",
        f"  --dataset NAME`; approved with their client: {default})",
        "  a python job's own run.sh (uv, Python 3.12, network) is replaced by the generated",
        "  one below: it runs on this runtime's Python with the packages locked below, with no",
        "  network; a bash job's script runs unchanged, from the job folder",
    ]


def _print_file(f: SnapshotFile) -> None:
    _echo(f"--- {f.relpath}")
    text = f.text()
    if text is None:
        what = "too large to show" if f.data is None else "binary (not UTF-8)"
        _echo(f"  ({what}, {f.size} bytes, sha256 {f.sha256})")
        return
    # Only \n ends a line for bash and python; every hidden character is escaped.
    shown = "\n".join(visible(line) for line in text.split("\n"))
    console = Console(highlight=False)
    if console.is_terminal:  # colours for a person; plain `  | ` lines for pipes and scripts
        lexer = Syntax.guess_lexer(f.relpath, shown)
        console.print(Syntax(shown, lexer, line_numbers=True, word_wrap=True))
        return
    for line in shown.split("\n"):
        typer.echo(f"  | {line}")


def _print_changes(job: Job, snapshot: Snapshot) -> None:
    """Before an approval without --hash: what differs from what `show` printed last."""
    review = last_review(job.folder)
    if review is None:
        _echo("This job was not shown before; here it is:")
        _print_snapshot(snapshot)
    elif review.content_hash != snapshot.content_hash:
        _echo("CHANGED since you last ran `show` on it:")
        for line in changes(review, snapshot):
            typer.echo(f"  {line}")
        if snapshot.warnings:
            _echo(f"WARNINGS ({len(snapshot.warnings)}):")
            for warning in snapshot.warnings:
                _echo(f"  ! {warning}")
    else:
        _echo("Unchanged since you last ran `show` on it.")
    _echo(f"content hash: {snapshot.content_hash}")


# -- approve / reject / cancel --------------------------------------------------------------------
def approve(
    syftbox: SyftboxOption,
    email: EmailOption,
    job_key: JobArg,
    content_hash: Annotated[
        str | None,
        typer.Option(
            "--hash",
            help="The content hash `show` printed: the approval fails if the job differs from it.",
            show_default=False,
        ),
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (recorded).")] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset",
            help="Mount only this dataset (repeat for more); for a Syft job, which of your Syft "
            "datasets it may read.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Approve a job in your inbox, bound to the content you reviewed: give --hash, or confirm
    interactively after any change since `show` is shown."""
    job = find_job(syftbox, email, job_key, owner_only=True)
    with reported_failures():
        if content_hash is None:
            content_hash = _confirmed_hash(job)
        job.approve(reason, expected_hash=content_hash, datasets=dataset or None)
    _echo(f"approved {job.key} ({content_hash})")


def _interactive() -> bool:
    return sys.stdin.isatty()


def _confirmed_hash(job: Job) -> str:
    if not _interactive():
        fail(
            f"approving {job.key} needs the content hash you reviewed: run `syft-runner show "
            f"{job.key}`, then `syft-runner approve {job.key} --hash <content hash>`"
        )
    snapshot = Snapshot.take(job.location)
    _print_changes(job, snapshot)
    if not typer.confirm(f"Approve {job.key} with exactly this content?", default=False):
        fail(f"{job.key}: not approved")
    return snapshot.content_hash


def reject(
    syftbox: SyftboxOption,
    email: EmailOption,
    job_key: JobArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (shown to the submitter).")],
) -> None:
    """Reject a job in your inbox (or an approved one that has not started)."""
    job = find_job(syftbox, email, job_key, owner_only=True)
    with reported_failures():
        job.reject(reason)
    _echo(f"rejected {job.key}: {reason}")


def cancel(
    syftbox: SyftboxOption,
    email: EmailOption,
    job_key: JobArg,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (recorded).")] = None,
) -> None:
    """Cancel a job: one not yet running ends at once, a running one is stopped by the runner."""
    job = find_job(syftbox, email, job_key, owner_only=True)
    with reported_failures():
        job.cancel(reason)
        status = job.status
    if status is Status.DONE:
        _echo(f"cancelled {job.key}")
    else:
        _echo(f"cancel requested for {job.key}; the runner will stop it")


# -- logs -----------------------------------------------------------------------------------------
def logs(
    syftbox: SyftboxOption,
    email: EmailOption,
    job_key: JobArg,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Wait for the job and print its log as it grows, until it is done; the exit "
            "code is then 1 unless it succeeded.",
        ),
    ] = False,
    stderr: Annotated[bool, typer.Option("--stderr", help="stderr instead of stdout.")] = False,
) -> None:
    """Print a job's stdout (or stderr), of a job in your datasite or one you submitted
    (once its owner released the results); with --follow, keep printing until the job is
    done. Notes about the job (waiting, how it ended) go to stderr."""
    job = find_job(syftbox, email, job_key)
    log = job.stderr if stderr else job.stdout
    with reported_failures():
        if follow:
            _follow(job, log.path)
            return
        held = job.held_reason()
        if held is not None:
            fail(held)
        sys.stdout.write(visible(log.text))


# What --follow says while there is nothing to print yet, once per status.
_WAITING = {
    Status.INBOX: "{key} is waiting for {owner} to approve it (status: inbox)",
    Status.APPROVED: "{key} is approved; waiting for the runner to start it",
    Status.RUNNING: "{key} is running; its logs reach you once {owner} releases them",
    Status.DONE: "{key} is done ({outcome}); its logs reach you once {owner} releases them",
}


def _follow(job: Job, path: Path) -> None:
    """Print the log as it grows until the job is done (for a submitter of a real-data job:
    until its results are released, since only then is the log here); then say how it ended
    and exit 1 unless it succeeded. A rejected job ends at once with exit code 1."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    offset = 0
    said: set[Status] = set()
    while True:
        state = job.state  # read before the log, so the last read after `done` gets it all
        if state.status is Status.REJECTED:
            fail(f"{job.key} was rejected and will not run: {state.reason}")
        held = job.held_reason() is not None
        waiting = held or state.status in (Status.INBOX, Status.APPROVED)
        if waiting and state.status not in said:
            said.add(state.status)
            outcome = state.done.outcome.value if state.done else ""
            _note(_WAITING[state.status].format(key=job.key, owner=job.owner, outcome=outcome))
        if not held:
            chunk = _read_from(path, offset)
            offset += len(chunk)
            sys.stdout.write(visible(decoder.decode(chunk)))
            sys.stdout.flush()
            if state.status is Status.DONE:
                break
        time.sleep(FOLLOW_POLL_SECONDS)
    sys.stdout.write(visible(decoder.decode(b"", final=True)))
    sys.stdout.flush()
    _ended(job)


def _ended(job: Job) -> None:
    """How a followed job ended, on stderr; exit 1 unless it succeeded."""
    done = job.done
    if done is None:  # cannot happen after DONE, but never report success by accident
        fail(f"{job.key}: done without a readable outcome")
    exit_code = "" if done.exit_code is None else f", exit code {done.exit_code}"
    message = f": {done.message}" if done.message else ""
    if done.outcome is Outcome.SUCCEEDED:
        _note(f"{job.key} succeeded{exit_code}")
        return
    fail(f"{job.key} ended {done.outcome.value}{exit_code}{message}")


def _read_from(path: Path, offset: int) -> bytes:
    """The log's bytes from `offset` on; nothing while it does not exist yet."""
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        return b""
    except NotRegularFileError as exc:
        raise JobError(f"log {exc}") from None
    with os.fdopen(fd, "rb") as fh:
        fh.seek(offset)
        chunks = []
        while chunk := fh.read(_READ_CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)


def register(app: typer.Typer) -> None:
    app.command("jobs")(list_jobs)
    app.command("show")(show)
    app.command("approve")(approve)
    app.command("reject")(reject)
    app.command("cancel")(cancel)
    app.command("logs")(logs)
