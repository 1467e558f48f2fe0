"""Faults and bad input: nothing unauthorized is applied, nothing is lost or half-applied, every
rejection is logged with why, and the next sync completes.

Most cases run over the folder transport (fast, and its files can be damaged on purpose); the
transport-independent ones also run over the real S3 server in test_sync_two_party/transports.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import yaml

from syft_core.datasite import PERMISSION_FILE, Datasite
from syft_core.events import Event
from syft_core.sync import (
    ChangeMessage,
    FileChange,
    FolderTransport,
    ReceiveLimits,
    SourceChangedError,
    SyncBusyError,
    SyncClient,
    Transport,
    TransportError,
)
from syft_core.sync.channel import Channel
from syft_core.sync.hashing import HashCache, digest_bytes
from syft_core.sync.transports.base import ProgressCallback, _no_progress

OWNER = "alice@example.org"
SCI = "bob@example.org"
OTHER = "carol@example.org"
JOB = "j1"


class FlakyTransport(Transport):
    """A real transport that goes down after `healthy` more calls of the chosen operations."""

    def __init__(self, inner: Transport, *, ops: set[str], healthy: int) -> None:
        self.inner = inner
        self.ops = ops
        self.healthy = healthy

    def _call(self, op: str) -> None:
        if op in self.ops:
            if self.healthy <= 0:
                raise TransportError(f"injected outage on {op}")
            self.healthy -= 1

    def put(self, key: str, stream: BinaryIO, callback: ProgressCallback = _no_progress) -> None:
        self._call("put")
        self.inner.put(key, stream, callback)

    def put_file(
        self, key: str, path: Path, expected_sha: str, callback: ProgressCallback = _no_progress
    ) -> None:
        self._call("put")
        self.inner.put_file(key, path, expected_sha, callback)

    def get(self, key: str) -> BinaryIO:
        self._call("get")
        return self.inner.get(key)

    def get_file(
        self, key: str, dest: Path, callback: ProgressCallback = _no_progress, *, max_bytes: int
    ) -> str:
        self._call("get")
        return self.inner.get_file(key, dest, callback, max_bytes=max_bytes)

    def list_keys(self, prefix: str = "") -> list[str]:
        self._call("list")
        return self.inner.list_keys(prefix)

    def list_dirs(self, prefix: str) -> list[str]:
        self._call("list")
        return self.inner.list_dirs(prefix)

    def delete(self, key: str) -> None:
        self._call("delete")
        self.inner.delete(key)


@dataclass
class Setup:
    tmp: Path
    shared: FolderTransport
    owner: SyncClient
    sci: SyncClient

    @property
    def owner_ds(self) -> Datasite:
        return self.owner.box.datasite(OWNER)

    @property
    def sci_ds(self) -> Datasite:
        return self.sci.box.datasite(SCI)

    def sci_path(self, rel: str) -> Path:
        return self.sci.box.root / OWNER / rel

    def owner_path(self, rel: str) -> Path:
        return self.owner_ds.root / rel

    def client(self, who: str, transport: Transport) -> SyncClient:
        box = self.owner.box.root if who == OWNER else self.sci.box.root
        return SyncClient(box, who, transport)

    def owner_events(self, what: str) -> list[Event]:
        return [e for e in self.owner_ds.events if e.what == what]

    def keys(self, part: str) -> list[str]:
        return [k for k in self.shared.list_keys() if part in k]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    (tmp_path / "shared").mkdir()
    shared = FolderTransport(tmp_path / "shared")
    Datasite(tmp_path / "owner-box", OWNER).init()
    with (
        SyncClient(tmp_path / "owner-box", OWNER, shared) as owner,
        SyncClient(tmp_path / "sci-box", SCI, shared) as sci,
    ):
        sci.request_peer(OWNER)
        owner.accept_peer(SCI)
        yield Setup(tmp_path, shared, owner, sci)


def job_rel(name: str, *, who: str = SCI, job: str = JOB) -> str:
    return f"jobs/{who}/{job}/{name}"


def write_job(s: Setup) -> None:
    for name, text in {
        "run.sh": "echo hi\n",
        "config.yaml": "name: j\n",
        "code/main.py": "print(1)\n",
        "code/util.py": "X = 2\n",
    }.items():
        path = s.sci_path(job_rel(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def owner_job_files(s: Setup) -> set[str]:
    folder = s.owner_path(f"jobs/{SCI}/{JOB}")
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


ALL_JOB_FILES = {"run.sh", "config.yaml", "code/main.py", "code/util.py"}


# -- transport down ------------------------------------------------------------------------


def test_transport_down_while_pushing(setup: Setup) -> None:
    write_job(setup)
    flaky = setup.client(SCI, FlakyTransport(setup.shared, ops={"put"}, healthy=2))
    with flaky, pytest.raises(TransportError, match="injected outage"):
        flaky.sync_once()
    assert setup.keys("/msgs/") == []  # no manifest: the owner sees nothing
    assert setup.owner.sync_once().applied == []

    assert setup.sci.sync_once().proposed == {OWNER: 4}  # everything is proposed again
    assert len(setup.owner.sync_once().applied) == 4
    assert owner_job_files(setup) == ALL_JOB_FILES
    assert setup.keys(f"inbox/{SCI}/blobs") == []  # the interrupted send's blobs were discarded


def test_transport_down_while_applying(setup: Setup) -> None:
    write_job(setup)
    setup.sci.sync_once()
    flaky = setup.client(OWNER, FlakyTransport(setup.shared, ops={"get"}, healthy=3))
    with flaky, pytest.raises(TransportError):
        flaky.sync_once()
    assert not setup.owner_path(f"jobs/{SCI}/{JOB}").exists()  # nothing half-applied
    assert setup.owner_events("sync.applied") == []

    assert len(setup.owner.sync_once().applied) == 4
    assert owner_job_files(setup) == ALL_JOB_FILES
    assert setup.keys(f"inbox/{SCI}/") == []  # processed messages are removed


def test_transport_down_while_publishing(setup: Setup) -> None:
    (setup.owner_ds.public / "a.csv").write_text("1\n")
    (setup.owner_ds.public / "b.csv").write_text("2\n")
    flaky = setup.client(OWNER, FlakyTransport(setup.shared, ops={"put"}, healthy=1))
    with flaky, pytest.raises(TransportError):
        flaky.sync_once()
    assert setup.owner.sync_once().published == {SCI: 2}
    received = setup.sci.sync_once().received
    assert sorted(a.path for a in received) == ["public/a.csv", "public/b.csv"]
    assert setup.keys(f"outbox/{SCI}/") == []  # consumed, and the half-sent blobs removed


# -- damaged and repeated messages ---------------------------------------------------------


def _damage(setup: Setup, part: str) -> tuple[Path, bytes]:
    [key] = [k for k in setup.keys(part)][:1]
    path = setup.shared.root / key
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])
    return path, original


@pytest.mark.parametrize("part", ["/msgs/", "/blobs/"])
def test_truncated_message_is_rejected_then_retried(setup: Setup, part: str) -> None:
    write_job(setup)
    (setup.sci_path(job_rel("code/main.py"))).write_text("print('x' * 1000)\n" * 50)
    setup.sci.sync_once()
    path, original = _damage(setup, f"inbox/{SCI}{part}")

    for _ in range(2):
        report = setup.owner.sync_once()
        assert report.applied == []
        assert any("digest" in p or "missing" in p for p in report.problems)
    assert not setup.owner_path(f"jobs/{SCI}/{JOB}").exists()
    corrupt = setup.owner_events("sync.message_corrupt")
    assert len(corrupt) == 1 and "digest" in corrupt[0].details["reason"]  # logged once

    path.write_bytes(original)  # the transport recovers (e.g. the share finishes syncing)
    assert len(setup.owner.sync_once().applied) == 4
    assert owner_job_files(setup) == ALL_JOB_FILES


def test_duplicated_message_changes_nothing(setup: Setup) -> None:
    write_job(setup)
    setup.sci.sync_once()
    copy = setup.tmp / "copy"
    shutil.copytree(setup.shared.root / OWNER / "inbox" / SCI, copy)
    setup.owner.sync_once()
    events_before = list(setup.owner_ds.events)

    shutil.copytree(copy, setup.shared.root / OWNER / "inbox" / SCI, dirs_exist_ok=True)
    report = setup.owner.sync_once()  # re-delivered: skipped by id
    assert report.applied == [] and report.rejected == []
    # even with the owner's memory of it gone, applying it again changes nothing
    shutil.copytree(copy, setup.shared.root / OWNER / "inbox" / SCI, dirs_exist_ok=True)
    shutil.rmtree(setup.owner.state.mine / "owner")
    report = setup.owner.sync_once()
    assert report.applied == [] and report.rejected == []
    assert owner_job_files(setup) == ALL_JOB_FILES
    new = [e.what for e in list(setup.owner_ds.events)[len(events_before) :]]
    assert "sync.applied" not in new


# -- what a receiver accepts -------------------------------------------------------------------


def test_a_file_over_the_owners_limit_is_refused_and_the_rest_applied(setup: Setup) -> None:
    write_job(setup)
    setup.sci_path(job_rel("code/big.bin")).write_bytes(os.urandom(5000))
    setup.sci.sync_once()
    limits = ReceiveLimits(max_file_bytes=1000)
    with SyncClient(setup.owner.box.root, OWNER, setup.shared, limits=limits) as owner:
        report = owner.sync_once()
    assert owner_job_files(setup) == ALL_JOB_FILES
    [refused] = report.rejected
    assert refused.rejection.kind == "invalid" and refused.rejection.path == job_rel("code/big.bin")
    assert "5,000 bytes, over this datasite's limit of 1,000" in refused.rejection.reason
    assert [n.rejection.path for n in setup.sci.sync_once().notices] == [job_rel("code/big.bin")]


def test_a_blob_longer_than_declared_is_never_applied(setup: Setup) -> None:
    """A forged manifest declares 3 bytes for a 5,000-byte blob (to slip past the size limit
    and the disk reserve): the blob is not read past what was declared."""
    channel = Channel(setup.shared, OWNER, "inbox", SCI, pool=setup.owner._pool)
    body = os.urandom(5000)
    source = setup.tmp / "long"
    source.write_bytes(body)
    sha = digest_bytes(body)
    change = FileChange(path=job_rel("code/data.bin"), old_digest=None, new_digest=sha, size=3)
    channel.send(
        ChangeMessage(datasite=OWNER, sender=SCI, recipient=OWNER, changes=[change]), {sha: source}
    )
    for _ in range(2):
        report = setup.owner.sync_once()
        assert report.applied == []
        assert any("longer than its declared 3 bytes" in p for p in report.problems)
    assert not setup.owner_path(job_rel("code/data.bin")).exists()
    assert len(setup.owner_events("sync.message_corrupt")) == 1


def test_a_message_that_would_fill_the_disk_waits(setup: Setup) -> None:
    write_job(setup)
    setup.sci.sync_once()
    cramped = ReceiveLimits(min_free_bytes=1 << 62)  # more than any disk: nothing fits
    with SyncClient(setup.owner.box.root, OWNER, setup.shared, limits=cramped) as owner:
        for _ in range(2):
            report = owner.sync_once()
            assert report.applied == []
            assert any("kept free" in p for p in report.problems)
    assert not setup.owner_path(f"jobs/{SCI}/{JOB}").exists()
    assert len(setup.owner_events("sync.no_space")) == 1  # logged once
    assert len(setup.owner.sync_once().applied) == 4  # room again: it is applied


def test_the_scientist_refuses_an_owner_file_over_their_limit(setup: Setup) -> None:
    (setup.owner_ds.public / "big.csv").write_bytes(b"x" * 5000)
    (setup.owner_ds.public / "small.csv").write_bytes(b"y")
    setup.owner.sync_once()
    limits = ReceiveLimits(max_file_bytes=1000)
    with SyncClient(setup.sci.box.root, SCI, setup.shared, limits=limits) as sci:
        report = sci.sync_once()
    assert [r.path for r in report.received] == ["public/small.csv"]
    assert not setup.sci_path("public/big.csv").exists()
    assert any("public/big.csv not taken" in p for p in report.problems)
    assert [e.what for e in setup.sci_ds.events if e.what == "sync.refused_from_peer"] == [
        "sync.refused_from_peer"
    ]


# -- peers ---------------------------------------------------------------------------------


def test_unknown_peer_is_held_until_accepted(setup: Setup) -> None:
    with setup.client(OTHER, setup.shared) as carol:
        carol.request_peer(OWNER)
        folder = carol.box.root / OWNER / "jobs" / OTHER / JOB
        folder.mkdir(parents=True)
        (folder / "run.sh").write_text("echo carol\n")
        carol.sync_once()
        for _ in range(2):
            setup.owner.sync_once()
        assert not setup.owner_path(f"jobs/{OTHER}").exists()
        held = setup.owner_events("sync.held_unknown_peer")
        assert len(held) == 1 and held[0].who == OTHER  # logged once, not on every sync
        requests, _ = setup.owner.pending_requests()
        assert [r.sender for r in requests] == [OTHER]

        setup.owner.accept_peer(OTHER)
        report = setup.owner.sync_once()
        assert [a.path for a in report.applied] == [f"jobs/{OTHER}/{JOB}/run.sh"]


def test_message_claiming_another_sender_is_refused(setup: Setup) -> None:
    """A message in bob's inbox that claims to come from carol is refused whole."""
    channel = Channel(setup.shared, OWNER, "inbox", SCI, pool=setup.owner._pool)
    body = b"echo forged\n"
    source = setup.tmp / "src"
    source.write_bytes(body)
    change = FileChange(
        path=job_rel("run.sh", who=OTHER), old_digest=None, new_digest=digest_bytes(body)
    )
    message = ChangeMessage(datasite=OWNER, sender=OTHER, recipient=OWNER, changes=[change])
    channel.send(message, {digest_bytes(body): source})
    report = setup.owner.sync_once()
    assert report.applied == []
    assert not setup.owner_path(f"jobs/{OTHER}").exists()
    [refused] = setup.owner_events("sync.message_refused")
    assert "claims" in refused.details["reason"]


