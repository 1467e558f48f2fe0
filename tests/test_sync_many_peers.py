"""Issue 14, point 5: what an owner with several peers keeps between passes (OwnerMemory, the
scanner's folder listings) never changes what a pass sends: nothing when nothing changed, a
change only to the peer who may read it, and everything a permission change makes readable or
unreadable. The timing is bench_sync.py's; this asserts the behaviour."""

from __future__ import annotations

import mmap
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from syft_core import filestamp
from syft_core.datasite import Datasite
from syft_core.permissions import SyftPermContext
from syft_core.sync import FolderTransport, SyncClient, scope
from syft_core.sync.scope import Scanner, scan_datasite

OWNER = "alice@example.org"
PEERS = [f"p{i}@example.org" for i in range(3)]


def test_a_pass_sends_a_change_only_to_the_peer_who_may_read_it(tmp_path: Path) -> None:
    share, site = _owner_sharing_a_folder_with_each_peer(tmp_path)
    followers = {p: SyncClient(tmp_path / p, p, FolderTransport(share)) for p in PEERS}
    with SyncClient(site.root.parent, OWNER, FolderTransport(share)) as owner:
        for peer, client in followers.items():
            client.request_peer(OWNER)
            owner.accept_peer(peer)
        first = owner.sync_once().published
        assert set(first) == set(PEERS)
        assert owner.sync_once().published == {}  # idle: nothing changed

        (site.root / "shared/p1/a.txt").write_text("changed, and longer than before\n")
        assert owner.sync_once().published == {"p1@example.org": 1}
        followers["p1@example.org"].sync_once()
        mirror = tmp_path / "p1@example.org" / OWNER / "shared/p1/a.txt"
        assert mirror.read_text() == "changed, and longer than before\n"

        # A permission change alone re-decides who may read what.
        SyftPermContext(site.root).open("shared/p1/").grant_read_access("p2@example.org")
        assert owner.sync_once().published == {"p2@example.org": 2}
        (site.root / "shared/p1/b.txt").unlink()  # withdrawn from both readers
        assert owner.sync_once().published == {"p1@example.org": 1, "p2@example.org": 1}
        assert owner.sync_once().published == {}
    for client in followers.values():
        client.close()


def test_the_scanner_finds_what_a_fresh_scan_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trust every listing at once (no racy window), so that reused listings are what is tested;
    # each change then comes a clock tick after the scan before it.
    monkeypatch.setattr(filestamp, "RACY_NS", 0)
    root = tmp_path / "site"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.txt").write_text("1")
    (root / "a" / "g.txt").write_text("2")
    scanner = Scanner(root)

    def same() -> None:
        time.sleep(0.02)
        mine, fresh = scanner.scan(), scan_datasite(root)
        assert {r: f.stat.st_size for r, f in mine.files.items()} == {
            r: f.stat.st_size for r, f in fresh.files.items()
        }
        assert sorted(mine.skipped) == sorted(fresh.skipped)

    same()
    same()  # every listing reused
    (root / "a" / "g.txt").write_text("longer")  # in place: the folder's mtime does not move
    same()
    (root / "a" / "b" / "f.txt").unlink()
    (root / "a" / "b" / "f.txt").symlink_to(root / "a" / "g.txt")
    same()
    (root / "a" / "b" / "new").mkdir()
    (root / "a" / "b" / "new" / "h.txt").write_text("3")
    same()
    (root / "a" / "g.txt").unlink()
    (root / "a" / "g.txt").mkdir()
    same()


def _sizes(scan: scope.Scan) -> dict[str, int]:
    return {rel: found.stat.st_size for rel, found in scan.files.items()}


def _watching(root: Path, **kwargs: float) -> Scanner:
    scanner = Scanner(root, watch=True, **kwargs)
    scanner.scan()
    if not scanner.watching:
        pytest.skip("inotify is not available here")
    return scanner


