"""Two syftboxes on one machine (a scientist and an owner) syncing a job over each transport.

scientist writes a job -> pushes -> owner applies -> owner writes `approved`, logs, outputs ->
owner publishes -> scientist pulls and reads them. Over the folder transport and a real S3 server
(SeaweedFS) where each party has its own, prefix-confined credentials; and once through the CLI.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import tracemalloc
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from syft_core.atomic import atomic_write_text
from syft_core.datasite import PERMISSION_FILE, Datasite
from syft_core.release import release_permissions
from syft_core.sync import S3Transport, SyncClient, TransportError
from syft_core.sync import owner as owner_module
from syft_core.sync.hashing import digest_file
from syft_core.sync.targets import install_at
from syft_core.sync.transports.base import ProgressCallback, _no_progress
from syft_runner.cli import _register_all, app
from tests.fixtures_s3 import OWNER, S3Server, start_weed, stop_process
from tests.fixtures_sync import JOB, SCI, Parties, Shared

RUN_SH = b"#!/bin/bash\nset -e\npython main.py\n"
BINARY = bytes(range(256)) * 64  # every byte value, to prove binary files survive unchanged


def release(owner_job: Path) -> None:
    """What syft_core.release writes when the owner releases a done job's results."""
    atomic_write_text(owner_job / PERMISSION_FILE, yaml.safe_dump(release_permissions(SCI)))


def write_job(job: Path) -> None:
    (job / "code").mkdir(parents=True)
    (job / "run.sh").write_bytes(RUN_SH)
    (job / "config.yaml").write_text("name: analysis\nruntime: python\n")
    (job / "code" / "main.py").write_text("print('hello')\n")
    (job / "code" / "blob.bin").write_bytes(BINARY)