# -- changes outside the sender's rights ---------------------------------------------------


FORBIDDEN = [
    "public/defaced.csv",
    "api_data/results.json",
    job_rel("run.sh", who=OTHER),  # someone else's job folder
    job_rel("approved"),  # forged status markers in their own job folder
    job_rel("done"),
    job_rel("logs/stdout.txt"),
    job_rel("outputs/result.csv"),
    job_rel(PERMISSION_FILE),  # granting themselves more
    f"jobs/{SCI}/{PERMISSION_FILE}",
]


def test_changes_outside_rights_are_rejected_logged_and_reported(setup: Setup) -> None:
    write_job(setup)
    for rel in FORBIDDEN:
        path = setup.sci_path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("forged\n")
    setup.sci.sync_once()
    report = setup.owner.sync_once()

    assert {a.path for a in report.applied} == {job_rel(n) for n in ALL_JOB_FILES}
    assert {n.rejection.path: n.rejection.kind for n in report.rejected} == {
        rel: "denied" for rel in FORBIDDEN
    }
    for rel in FORBIDDEN:
        assert not setup.owner_path(rel).exists() or setup.owner_path(rel).read_text() != (
            "forged\n"
        )
    logged = {e.path: e.details for e in setup.owner_events("sync.rejected")}
    assert set(logged) == set(FORBIDDEN)
    assert "may not write" in logged[job_rel("approved")]["reason"]
    assert "syft.pub.yaml" in logged[job_rel("approved")]["reason"]  # names the deciding file

    # the scientist is told, and the forged markers vanish from their copy of the job
    back = setup.sci.sync_once()
    assert {n.rejection.path for n in back.notices} == set(FORBIDDEN)
    sci_log = [e for e in setup.sci_ds.events if e.what == "sync.rejected_by_peer"]
    assert len(sci_log) == len(FORBIDDEN)
    assert not setup.sci_path(job_rel("approved")).exists()
    assert not setup.sci_path(job_rel("done")).exists()
    assert setup.sci_path(job_rel("run.sh")).exists()
    # refused changes are not proposed again until edited again
    assert setup.sci.sync_once().proposed == {}


