"""Small blobs in packs, and a message's folders held by descriptor: the attacks on both.

A pack (syft_core.sync.packs) is written by a peer into a shared folder: nothing in it is
trusted. A forged, truncated, oversized or planted pack refuses or retries that message only, and
no content is taken without matching its digest and declared size. On the owner's side, the
folders a message lands in are opened once without following links (syft_core.sync.targets): a
link swapped in on the way while the blobs are fetched (a time-of-check/time-of-use race) is never
followed, and a folder moved away meanwhile is not written into.
"""

from __future__ import annotations

import os
import shutil
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from syft_core.datasite import Datasite
from syft_core.sync import FolderTransport, SyncClient, packs
from syft_core.sync.channel import Channel
from syft_core.sync.errors import CorruptMessageError, InvalidMessageError, SourceChangedError
from syft_core.sync.hashing import digest_bytes
from syft_core.sync.messages import ChangeMessage, FileChange
from syft_core.sync.scope import scan_datasite

OWNER = "alice@example.org"
SCI = "bob@example.org"
COUNT = packs.PACK_FROM + 4  # enough small files for a message to be packed


def _sha(data: bytes) -> str:
    return digest_bytes(data)


# -- the pack format ---------------------------------------------------------------------------


def _unpack(
    data: bytes, wanted: dict[str, int], declared: dict[str, int] | None = None
) -> dict[str, bytes]:
    got: dict[str, bytes] = {}
    packs.unpack(
        data, dict(wanted if declared is None else declared), wanted, got.__setitem__, where="pack"
    )
    return got


def test_a_pack_round_trips_and_skips_what_is_not_wanted() -> None:
    blobs = {_sha(b): b for b in (b"one\n", b"two\n", b"")}
    data = packs.build(blobs)
    wanted = {sha: len(b) for sha, b in blobs.items() if b != b"two\n"}
    declared = {sha: len(b) for sha, b in blobs.items()}
    assert _unpack(data, wanted, declared) == {sha: blobs[sha] for sha in wanted}


def _forged(entries: list[tuple[str, int]], body: bytes) -> bytes:
    index = b"".join(struct.pack(">32sQ", bytes.fromhex(s), n) for s, n in entries)
    return packs.MAGIC + struct.pack(">I", len(entries)) + index + body


GOOD = b"good content\n"
EVIL = b"evil content\n"


@pytest.mark.parametrize(
    ("name", "data", "wanted", "error"),
    [
        # content swapped: the index names GOOD's digest, the body holds EVIL
        ("forged content", _forged([(_sha(GOOD), len(EVIL))], EVIL), {_sha(GOOD): 13}, "digest"),
        # longer than the message declares (same digest: a declared size too small)
        ("over declared size", packs.build({_sha(GOOD): GOOD}), {_sha(GOOD): 5}, "longer"),
        ("truncated", packs.build({_sha(GOOD): GOOD})[:-3], {_sha(GOOD): 13}, "add up"),
        ("padded", packs.build({_sha(GOOD): GOOD}) + b"x", {_sha(GOOD): 13}, "add up"),
        ("index past the end", _forged([(_sha(GOOD), 13)] * 3, b"")[:-20], {}, "index"),
        ("not a pack", b"PK\x03\x04" + GOOD, {_sha(GOOD): 13}, "not a pack"),
        ("huge count", packs.MAGIC + struct.pack(">I", 2**32 - 1), {}, "index"),
    ],
)
def test_a_malformed_pack_is_corrupt(
    name: str, data: bytes, wanted: dict[str, int], error: str
) -> None:
    with pytest.raises(CorruptMessageError, match=error):
        _unpack(data, wanted)


@pytest.mark.parametrize(
    ("name", "data", "declared", "error"),
    [
        ("repeated entry", _forged([(_sha(GOOD), 13)] * 2, GOOD * 2), {_sha(GOOD): 13}, "more"),
        ("undeclared", packs.build({_sha(EVIL): EVIL}), {_sha(GOOD): 13}, "does not declare"),
        (
            "declared, then again",
            _forged([(_sha(GOOD), 13), (_sha(GOOD), 13)], GOOD * 2),
            {_sha(GOOD): 13, _sha(EVIL): 13},
            "again",
        ),
    ],
)
def test_a_pack_holding_what_its_message_does_not_declare_is_refused_for_good(
    name: str, data: bytes, declared: dict[str, int], error: str
) -> None:
    # A sender packs each blob of its message once: anything else is a flood, refused at the
    # index entry that shows it (not retried, and no pack read past it).
    with pytest.raises(InvalidMessageError, match=error):
        _unpack(data, {}, declared)


def test_a_pack_over_the_size_limit_is_corrupt() -> None:
    with pytest.raises(CorruptMessageError, match="larger than"):
        _unpack(b"\0" * (packs.MAX_PACK_BYTES + 1), {})


def test_an_oversized_entry_is_corrupt_even_if_unwanted() -> None:
    size = packs.PACK_BLOB_BYTES + 1
    data = _forged([("0" * 64, size)], b"\0" * size)
    with pytest.raises(CorruptMessageError, match="oversized"):
        _unpack(data, {}, {"0" * 64: size})


