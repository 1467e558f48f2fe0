"""The `syft-runner` command line (typer). Each concern registers its commands from its module.

Two things every command shares are set up here, on the click command typer builds: flags show
no type in `--help` (typer's rich help would print `<bool>` beside every `--flag`), and a reader
that goes away (`syft-runner logs JOB | head`) ends the command quietly with exit code 141, what
a shell reports for a coreutils tool killed by SIGPIPE, instead of an `[Errno 32]` line.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

app = typer.Typer(
    name="syft-runner",
    help="Run approved datasite jobs in hardened Docker containers.",
    no_args_is_help=True,
    add_completion=False,
)

BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE


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


def hide_flag_types(command: TyperCommand | TyperGroup) -> None:
    """No `<bool>` beside a flag in help: a flag takes no value, so it has no type to show."""
    for param in command.params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    get_help_option = command.get_help_option  # --help is made per call, not in params

    def help_option(ctx: Any) -> Any:
        option = get_help_option(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    command.get_help_option = help_option  # type: ignore[method-assign]
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            if isinstance(sub, TyperCommand | TyperGroup):
                hide_flag_types(sub)


def quiet_broken_pipe() -> typer.Exit:
    """The reader of our stdout went away: point stdout at /dev/null (so the interpreter's last
    flush cannot fail again) and hand back the exit to raise."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (e.g. under a test runner)
        pass
    return typer.Exit(BROKEN_PIPE_EXIT)


def build_command() -> TyperGroup:
    """The whole CLI as one command group, with the shared behaviour above."""
    _register_all()
    command = typer.main.get_command(app)
    assert isinstance(command, TyperGroup)
    hide_flag_types(command)
    invoke = command.invoke

    def invoke_quietly(ctx: Any) -> Any:
        try:
            return invoke(ctx)
        except BrokenPipeError:
            raise quiet_broken_pipe() from None

    command.invoke = invoke_quietly  # type: ignore[method-assign]
    return command


def main() -> None:
    build_command()(prog_name="syft-runner")
