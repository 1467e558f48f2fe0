"""The owner's side: apply what accepted peers may write, publish what each peer may read.

Every proposed change is screened before any byte of it is fetched: its path must be a plain
syncable path with no symlink on the way, and the sender must have write access to it under the
permission files as they are on disk now (reloaded for each message). Allowed changes are then
fetched, verified and applied one by one, each only if the owner's file is still what the sender
based it on (its old sha256); anything else is rejected, logged in the owner's event log with the
reason, and reported back to the sender in the next published message. A change the file system
refuses for a reason of its own (say a file where its folder belongs, appeared since it was
screened) is rejected as `invalid` too: one change never fails the pass. Only a failure of the
machine itself (disk full, an I/O error: errors.is_environmental) does, to be retried next pass.

Publishing compares, per peer, every file the peer may read now with what the peer was last sent;
new and changed files are sent, and files the peer may no longer read are withdrawn (deleted on
their side). `private/` and dotfiles are excluded before permissions are even consulted.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from syft_core.datasite import Datasite
from syft_core.errors import UnsafePathError
from syft_core.events import Event
from syft_core.identity import is_valid_email
from syft_core.permissions import AccessLevel, SyftPermContext
from syft_core.sync.apply import Staging
from syft_core.sync.channel import Channel, Direction
from syft_core.sync.errors import MalformedValueError, SourceChangedError, is_environmental
from syft_core.sync.hashing import HashCache
from syft_core.sync.inbound import Parties, drain
from syft_core.sync.limits import ReceiveLimits
from syft_core.sync.messages import ChangeMessage, FileChange, Rejection, RejectionKind
from syft_core.sync.peers import PeerBook
from syft_core.sync.progress import Progress
from syft_core.sync.report import Applied, Notice, SyncReport
from syft_core.sync.scope import Scanner
from syft_core.sync.state import OwnerLink, SyncState
from syft_core.sync.targets import Folders, install_at, sha_at
from syft_core.sync.transports.base import Transport


class OwnerMemory:
    """What a client's owner side keeps between passes so that an idle pass costs little: the
    permission engine (reloaded each pass, touching only changed permission files), the digest
    cache, the folder listings of the last scan, the last snapshot and, per peer, which of its
    files that peer may read. Only an optimisation: every piece is rebuilt from the folder by a
    client's first pass and checked against the folder by every later one (the permission files
    by their stats, the files by theirs), so the folder stays the only state."""

    def __init__(self) -> None:
        self.perms: SyftPermContext | None = None
        self.hashes: HashCache | None = None
        self.scanner: Scanner | None = None
        self.snapshot: Snapshot | None = None
        self.readable: dict[str, dict[str, tuple[str, int, Path]]] = {}
        self.permissions_changed = True  # since the readable sets were computed


@dataclass(frozen=True)
class Snapshot:
    """My datasite's syncable files at one moment: path -> (sha256, size, absolute path)."""

    files: dict[str, tuple[str, int, Path]]
    unsettled: set[str]  # found, but changing while read: left as the peers have them


