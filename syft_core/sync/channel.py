"""One direction of one peer link on the transport, used as a message queue.

Layout (keys relative to the transport root):
    <datasite>/inbox/<sender>/request.json       a peer request (syft_core.sync.peers)
    <datasite>/inbox/<sender>/msgs/<id>.json     proposed changes from a peer to the owner
    <datasite>/inbox/<sender>/blobs/<id>/<sha>   their contents
    <datasite>/outbox/<peer>/msgs/<id>.json      the owner's published changes and notices
    <datasite>/outbox/<peer>/blobs/<id>/<sha>
    <datasite>/.../blobs/<id>/pack-<n>           many small blobs in one value (sync.packs)
Blobs are written before their manifest, so a manifest a reader can see always has its blobs;
blobs live under their message so that removing a processed message can never take away a blob
another message still needs. With per-peer S3 credentials, each prefix can be confined to the
two parties of its link. On a transport where each value costs system calls of its own (a shared
folder: `pack_small_blobs`), a message's many small blobs travel in packs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from functools import partial
from pathlib import Path
from typing import Literal

from syft_core.safefile import write_new
from syft_core.sync import packs
from syft_core.sync.apply import fsync_files
from syft_core.sync.errors import (
    CorruptMessageError,
    MissingKeyError,
    OversizeError,
    SourceChangedError,
)
from syft_core.sync.messages import (
    MAX_MANIFEST_BYTES,
    ChangeMessage,
    decode_message,
    is_message_id,
)
from syft_core.sync.progress import Advance, NoProgress, Progress
from syft_core.sync.transports.base import Transport

Direction = Literal["inbox", "outbox"]
DestFor = Callable[[str], Path]  # where the blob with this sha is to be written


class Channel:
    def __init__(
        self,
        transport: Transport,
        datasite: str,
        direction: Direction,
        peer: str,
        *,
        pool: Executor,
        progress: Progress | None = None,
    ) -> None:
        self.transport = transport
        self.prefix = f"{datasite}/{direction}/{peer}"
        self.pool = pool
        self.progress = progress or NoProgress()

    def __repr__(self) -> str:
        return f"Channel({self.prefix} on {self.transport.describe()})"

    def _msg_key(self, message_id: str) -> str:
        return f"{self.prefix}/msgs/{message_id}.json"

    def _blob_key(self, message_id: str, sha: str) -> str:
        return f"{self.prefix}/blobs/{message_id}/{sha}"

    def _pack_key(self, message_id: str, index: int) -> str:
        return f"{self.prefix}/blobs/{message_id}/{packs.pack_name(index)}"

    def send(
        self,
        message: ChangeMessage,
        blobs: Mapping[str, Path],
        contents: Mapping[str, bytes] | None = None,
    ) -> str:
        """Write `message` with the content for each sha in `blobs`; return the message id.
        `contents` may hold some of those contents already read (and hashed to their sha) by the
        caller: packed as they are, not read again.

        If anything fails (transport down, a source file changed), the blobs written so far are
        left for `discard` and the manifest is never written: readers see nothing.
        """
        message_id, data = message.encode()
        sizes = {sha: path.stat().st_size for sha, path in blobs.items()}
        with self.progress.transfer(f"sending to {self.prefix}", sum(sizes.values())) as advance:
            packed: set[str] = set()
            if self.transport.pack_small_blobs:
                packed = self._send_packs(message_id, blobs, sizes, contents or {}, advance)
            self._transfer_all(
                [
                    partial(
                        self.transport.put_file, self._blob_key(message_id, sha), path, sha, advance
                    )
                    for sha, path in blobs.items()
                    if sha not in packed
                ]
            )
        self.transport.put_bytes(self._msg_key(message_id), data)
        return message_id

    def _send_packs(
        self,
        message_id: str,
        blobs: Mapping[str, Path],
        sizes: Mapping[str, int],
        known: Mapping[str, bytes],
        advance: Advance,
    ) -> set[str]:
        """Write the small blobs of `blobs` in packs; return their shas. Each content not
        `known` is read once and checked against its digest before its pack is written
        (SourceChangedError)."""
        packed: set[str] = set()
        for index, shas in enumerate(packs.group(sizes)):
            contents = {
                sha: known[sha] if sha in known else packs.read_source(blobs[sha], sha)
                for sha in shas
            }
            pack = packs.build(contents)
            if len(pack) > packs.MAX_PACK_BYTES:  # grown since they were measured
                raise SourceChangedError(f"files sent to {self.prefix} changed while being sent")
            self.transport.put_bytes(self._pack_key(message_id, index), pack)
            advance(sum(len(c) for c in contents.values()))
            packed.update(shas)
        return packed

    def pending(self) -> list[str]:
        """Ids of the messages waiting in this channel, oldest first."""
        ids = []
        for key in self.transport.list_keys(f"{self.prefix}/msgs/"):
            name = key.rsplit("/", 1)[-1].removesuffix(".json")
            if key.endswith(".json") and is_message_id(name):
                ids.append(name)
        return sorted(ids)

    def read(self, message_id: str) -> ChangeMessage:
        data = self.transport.get_bytes(self._msg_key(message_id), max_size=MAX_MANIFEST_BYTES)
        return decode_message(message_id, data, where=f"message {self.prefix}/{message_id}")

    def fetch(
        self,
        message_id: str,
        sizes: Mapping[str, int],
        dest_for: DestFor,
        declared: Mapping[str, int],
    ) -> None:
        """Download each blob (sha -> declared size) to its new file `dest_for(sha)`, prove it
        matches its digest and is no longer than declared; then make them all durable (installing
        one is then a bare rename). `declared`: every blob the message declares (those of changes
        refused too), which is all its packs may hold."""
        dests = {sha: dest_for(sha) for sha in sizes}
        with self.progress.transfer(
            f"receiving from {self.prefix}", sum(sizes.values())
        ) as advance:
            left = dict(sizes)
            if self.transport.pack_small_blobs and left:
                self._fetch_packs(message_id, left, dict(declared), dests.__getitem__, advance)
            self._transfer_all(
                [
                    partial(self._fetch_one, message_id, sha, size, dests[sha], advance)
                    for sha, size in left.items()
                ]
            )
        if dests:
            fsync_files(list(dests.values()), next(iter(dests.values())).parent)

    def _fetch_packs(
        self,
        message_id: str,
        left: dict[str, int],
        declared: dict[str, int],
        dest_for: DestFor,
        advance: Advance,
    ) -> None:
        """Take what the message's packs hold of `left` (sha -> declared size), each content
        proven against its digest and size (packs.unpack); what they held is removed from `left`.
        What no pack held travels blob by blob (a blob that is missing: the message is corrupt)."""

        def write(sha: str, content: bytes) -> None:
            write_new(dest_for(sha), content)
            advance(len(content))

        # A sender's packs each hold at least one blob of the message: more packs than blobs
        # asked for is a flood, and the ones past that are never read.
        for index in range(len(left)):
            key = self._pack_key(message_id, index)
            try:
                data = self.transport.get_bytes(key, max_size=packs.MAX_PACK_BYTES)
            except MissingKeyError:
                return  # no more packs: what is left travels blob by blob
            where = f"pack {index} of message {self.prefix}/{message_id}"
            for sha in packs.unpack(data, declared, left, write, where=where):
                del left[sha]
            if not left:
                return

    def _fetch_one(
        self, message_id: str, sha: str, size: int, dest: Path, advance: Advance
    ) -> None:
        where = f"blob {sha[:12]} of message {self.prefix}/{message_id}"
        key = self._blob_key(message_id, sha)
        try:
            actual = self.transport.get_file(key, dest, advance, max_bytes=size)
        except MissingKeyError as exc:
            raise CorruptMessageError(f"{where} is missing") from exc
        except OversizeError as exc:
            raise CorruptMessageError(
                f"{where} is longer than its declared {size:,} bytes"
            ) from exc
        if actual != sha:
            dest.unlink(missing_ok=True)
            raise CorruptMessageError(f"{where} does not match its blake3 digest (truncated?)")

    def remove(self, message_id: str) -> None:
        """Delete a processed message: manifest first, so no reader sees it without its blobs."""
        self.transport.delete(self._msg_key(message_id))
        self.discard(message_id)

    def discard(self, message_id: str) -> None:
        """Delete the blobs of a message (e.g. one whose send was interrupted)."""
        self.transport.delete_prefix(f"{self.prefix}/blobs/{message_id}/")

    def _transfer_all(self, transfers: list[Callable[[], None]]) -> None:
        """Run every transfer, on the pool when the transport gains from it; raise the first
        failure only once none is left running behind."""
        if not self.transport.parallel_transfers:
            for transfer in transfers:
                transfer()
            return
        futures: list[Future[None]] = [self.pool.submit(transfer) for transfer in transfers]
        errors = [f.exception() for f in futures]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first
