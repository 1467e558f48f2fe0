"""`syft-runner release JOB`: let the submitter read a done job's logs and outputs."""

from __future__ import annotations

import typer

from syft_core.release import release_job
from syft_runner.cli.datasite import EmailOption, SyftboxOption, reported_failures, visible
from syft_runner.cli.jobs import JobArg, find_job


def release(syftbox: SyftboxOption, email: EmailOption, job_key: JobArg) -> None:
    """Release a done job's results (logs/, outputs/) to its submitter."""
    job = find_job(syftbox, email, job_key, owner_only=True)
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