def test_a_source_replaced_by_a_link_is_not_packed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(GOOD)
    link = tmp_path / "link"
    link.symlink_to(secret)
    with pytest.raises(SourceChangedError):
        packs.read_source(link, _sha(GOOD))


# -- end to end over a shared folder -----------------------------------------------------------


@dataclass
class Pair:
    root: Path
    shared: FolderTransport
    owner: SyncClient

    @property
    def site(self) -> Path:
        return self.owner.box.root / OWNER

    def send(self, folder: str, count: int = COUNT) -> tuple[str, Path]:
        """A message from bob with `count` small files under `folder`; its id and blob folder."""
        changes, blobs = [], {}
        for i in range(count):
            body = f"file {i} of {folder}\n".encode()
            source = self.root / "sources" / folder / str(i)
            source.parent.mkdir(parents=True, exist_ok=True)
            source.write_bytes(body)
            sha = _sha(body)
            blobs[sha] = source
            changes.append(
                FileChange(
                    path=f"{folder}/f{i}.txt", old_digest=None, new_digest=sha, size=len(body)
                )
            )
        message = ChangeMessage(datasite=OWNER, sender=SCI, recipient=OWNER, changes=changes)
        channel = Channel(self.shared, OWNER, "inbox", SCI, pool=self.owner._pool)
        message_id = channel.send(message, blobs)
        return message_id, self.shared.root / channel.prefix / "blobs" / message_id

    def arrived(self, folder: str) -> list[str]:
        where = self.site / folder
        return sorted(p.name for p in where.iterdir()) if where.is_dir() else []

    def events(self, what: str) -> list[dict[str, Any]]:
        return [e.details for e in self.owner.box.datasite(OWNER).events if e.what == what]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    (tmp_path / "shared").mkdir()
    shared = FolderTransport(tmp_path / "shared")
    Datasite(tmp_path / "owner-box", OWNER).init()
    with (
        SyncClient(tmp_path / "owner-box", OWNER, shared) as owner,
        SyncClient(tmp_path / "bob-box", SCI, shared) as bob,
    ):
        bob.request_peer(OWNER)
        owner.accept_peer(SCI)
        yield Pair(tmp_path, shared, owner)


def test_many_small_files_travel_in_one_pack_and_all_arrive(pair: Pair) -> None:
    _, blobs = pair.send(f"jobs/{SCI}/j/code")
    assert sorted(p.name for p in blobs.iterdir()) == ["pack-0"]
    report = pair.owner.sync_once()
    assert len(report.applied) == COUNT
    assert pair.arrived(f"jobs/{SCI}/j/code") == sorted(f"f{i}.txt" for i in range(COUNT))
    assert not blobs.exists()  # removed with its message


def test_a_forged_pack_applies_nothing_and_is_retried(pair: Pair) -> None:
    _, blobs = pair.send(f"jobs/{SCI}/j/code")
    pack = blobs / "pack-0"
    data = bytearray(pack.read_bytes())
    data[-2] ^= 0xFF  # one byte of the last content
    pack.write_bytes(bytes(data))
    report = pair.owner.sync_once()
    assert report.applied == []
    assert pair.arrived(f"jobs/{SCI}/j/code") == []
    assert "does not match its digest" in pair.events("sync.message_corrupt")[0]["reason"]


