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
from rich.text import Text

from syft_core.atomic import atomic_write_yaml
from syft_core.sync import ReceiveLimits, SyncClient, SyncReport, Transport, transport_from_url
from syft_core.sync.errors import PeerConfigError
from syft_core.sync.limits import MiB
from syft_core.sync.live import run_forever
from syft_core.sync.state import STATE_DIR
from syft_core.sync.transports import FolderTransport
from syft_runner.cli.datasite import (
    EmailOption,
    SyftboxOption,
    fail,
    reported_failures,
    visible,
)

PROGRESS_THRESHOLD_BYTES = 8 << 20  # smaller transfers finish before a bar is worth drawing
CONFIG_FILE = "config.yaml"

TransportOption = Annotated[
    str | None,
    typer.Option(
        "--transport",
        envvar="SYFT_SYNC_TRANSPORT",
        help="folder:PATH (the default kind; a bare path works too) or "
        "s3://BUCKET/PREFIX?endpoint=URL&region=R&profile=P (the prefix and every parameter "
        "optional). Credentials come from the "
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


def remembered_transport(syftbox: Path) -> str | None:
    """The transport URL remembered for this syftbox; None if none was ever given.
    PeerConfigError if the remembered config is malformed."""
    path = _config_path(syftbox)
    try:
        return str((yaml.safe_load(path.read_text(encoding="utf-8")) or {})["transport"])
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise PeerConfigError(
            f"sync config {path} is malformed ({exc}); pass --transport to replace it"
        ) from None


def open_transport(syftbox: Path, url: str, *, remember: bool) -> Transport:
    """The transport `url` names (a folder transport's folder created when `remember`, i.e.
    when it was asked for explicitly), remembered for later commands when `remember`."""
    transport = transport_from_url(url)
    if remember:
        if isinstance(transport, FolderTransport) and not transport.root.exists():
            transport.root.mkdir(parents=True)  # asked for explicitly: create it once
        atomic_write_yaml(_config_path(syftbox), {"transport": url})
    return transport


def resolve_transport(syftbox: Path, url: str | None) -> Transport:
    """The transport named on the command line (then remembered), else the remembered one."""
    with reported_failures():
        remembered = url or remembered_transport(syftbox)
    if remembered is None:
        fail(
            "no transport configured for this syftbox: pass --transport folder:PATH "
            "or --transport 's3://BUCKET?endpoint=URL' once"
        )
    with reported_failures():
        return open_transport(syftbox, remembered, remember=True)


def _client(
    syftbox: Path, email: str, url: str | None, limits: ReceiveLimits | None = None
) -> SyncClient:
    transport = resolve_transport(syftbox, url)
    return SyncClient(syftbox, email, transport, progress=RichProgress(), limits=limits)


def _line(text: str, label: str = "", style: str = "") -> None:
    """One line of output. `text` holds what peers chose (paths, reasons, notes), so it is
    printed verbatim, never read as markup, with control and bidi characters made visible."""
    console.print(
        Text.assemble((label, style), " " if label else "", visible(text)), soft_wrap=True
    )


def report_lines(report: SyncReport) -> list[tuple[str, str, str]]:
    """What a sync pass did, as (label, text, style) lines: `text` is what peers chose."""
    lines: list[tuple[str, str, str]] = []
    for a in report.applied:
        lines.append(
            ("applied ", f"{'deleted ' if a.deleted else ''}{a.path}  (from {a.peer})", "")
        )
    for n in report.rejected:
        lines.append(("rejected", f"{n.rejection.path} from {n.peer}: {n.rejection.reason}", "red"))
    for a in report.received:
        lines.append(("received", f"{'deleted ' if a.deleted else ''}{a.peer}/{a.path}", ""))
    for n in report.notices:
        lines.append(
            (
                f"refused by {n.peer}",
                f"{n.rejection.path} ({n.rejection.kind}): {n.rejection.reason}",
                "red",
            )
        )
    for peer, count in report.proposed.items():
        lines.append(("", f"proposed {count} change(s) to {peer}", ""))
    for peer, count in report.published.items():
        lines.append(("", f"published {count} change(s) to {peer}", ""))
    for held in report.held:
        lines.append(("held", f"message {held} (sender not accepted as a peer)", "yellow"))
    for problem in report.problems:
        lines.append(("problem", problem, "yellow"))
    return lines


def print_report(report: SyncReport) -> None:
    for label, text, style in report_lines(report):
        _line(text, label, style)


def sync(
    syftbox: SyftboxOption,
    email: EmailOption,
    transport: TransportOption = None,
    once: Annotated[bool, typer.Option("--once", help="Run one pass and exit.")] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.5, help="Seconds between passes when idle.")
    ] = 5.0,
    max_file_mb: Annotated[
        int, typer.Option("--max-file-mb", min=1, help="Refuse any received file over this.")
    ] = ReceiveLimits().max_file_bytes // MiB,
    min_free_mb: Annotated[
        int,
        typer.Option(
            "--min-free-mb", min=0, help="Leave this much disk free: bigger messages wait."
        ),
    ] = ReceiveLimits().min_free_bytes // MiB,
) -> None:
    """Sync your datasite with your peers and theirs with you (runs until Ctrl-C, or --once)."""
    limits = ReceiveLimits(max_file_bytes=max_file_mb * MiB, min_free_bytes=min_free_mb * MiB)
    with _client(syftbox, email, transport, limits) as client:
        if once:
            with reported_failures():
                report = client.sync_once()
            print_report(report)
            if report.quiet:
                console.print("nothing to sync")
            return
        _line(f"syncing {syftbox} as {email} over {client.transport.describe()}")
        try:
            run_forever(
                client,
                interval=interval,
                on_report=print_report,
                on_error=lambda exc: _line(str(exc), "sync failed, will retry:", "yellow"),
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
    _line(f"asked {owner} to accept you; `syft-runner sync` picks up their answer")


@peers_app.command("list")
def peers_list(
    syftbox: SyftboxOption, email: EmailOption, transport: TransportOption = None
) -> None:
    """Show accepted peers, datasites you follow, and requests waiting for your answer."""
    with _client(syftbox, email, transport) as client, reported_failures():
        peers = client.peers()
        requests, problems = client.pending_requests()
    for peer in peers.accepted:
        _line(peer, "accepted  ")
    for peer in peers.following:
        _line(peer, "following ")
    for request in requests:
        note = f"  {request.note!r}" if request.note else ""
        _line(f"{request.sender}  {request.created:%Y-%m-%d %H:%M}{note}", "requested ")
    for problem in problems:
        _line(problem, "malformed request", "yellow")
    if not (peers.accepted or peers.following or requests):
        _line("no peers yet")


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
    _line(f"{'accepted' if added else 'already accepted'} {peer}")


def register(app: typer.Typer) -> None:
    app.command("sync")(sync)
    app.add_typer(peers_app, name="peers")
