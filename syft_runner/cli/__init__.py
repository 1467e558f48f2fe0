"""The `syft-runner` command line (typer). Each concern registers its commands from its module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="syft-runner",
    help="Run approved datasite jobs in hardened Docker containers.",
    no_args_is_help=True,
    add_completion=False,
)


def _register_all() -> None:
    # Imported here so that `syft-runner --help` lists every command group; each module adds its
    # commands to `app` through its register() function.
    from syft_runner.cli import datasets as datasets_cli
    from syft_runner.cli import datasite as datasite_cli
    from syft_runner.cli import doctor as doctor_cli
    from syft_runner.cli import envs as envs_cli
    from syft_runner.cli import images as images_cli
    from syft_runner.cli import jobs as jobs_cli
    from syft_runner.cli import release as release_cli
    from syft_runner.cli import run as run_cli
    from syft_runner.cli import serve as serve_cli
    from syft_runner.cli import sync as sync_cli
    from syft_runner.cli import ui as ui_cli

    for module in (
        images_cli,
        envs_cli,
        doctor_cli,
        datasite_cli,
        jobs_cli,
        datasets_cli,
        release_cli,
        sync_cli,
        run_cli,
        serve_cli,
        ui_cli,
    ):
        module.register(app)


def main() -> None:
    _register_all()
    app()