CRAFTED = [
    "../escape.txt",
    "/etc/passwd",
    f"jobs/{SCI}/{JOB}/../../../private/x",
    f"jobs/{SCI}/{JOB}/./run.sh",
    "private/data.csv",
    ".syft/peers.yaml",
    job_rel("code/.env"),
    "jobs\\bob@example.org\\j1\\run.sh",
]


def test_crafted_paths_are_rejected(setup: Setup) -> None:
    """Paths no honest watcher sends: each is refused and nothing lands outside."""
    channel = Channel(setup.shared, OWNER, "inbox", SCI, pool=setup.owner._pool)
    body = b"evil\n"
    source = setup.tmp / "evil"
    source.write_bytes(body)
    sha = digest_bytes(body)
    changes = [FileChange(path=p, old_digest=None, new_digest=sha) for p in CRAFTED]
    changes.append(changes[0])  # the same path twice in one message
    channel.send(
        ChangeMessage(datasite=OWNER, sender=SCI, recipient=OWNER, changes=changes), {sha: source}
    )
    report = setup.owner.sync_once()
    assert report.applied == []
    assert [n.rejection.kind for n in report.rejected] == ["invalid"] * (len(CRAFTED) + 1)
    assert not (setup.owner.box.root / "escape.txt").exists()
    assert not (setup.owner_ds.private / "data.csv").exists()
    assert len(setup.owner_events("sync.rejected")) == len(CRAFTED) + 1


