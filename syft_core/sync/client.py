"""One syftbox's sync, both roles at once: owner of my datasite, follower of my peers'.

A pass (`sync_once`) takes the syftbox's lock, then: pulls and applies what accepted peers
proposed to my datasite and publishes to each what they may read; then, for each datasite I
follow, pushes my local changes and applies what its owner published to me.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from syft_core.datasite import SyftBox
from syft_core.filestamp import is_racy, stamp
from syft_core.identity import validate_email
from syft_core.sync.apply import clear_staging
from syft_core.sync.errors import PeerConfigError
from syft_core.sync.limits import ReceiveLimits
from syft_core.sync.messages import PeerRequest
from syft_core.sync.owner import OwnerMemory, OwnerSyncer
from syft_core.sync.peers import PeerBook, PeerList, pending_requests, request_key, send_request
from syft_core.sync.progress import NoProgress, Progress
from syft_core.sync.report import SyncReport
from syft_core.sync.state import SyncState
from syft_core.sync.transports.base import Transport
from syft_core.sync.watcher import WatcherSyncer

DEFAULT_WORKERS = 8  # concurrent blob transfers: many small files are latency-bound on S3


class SyncClient:
    def __init__(
        self,
        syftbox: Path | str,
        email: str,
        transport: Transport,
        *,
        progress: Progress | None = None,
        workers: int = DEFAULT_WORKERS,
        limits: ReceiveLimits | None = None,
        watch: bool = False,
    ) -> None:
        """`watch`: keep inotify watches on my datasite between passes (`watch_datasite`)."""
        self.box = SyftBox(Path(syftbox))
        self.limits = limits or ReceiveLimits()
        self.email = validate_email(email)
        self.transport = transport
        self.state = SyncState(self.box.root, self.email)
        self.progress = progress or NoProgress()
        self._owner_memory = OwnerMemory(watch=watch)  # makes an idle pass cheap; rebuilt
        self._peers: tuple[tuple[int, int, int, int], PeerList] | None = None  # by file stat
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="syft-sync")

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._owner_memory.close()
        self._pool.shutdown(wait=True)

    def watch_datasite(self) -> None:
        """For a client that makes pass after pass (`live.run_forever`): my datasite's folders
        are watched (inotify) so that an idle pass need not stat every file; every file is
        still stat'ed at least every scope.FULL_SCAN_SECONDS (see scope.Scanner). A one-shot
        client need not: its one pass scans in full anyway. Takes effect from the next pass."""
        memory = self._owner_memory
        if not memory.watch:
            memory.watch = True
            if memory.scanner is not None:
                memory.scanner.close()
                memory.scanner = None
                memory.snapshot = None  # published from afresh by the next pass

    @property
    def peer_book(self) -> PeerBook:
        return PeerBook(self.box.datasite(self.email))

    def _peer_list(self) -> PeerList:
        """The peers file, parsed again only when its stat changed (and not within
        RACY_NS of its last write, when a rewrite could leave the stat as it was)."""
        book = self.peer_book
        try:
            st = os.stat(book.path)
        except FileNotFoundError:
            self._peers = None
            return PeerList()
        key = stamp(st)
        if self._peers is not None and self._peers[0] == key:
            return self._peers[1].model_copy(deep=True)
        peers = book.load()
        settled = not is_racy(st)
        self._peers = (key, peers.model_copy(deep=True)) if settled else None
        return peers

    def sync_once(self) -> SyncReport:
        """One full pass. A transient TransportError (share missing, network, an S3 error) or a
        failure of the machine (disk full, an I/O error) aborts it, to be retried; everything
        done so far is kept. What one peer or one change is at fault for never does: it is
        refused or skipped, reported, and the rest of the pass goes on."""
        report = SyncReport()
        with self.state.locked():
            clear_staging(self.state.staging)
            owner = OwnerSyncer(
                self.box.datasite(self.email),
                self.transport,
                self.state,
                pool=self._pool,
                progress=self.progress,
                limits=self.limits,
                memory=self._owner_memory,
            )
            peers = self._peer_list()
            owner.sync(report, peers.accepted)
            watcher = WatcherSyncer(
                self.box,
                self.email,
                self.transport,
                self.state,
                pool=self._pool,
                progress=self.progress,
                limits=self.limits,
            )
            for peer in peers.following:
                watcher.sync(peer, report)
        return report

    def request_peer(self, owner: str, note: str = "") -> None:
        """Ask `owner` to accept me as a peer, and follow their datasite from now on."""
        if owner == self.email:
            raise PeerConfigError(f"{owner} is your own datasite; you cannot be your own peer")
        request = PeerRequest(datasite=validate_email(owner), sender=self.email, note=note)
        send_request(self.transport, request)
        self.peer_book.follow(owner)
        self.box.datasite(self.email).events.append(self.email, "peer.requested", owner)

    def accept_peer(self, peer: str) -> bool:
        """Accept `peer` (creating `jobs/<peer>/`); False if they already were accepted."""
        if peer == self.email:
            raise PeerConfigError(f"{peer} is your own datasite; you cannot be your own peer")
        accepted = self.peer_book.accept(validate_email(peer))
        self.transport.delete(request_key(self.email, peer))
        return accepted

    def peers(self) -> PeerList:
        return self.peer_book.load()

    def pending_requests(self) -> tuple[list[PeerRequest], list[str]]:
        """Peer requests waiting for my answer, and problems with malformed ones."""
        return pending_requests(self.transport, self.email, self.peers().accepted)
