"""`syft-runner images build|list|packages`: the job runtime images and what they provide."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import docker
import typer
from rich.console import Console
from rich.table import Table

from syft_core.errors import SyftError
from syft_runner.cli.datasite import fail
from syft_runner.config import load_runner_config
from syft_runner.sandbox.engine import connect
from syft_runner.sandbox.images import (
    PACKAGES_FILE,
    ImageMissingError,
    ImageStatus,
    build_images,
    image_packages,
    image_statuses,
    image_tag,
    push_to_nodes,
    resolve_image,
    runtime_names,
)

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
    """Show each runtime image, whether it is current, stale or missing, and every Python package
    (and version) it provides."""
    try:
        statuses = image_statuses(connect())
    except SyftError as exc:
        fail(f"images list failed: {exc}")
    table = Table("runtime", "state", "image id", "size MB", "created")
    table.caption = "tags: syft-runner/<runtime>:latest"
    for s in statuses:
        style = _STATE_STYLE[s.state]
        table.add_row(
            s.name,
            f"[{style}]{s.state}[/{style}]",
            (s.image_id or "")[7:19],
            "" if s.size_mb is None else f"{s.size_mb:.0f}",
            s.created or "",
        )
    _console.print(table)
    for status in statuses:
        _print_packages(status)
    if any(s.state != "current" for s in statuses):
        _console.print("run `make images` to build what is missing or stale")


@images_app.command("packages")
def packages(
    runtime: str = typer.Argument(..., metavar="RUNTIME", help="e.g. scientific"),
) -> None:
    """Print RUNTIME's Python packages as `name==version` lines (pip freeze format, after a
    `# python X.Y.Z` line): usable as a constraints file to match the runtime elsewhere."""
    try:
        client = connect()
        listing = image_packages(client, resolve_image(client, runtime))
    except (ImageMissingError, SyftError) as exc:
        fail(f"images packages failed: {exc}")
    if listing is None:
        fail(f"{runtime}: the image has no {PACKAGES_FILE}; rebuild it (`make images`)")
    typer.echo(listing.freeze(), nl=False)


@images_app.command("push-nodes")
def push_nodes(
    node: Annotated[
        list[str] | None,
        typer.Option(
            "--node", metavar="NAME=DOCKER_HOST", help="A worker node and its daemon's address."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="A runner.yaml whose `swarm.workers` are the nodes."),
    ] = None,
    runtime: Annotated[
        list[str] | None,
        typer.Option("--runtime", help="Runtime(s) to push (default: every runtime)."),
    ] = None,
) -> None:
    """Load the runtime images from this engine onto each Swarm node (no registry: `docker save`
    here, `docker load` on every node in parallel). Fails if any node did not load them."""
    try:
        hosts = _node_hosts(node or [])
        if config is not None:
            swarm = load_runner_config(config).swarm
            hosts += list(swarm.workers.items()) if swarm is not None else []
        if not hosts:
            fail("name the nodes: --node NAME=DOCKER_HOST, or --config with a `swarm:` section")
        nodes = {name: connect(host=host) for name, host in hosts}
        source = connect()
        names = runtime or runtime_names()
        for name in names:
            resolve_image(source, name)  # built and ours, else an error naming the fix
        report = push_to_nodes(source, nodes, [image_tag(name) for name in names])
    except (SyftError, docker.errors.DockerException) as exc:
        fail(f"images push-nodes failed: {exc}")
    for name, loaded in report.loaded.items():
        _print_progress(f"{name}: loaded {', '.join(loaded)}")
    for name, why in report.failed.items():
        _print_progress(f"{name}: FAILED: {why}")
    if report.failed:
        fail(f"{len(report.failed)} node(s) did not load the images")
    _console.print(
        f"[green]{len(names)} images on {len(nodes)} nodes[/green] in {report.seconds} s"
    )


def _node_hosts(options: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for option in options:
        name, sep, host = option.partition("=")
        if not sep or not name or not host:
            fail(f"--node {option!r}: expected NAME=DOCKER_HOST (e.g. worker1=tcp://10.0.0.2:2376)")
        pairs.append((name, host))
    return pairs


def _print_packages(status: ImageStatus) -> None:
    """`<runtime>: <what it provides>`, then `Python X, N packages:` and every package with its
    version (or `no Python`)."""
    if status.state == "missing":
        return
    _print_progress(f"\n{status.name}: {status.provides or ''}")
    listing = status.packages
    if listing is None:
        _print_progress("  no package listing in the image (rebuild it: `make images`)")
    elif listing.python is None:
        _print_progress("  no Python")
    else:
        count = len(listing.packages)
        packages = ", ".join(f"{p.name} {p.version}" for p in listing.packages)
        _print_progress(f"  Python {listing.python}, {count} packages: {packages}")


def _print_progress(message: str) -> None:
    # Build output can hold markup-like brackets; print it verbatim.
    _console.print(message, markup=False, highlight=False, emoji=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(images_app, name="images")