def test_symlink_in_owner_datasite_is_not_followed(setup: Setup) -> None:
    code = setup.owner_path(f"jobs/{SCI}/{JOB}/code")
    code.parent.mkdir(parents=True)
    code.symlink_to(setup.owner_ds.private)  # a permitted path that leads into private/
    write_job(setup)
    setup.sci.sync_once()
    report = setup.owner.sync_once()
    kinds = {n.rejection.path: n.rejection.kind for n in report.rejected}
    assert kinds == {job_rel("code/main.py"): "invalid", job_rel("code/util.py"): "invalid"}
    assert sorted(p.name for p in setup.owner_ds.private.iterdir()) == [PERMISSION_FILE]


def test_symlink_in_scientist_copy_is_not_sent(setup: Setup) -> None:
    write_job(setup)
    secret = setup.tmp / "secret.txt"
    secret.write_text("ssh key\n")
    setup.sci_path(job_rel("code/data.txt")).symlink_to(secret)
    report = setup.sci.sync_once()
    assert report.proposed == {OWNER: 4}
    assert any("symlink" in p and "code/data.txt" in p for p in report.problems)
    setup.owner.sync_once()
    assert "code/data.txt" not in owner_job_files(setup)


# -- conflicts and permission changes ------------------------------------------------------


def test_conflict_keeps_owner_version_and_tells_sender(setup: Setup) -> None:
    write_job(setup)
    setup.sci.sync_once()
    setup.owner.sync_once()
    setup.owner_path(job_rel("run.sh")).write_text("echo owner-edit\n")
    setup.sci_path(job_rel("run.sh")).write_text("echo scientist-edit\n")
    setup.sci.sync_once()
    report = setup.owner.sync_once()
    [notice] = report.rejected
    assert notice.rejection.kind == "conflict" and notice.rejection.path == job_rel("run.sh")
    assert setup.owner_path(job_rel("run.sh")).read_text() == "echo owner-edit\n"
    back = setup.sci.sync_once()
    assert [n.rejection.kind for n in back.notices] == ["conflict"]
    assert setup.sci_path(job_rel("run.sh")).read_text() == "echo owner-edit\n"
    [kept] = conflict_copies(setup)  # the scientist's edit is not lost
    assert kept.read_text() == "echo scientist-edit\n"
    assert any(str(kept) in problem for problem in back.problems)
    assert [e.details["kept"] for e in setup.sci_ds.events if e.what == "sync.conflict_kept"] == [
        str(kept)
    ]
    # now based on the owner's version, the next edit applies
    setup.sci_path(job_rel("run.sh")).write_text("echo merged\n")
    setup.sci.sync_once()
    assert [a.path for a in setup.owner.sync_once().applied] == [job_rel("run.sh")]