class OwnerSyncer:
    def __init__(
        self,
        datasite: Datasite,
        transport: Transport,
        state: SyncState,
        *,
        pool: Executor,
        progress: Progress,
        limits: ReceiveLimits,
        memory: OwnerMemory | None = None,
    ) -> None:
        self.memory = memory = memory or OwnerMemory()
        self.datasite = datasite
        self.limits = limits
        self.me = datasite.email
        self.transport = transport
        self.state = state
        self.pool = pool
        self.progress = progress
        if memory.perms is None:
            memory.perms = SyftPermContext(datasite=datasite.root)
        self.perms = memory.perms
        self._links: dict[str, OwnerLink] = {}  # loaded by this pass

    @cached_property
    def hashes(self) -> HashCache:
        """The digest cache of my datasite, read from disk only by the first pass that needs it."""
        if self.memory.hashes is None:
            self.memory.hashes = HashCache(self.state.hash_cache_file)
        self.memory.hashes.begin_pass()
        return self.memory.hashes

    def _link(self, peer: str) -> OwnerLink:
        link = self._links.get(peer)
        if link is None:
            link = self._links[peer] = self.state.owner_link(peer)
        return link

    def sync(self, report: SyncReport) -> None:
        accepted = PeerBook(self.datasite).load().accepted
        for peer in accepted:
            self._pull(peer, report)
        self._note_unknown(accepted, report)
        if not accepted:
            return
        previous = self.memory.snapshot
        self.memory.snapshot = None  # until this pass has published from the new one
        snapshot = self._snapshot(self.hashes)
        self.hashes.save()
        self._reload_permissions()
        changed: set[str] | None = None  # None: every file, for every peer
        if previous is not None and not self.memory.permissions_changed:
            changed = {
                rel for rel, entry in snapshot.files.items() if previous.files.get(rel) != entry
            }
            changed.update(rel for rel in previous.files if rel not in snapshot.files)
        if changed is None:
            self.memory.readable.clear()
        for peer in accepted:
            try:
                self._publish(peer, snapshot, self._readable(peer, snapshot, changed), report)
            except MalformedValueError as exc:  # e.g. a link planted in that peer's outbox
                report.problems.append(f"publishing to {peer}: {exc}; retried next sync")
        self.memory.snapshot = snapshot
        self.memory.permissions_changed = False

    def _reload_permissions(self) -> None:
        reloaded = self.perms.reload()
        if reloaded.files_loaded or reloaded.files_removed:
            self.memory.permissions_changed = True  # until a pass has published under them

    def _readable(
        self, peer: str, snapshot: Snapshot, changed: set[str] | None
    ) -> dict[str, tuple[str, int, Path]]:
        """The files of `snapshot` that `peer` may read now. Permissions depend on the path and
        the permission files only, so with neither changed since the last pass (`changed` holds
        the paths whose content changed, appeared or went) only those paths are checked again."""
        readable = self.memory.readable.get(peer)
        if readable is None or changed is None:
            readable = {
                rel: entry
                for rel, entry in snapshot.files.items()
                if self.perms.check(peer, rel, AccessLevel.READ)
            }
        else:
            for rel in changed:
                entry = snapshot.files.get(rel)
                if entry is not None and self.perms.check(peer, rel, AccessLevel.READ):
                    readable[rel] = entry
                else:
                    readable.pop(rel, None)
        self.memory.readable[peer] = readable
        return readable

    def _channel(self, direction: Direction, peer: str) -> Channel:
        return Channel(
            self.transport, self.me, direction, peer, pool=self.pool, progress=self.progress
        )

    # -- receiving -------------------------------------------------------------------------

    def _pull(self, peer: str, report: SyncReport) -> None:
        link = self._link(peer)
        channel = self._channel("inbox", peer)

        def record(what: str, message_id: str, **details: Any) -> None:
            where = f"inbox/{peer}"
            self.datasite.events.append(peer, what, where, message_id=message_id, **details)

        def handle(message_id: str, message: ChangeMessage) -> None:
            self._apply(peer, message_id, message, link, channel, report)

        drain(
            channel,
            link.inbound,
            Parties(datasite=self.me, sender=peer, recipient=self.me),
            handle,
            record=record,
            save=lambda: self.state.save_owner_link(peer, link),
            report=report,
        )

    def _apply(
        self,
        peer: str,
        message_id: str,
        message: ChangeMessage,
        link: OwnerLink,
        channel: Channel,
        report: SyncReport,
    ) -> None:
        self._reload_permissions()  # permission files may have changed since the last message
        allowed: list[FileChange] = []
        rejections: list[tuple[FileChange, Rejection]] = []
        seen: set[str] = set()
        events: list[Event] = []
        with Folders(self.datasite.root, what=f"path from {peer}") as folders:
            for change in message.changes:
                refused = self._screen(peer, message_id, change, seen, folders)
                if refused is None:
                    allowed.append(change)
                else:
                    rejections.append((change, refused))
                seen.add(change.path)
            try:
                with Staging(self.state.staging, message_id) as staging:
                    blobs = {c.new_sha256: c.size for c in allowed if c.new_sha256 is not None}
                    self.limits.require_room(staging.folder, sum(blobs.values()))
                    channel.fetch(message_id, blobs, staging.path_for)
                    folders.revalidate()  # anything moved or linked while the blobs came
                    uses = Counter(c.new_sha256 for c in allowed if c.new_sha256 is not None)
                    for change in sorted(allowed, key=_apply_order):
                        outcome = self._apply_one(peer, message_id, change, staging, uses, folders)
                        if isinstance(outcome, Rejection):
                            rejections.append((change, outcome))
                            continue
                        if outcome == "changed":
                            events.append(_applied_event(peer, message_id, change))
                            report.applied.append(Applied(peer, change.path, change.is_deletion))
                        _believe(link, change.path, change.new_sha256)
            finally:  # what was put in place is logged, even if the pass stops here
                self.datasite.events.append_many(events)
        events = [self._reject(peer, change, r, link, report) for change, r in rejections]
        self.datasite.events.append_many(events)

    def _screen(
        self,
        peer: str,
        message_id: str,
        change: FileChange,
        seen: set[str],
        folders: Folders,
    ) -> Rejection | None:
        """Why `change` may not be applied at all, before anything of it is fetched."""

        def reject(kind: RejectionKind, reason: str) -> Rejection:
            return Rejection(path=change.path, kind=kind, reason=reason, message_id=message_id)

        if change.path in seen:
            return reject("invalid", "the path appears more than once in one message")
        try:
            folders.examine(folders.check(change.path))
        except UnsafePathError as exc:
            return reject("invalid", str(exc))
        if not self.perms.check(peer, change.path, AccessLevel.WRITE):
            # The explanation is produced only for a refusal (it costs as much as the check).
            verdict = self.perms.explain(peer, change.path, AccessLevel.WRITE)
            return reject("denied", f"{peer} may not write {change.path}: {verdict.detail}")
        too_large = change.new_sha256 is not None and self.limits.too_large(change.size)
        if too_large:
            return reject("invalid", f"{change.path} not accepted: {too_large}")
        return None

    def _apply_one(
        self,
        peer: str,
        message_id: str,
        change: FileChange,
        staging: Staging,
        uses: Counter[str],
        folders: Folders,
    ) -> Rejection | Literal["changed", "unchanged"]:
        try:
            return self._put_in_place(peer, message_id, change, staging, uses, folders)
        except OSError as exc:
            if is_environmental(exc):
                raise
            return Rejection(
                path=change.path,
                kind="invalid",
                reason=f"{change.path} could not be written on {self.me}'s side: {exc.strerror}",
                message_id=message_id,
            )

    def _put_in_place(
        self,
        peer: str,
        message_id: str,
        change: FileChange,
        staging: Staging,
        uses: Counter[str],
        folders: Folders,
    ) -> Rejection | Literal["changed", "unchanged"]:
        # Through the folder descriptors screening opened and `revalidate` proved: a link that
        # appeared on the way since is never followed, and the file itself is examined again.
        try:
            fd, name, _ = folders.examine(change.path)
            current = sha_at(fd, name) if fd is not None else None
        except UnsafePathError as exc:
            return Rejection(
                path=change.path, kind="invalid", reason=str(exc), message_id=message_id
            )
        if current == change.new_sha256:
            return "unchanged"  # already in place (a re-delivery, or both sides made this change)
        if current != change.old_sha256:
            readable = self.perms.check(peer, change.path, AccessLevel.READ)
            return Rejection(
                path=change.path,
                kind="conflict",
                reason=f"{change.path} changed on {self.me}'s side since {peer} last saw it",
                message_id=message_id,
                owner_sha256=current if readable else None,
            )
        if change.new_sha256 is None:
            assert fd is not None  # there was a file to delete
            os.unlink(name, dir_fd=fd)
        else:
            if fd is None:  # its folder is new: made now, through its parents' descriptors
                try:
                    fd, name, _ = folders.examine(change.path, create=True)
                except UnsafePathError as exc:
                    return Rejection(
                        path=change.path, kind="invalid", reason=str(exc), message_id=message_id
                    )
                assert fd is not None
            uses[change.new_sha256] -= 1
            staged = staging.path_for(change.new_sha256)
            verified = staged.stat()  # the rename below keeps this inode, size and mtime
            install_at(staged, fd, name, consume=uses[change.new_sha256] == 0)
            # The snapshot this pass publishes from need not read it again (200 MiB: 0.14 s).
            self.hashes.vouch(change.path, verified, change.new_sha256)
        return "changed"

    def _reject(
        self,
        peer: str,
        change: FileChange,
        rejection: Rejection,
        link: OwnerLink,
        report: SyncReport,
    ) -> Event:
        """Note `rejection` for `peer` and the report; the event to log for it."""
        link.pending_rejections.append(rejection)
        report.rejected.append(Notice(peer, rejection))
        if rejection.kind != "invalid":
            # The peer still holds its own version: publishing then reverts it to mine wherever
            # they may read (e.g. a forged `approved` marker is withdrawn from their copy).
            _believe(link, change.path, change.new_sha256)
        details = {
            "kind": rejection.kind,
            "reason": rejection.reason,
            "message_id": rejection.message_id,
        }
        return Event(who=peer, what="sync.rejected", path=change.path, details=details)

    def _note_unknown(self, accepted: list[str], report: SyncReport) -> None:
        """Log (once) messages waiting from senders I have not accepted; they stay unapplied."""
        log = self.state.unknown_log()
        waiting: list[str] = []
        for sender in self.transport.list_dirs(f"{self.me}/inbox"):
            if sender in accepted or not is_valid_email(sender):
                continue
            for message_id in self._channel("inbox", sender).pending():
                key = f"{sender}/{message_id}"
                waiting.append(key)
                if key not in log.logged:
                    self.datasite.events.append(
                        sender, "sync.held_unknown_peer", f"inbox/{sender}", message_id=message_id
                    )
                    report.held.append(key)
        if waiting != log.logged:
            self.state.save_unknown_log(log.model_copy(update={"logged": waiting}))

    # -- publishing ------------------------------------------------------------------------

    def _snapshot(self, cache: HashCache) -> Snapshot:
        if self.memory.scanner is None:
            self.memory.scanner = Scanner(self.datasite.root)
        scan = self.memory.scanner.scan()
        before = self.memory.snapshot.files if self.memory.snapshot is not None else {}
        files: dict[str, tuple[str, int, Path]] = {}
        unsettled: set[str] = set()
        for rel, found in scan.files.items():
            try:
                sha = cache.digest(rel, found.path, found.stat)
                entry = before.get(rel)
                if entry is None or entry[0] != sha or entry[2] is not found.path:
                    entry = (sha, found.stat.st_size, found.path)
                files[rel] = entry
            except FileNotFoundError:
                continue  # deleted while scanning: it simply is not in this snapshot
            except SourceChangedError:
                unsettled.add(rel)  # being written: published once it holds still
        cache.keep_only(set(files) | unsettled)
        return Snapshot(files, unsettled)

    def _publish(
        self,
        peer: str,
        snapshot: Snapshot,
        readable: dict[str, tuple[str, int, Path]],
        report: SyncReport,
    ) -> None:
        link = self._link(peer)
        channel = self._channel("outbox", peer)
        if link.in_flight is not None:
            channel.discard(link.in_flight)
        changes = [
            FileChange(path=rel, old_sha256=link.published.get(rel), new_sha256=sha, size=size)
            for rel, (sha, size, _) in sorted(readable.items())
            if link.published.get(rel) != sha
        ]
        changes += [
            FileChange(path=rel, old_sha256=sha, new_sha256=None)
            for rel, sha in sorted(link.published.items())
            if rel not in readable and rel not in snapshot.unsettled
        ]
        if not changes and not link.pending_rejections:
            return
        message = ChangeMessage(
            datasite=self.me,
            sender=self.me,
            recipient=peer,
            changes=changes,
            rejections=link.pending_rejections,
        )
        message_id, _ = message.encode()
        link.in_flight = message_id
        self.state.save_owner_link(peer, link)
        blobs = {c.new_sha256: readable[c.path][2] for c in changes if c.new_sha256 is not None}
        try:
            channel.send(message, blobs)
        except SourceChangedError as exc:
            report.problems.append(f"publishing to {peer}: {exc}; retried next sync")
            return
        for change in changes:
            _believe(link, change.path, change.new_sha256)
        link.pending_rejections = []
        link.in_flight = None
        self.state.save_owner_link(peer, link)
        withdrawn = sum(1 for c in changes if c.is_deletion)
        self.datasite.events.append(
            self.me,
            "sync.published",
            f"outbox/{peer}",
            message_id=message_id,
            changes=len(changes) - withdrawn,
            withdrawn=withdrawn,
            rejections=len(message.rejections),
        )
        report.published[peer] = report.published.get(peer, 0) + len(changes)


def _applied_event(peer: str, message_id: str, change: FileChange) -> Event:
    if change.new_sha256 is None:
        details: dict[str, Any] = {"message_id": message_id}
        return Event(who=peer, what="sync.deleted", path=change.path, details=details)
    details = {"sha256": change.new_sha256, "message_id": message_id}
    return Event(who=peer, what="sync.applied", path=change.path, details=details)


def _apply_order(change: FileChange) -> tuple[bool, str]:
    """A job's config.yaml goes in after the rest of its message: until it is there the folder
    is no job (a submission is written whole, so it arrives in one message), and a policy can
    never approve, nor the runner run, a submission still being put in place."""
    parts = change.path.split("/")
    return (len(parts) == 4 and parts[0] == "jobs" and parts[3] == "config.yaml", change.path)


def _believe(link: OwnerLink, path: str, sha: str | None) -> None:
    """Record that the peer now holds `sha` at `path` (None: no file)."""
    if sha is None:
        link.published.pop(path, None)
    else:
        link.published[path] = sha
