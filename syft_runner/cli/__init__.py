"""The `syft-runner` command line (typer). Each concern registers its commands from its own module."""

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
    from syft_runner.cli import images as images_cli

    for module in (images_cli,):
        module.register(app)


def main() -> None:
    _register_all()
    app()