def conflict_copies(setup: Setup) -> list[Path]:
    kept = setup.sci.state.mine / "conflicts"
    return sorted(p for p in kept.rglob("*") if p.is_file())


def test_an_edit_overtaken_by_the_owner_is_kept_aside(setup: Setup) -> None:
    """The owner changes a file while the scientist's own edit of it is on its way: the owner's
    version wins (a conflict), and the scientist keeps theirs."""
    write_job(setup)
    setup.sci.sync_once()
    setup.owner.sync_once()
    setup.owner_path(job_rel("code/main.py")).write_text("print('owner')\n")
    setup.owner.sync_once()  # published, not yet received
    setup.sci_path(job_rel("code/main.py")).write_text("print('mine')\n")
    report = setup.sci.sync_once()  # proposes mine, then receives theirs
    assert setup.sci_path(job_rel("code/main.py")).read_text() == "print('owner')\n"
    [kept] = conflict_copies(setup)
    assert kept.read_text() == "print('mine')\n" and kept.name.startswith("main.py.")
    assert len(report.problems) == 1


def test_files_only_the_owner_wrote_are_replaced_without_copies(setup: Setup) -> None:
    public = setup.owner_ds.public
    (public / "mock.csv").write_text("v1\n")
    setup.owner.sync_once()
    setup.sci.sync_once()
    (public / "mock.csv").write_text("v2\n")
    setup.owner.sync_once()
    setup.sci.sync_once()
    (public / "mock.csv").unlink()
    setup.owner.sync_once()
    setup.sci.sync_once()
    assert not setup.sci_path("public/mock.csv").exists()
    assert conflict_copies(setup) == []


