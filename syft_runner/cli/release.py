"""`syft-runner release JOB`: let the submitter read a done job's logs and outputs, after checks.

A real run's outputs were checked when it finished (logs/checks.yaml, syft_core.output_checks);
the report is printed first. An output failing a rule needs `--override "reason"` (recorded in
the event log); `--only PATH` (repeatable) releases a subset, and the submitter sees which files
were withheld and why (logs/release.yaml).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from syft_core.errors import SyftError
from syft_core.output_checks import OutputRules
from syft_core.release import release_job
from syft_runner.cli.datasite import EmailOption, SyftboxOption, reported_failures, visible
from syft_runner.cli.jobs import JobArg, find_job
from syft_runner.config import default_config_path, load_runner_config
from syft_runner.review.checks import check_lines, release_lines


def _rules(syftbox: Path, email: str) -> OutputRules:
    """The owner's rules from their runner.yaml; ACRO's defaults when it cannot be read."""
    try:
        return load_runner_config(default_config_path(syftbox, email)).output_rules
    except SyftError:
        return OutputRules()


def release(
    syftbox: SyftboxOption,
    email: EmailOption,
    job_key: JobArg,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="PATH",
            help="Release only this file (relative to the job folder or to outputs/); "
            "repeatable. The rest stays withheld, and the submitter sees why.",
        ),
    ] = None,
    override: Annotated[
        str | None,
        typer.Option(
            "--override",
            metavar="REASON",
            help="Release outputs that fail a disclosure rule; the reason is recorded.",
        ),
    ] = None,
) -> None:
    """Release a done job's results (logs/, outputs/) to its submitter, after the checks."""
    job = find_job(syftbox, email, job_key, owner_only=True)
    with reported_failures():
        marker = release_job(
            job.folder,
            by=email,
            only=only or None,
            override=override,
            rules=_rules(syftbox, email),
        )
    for line in check_lines(job.folder.path):
        typer.echo(visible(line))
    for line in release_lines(job.folder.path):
        typer.echo(visible(line))
    what = "its logs and outputs" if marker.scope == "all" else "the files released above"
    typer.echo(
        visible(
            f"released {job.key} ({marker.method}, {marker.at.isoformat(timespec='seconds')}): "
            f"{job.submitted_by} may now read {what}"
        )
    )


def register(app: typer.Typer) -> None:
    app.command("release")(release)
