"""The transport contract, checked on every implementation (memory, folder, real S3), plus what
is specific to each: symlinks and a missing share (folder), outages and per-peer confinement (S3).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from syft_core.sync import (
    FolderTransport,
    MemoryTransport,
    MissingKeyError,
    S3Transport,
    SourceChangedError,
    Transport,
    TransportError,
    transport_from_url,
)
from syft_core.sync.errors import InvalidKeyError, OversizeError, PeerConfigError
from syft_core.sync.hashing import digest_bytes
from tests.fixtures_s3 import OWNER, SCIENTISTS, S3Server

BOB, CAROL = SCIENTISTS


@pytest.fixture(params=["memory", "folder", "s3"])
def transport(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Transport]:
    if request.param == "memory":
        yield MemoryTransport()
    elif request.param == "folder":
        (tmp_path / "t").mkdir()
        yield FolderTransport(tmp_path / "t")
    else:
        server: S3Server = request.getfixturevalue("s3")
        yield server.transport("admin")


def test_round_trip_is_byte_exact(transport: Transport) -> None:
    data = bytes(range(256)) * 1000 + b"\x00\r\n\xff"
    transport.put("a/b/c.bin", io.BytesIO(data))
    with transport.get("a/b/c.bin") as stream:
        assert stream.read() == data
    transport.put_bytes("a/b/c.bin", b"replaced")
    assert transport.get_bytes("a/b/c.bin", max_size=100) == b"replaced"


def test_get_bytes_refuses_oversized_values(transport: Transport) -> None:
    transport.put_bytes("big", b"x" * 5000)
    with pytest.raises(TransportError, match="larger than"):
        transport.get_bytes("big", max_size=4096)


def test_listing(transport: Transport) -> None:
    for key in ("p/inbox/x/msgs/2", "p/inbox/x/msgs/1", "p/inbox/y/msgs/1", "p/outbox/x/1", "q"):
        transport.put_bytes(key, b"1")
    assert transport.list_keys("p/inbox/x/") == ["p/inbox/x/msgs/1", "p/inbox/x/msgs/2"]
    assert transport.list_keys("p/in") == [
        "p/inbox/x/msgs/1",
        "p/inbox/x/msgs/2",
        "p/inbox/y/msgs/1",
    ]
    assert transport.list_dirs("p/inbox") == ["x", "y"]
    assert transport.list_dirs("nothing") == []
    assert len(transport.list_keys()) == 5


def test_delete_is_idempotent(transport: Transport) -> None:
    transport.put_bytes("d/k", b"1")
    transport.put_bytes("d/sub/k", b"1")
    transport.delete("d/k")
    transport.delete("d/k")
    with pytest.raises(MissingKeyError):
        transport.get("d/k")
    transport.delete_prefix("d/")
    assert transport.list_keys("d/") == []


@pytest.mark.parametrize(
    "key", ["", "/abs", "a//b", "a/../b", "..", "a/.hidden", "a\\b", "a/b/", "nul\x00"]
)
def test_malformed_keys_are_refused(transport: Transport, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        transport.put_bytes(key, b"x")


def test_put_file_verifies_content(transport: Transport, tmp_path: Path) -> None:
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(3 << 20))
    good = digest_bytes(source.read_bytes())
    seen: list[int] = []
    transport.put_file("blobs/f", source, good, seen.append)
    assert sum(seen) == 3 << 20  # progress is reported
    assert transport.get_file("blobs/f", tmp_path / "back", max_bytes=3 << 20) == good
    assert (tmp_path / "back").read_bytes() == source.read_bytes()

    with pytest.raises(SourceChangedError):
        transport.put_file("blobs/g", source, "0" * 64)
    assert transport.list_keys("blobs/g") == []  # nothing stored under a lying key


@pytest.mark.parametrize("size", [100, 3 << 20])  # one read; a kernel copy or multipart upload
def test_a_link_swapped_in_after_the_scan_is_never_read(
    transport: Transport, tmp_path: Path, size: int
) -> None:
    # Scanned and hashed as a published file, then replaced by a link to a private one before
    # the send: the private bytes must not reach the channel, not even as a blob refused later.
    secret = tmp_path / "private.csv"
    secret.write_bytes(os.urandom(size))
    published = tmp_path / "public.csv"
    published.write_bytes(os.urandom(size))
    scanned = digest_bytes(published.read_bytes())
    published.unlink()
    published.symlink_to(secret)
    with pytest.raises(SourceChangedError, match="symlink"):
        transport.put_file("blobs/p", published, scanned)
    with pytest.raises(SourceChangedError, match="symlink"):
        transport.put_file("blobs/q", published, digest_bytes(secret.read_bytes()))
    assert transport.list_keys("blobs") == []
    if isinstance(transport, FolderTransport):  # not even a temporary file of it in the share
        held = [f.read_bytes() for f in transport.root.rglob("*") if f.is_file()]
        assert secret.read_bytes() not in held


@pytest.mark.parametrize("size", [100, 3 << 20])  # one read; a kernel copy on the folder
def test_get_file_refuses_a_value_longer_than_allowed(
    transport: Transport, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    transport.put_bytes("blobs/long", data)
    with pytest.raises(OversizeError, match="more than"):
        transport.get_file("blobs/long", tmp_path / "short", max_bytes=size - 1)
    exact = tmp_path / "exact"
    assert transport.get_file("blobs/long", exact, max_bytes=size) == digest_bytes(data)
    assert exact.read_bytes() == data


# -- folder-specific -----------------------------------------------------------------------


def test_folder_refuses_symlinks_planted_in_the_share(tmp_path: Path) -> None:
    share, outside = tmp_path / "share", tmp_path / "outside"
    share.mkdir()
    outside.mkdir()
    (share / "alice@example.org").symlink_to(outside)
    t = FolderTransport(share)
    with pytest.raises(TransportError, match="symlink"):
        t.put_bytes("alice@example.org/outbox/x", b"secret")
    assert list(outside.iterdir()) == []


def test_folder_missing_share_is_an_outage_not_recreated(tmp_path: Path) -> None:
    t = FolderTransport(tmp_path / "unmounted")
    with pytest.raises(TransportError, match="missing"):
        t.put_bytes("a", b"1")
    with pytest.raises(TransportError, match="missing"):
        t.list_keys()
    assert not (tmp_path / "unmounted").exists()


def test_folder_hides_partial_writes(tmp_path: Path) -> None:
    t = FolderTransport(tmp_path)

    class Exploding(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise OSError("disk went away")

    with pytest.raises(TransportError):
        t.put("k", Exploding())
    assert t.list_keys() == []
    assert [p.name for p in tmp_path.iterdir()] == []  # temp file removed too


# -- S3-specific ---------------------------------------------------------------------------


def test_s3_unreachable_endpoint_is_a_transport_error() -> None:
    t = S3Transport(
        "b", endpoint_url="http://127.0.0.1:9", access_key="k", secret_key="s"
    )  # port 9 (discard) is closed on loopback
    with pytest.raises(TransportError):
        t.put_bytes("k", b"1")
    with pytest.raises(TransportError):
        t.list_keys()


def test_s3_wrong_credentials_are_refused(s3: S3Server) -> None:
    t = S3Transport(s3.bucket, endpoint_url=s3.endpoint, access_key="nobody", secret_key="wrong")
    with pytest.raises(TransportError, match="S3 error"):
        t.put_bytes(f"{OWNER}/inbox/{BOB}/msgs/x.json", b"1")


def test_s3_each_peer_is_confined_to_its_own_links(s3: S3Server) -> None:
    """With per-peer credentials, bob cannot pose as carol, nor read what is sent to her."""
    bob = s3.transport(BOB)
    bob.put_bytes(f"{OWNER}/inbox/{BOB}/msgs/m.json", b"mine")
    s3.transport(OWNER).put_bytes(f"{OWNER}/outbox/{CAROL}/msgs/m.json", b"for carol")
    with pytest.raises(TransportError, match="AccessDenied"):
        bob.put_bytes(f"{OWNER}/inbox/{CAROL}/msgs/m.json", b"forged")
    with pytest.raises(TransportError, match="AccessDenied"):
        bob.get_bytes(f"{OWNER}/outbox/{CAROL}/msgs/m.json", max_size=100)
    with pytest.raises(TransportError, match="AccessDenied"):
        bob.put_bytes(f"{OWNER}/outbox/{CAROL}/msgs/n.json", b"forged")


def test_s3_large_values_come_in_parallel_ranges_verified_and_capped(
    s3: S3Server, tmp_path: Path
) -> None:
    MiB = 1 << 20
    small_parts = TransferConfig(multipart_threshold=MiB, multipart_chunksize=MiB)
    admin = s3.transport("admin")
    transport = S3Transport(
        admin.bucket,
        endpoint_url=s3.endpoint,
        access_key=s3.credentials["admin"].access_key,
        secret_key=s3.credentials["admin"].secret_key,
        transfer=small_parts,
    )
    data = os.urandom(5 * MiB + 123)
    transport.put("blobs/big", io.BytesIO(data))
    seen: list[int] = []
    got = tmp_path / "got"
    assert transport.get_file("blobs/big", got, seen.append, max_bytes=len(data)) == digest_bytes(
        data
    )
    assert got.read_bytes() == data and sum(seen) == len(data)
    # Longer than the receiver allows: refused from its announced size, nothing fetched.
    with pytest.raises(OversizeError):
        transport.get_file("blobs/big", tmp_path / "short", max_bytes=len(data) - 1)
    assert not (tmp_path / "short").exists()
    with pytest.raises(FileExistsError):  # never written through an existing name or link
        transport.get_file("blobs/big", got, max_bytes=len(data))


# -- URLs ----------------------------------------------------------------------------------


def test_transport_urls(tmp_path: Path) -> None:
    folder = transport_from_url(f"folder:{tmp_path}")
    assert isinstance(folder, FolderTransport) and folder.root == tmp_path
    bare = transport_from_url(str(tmp_path))
    assert isinstance(bare, FolderTransport) and bare.root == tmp_path
    s3 = transport_from_url("s3://bucket/some/prefix?endpoint=http://127.0.0.1:8333&region=eu")
    assert isinstance(s3, S3Transport)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == (
        "bucket",
        "some/prefix/",
        "http://127.0.0.1:8333",
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("s3://bucket?secret=abc", "unknown parameter"),
        ("s3://?endpoint=http://x", "no bucket"),
        ("http://example.org/x", "use folder:PATH"),
        ("folder:", "empty"),
    ],
)
def test_bad_transport_urls(url: str, why: str) -> None:
    with pytest.raises(PeerConfigError, match=why):
        transport_from_url(url)
