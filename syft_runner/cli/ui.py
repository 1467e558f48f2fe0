"""`syft-runner ui`: the owner's review console in a browser (syft_runner.ui).

It listens on 127.0.0.1 only, unless `--host` names another address on purpose (with a warning:
anyone who can reach it and gets the login link acts as the owner). The login link is printed once
and works once.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from syft_runner.cli.datasite import EmailOption, SyftboxOption, fail, owner_client
from syft_runner.ui.server import ReviewServer

LOOPBACK = "127.0.0.1"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def ui(
    syftbox: SyftboxOption,
    email: EmailOption,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on; 0: any free one.")
    ] = 0,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. Anything but the loopback exposes the console beyond "
            "this machine.",
        ),
    ] = LOOPBACK,
) -> None:
    """Review jobs in a browser: inbox, code, logs, outputs, and the approve / reject / cancel /
    release buttons. Prints a one-time login link; stop with Ctrl-C."""
    client = owner_client(syftbox, email)
    if not _is_loopback(host):
        typer.echo(
            f"warning: listening on {host}, not only on this machine; anyone who can reach it "
            "and obtains the login link acts as the owner of this datasite",
            err=True,
        )
    try:
        server = ReviewServer(client, host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    typer.echo(f"Review console for {email}. Open this link once (it works once):")
    typer.echo(f"  {server.console.login_url}")
    typer.echo("Stop with Ctrl-C.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)
