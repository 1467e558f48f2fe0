"""`syft-runner datasets add|list|show|remove`: the owner's datasets (see syft_core.datasets).

Paths given on the command line are taken relative to the current folder, like any command's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from syft_core.automock import DEFAULT_MAX_ROWS, DEFAULT_MIN_CATEGORY_COUNT
from syft_core.datasets import (
    Dataset,
    DatasetError,
    Privacy,
    create_dataset,
    get_dataset,
    list_datasets,
    remove_dataset,
)
from syft_core.dp_automock import DEFAULT_EPSILON, parse_bounds
from syft_runner.cli.datasite import EmailOption, SyftboxOption, owner_client, reported_failures
from syft_runner.workspace.mounts import dataset_targets

datasets_app = typer.Typer(
    help="Publish datasets: a public mock next to private data.", no_args_is_help=True
)
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The dataset's name.")]
_out = Console(highlight=False)


def _print(text: str) -> None:
    _out.print(Text(text), soft_wrap=True)


@datasets_app.command("add")
def add(
    syftbox: SyftboxOption,
    email: EmailOption,
    name: NameArg,
    private: Annotated[
        Path, typer.Option("--private", help="The private file or folder, under private/.")
    ],
    mock: Annotated[
        Path | None, typer.Option("--mock", help="A mock file or folder under public/.")
    ] = None,
    automock: Annotated[
        bool, typer.Option("--automock", help="Generate the mock from the private CSV.")
    ] = False,
    description: Annotated[str, typer.Option("--description", help="What the data is.")] = "",
    seed: Annotated[int | None, typer.Option("--seed", help="Automock: a fixed seed.")] = None,
    max_rows: Annotated[int, typer.Option("--max-rows", min=1)] = DEFAULT_MAX_ROWS,
    min_category_count: Annotated[
        int, typer.Option("--min-category-count", min=1, help="Automock: rarer are replaced.")
    ] = DEFAULT_MIN_CATEGORY_COUNT,
    privacy: Annotated[
        str,
        typer.Option(
            "--privacy",
            help="Automock: 'dp' (default) releases every statistic with differential privacy "
            "(OpenDP); 'none' keeps exact statistics, which disclose the row count and each "
            "column's minimum and maximum.",
        ),
    ] = "dp",
    epsilon: Annotated[
        float,
        typer.Option("--epsilon", min=0.0, help="Automock dp: the total privacy budget."),
    ] = DEFAULT_EPSILON,
    mock_rows: Annotated[
        int | None,
        typer.Option("--mock-rows", min=1, help="Automock dp: a fixed mock size."),
    ] = None,
    bounds: Annotated[
        list[str] | None,
        typer.Option(
            "--bounds",
            metavar="COLUMN=LOW:HIGH",
            help="Automock dp: the range a numeric or date column's values lie in "
            "(repeatable); without it the range is found privately on a coarse grid.",
        ),
    ] = None,
) -> None:
    """Publish a dataset: its mock goes to public/datasets/NAME/, the private data stays put."""
    datasite = owner_client(syftbox, email).datasite
    with reported_failures():
        if privacy not in ("dp", "none"):
            raise DatasetError(f"--privacy {privacy!r}: use dp or none")
        chosen: Privacy = "dp" if privacy == "dp" else "none"
        try:
            parsed_bounds = parse_bounds(bounds or [])
        except ValueError as exc:
            raise DatasetError(str(exc)) from None
        if epsilon <= 0:
            raise DatasetError("--epsilon must be above 0")
        dataset = create_dataset(
            datasite,
            name,
            private=private.absolute(),
            mock=mock.absolute() if mock is not None else None,
            automock=automock,
            description=description,
            seed=seed,
            max_rows=max_rows,
            min_category_count=min_category_count,
            privacy=chosen,
            epsilon=epsilon,
            mock_rows=mock_rows,
            bounds=parsed_bounds,
        )
    _print(f"published dataset {dataset.name} at {datasite.root / dataset.mock_relpath}")
    for target in dataset_targets(email, dataset):
        _print(f"  jobs read it at {target}")
    _show_automock(dataset)
    for warning in dataset.warnings:
        Console(stderr=True, highlight=False).print(Text(f"warning: {warning}", style="yellow"))


@datasets_app.command("list")
def list_command(syftbox: SyftboxOption, email: EmailOption) -> None:
    """List your datasets."""
    datasite = owner_client(syftbox, email).datasite
    table = Table("name", "kind", "entry", "files", "bytes", "mock", "description")
    for d in list_datasets(datasite):
        mock = "automock" if d.automock else "by hand"
        size = sum(f.size for f in d.files)
        cells = (d.name, d.kind, d.entry, str(len(d.files)), str(size), mock, d.description)
        table.add_row(*(Text(c, overflow="fold") for c in cells))
    _out.print(table)


@datasets_app.command("show")
def show(syftbox: SyftboxOption, email: EmailOption, name: NameArg) -> None:
    """Show a dataset: where jobs find it, its mock files and columns, what automock kept."""
    datasite = owner_client(syftbox, email).datasite
    with reported_failures():
        dataset = get_dataset(datasite, name)
    _print(f"dataset:      {dataset.name}  ({dataset.kind} {dataset.entry})")
    _print(f"description:  {dataset.description}")
    _print(f"created:      {dataset.created_at.isoformat(timespec='seconds')}")
    _print(f"mock:         {dataset.mock_relpath}")
    _print(f"private:      {dataset.private or '(no private mapping here)'}")
    for target in dataset_targets(email, dataset):
        _print(f"job path:     {target}")
    _show_files(dataset)
    _show_automock(dataset)


def _show_files(dataset: Dataset) -> None:
    _print("files:")
    for f in dataset.files:
        _print(f"  {f.size:>10}  {f.path}")
        for column in f.columns or []:
            _print(f"              {column.name}: {column.dtype}")


def _show_automock(dataset: Dataset) -> None:
    info = dataset.automock
    if info is None:
        return
    if info.dp is None:
        _print(
            f"automock:     {info.rows} rows; categories seen < {info.min_category_count}x "
            "replaced; privacy none: the row count and each column's extremes are exact"
        )
    else:
        dp = info.dp
        delta = f", delta {dp.delta:.1e}" if dp.delta else ""
        _print(
            f"automock:     {info.rows} rows; differentially private (OpenDP): "
            f"epsilon {dp.epsilon:g}{delta}"
        )
        _print(
            f"  guarantee: one person's row changes the chance of any mock by at most a factor "
            f"{math.exp(dp.epsilon):.2f} (e^epsilon); a changed row counts twice"
        )
        _print(f"  not noised: {dp.schema_not_private}")
        _print("  the budget paid for:")
        for part in dp.budget:
            where = f" of {part.column}" if part.column else ""
            _print(f"    {part.statistic}{where} (epsilon {part.epsilon:.3g}): {part.utility}")
    _print("  kept:     " + "; ".join(info.kept))
    _print("  not kept: " + "; ".join(info.not_kept))


@datasets_app.command("remove")
def remove(syftbox: SyftboxOption, email: EmailOption, name: NameArg) -> None:
    """Unpublish a dataset (its mock and record); the private data itself is not touched."""
    datasite = owner_client(syftbox, email).datasite
    with reported_failures():
        remove_dataset(datasite, name)
    _print(f"removed dataset {name}; the private data is untouched")


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