def test_pack_flood_a_peer_cannot_make_every_pass_read_unbounded_packs(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resource exhaustion: packs of contents the message never declared (or hard links of one
    huge pack), put ahead of its real one. A sender packs each blob of its message once, so the
    first such entry refuses the message for good: one pack's index is read, and no later pass
    reads it again."""
    _, blobs = pair.send(f"jobs/{SCI}/j/code")
    flood = COUNT + 5
    (blobs / "pack-0").rename(blobs / f"pack-{flood}")
    junk = {_sha(b"%d" % i): b"%d" % i for i in range(1000)}
    (blobs / "pack-0").write_bytes(packs.build(junk))
    for index in range(1, flood):
        os.link(blobs / "pack-0", blobs / f"pack-{index}")
    read: list[str] = []
    get_bytes = pair.shared.get_bytes

    def counted(key: str, max_size: int) -> bytes:
        read.append(key)
        return get_bytes(key, max_size=max_size)

    monkeypatch.setattr(pair.shared, "get_bytes", counted)
    for _ in range(2):
        report = pair.owner.sync_once()
        assert report.applied == [] and pair.arrived(f"jobs/{SCI}/j/code") == []
    assert len([key for key in read if "/pack-" in key]) == 1
    assert "than its message declares" in pair.events("sync.message_refused")[0]["reason"]
    # One junk content among real ones (a count that fits) is refused at its own entry.
    junk_pack = packs.build({_sha(b"junk"): b"junk"})
    with pytest.raises(InvalidMessageError, match="does not declare"):
        packs.unpack(junk_pack, {_sha(b"real"): 4, _sha(b"more"): 4}, {}, print, where="pack")


@pytest.mark.parametrize("hazard", ["link", "fifo", "folder"])
def test_anything_but_a_file_as_a_pack_refuses_that_message_only(pair: Pair, hazard: str) -> None:
    _, blobs = pair.send(f"jobs/{SCI}/j/code")
    pack = blobs / "pack-0"
    elsewhere = pair.root / "elsewhere"
    shutil.move(pack, elsewhere)
    if hazard == "link":
        pack.symlink_to(elsewhere)
    elif hazard == "fifo":
        os.mkfifo(pack)
    else:
        pack.mkdir()
    passes = threading.Thread(target=pair.owner.sync_once, daemon=True)
    passes.start()
    passes.join(timeout=10)
    assert not passes.is_alive(), "the owner's sync pass blocked"
    assert pair.arrived(f"jobs/{SCI}/j/code") == []
    assert elsewhere.exists(), "something was removed through a planted link"
    assert len(pair.events("sync.message_refused")) == 1
    pair.send(f"jobs/{SCI}/j2/code")  # the channel is not blocked
    pair.owner.sync_once()
    assert len(pair.arrived(f"jobs/{SCI}/j2/code")) == COUNT


# -- time of check, time of use: the owner's folders ------------------------------------------


@pytest.mark.parametrize("folder_was", ["there", "new"])
def test_toctou_a_link_swapped_in_while_fetching_is_never_followed(
    pair: Pair, monkeypatch: pytest.MonkeyPatch, folder_was: str
) -> None:
    """Screening found `jobs/bob/j/code` a plain folder (or absent); while the blobs are fetched
    it becomes a link into private/. Nothing may land in private/, nor in the folder that was
    moved away (its descriptor was opened before the swap): the changes are refused."""
    code = pair.site / "jobs" / SCI / "j" / "code"
    if folder_was == "there":
        code.mkdir(parents=True)
    loot = pair.site / "private" / "loot"
    loot.mkdir(parents=True)
    moved = pair.root / "moved-away"
    pair.send(f"jobs/{SCI}/j/code")
    real_fetch = Channel.fetch

    def fetch_then_swap(self: Channel, *args: Any, **kwargs: Any) -> None:
        real_fetch(self, *args, **kwargs)
        if code.exists():
            code.rename(moved)
        code.parent.mkdir(parents=True, exist_ok=True)
        code.symlink_to(loot)

    monkeypatch.setattr(Channel, "fetch", fetch_then_swap)
    report = pair.owner.sync_once()
    assert list(loot.iterdir()) == []
    assert not moved.exists() or list(moved.iterdir()) == []
    assert report.applied == []
    kinds = {n.rejection.kind for n in report.rejected}
    assert kinds == {"invalid"} and len(report.rejected) == COUNT
    assert "symlink" in report.rejected[0].rejection.reason


def test_toctou_a_link_swapped_in_above_a_held_folder_is_never_followed(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race one level up (`jobs/bob/j` swapped for a link, `code` under it held)."""
    job = pair.site / "jobs" / SCI / "j"
    (job / "code").mkdir(parents=True)
    loot = pair.site / "private" / "loot"
    (loot / "code").mkdir(parents=True)
    moved = pair.root / "moved-away"
    pair.send(f"jobs/{SCI}/j/code")
    real_fetch = Channel.fetch

    def fetch_then_swap(self: Channel, *args: Any, **kwargs: Any) -> None:
        real_fetch(self, *args, **kwargs)
        job.rename(moved)
        job.symlink_to(loot)

    monkeypatch.setattr(Channel, "fetch", fetch_then_swap)
    report = pair.owner.sync_once()
    assert list((loot / "code").iterdir()) == []
    assert list((moved / "code").iterdir()) == []
    assert report.applied == [] and len(report.rejected) == COUNT


def test_exfiltration_a_file_swapped_for_a_link_after_the_scan_is_not_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between bob's scan and the read that hashes a file, the file becomes a link to a secret
    of the same size: the secret's bytes must never reach the share (a small file is read
    without following links, and its blob is the very bytes that were hashed)."""
    (tmp_path / "shared").mkdir()
    shared = FolderTransport(tmp_path / "shared")
    secret = tmp_path / "secret"
    secret.write_bytes(b"TOP-SECRET-KEY\n")
    with SyncClient(tmp_path / "bob-box", SCI, shared) as bob:
        bob.request_peer(OWNER)
        code = bob.box.root / OWNER / "jobs" / SCI / "j" / "code"
        code.mkdir(parents=True)
        for i in range(COUNT):
            (code / f"f{i}.txt").write_bytes(f"innocent {i:05d}\n".encode())

        def scan_then_swap(root: Path) -> Any:
            found = scan_datasite(root)
            (code / "f3.txt").unlink()
            (code / "f3.txt").symlink_to(secret)
            return found

        monkeypatch.setattr("syft_core.sync.watcher.scan_datasite", scan_then_swap)
        report = bob.sync_once()
    assert report.proposed == {OWNER: COUNT - 1}
    for path in (tmp_path / "shared").rglob("*"):
        if path.is_file():
            assert b"TOP-SECRET" not in path.read_bytes(), path