def _write_perms(folder: Path, rules: list[dict[str, Any]], terminal: bool = False) -> None:
    (folder / PERMISSION_FILE).write_text(yaml.safe_dump({"terminal": terminal, "rules": rules}))


def test_permission_change_sends_and_withdraws(setup: Setup) -> None:
    api = setup.owner_ds.api_data
    (api / "results.json").write_text('{"n": 1}\n')
    assert setup.owner.sync_once().published == {}  # nobody may read it yet
    _write_perms(api, [{"pattern": "**", "access": {"read": [SCI]}}])
    assert setup.owner.sync_once().published == {SCI: 1}
    setup.sci.sync_once()
    assert setup.sci_path("api_data/results.json").read_text() == '{"n": 1}\n'

    _write_perms(api, [])  # revoked: the file is withdrawn from the scientist's copy
    assert setup.owner.sync_once().published == {SCI: 1}
    [withdrawn] = setup.sci.sync_once().received
    assert withdrawn.deleted and withdrawn.path == "api_data/results.json"
    assert not setup.sci_path("api_data/results.json").exists()


def test_private_and_dotfiles_never_leave(setup: Setup) -> None:
    # even a permission file that opens private/ to everyone does not send it
    _write_perms(setup.owner_ds.private, [{"pattern": "**", "access": {"read": ["*"]}}])
    (setup.owner_ds.private / "real.csv").write_text("secret\n")
    (setup.owner_ds.public / ".env").write_text("TOKEN=1\n")
    (setup.owner_ds.public / ".cache").mkdir()
    (setup.owner_ds.public / ".cache" / "x").write_text("x\n")
    (setup.owner_ds.public / "mock.csv").write_text("fake\n")
    setup.owner.sync_once()
    received = {a.path for a in setup.sci.sync_once().received}
    assert received == {"public/mock.csv"}
    assert all("private" not in k for k in setup.shared.list_keys())


# -- local races ---------------------------------------------------------------------------


class ChangingTransport(FlakyTransport):
    """Appends to the source file just before it is sent (an editor saving mid-sync)."""

    def put_file(
        self, key: str, path: Path, expected_sha: str, callback: ProgressCallback = _no_progress
    ) -> None:
        with path.open("a") as fh:
            fh.write("# edited during the send\n")
        self.inner.put_file(key, path, expected_sha, callback)


def test_file_changed_while_sending_is_resent(setup: Setup) -> None:
    write_job(setup)
    with setup.client(SCI, ChangingTransport(setup.shared, ops=set(), healthy=0)) as racing:
        report = racing.sync_once()
    assert report.proposed == {} and any("changed while" in p for p in report.problems)
    assert setup.keys("/msgs/") == []
    assert setup.sci.sync_once().proposed == {OWNER: 4}
    setup.owner.sync_once()
    assert setup.owner_path(job_rel("run.sh")).read_text().endswith("# edited during the send\n")


def test_a_file_being_written_is_neither_sent_nor_withdrawn(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose content is changing while the owner's snapshot reads it (the read does not
    match the scanned size) is left as the peer has it until it holds still."""
    public = setup.owner_ds.public / "live.csv"
    public.write_text("v1\n")
    setup.owner.sync_once()
    setup.sci.sync_once()
    public.write_text("v2, half written\n")
    real = HashCache.digest

    def growing(self: HashCache, rel: str, path: Path, st: os.stat_result | None = None) -> str:
        if rel == "public/live.csv":
            raise SourceChangedError(f"{path} changed while it was being read")
        return real(self, rel, path, st)

    monkeypatch.setattr(HashCache, "digest", growing)
    assert setup.owner.sync_once().published == {}
    monkeypatch.undo()
    assert setup.sci_path("public/live.csv").read_text() == "v1\n"
    assert setup.owner.sync_once().published == {SCI: 1}
    setup.sci.sync_once()
    assert setup.sci_path("public/live.csv").read_text() == "v2, half written\n"


def test_second_sync_on_same_syftbox_is_refused(setup: Setup) -> None:
    with setup.owner.state.locked(), pytest.raises(SyncBusyError, match="another sync"):
        setup.owner.sync_once()
