"""Two parties (an owner and a scientist) connected by one transport: a shared folder or a real
S3 server. `shared` is parametrized over both, so a test using `parties` runs once per transport."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from syft_core.datasite import Datasite
from syft_core.sync import FolderTransport, SyncClient, Transport
from tests.fixtures_s3 import OWNER, S3Server

SCI = "bob@example.org"
JOB = "analysis_1"


@dataclass
class Parties:
    owner: SyncClient
    sci: SyncClient

    @property
    def owner_datasite(self) -> Datasite:
        return self.owner.box.datasite(OWNER)

    def owner_job(self) -> Path:
        return self.owner_datasite.jobs / SCI / JOB

    def sci_job(self) -> Path:
        return self.sci.box.root / OWNER / "jobs" / SCI / JOB


@dataclass(frozen=True)
class Shared:
    """One transport both parties reach, and how each of them connects to it."""

    transports: dict[str, Callable[[], Transport]]  # email -> a transport with their access
    url: str  # for the CLI
    env: dict[str, dict[str, str]]  # email -> environment for the CLI (credentials)


def folder_shared(tmp_path: Path) -> Shared:
    """A shared folder both parties reach (for tests that need only one transport)."""
    folder = tmp_path / "shared"
    folder.mkdir()
    return Shared(
        transports={who: lambda: FolderTransport(folder) for who in (OWNER, SCI)},
        url=f"folder:{folder}",
        env={OWNER: {}, SCI: {}},
    )


@pytest.fixture(params=["folder", "s3"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Shared:
    if request.param == "folder":
        return folder_shared(tmp_path)
    server: S3Server = request.getfixturevalue("s3")
    return Shared(
        transports={who: functools.partial(server.transport, who) for who in (OWNER, SCI)},
        url=f"s3://{server.bucket}?endpoint={server.endpoint}",
        env={
            who: {
                "AWS_ACCESS_KEY_ID": server.credentials[who].access_key,
                "AWS_SECRET_ACCESS_KEY": server.credentials[who].secret_key,
            }
            for who in (OWNER, SCI)
        },
    )


@pytest.fixture
def parties(tmp_path: Path, shared: Shared) -> Iterator[Parties]:
    Datasite(tmp_path / "owner-box", OWNER).init()
    with (
        SyncClient(tmp_path / "owner-box", OWNER, shared.transports[OWNER]()) as owner,
        SyncClient(tmp_path / "sci-box", SCI, shared.transports[SCI]()) as sci,
    ):
        sci.request_peer(OWNER)
        owner.accept_peer(SCI)
        yield Parties(owner, sci)