def test_a_watching_scanner_finds_what_a_fresh_scan_finds_statting_only_what_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "site"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.txt").write_text("1")
    (root / "a" / "g.txt").write_text("2")
    (root / "c").mkdir()
    for i in range(20):
        (root / "c" / f"{i}.txt").write_text(str(i))
    scanner = _watching(root, full_scan_seconds=3600)
    stats: list[str] = []
    real_lstat = os.lstat

    def counting(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        stats.append(os.fsdecode(path))
        return real_lstat(path, *args, **kwargs)

    def same(changed: set[str]) -> list[str]:
        time.sleep(0.02)  # a clock tick after the last change
        stats.clear()
        with monkeypatch.context() as patched:
            patched.setattr(os, "lstat", counting)
            mine = scanner.scan()
        fresh = scan_datasite(root)
        assert not scanner.last_full
        assert _sizes(mine) == _sizes(fresh)
        assert sorted(mine.skipped) == sorted(fresh.skipped)
        assert mine.changed == changed
        return [p for p in stats if p != os.fspath(root)]

    assert same(set()) == []  # idle: no file, nor folder, is stat'ed
    # An edit in place (the folder's mtime does not move) is seen, and only its folder stat'ed.
    (root / "a" / "g.txt").write_text("3")
    assert all(not p.startswith(os.fspath(root / "c")) for p in same({"a/g.txt"}))
    (root / "a" / "b" / "f.txt").unlink()
    (root / "a" / "b" / "f.txt").symlink_to(root / "a" / "g.txt")
    same({"a/b/f.txt"})
    (root / "a" / "b" / "new").mkdir()
    (root / "a" / "b" / "new" / "h.txt").write_text("3")
    same({"a/b/new/h.txt"})
    (root / "a" / "b" / "new" / "h.txt").write_text("4")  # in a folder first seen last scan
    same({"a/b/new/h.txt"})
    (root / "a" / "g.txt").unlink()
    (root / "a" / "g.txt").mkdir()
    same({"a/g.txt"})
    os.chmod(root / "c" / "3.txt", 0o600)  # metadata only: its stat changes, so it is named
    same({"c/3.txt"})
    (root / "c").rename(root / "d")  # a folder moved: a full scan re-sets every watch
    time.sleep(0.02)
    moved = scanner.scan()
    assert scanner.last_full and _sizes(moved) == _sizes(scan_datasite(root))
    assert moved.changed == {f"{p}/{i}.txt" for p in "cd" for i in range(20)}
    shutil.rmtree(root / "a")
    same({"a/b/new/h.txt"})
    assert same(set()) == []
    scanner.close()


def test_an_overflow_or_the_backstop_makes_a_full_scan(tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir()
    (root / "x.txt").write_text("x")
    (root / "y.txt").write_text("y")
    scanner = _watching(root, full_scan_seconds=3600)
    scanner.scan()
    assert not scanner.last_full
    # More events than the kernel queues (fs.inotify.max_queued_events): IN_Q_OVERFLOW.
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 200_000:
        pytest.skip(f"fs.inotify.max_queued_events is {limit}: too many events to queue here")
    for i in range(limit + 10):  # alternating: identical consecutive events are merged
        os.utime(root / ("x.txt" if i % 2 else "y.txt"), ns=(i, i))
    scanner.scan()
    assert scanner.last_full
    scanner.scan()
    assert not scanner.last_full  # watches set afresh: back to event-driven scans

    # What inotify does not see (a write through a shared mapping of a file no longer open: no
    # event at all; a change made by another machine to a network share) is found by the
    # backstop's full scan.
    (root / "m.bin").write_bytes(bytes(4096))
    time.sleep(0.02)
    assert scanner.scan().changed == {"m.bin"}
    with open(root / "m.bin", "r+b") as fh:
        mem = mmap.mmap(fh.fileno(), 4096)
    assert scanner.scan().changed == set()  # the open and close, but no change
    time.sleep(0.02)
    with mem:
        mem[:5] = b"hello"
        mem.flush()
    scanner.full_scan_seconds = 0.0
    backstop = scanner.scan()
    assert scanner.last_full and backstop.changed == {"m.bin"}
    scanner.close()


def test_a_watching_owner_sends_an_edit_in_place_to_its_one_reader_within_one_pass(
    tmp_path: Path,
) -> None:
    share, site = _owner_sharing_a_folder_with_each_peer(tmp_path)
    followers = {p: SyncClient(tmp_path / p, p, FolderTransport(share)) for p in PEERS}
    with SyncClient(site.root.parent, OWNER, FolderTransport(share), watch=True) as owner:
        for peer, client in followers.items():
            client.request_peer(OWNER)
            owner.accept_peer(peer)
        assert set(owner.sync_once().published) == set(PEERS)
        scanner = owner._owner_memory.scanner
        assert scanner is not None
        if not scanner.watching:
            pytest.skip("inotify is not available here")
        time.sleep(2.1)  # past the racy window: nothing is hashed again unless it changes
        for _ in range(3):
            assert owner.sync_once().published == {}
        assert not scanner.last_full
        # Same size, in place: only the file's own stat changes.
        (site.root / "shared/p1/a.txt").write_text("p1 A.txt\n")
        report = owner.sync_once()
        assert not scanner.last_full
        assert report.published == {"p1@example.org": 1}
        followers["p1@example.org"].sync_once()
        mirror = tmp_path / "p1@example.org" / OWNER / "shared/p1/a.txt"
        assert mirror.read_text() == "p1 A.txt\n"
        assert owner.sync_once().published == {}
        # A permission change alone re-decides who may read what, watched or not.
        SyftPermContext(site.root).open("shared/p1/").grant_read_access("p2@example.org")
        assert owner.sync_once().published == {"p2@example.org": 2}
        (site.root / "shared/p2/b.txt").unlink()
        assert owner.sync_once().published == {"p2@example.org": 1}
        scanner.scan_in_full()
        assert owner.sync_once().published == {}
        assert scanner.last_full
    for client in followers.values():
        client.close()


def _owner_sharing_a_folder_with_each_peer(tmp_path: Path) -> tuple[Path, Datasite]:
    """A shared folder for the transport, and an owner whose `shared/<peer>/` (two files) only
    that peer may read."""
    share = tmp_path / "share"
    share.mkdir()
    site = Datasite(tmp_path / "owner", OWNER).init()
    perms = SyftPermContext(site.root)
    for peer in PEERS:
        name = peer.split("@")[0]
        for file in ("a.txt", "b.txt"):
            path = site.root / "shared" / name / file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{name} {file}\n")
        perms.open(f"shared/{name}/").grant_read_access(peer)
    return share, site
