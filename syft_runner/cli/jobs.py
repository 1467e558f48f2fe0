"""Owner commands on the jobs in one's own datasite: `jobs`, `show`, `approve`, `reject`, `logs`,
`cancel`. JOB is `<submitter>/<folder>`, or a job or folder name when only one job has it.

Everything a submitter wrote (names, file names, run.sh, logs) is untrusted: it is printed with
control characters and bidi overrides made visible, so it cannot rewrite the owner's terminal or
hide a line of the script being reviewed, and never interpreted as rich markup.
"""

from __future__ import annotations

import codecs
import os
import stat
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from syft_core.errors import JobError
from syft_core.job import Job
from syft_core.jobs.folder import Status
from syft_core.jobs.submission import walk_submission
from syft_runner.cli.datasite import (
    EmailOption,
    SyftboxOption,
    fail,
    owner_client,
    reported_failures,
    visible,
)

FOLLOW_POLL_SECONDS = 0.2
MAX_SHOWN_RUN_SH = 1024 * 1024
_READ_CHUNK = 1024 * 1024

JobArg = Annotated[
    str, typer.Argument(metavar="JOB", help="<submitter>/<folder>, or a job name if unique.")
]


def _echo(text: str) -> None:
    typer.echo(visible(text))


def find_job(syftbox: Path, email: str, key: str) -> Job:
    """The job KEY names among the owner's jobs, or exit 1 naming the candidates."""
    jobs = owner_client(syftbox, email).owner_jobs
    try:
        return jobs.find(key)
    except KeyError as exc:
        fail(str(exc.args[0]))


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
def list_jobs(
    syftbox: SyftboxOption,
    email: EmailOption,
    status: Annotated[
        Status | None, typer.Option("--status", help="Only jobs with this status.")
    ] = None,
) -> None:
    """List the jobs in your datasite, from every submitter."""
    client = owner_client(syftbox, email)
    table = Table("job", "name", "submitter", "status", "age", "outcome")
    with reported_failures():
        for job in client.owner_jobs:
            s = job.summary()
            if status is not None and s["status"] != status.value:
                continue
            age = _age(job.submitted_at)
            cells = [job.folder_name, s["name"], s["submitted_by"], s["status"], age, s["outcome"]]
            table.add_row(*(Text(visible(c), overflow="fold") for c in cells))
    Console(highlight=False).print(table)


# -- show -----------------------------------------------------------------------------------------
def show(syftbox: SyftboxOption, email: EmailOption, job_key: JobArg) -> None:
    """Everything to review before approving: config, files, run.sh, datasets, hash, status."""
    job = find_job(syftbox, email, job_key)
    with reported_failures():
        _echo(f"job:          {job.name}  ({job.key})")
        _echo(f"location:     {job.location}")
        _show_status(job)
        _show_config(job)
        _show_files(job)


def _show_status(job: Job) -> None:
    state = job.state
    _echo(f"status:       {state.status.value}" + (f" ({state.reason})" if state.reason else ""))
    if state.approved is not None:
        a = state.approved
        _echo(f"approved:     by {a.by} at {a.at.isoformat(timespec='seconds')} ({a.method})")
    if state.done is not None:
        d = state.done
        exit_code = "" if d.exit_code is None else f", exit code {d.exit_code}"
        _echo(f"outcome:      {d.outcome.value}{exit_code}")


def _show_config(job: Job) -> None:
    try:
        config = job.config
    except JobError as exc:
        _echo(f"config:       INVALID: {exc}")
        return
    datasets = ", ".join(config.datasets) or "none"
    _echo(f"datasets:     {datasets}")
    _echo("config.yaml:")
    dumped = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    _echo("  " + dumped.rstrip("\n").replace("\n", "\n  "))


def _show_files(job: Job) -> None:
    try:
        files = walk_submission(job.location)
        content_hash = job.folder.content_hash()
    except JobError as exc:
        _echo(f"files:        UNSAFE OR INCOMPLETE: {exc}")
        return
    _echo(f"content hash: {content_hash}")
    _echo("files:")
    for f in files:
        _echo(f"  {f.size:>10}  {f.relpath}")
    _echo("run.sh:")
    text, total = _read_head(job.folder.run_sh, MAX_SHOWN_RUN_SH)
    for line in text.rstrip("\n").split("\n"):  # only \n ends a line for bash
        _echo(f"  | {line}")
    if total > MAX_SHOWN_RUN_SH:
        _echo(f"  (run.sh is {total} bytes; only the first {MAX_SHOWN_RUN_SH} are shown)")


def _read_head(path: Path, limit: int) -> tuple[str, int]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        total = os.fstat(fh.fileno()).st_size
        return fh.read(limit).decode("utf-8", errors="replace"), total


# -- approve / reject / cancel --------------------------------------------------------------------
def approve(
    syftbox: SyftboxOption,
    email: EmailOption,
    job_key: JobArg,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (recorded).")] = None,
) -> None:
    """Approve a job in your inbox: the approval binds to its current content hash."""
    job = find_job(syftbox, email, job_key)
    with reported_failures():
        job.approve(reason)
        approved = job.state.approved
    content_hash = approved.content_hash if approved else ""
    _echo(f"approved {job.key} ({content_hash})")


def reject(
    syftbox: SyftboxOption,
    email: EmailOption,
    job_key: JobArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (shown to the submitter).")],
) -> None:
    """Reject a job in your inbox (or an approved one that has not started)."""
    job = find_job(syftbox, email, job_key)
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
    job = find_job(syftbox, email, job_key)
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
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Tail until done.")] = False,
    stderr: Annotated[bool, typer.Option("--stderr", help="stderr instead of stdout.")] = False,
) -> None:
    """Print a job's stdout (or stderr); with --follow, keep printing until the job is done."""
    job = find_job(syftbox, email, job_key)
    log = job.stderr if stderr else job.stdout
    with reported_failures():
        if follow:
            _follow(job, log.path)
        else:
            sys.stdout.write(visible(log.text))


def _follow(job: Job, path: Path) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    offset = 0
    while True:
        status = job.status  # read before the log, so the last read after `done` gets it all
        chunk = _read_from(path, offset)
        offset += len(chunk)
        sys.stdout.write(visible(decoder.decode(chunk)))
        sys.stdout.flush()
        if status in (Status.DONE, Status.REJECTED):
            break
        time.sleep(FOLLOW_POLL_SECONDS)
    sys.stdout.write(visible(decoder.decode(b"", final=True)))
    if status is Status.REJECTED:
        fail(f"{job.key} was rejected and will not run: {job.status_reason}")


def _read_from(path: Path, offset: int) -> bytes:
    """The log's bytes from `offset` on; nothing while it does not exist yet."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return b""
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise JobError(f"{path}: log is not a regular file")
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
