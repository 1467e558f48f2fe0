"""`syft-runner init`, and what every datasite command shares: the `--syftbox`/`--email` options
(env SYFTBOX_FOLDER / SYFTBOX_EMAIL), `visible()` for printing text a peer wrote, and how a refused
operation is reported (exit code 1, the reason on stderr; typer itself exits 2 on usage errors)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from syft_core import names
from syft_core.client import Client, get_client
from syft_core.datasite import PERMISSION_FILE, Datasite, default_permission_files
from syft_core.errors import SyftError
from syft_core.identity import is_valid_email


def _checked_email(value: str) -> str:
    if not is_valid_email(value):
        raise typer.BadParameter(f"not a valid email address: {value!r}")
    return value


SyftboxOption = Annotated[
    Path,
    typer.Option(
        "--syftbox",
        envvar="SYFTBOX_FOLDER",
        help="The syftbox folder that holds the datasites.",
        show_default=False,
    ),
]
EmailOption = Annotated[
    str,
    typer.Option(
        "--email",
        envvar="SYFTBOX_EMAIL",
        help="Your email: the datasite you act on as its owner.",
        callback=_checked_email,
        show_default=False,
    ),
]


def visible(text: str) -> str:
    """`text` with every hidden character escaped (syft_core.names), tabs and newlines kept."""
    return names.visible(text, keep_newlines=True)


def fail(message: str) -> NoReturn:
    """Report a refused or failed operation on stderr and exit 1."""
    Console(stderr=True, highlight=False).print(Text(visible(message), style="red"), soft_wrap=True)
    raise typer.Exit(1)


@contextmanager
def reported_failures() -> Iterator[None]:
    """Turn the errors an operation raises on purpose (and I/O errors) into exit code 1."""
    try:
        yield
    except BrokenPipeError:
        raise  # the reader went away: not a failure to report (syft_runner.cli.build_command)
    except (SyftError, OSError) as exc:
        fail(str(exc))


def print_table(table: Table) -> None:
    """Print `table` without ever wrapping a column marked no_wrap (job keys, names to type): if
    the terminal is too narrow for them, the table is printed wider than the terminal."""
    console = Console(highlight=False)
    needed = Console(width=100_000).measure(table).minimum
    if needed > console.width:
        console = Console(highlight=False, width=needed)
    console.print(table)


def owner_client(syftbox: Path, email: str) -> Client:
    """A client for `email`, whose datasite must exist in `syftbox`."""
    with reported_failures():
        client = get_client(syftbox, email)
    if not client.datasite.exists():
        fail(
            f"no datasite for {email} in {syftbox}; "
            f"create it with: syft-runner init --syftbox {syftbox} --email {email}"
        )
    return client


def init(syftbox: SyftboxOption, email: EmailOption) -> None:
    """Create your datasite with its default permission files (existing files are kept)."""
    datasite = Datasite(syftbox, email)
    files = [datasite.root / folder / PERMISSION_FILE for folder in default_permission_files(email)]
    existed = {f: f.exists() for f in files}
    with reported_failures():
        datasite.init()
    for f in files:
        typer.echo(f"{'kept   ' if existed[f] else 'created'} {datasite.relpath(f)}")
    typer.echo(f"datasite {email} ready at {datasite.root}")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
