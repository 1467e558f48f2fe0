"""`syft-runner images build|list`: the job runtime images."""

from __future__ import annotations

import time

import typer
from rich.console import Console
from rich.table import Table

from syft_core.errors import SyftError
from syft_runner.cli.datasite import fail
from syft_runner.engine import connect
from syft_runner.images import build_images, image_statuses

images_app = typer.Typer(help="Build and list the job runtime images.", no_args_is_help=True)
_console = Console()
_STATE_STYLE = {"current": "green", "stale": "yellow", "missing": "red"}


@images_app.command("build")
def build(
    force: bool = typer.Option(False, "--force", help="Rebuild even if up to date (no cache)."),
) -> None:
    """Build every runtime image that is missing or out of date (never pulls at run time)."""
    started = time.monotonic()
    try:
        built = build_images(connect(), force=force, progress=_print_progress)
    except SyftError as exc:
        fail(f"images build failed: {exc}")
    elapsed = time.monotonic() - started
    _console.print(f"[green]{len(built)} images ready[/green] in {elapsed:.1f} s")


@images_app.command("list")
def list_images() -> None:
    """Show each runtime image and whether it is current, stale or missing."""
    try:
        statuses = image_statuses(connect())
    except SyftError as exc:
        fail(f"images list failed: {exc}")
    table = Table("runtime", "state", "image id", "size MB", "created", "provides")
    table.caption = "tags: syft-runner/<runtime>:latest"
    for s in statuses:
        style = _STATE_STYLE[s.state]
        table.add_row(
            s.name,
            f"[{style}]{s.state}[/{style}]",
            (s.image_id or "")[7:19],
            "" if s.size_mb is None else f"{s.size_mb:.0f}",
            s.created or "",
            s.provides or "",
        )
    _console.print(table)
    if any(s.state != "current" for s in statuses):
        _console.print("run `make images` to build what is missing or stale")


def _print_progress(message: str) -> None:
    # Build output can hold markup-like brackets; print it verbatim.
    _console.print(message, markup=False, highlight=False, emoji=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(images_app, name="images")
