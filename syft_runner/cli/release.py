"""`syft-runner release JOB`: let the submitter read a done job's logs and outputs."""

from __future__ import annotations

import typer

from syft_core.release import release_job
from syft_runner.cli.datasite import (
    EmailOption,
    SyftboxOption,
    fail,
    owner_client,
    reported_failures,
    visible,
)
from syft_runner.cli.jobs import JobArg


def release(syftbox: SyftboxOption, email: EmailOption, job_key: JobArg) -> None:
    """Release a done job's results (logs/, outputs/) to its submitter."""
    jobs = owner_client(syftbox, email).owner_jobs
    try:
        job = jobs.find(job_key)
    except KeyError as exc:
        fail(str(exc.args[0]))
    with reported_failures():
        marker = release_job(job.folder, by=email)
    typer.echo(
        visible(
            f"released {job.key} ({marker.method}, {marker.at.isoformat(timespec='seconds')}): "
            f"{job.submitted_by} may now read its logs and outputs"
        )
    )


def register(app: typer.Typer) -> None:
    app.command("release")(release)
