"""Unit tests of the sync's parts: path scope, message integrity, the hash cache, the peers file,
the watcher's manifest logic, state files, and the live loop."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syft_core import filestamp
from syft_core.datasite import Datasite
from syft_core.errors import UnsafePathError
from syft_core.sync import (
    ChangeMessage,
    CorruptMessageError,
    FileChange,
    InvalidMessageError,
    MemoryTransport,
    PeerConfigError,
    SyncClient,
    SyncError,
)
from syft_core.sync.errors import SourceChangedError
from syft_core.sync.hashing import HashCache, digest_as_scanned, digest_bytes
from syft_core.sync.live import run_forever
from syft_core.sync.messages import decode_message
from syft_core.sync.peers import PeerBook
from syft_core.sync.report import SyncReport
from syft_core.sync.scope import is_syncable, safe_target, scan_datasite
from syft_core.sync.state import SyncState, WatchLink

OWNER, SCI = "alice@example.org", "bob@example.org"


@pytest.mark.parametrize(
    ("rel", "ok"),
    [
        ("public/a.csv", True),
        ("jobs/bob@x.org/j/run.sh", True),
        ("private/a.csv", False),
        ("private", False),
        (".syft/events.jsonl", False),
        ("public/.env", False),
        ("jobs/b/j/code/.venv/x", False),
        ("privateer/a", True),
    ],
)
def test_syncable_paths(rel: str, ok: bool) -> None:
    assert is_syncable(rel) is ok


def test_safe_target_refuses_symlinks_and_odd_paths(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "link").symlink_to(tmp_path / "jobs")  # stays inside, still refused
    (tmp_path / "file").write_text("x")
    assert safe_target(tmp_path, "jobs/new/x", what="p") == tmp_path / "jobs" / "new" / "x"
    for rel in ("jobs/link/x", "file/x", "jobs", "../x", "a/./b", "private/x", "a/.env"):
        with pytest.raises(UnsafePathError):
            safe_target(tmp_path, rel, what="p")


def test_scan_skips_symlinks_private_and_dotfiles(tmp_path: Path) -> None:
    for rel in ("public/a", "private/b", "public/.env", ".syft/log", "jobs/x/c"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / "public" / "link").symlink_to(tmp_path / "private" / "b")
    os.mkfifo(tmp_path / "public" / "fifo")
    scan = scan_datasite(tmp_path)
    assert sorted(scan.files) == ["jobs/x/c", "public/a"]
    assert sorted(scan.skipped) == ["public/fifo", "public/link"]


def _message() -> ChangeMessage:
    change = FileChange(path="public/a", old_digest=None, new_digest="a" * 64, size=3)
    return ChangeMessage(
        datasite=OWNER,
        sender=SCI,
        recipient=OWNER,
        created=datetime(2025, 1, 1, tzinfo=UTC),
        changes=[change],
    )


def test_message_ids_are_content_addressed_and_verified() -> None:
    message_id, data = _message().encode()
    assert message_id == _message().encode()[0]  # deterministic: re-sending is idempotent
    assert message_id.endswith(digest_bytes(data))
    assert decode_message(message_id, data, where="m") == _message()
    with pytest.raises(CorruptMessageError, match="digest"):
        decode_message(message_id, data[:-5], where="m")
    with pytest.raises(InvalidMessageError):
        decode_message("not-an-id", data, where="m")


def test_intact_but_malformed_message_is_invalid_not_corrupt() -> None:
    data = b'{"format": 1, "datasite": "not an email"}'
    message_id = f"{0:020d}-{digest_bytes(data)}"
    with pytest.raises(InvalidMessageError, match="malformed manifest"):
        decode_message(message_id, data, where="m")


def test_digests_are_blake3_and_sha256_era_data_is_refused(tmp_path: Path) -> None:
    assert digest_bytes(b"abc") == (
        "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"  # BLAKE3 test vector
    )
    # A format-1 manifest (sha256 digests, *_sha256 fields) is malformed, not misread.
    old = _message().model_dump(mode="json")
    old["format"] = 1
    data = json.dumps(old).encode()
    with pytest.raises(InvalidMessageError, match="malformed manifest"):
        decode_message(f"{0:020d}-{digest_bytes(data)}", data, where="m")
    # A link file written before BLAKE3 (no "digests" marker) is refused, never misread.
    state = SyncState(tmp_path, "me@example.org")
    state.save_watch_link("owner@example.org", WatchLink())
    assert state.watch_link("owner@example.org").digests == "blake3"
    stale = state.mine / "watch" / "owner@example.org.json"
    stale.write_text('{"inbound": {}, "files": {}, "in_flight": null}')
    with pytest.raises(SyncError, match="sha256"):
        state.watch_link("owner@example.org")


def test_hash_cache_reuses_only_settled_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filestamp, "RACY_NS", 50_000_000)
    settled, fresh = tmp_path / "old", tmp_path / "new"
    settled.write_text("one")
    time.sleep(0.1)
    fresh.write_text("two")
    cache = HashCache(tmp_path / "cache.json")
    assert cache.digest("old", settled) == digest_bytes(b"one")
    assert cache.digest("new", fresh) == digest_bytes(b"two")
    cache.save()
    reloaded = HashCache(tmp_path / "cache.json")
    assert set(reloaded._entries) == {"old"}  # a just-written file is never cached
    settled.write_text("ONE")  # a change moves the stamp, so the digest is recomputed
    assert reloaded.digest("old", settled) == digest_bytes(b"ONE")


def test_a_rewrite_that_puts_the_old_mtime_back_is_hashed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `cp -p`, `rsync -t`, `tar x`, `touch -d`: same size, same mtime, new content. Only ctime
    # (which no one can set) moves; a cache keyed without it would publish the old digest forever.
    monkeypatch.setattr(filestamp, "RACY_NS", 50_000_000)
    path = tmp_path / "published.csv"
    path.write_text("a,1\n")
    before = path.stat()
    time.sleep(0.1)
    cache = HashCache(tmp_path / "cache.json")
    assert cache.digest("published.csv", path) == digest_bytes(b"a,1\n")
    cache.save()
    path.write_text("a,9\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    time.sleep(0.1)
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    assert HashCache(tmp_path / "cache.json").digest("published.csv", path) == digest_bytes(
        b"a,9\n"
    )


def test_a_vouched_digest_serves_its_stamp_for_one_pass_only(tmp_path: Path) -> None:
    path = tmp_path / "received"
    path.write_bytes(b"verified")
    cache = HashCache(tmp_path / "cache.json")
    cache.vouch("received", path.stat(), "vouched-digest")
    assert cache.digest("received", path) == "vouched-digest"  # not read again
    cache.save()
    assert HashCache(tmp_path / "cache.json").digest("received", path) == digest_bytes(b"verified")
    path.write_bytes(b"edited!!")  # another stamp: the vouched digest no longer applies
    os.utime(path, ns=(1, 1))
    assert cache.digest("received", path) == digest_bytes(b"edited!!")


def test_a_digest_must_cover_exactly_the_scanned_size(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"12345")
    scanned = path.stat()
    assert digest_as_scanned(path, scanned) == digest_bytes(b"12345")
    path.write_bytes(b"1234567")  # grew after the scan saw it
    with pytest.raises(SourceChangedError, match="changed while it was being read"):
        digest_as_scanned(path, scanned)
    with pytest.raises(SourceChangedError):
        HashCache(tmp_path / "cache.json").digest("f", path, scanned)


def test_damaged_hash_cache_is_just_rebuilt(tmp_path: Path) -> None:
    (tmp_path / "cache.json").write_text("{not json")
    (tmp_path / "f").write_text("x")
    assert HashCache(tmp_path / "cache.json").digest("f", tmp_path / "f") == digest_bytes(b"x")


def test_malformed_peers_file_names_the_file(tmp_path: Path) -> None:
    datasite = Datasite(tmp_path, OWNER).init()
    book = PeerBook(datasite)
    book.path.write_text("accepted: [not-an-email]\n")
    with pytest.raises(PeerConfigError, match=r"peers\.yaml is malformed"):
        book.load()
    book.path.write_text("accepted: [\n")
    with pytest.raises(PeerConfigError, match="unreadable"):
        book.load()


def test_accepting_a_peer_creates_their_jobs_folder(tmp_path: Path) -> None:
    datasite = Datasite(tmp_path, OWNER).init()
    book = PeerBook(datasite)
    assert book.accept(SCI) is True
    assert book.accept(SCI) is False
    assert (datasite.jobs / SCI).is_dir()
    assert book.load().accepted == [SCI]
    assert [e.what for e in datasite.events].count("peer.accepted") == 1


def test_damaged_state_file_is_a_clear_error(tmp_path: Path) -> None:
    Datasite(tmp_path, OWNER).init()
    with SyncClient(tmp_path, OWNER, MemoryTransport()) as client:
        client.peer_book.accept(SCI)
        state = client.state.mine / "owner" / f"{SCI}.json"
        state.parent.mkdir(parents=True)
        state.write_text("{")
        with pytest.raises(SyncError, match=r"bob@example.org\.json is unreadable or damaged"):
            client.sync_once()


def test_touched_but_unchanged_file_is_not_proposed(tmp_path: Path) -> None:
    transport = MemoryTransport()
    with SyncClient(tmp_path, SCI, transport) as sci:
        sci.request_peer(OWNER)
        script = tmp_path / OWNER / "jobs" / SCI / "j" / "run.sh"
        script.parent.mkdir(parents=True)
        script.write_text("echo\n")
        assert sci.sync_once().proposed == {OWNER: 1}
        later = time.time() + 5
        os.utime(script, (later, later))
        assert sci.sync_once().proposed == {}
        script.write_text("echo 2\n")
        assert sci.sync_once().proposed == {OWNER: 1}
        script.unlink()
        assert sci.sync_once().proposed == {OWNER: 1}  # the deletion
        msg_key = sorted(transport.list_keys(f"{OWNER}/inbox/{SCI}/msgs/"))[-1]
        last = ChangeMessage.model_validate_json(transport.get_bytes(msg_key, max_size=10_000))
        assert last.changes[0].is_deletion


def test_live_loop_syncs_soon_after_a_local_change(tmp_path: Path) -> None:
    transport = MemoryTransport()
    reports: list[SyncReport] = []
    stop = threading.Event()
    with SyncClient(tmp_path, SCI, transport) as sci:
        sci.request_peer(OWNER)
        loop = threading.Thread(
            target=run_forever,
            kwargs={
                "client": sci,
                "interval": 30.0,  # long: only the file event can trigger the next pass
                "on_report": reports.append,
                "on_error": lambda exc: None,
                "stop": stop,
            },
        )
        loop.start()
        try:
            _wait_for(lambda: len(reports) >= 1)
            script = tmp_path / OWNER / "jobs" / SCI / "j" / "run.sh"
            script.parent.mkdir(parents=True)
            script.write_text("echo live\n")
            _wait_for(lambda: any(r.proposed for r in reports))
        finally:
            stop.set()
            loop.join(timeout=10)
    assert not loop.is_alive()
    assert [r.proposed for r in reports if r.proposed] == [{OWNER: 1}]


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_you_cannot_be_your_own_peer(tmp_path: Path) -> None:
    with SyncClient(tmp_path, OWNER, MemoryTransport()) as client:
        with pytest.raises(PeerConfigError, match="own datasite"):
            client.request_peer(OWNER)
        with pytest.raises(PeerConfigError, match="own datasite"):
            client.accept_peer(OWNER)