def test_a_job_becomes_a_job_only_once_all_of_it_is_in_place(
    parties: Parties, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config.yaml is installed last: a policy or runner looking at the folder mid-apply finds
    no job rather than part of one."""
    write_job(parties.sci_job())
    parties.sci.sync_once()
    present_with_config: list[list[str]] = []

    def watching_install(staged: Path, fd: int, name: str, *, consume: bool) -> None:
        if name == "config.yaml":
            job = Path(os.readlink(f"/proc/self/fd/{fd}"))  # the folder it is put in
            present_with_config.append(
                sorted(p.relative_to(job).as_posix() for p in job.rglob("*") if p.is_file())
            )
        install_at(staged, fd, name, consume=consume)

    monkeypatch.setattr(owner_module, "install_at", watching_install)
    parties.owner.sync_once()
    assert present_with_config == [["code/blob.bin", "code/main.py", "run.sh"]]


def test_job_round_trip(parties: Parties) -> None:
    (parties.owner_datasite.public / "mock.csv").write_text("id,age\n1,40\n")
    write_job(parties.sci_job())

    pushed = parties.sci.sync_once()
    assert pushed.proposed == {OWNER: 4}

    applied = parties.owner.sync_once()
    assert sorted(a.path for a in applied.applied) == sorted(
        f"jobs/{SCI}/{JOB}/{name}"
        for name in ("run.sh", "config.yaml", "code/main.py", "code/blob.bin")
    )
    assert applied.rejected == []
    owner_job = parties.owner_job()
    assert (owner_job / "run.sh").read_bytes() == RUN_SH
    assert (owner_job / "code" / "blob.bin").read_bytes() == BINARY

    # the runner, simulated: approve, run, write logs and outputs
    (owner_job / "approved").write_text("approved_by: alice@example.org\n")
    (owner_job / "logs").mkdir()
    (owner_job / "logs" / "stdout.txt").write_text("hello\n")
    (owner_job / "outputs").mkdir()
    (owner_job / "outputs" / "result.csv").write_text("count\n42\n")
    (owner_job / "done").write_text("exit_code: 0\n")
    parties.owner.sync_once()
    held_back = parties.sci.sync_once()
    # results on real data leave only once released: markers yes, logs/outputs not yet
    assert {a.path.rsplit("/", 1)[1] for a in held_back.received} == {
        "approved",
        "done",
        "mock.csv",
    }
    assert not (parties.sci_job() / "outputs").exists()

    release(owner_job)
    parties.owner.sync_once()
    received = parties.sci.sync_once()
    got = {a.path for a in received.received}
    assert got == {f"jobs/{SCI}/{JOB}/outputs/result.csv", f"jobs/{SCI}/{JOB}/logs/stdout.txt"}
    sci_job = parties.sci_job()
    assert (sci_job / "approved").read_text() == "approved_by: alice@example.org\n"
    assert (sci_job / "outputs" / "result.csv").read_text() == "count\n42\n"
    assert (sci_job / "logs" / "stdout.txt").read_text() == "hello\n"
    assert (parties.sci.box.root / OWNER / "public" / "mock.csv").read_text() == "id,age\n1,40\n"
    # what the scientist sent is not echoed back, and permission files never travel
    assert not any(p.endswith(("run.sh", "syft.pub.yaml")) for p in got)
    assert not (sci_job / "syft.pub.yaml").exists()

    # everything settled: another round on both sides moves nothing
    assert parties.sci.sync_once().quiet
    assert parties.owner.sync_once().quiet

    events = [e.what for e in parties.owner_datasite.events]
    assert events.count("sync.applied") == 4
    assert "sync.published" in events


def test_scientist_edit_and_delete_travel(parties: Parties) -> None:
    write_job(parties.sci_job())
    parties.sci.sync_once()
    parties.owner.sync_once()

    (parties.sci_job() / "code" / "main.py").write_text("print('v2')\n")
    (parties.sci_job() / "code" / "blob.bin").unlink()
    assert parties.sci.sync_once().proposed == {OWNER: 2}
    report = parties.owner.sync_once()
    assert {(a.path.rsplit("/", 1)[1], a.deleted) for a in report.applied} == {
        ("main.py", False),
        ("blob.bin", True),
    }
    assert (parties.owner_job() / "code" / "main.py").read_text() == "print('v2')\n"
    assert not (parties.owner_job() / "code" / "blob.bin").exists()


def test_cli_round_trip(tmp_path: Path, shared: Shared) -> None:
    """`peers add` -> `peers list` -> `peers accept` -> `sync --once` on both sides."""
    boxes = {OWNER: tmp_path / "owner-box", SCI: tmp_path / "sci-box"}
    _register_all()
    runner = CliRunner()

    def run(who: str, *args: str, transport: bool = True) -> str:
        where = ["--syftbox", str(boxes[who]), "--email", who]
        more = ["--transport", shared.url] if transport else []
        result = runner.invoke(app, [*args, *where, *more], env=shared.env[who])
        assert result.exit_code == 0, result.output
        return result.output

    run(OWNER, "init", transport=False)
    run(SCI, "peers", "add", OWNER, "--note", "hi")
    assert f"requested  {SCI}" in run(OWNER, "peers", "list")
    assert f"accepted {SCI}" in run(OWNER, "peers", "accept", SCI)
    write_job(boxes[SCI] / OWNER / "jobs" / SCI / JOB)
    # from here on the transport is the one remembered from the first use
    assert f"proposed 4 change(s) to {OWNER}" in run(SCI, "sync", "--once", transport=False)
    out = run(OWNER, "sync", "--once", transport=False)
    assert f"applied  jobs/{SCI}/{JOB}/run.sh" in out
    (boxes[OWNER] / OWNER / "jobs" / SCI / JOB / "approved").write_text("ok\n")
    run(OWNER, "sync", "--once", transport=False)
    out = run(SCI, "sync", "--once", transport=False)
    assert f"received {OWNER}/jobs/{SCI}/{JOB}/approved" in out
    assert (boxes[SCI] / OWNER / "jobs" / SCI / JOB / "approved").read_text() == "ok\n"


LARGE_BYTES = 50 << 20
MEMORY_BOUND_BYTES = 24 << 20  # well under the file: it is streamed, never held whole


def test_large_file_streams_with_bounded_memory(parties: Parties) -> None:
    job = parties.sci_job()
    write_job(job)
    big = job / "code" / "weights.bin"
    with big.open("wb") as fh:
        for i in range(LARGE_BYTES >> 20):
            fh.write(hashlib.sha256(str(i).encode()).digest() * (1 << 15))
    expected = digest_file(big)

    tracemalloc.start()
    try:
        parties.sci.sync_once()
        parties.owner.sync_once()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    arrived = parties.owner_job() / "code" / "weights.bin"
    assert arrived.stat().st_size == LARGE_BYTES
    assert digest_file(arrived) == expected
    print(f"peak traced memory {peak / 2**20:.1f} MiB for a {LARGE_BYTES >> 20} MiB file")
    assert peak < MEMORY_BOUND_BYTES


class DyingS3(S3Transport):
    """The real S3 transport, whose server crashes just before the `n`-th blob upload."""

    def __init__(self, server: S3Server, who: str, proc: subprocess.Popen[bytes], n: int) -> None:
        creds = server.credentials[who]
        super().__init__(
            server.bucket,
            endpoint_url=server.endpoint,
            access_key=creds.access_key,
            secret_key=creds.secret_key,
        )
        self.proc = proc
        self.left = n

    def put_file(
        self, key: str, path: Path, expected_sha: str, callback: ProgressCallback = _no_progress
    ) -> None:
        self.left -= 1
        if self.left == 0:  # a crash, not a shutdown
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        super().put_file(key, path, expected_sha, callback)


def test_s3_server_dies_mid_sync_and_the_next_sync_completes(tmp_path: Path) -> None:
    server, proc = start_weed(tmp_path / "weed")
    try:
        Datasite(tmp_path / "owner-box", OWNER).init()
        with SyncClient(tmp_path / "owner-box", OWNER, server.transport(OWNER)) as owner:
            owner.accept_peer(SCI)
        job = tmp_path / "sci-box" / OWNER / "jobs" / SCI / JOB
        write_job(job)
        with SyncClient(
            tmp_path / "sci-box", SCI, DyingS3(server, SCI, proc, n=3), workers=1
        ) as sci:
            sci.peer_book.follow(OWNER)
            with pytest.raises(TransportError):
                sci.sync_once()
    finally:
        stop_process(proc)

    # the server comes back (same data, new ports): nothing half-sent is visible, all is resent
    server, proc = start_weed(tmp_path / "weed")
    try:
        with (
            SyncClient(tmp_path / "owner-box", OWNER, server.transport(OWNER)) as owner,
            SyncClient(tmp_path / "sci-box", SCI, server.transport(SCI)) as sci,
        ):
            assert owner.sync_once().applied == []
            assert sci.sync_once().proposed == {OWNER: 4}
            assert len(owner.sync_once().applied) == 4
            assert server.transport("admin").list_keys(f"{OWNER}/inbox/") == []
        assert (
            tmp_path / "owner-box" / OWNER / "jobs" / SCI / JOB / "run.sh"
        ).read_bytes() == RUN_SH
    finally:
        stop_process(proc)
