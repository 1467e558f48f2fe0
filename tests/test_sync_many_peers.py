"""Issue 14, point 5: what an owner with several peers keeps between passes (OwnerMemory, the
scanner's folder listings) never changes what a pass sends: nothing when nothing changed, a
change only to the peer who may read it, and everything a permission change makes readable or
unreadable. The timing is bench_sync.py's; this asserts the behaviour."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from syft_core.datasite import Datasite
from syft_core.permissions import SyftPermContext
from syft_core.sync import FolderTransport, SyncClient, scope
from syft_core.sync.scope import Scanner, scan_datasite

OWNER = "alice@example.org"
PEERS = [f"p{i}@example.org" for i in range(3)]


def test_a_pass_sends_a_change_only_to_the_peer_who_may_read_it(tmp_path: Path) -> None:
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
        perms.open("shared/p1/").grant_read_access("p2@example.org")
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
    monkeypatch.setattr(scope, "RACY_FOLDER_NS", 0)
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
