"""`syft-runner run CODE --mock --datasite OWNER`: develop against an owner's mocks, locally, in the
job sandbox (see syft_runner.local_run). Prints the job's stdout and stderr, how it ended and where
its outputs are; exits 0 when the job succeeded, 1 otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from syft_core.datasets import list_datasets
from syft_core.datasite import Datasite
from syft_core.errors import SyftError
from syft_core.jobs import Outcome
from syft_core.local_runner import LocalRunResult
from syft_runner.cli.datasite import SyftboxOption, fail, reported_failures, visible
from syft_runner.local_run import run_local

_out = Console(highlight=False)


def _print(text: str, style: str | None = None) -> None:
    _out.print(Text(visible(text), style=style or ""), soft_wrap=True)


def run(
    code: Annotated[
        Path,
        typer.Argument(
            metavar="CODE",
            help="A job folder (run.sh + config.yaml), a .py, .ipynb or .sh file, or a folder "
            "of python code (main.py or --entrypoint).",
        ),
    ],
    syftbox: SyftboxOption,
    datasite: Annotated[
        str, typer.Option("--datasite", help="The owner whose synced mocks the job reads.")
    ],
    mock: Annotated[
        bool,
        typer.Option(
            "--mock/--real",
            help="Mock data only: real data never leaves the owner; submit the job for that.",
        ),
    ] = True,
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset", "-d", help="A dataset to mount (repeat); default: config.yaml's list."
        ),
    ] = None,
    entrypoint: Annotated[
        str | None,
        typer.Option("--entrypoint", help="The .py or .ipynb file to run in a folder of code."),
    ] = None,
    runtime: Annotated[
        str | None,
        typer.Option(
            "--runtime",
            help="The job image, e.g. scientific or minimal (default: config.yaml's, else "
            "scientific). The owner's runner runs only the runtimes it allows.",
        ),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", help="Where results go (default CODE's .syft-local/<time>)."),
    ] = None,
    email: Annotated[
        str | None,
        typer.Option("--email", envvar="SYFTBOX_EMAIL", help="You, as the job's submitter."),
    ] = None,
    dependency: Annotated[
        list[str] | None,
        typer.Option(
            "--dependency",
            help="A package the python code needs, e.g. 'tabulate>=0.9' (repeat); or put a "
            "requirements.txt in the code folder. Locked and built as the owner's runner does.",
        ),
    ] = None,
) -> None:
    """Run code on this machine against an owner's mock data, in the sandbox their runner uses."""
    if not mock:
        fail(
            "real data never leaves the owner's datasite: submit the job, and it runs on their "
            "runner once they approve it; `syft-runner run` runs against mocks only"
        )
    _print(f"running {code} against {datasite}'s mock data in the job sandbox ...", "bold")
    with reported_failures():
        result = run_local(
            code,
            syftbox=syftbox,
            owner=datasite,
            datasets=dataset,
            entrypoint=entrypoint,
            output_dir=output_dir,
            email=email,
            dependencies=dependency,
            runtime=runtime,
        )
    _report(result)
    if not dataset and result.outcome is not Outcome.SUCCEEDED:
        _hint_datasets(syftbox, datasite)
    if result.outcome is not Outcome.SUCCEEDED:
        raise typer.Exit(1)


def _report(result: LocalRunResult) -> None:
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        _out.rule(name)
        if text:
            _out.print(Text(visible(text.rstrip("\n"))), soft_wrap=True)
    _out.rule()
    ok = result.outcome is Outcome.SUCCEEDED
    _print(f"{result.outcome.value}: {result.message}", "green" if ok else "red")
    _print(f"outputs ({len(result.outputs)}) in {result.outputs_dir}")
    for path in result.outputs:
        _print(f"  {path.relative_to(result.outputs_dir)}")
    _print(f"logs and done.yaml in {result.result_dir}")


def _hint_datasets(syftbox: Path, owner: str) -> None:
    """The datasets a failed run could have asked for: the usual cause is mounting none."""
    try:
        names = [d.name for d in list_datasets(Datasite(syftbox, owner))]
    except (SyftError, OSError):
        return
    if names:
        _print(f"{owner} publishes: {', '.join(names)}; mount one with --dataset NAME", "yellow")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
