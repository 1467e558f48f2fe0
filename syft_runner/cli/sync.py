"""`syft-runner sync` and `syft-runner peers add|list|accept`: sync datasites between peers.

The transport is given once with `--transport` (or SYFT_SYNC_TRANSPORT) and remembered in
`<syftbox>/.syft-sync/config.yaml`; later commands may omit it. A bare path means a folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from syft_core.atomic import atomic_write_yaml
from syft_core.sync import SyncClient, SyncReport, Transport, transport_from_url
from syft_core.sync.errors import PeerConfigError
from syft_core.sync.live import run_forever
from syft_core.sync.state import STATE_DIR
from syft_core.sync.transports import FolderTransport
from syft_runner.cli.datasite import EmailOption, SyftboxOption, fail, reported_failures

PROGRESS_THRESHOLD_BYTES = 8 << 20  # smaller transfers finish before a bar is worth drawing
CONFIG_FILE = "config.yaml"

TransportOption = Annotated[
    str | None,
    typer.Option(
        "--transport",
        envvar="SYFT_SYNC_TRANSPORT",
        help="folder:PATH (the default kind; a bare path works too) or "
        "s3://BUCKET[/PREFIX]?endpoint=URL&region=R&profile=P. Credentials come from the "
        "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or the profile. "
        "Remembered after first use.",
        show_default=False,
    ),
]

console = Console(highlight=False)


class RichProgress:
    """Progress bars for large transfers (the engine's `Progress` protocol)."""

    @contextmanager
    def transfer(self, description: str, total_bytes: int) -> Iterator[Callable[[int], None]]:
        if total_bytes < PROGRESS_THRESHOLD_BYTES:
            yield lambda _n: None
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(description, total=total_bytes)
            yield lambda n: bar.update(task, advance=n)


def _config_path(syftbox: Path) -> Path:
    return syftbox / STATE_DIR / CONFIG_FILE


def resolve_transport(syftbox: Path, url: str | None) -> Transport:
    """The transport named on the command line (then remembered), else the remembered one."""
    path = _config_path(syftbox)
    if url is None:
        try:
            url = str((yaml.safe_load(path.read_text(encoding="utf-8")) or {})["transport"])
        except FileNotFoundError:
            fail(
                "no transport configured for this syftbox: pass --transport folder:PATH "
                "or --transport 's3://BUCKET?endpoint=URL' once"
            )
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            fail(f"sync config {path} is malformed ({exc}); pass --transport to replace it")
    with reported_failures():
        transport = transport_from_url(url)
        if isinstance(transport, FolderTransport) and not transport.root.exists():
            transport.root.mkdir(parents=True)  # asked for explicitly: create it once
        atomic_write_yaml(path, {"transport": url})
    return transport


def _client(syftbox: Path, email: str, url: str | None) -> SyncClient:
    return SyncClient(syftbox, email, resolve_transport(syftbox, url), progress=RichProgress())


def print_report(report: SyncReport) -> None:
    for a in report.applied:
        console.print(f"applied  {'deleted ' if a.deleted else ''}{a.path}  (from {a.peer})")
    for n in report.rejected:
        console.print(f"[red]rejected[/red] {n.rejection.path} from {n.peer}: {n.rejection.reason}")
    for a in report.received:
        console.print(f"received {'deleted ' if a.deleted else ''}{a.peer}/{a.path}")
    for n in report.notices:
        console.print(
            f"[red]refused by {n.peer}[/red] {n.rejection.path} "
            f"({n.rejection.kind}): {n.rejection.reason}"
        )
    for peer, count in report.proposed.items():
        console.print(f"proposed {count} change(s) to {peer}")
    for peer, count in report.published.items():
        console.print(f"published {count} change(s) to {peer}")
    for held in report.held:
        console.print(f"[yellow]held[/yellow] message {held} (sender not accepted as a peer)")
    for problem in report.problems:
        console.print(f"[yellow]problem[/yellow] {problem}")


def sync(
    syftbox: SyftboxOption,
    email: EmailOption,
    transport: TransportOption = None,
    once: Annotated[bool, typer.Option("--once", help="Run one pass and exit.")] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.5, help="Seconds between passes when idle.")
    ] = 5.0,
) -> None:
    """Sync your datasite with your peers and theirs with you (runs until Ctrl-C, or --once)."""
    with _client(syftbox, email, transport) as client:
        if once:
            with reported_failures():
                report = client.sync_once()
            print_report(report)
            if report.quiet:
                console.print("nothing to sync")
            return
        console.print(f"syncing {syftbox} as {email} over {client.transport.describe()}")
        try:
            run_forever(
                client,
                interval=interval,
                on_report=print_report,
                on_error=lambda exc: console.print(f"[yellow]sync failed, will retry:[/] {exc}"),
            )
        except KeyboardInterrupt:
            console.print("stopped")


peers_app = typer.Typer(
    help="Peers: who may propose changes to your datasite, and whose datasites you follow.",
    no_args_is_help=True,
)


@peers_app.command("add")
def peers_add(
    owner: Annotated[str, typer.Argument(help="The datasite owner to ask (an email).")],
    syftbox: SyftboxOption,
    email: EmailOption,
    transport: TransportOption = None,
    note: Annotated[str, typer.Option("--note", help="A message for the owner.")] = "",
) -> None:
    """Ask a datasite owner to accept you as a peer, and follow their datasite."""
    with _client(syftbox, email, transport) as client, reported_failures():
        client.request_peer(owner, note)
    console.print(f"asked {owner} to accept you; `syft-runner sync` picks up their answer")


@peers_app.command("list")
def peers_list(
    syftbox: SyftboxOption, email: EmailOption, transport: TransportOption = None
) -> None:
    """Show accepted peers, datasites you follow, and requests waiting for your answer."""
    with _client(syftbox, email, transport) as client, reported_failures():
        peers = client.peers()
        requests, problems = client.pending_requests()
    for peer in peers.accepted:
        console.print(f"accepted   {peer}")
    for peer in peers.following:
        console.print(f"following  {peer}")
    for request in requests:
        note = f"  {request.note!r}" if request.note else ""
        console.print(f"requested  {request.sender}  {request.created:%Y-%m-%d %H:%M}{note}")
    for problem in problems:
        console.print(f"[yellow]malformed request[/yellow] {problem}")
    if not (peers.accepted or peers.following or requests):
        console.print("no peers yet")


@peers_app.command("accept")
def peers_accept(
    peer: Annotated[str, typer.Argument(help="The requesting peer's email.")],
    syftbox: SyftboxOption,
    email: EmailOption,
    transport: TransportOption = None,
) -> None:
    """Accept a peer: from now on, their changes are applied where your permissions allow."""
    with _client(syftbox, email, transport) as client, reported_failures():
        if not client.box.datasite(email).exists():
            raise PeerConfigError(f"no datasite for {email} in {syftbox}; run syft-runner init")
        added = client.accept_peer(peer)
    console.print(f"{'accepted' if added else 'already accepted'} {peer}")


def register(app: typer.Typer) -> None:
    app.command("sync")(sync)
    app.add_typer(peers_app, name="peers")
