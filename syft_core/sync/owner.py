"""The owner's side: apply what accepted peers may write, publish what each peer may read.

Every proposed change is screened before any byte of it is fetched: its path must be a plain
syncable path with no symlink on the way, and the sender must have write access to it under the
permission files as they are on disk now (reloaded for each message). Allowed changes are then
fetched, verified and applied one by one, each only if the owner's file is still what the sender
based it on (its old digest); anything else is rejected, logged in the owner's event log with the
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
from syft_core.filestamp import Stamp, is_racy, lstamp
from syft_core.identity import is_valid_email
from syft_core.permissions import AccessLevel, SyftPermContext
from syft_core.sync.apply import Staging
from syft_core.sync.channel import Channel, Direction
from syft_core.sync.errors import MalformedValueError, SourceChangedError, is_environmental
from syft_core.sync.hashing import HashCache
from syft_core.sync.inbound import Parties, drain
from syft_core.sync.limits import ReceiveLimits
from syft_core.sync.messages import (
    MAX_MANIFEST_BYTES,
    ChangeMessage,
    FileChange,
    Rejection,
    RejectionKind,
    written_bytes,
)
from syft_core.sync.peers import PeerBook
from syft_core.sync.progress import Progress
from syft_core.sync.report import Applied, Notice, SyncReport
from syft_core.sync.scope import Scanner
from syft_core.sync.state import OwnerLink, SyncState
from syft_core.sync.targets import Folders, digest_at, install_at
from syft_core.sync.transports.base import Transport

MAX_REJECTIONS = 1000  # refusals of one message told back one by one; the rest in one line
PUBLISH_MANIFEST_BYTES = MAX_MANIFEST_BYTES // 2  # what one outbound message holds, at most
ENTRY_OVERHEAD_BYTES = 512  # a change's or rejection's JSON beyond its path and reason


class OwnerMemory:
    """What a client's owner side keeps between passes so that an idle pass costs little: the
    permission engine (reloaded each pass, touching only changed permission files), the digest
    cache, the folder listings of the last scan, the last snapshot and, per peer, which of its
    files that peer may read. Only an optimisation: every piece is rebuilt from the folder by a
    client's first pass and checked against the folder by every later one (the permission files
    by their stats, the files by theirs), so the folder stays the only state."""

    def __init__(self, *, watch: bool = False) -> None:
        self.watch = watch  # the scanner keeps inotify watches (a long-lived client)
        self.perms: SyftPermContext | None = None
        self.hashes: HashCache | None = None
        self.scanner: Scanner | None = None
        self.snapshot: Snapshot | None = None
        self.racy: set[str] = set()  # digests taken within RACY_NS of a write: taken again
        self.readable: dict[str, dict[str, tuple[str, int, Path]]] = {}
        self.permissions_changed = True  # since the readable sets were computed
        # Per peer: the link as last loaded or saved, by its file's stat; and the stat its file
        # had when a publish last left nothing to send to that peer.
        self.links: dict[str, tuple[Stamp | None, OwnerLink]] = {}
        self.settled: dict[str, Stamp | None] = {}

    def forget_links(self) -> None:
        """After a pass that failed: a link may hold changes its file does not."""
        self.links.clear()
        self.settled.clear()

    def close(self) -> None:
        if self.scanner is not None:
            self.scanner.close()


@dataclass(frozen=True)
class Snapshot:
    """My datasite's syncable files at one moment: path -> (digest, size, absolute path)."""

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

    def _link_path(self, peer: str) -> Path:
        return self.state.mine / "owner" / f"{peer}.json"

    def _link(self, peer: str) -> OwnerLink:
        """`peer`'s link, loaded once per pass; parsed again only when its file changed."""
        link = self._links.get(peer)
        if link is None:
            key = lstamp(self._link_path(peer))
            kept = self.memory.links.get(peer)
            if kept is not None and key is not None and kept[0] == key:
                link = kept[1]
            else:
                link = self.state.owner_link(peer)
                self.memory.links[peer] = (key, link)
            self._links[peer] = link
        return link

    def _save_link(self, peer: str, link: OwnerLink) -> Stamp | None:
        self.state.save_owner_link(peer, link)
        key = lstamp(self._link_path(peer))
        self.memory.links[peer] = (key, link)
        return key

    def sync(self, report: SyncReport, accepted: list[str] | None = None) -> None:
        """One pass of the owner's side; `accepted`: the accepted peers, if already read."""
        try:
            self._sync(
                report, PeerBook(self.datasite).load().accepted if accepted is None else accepted
            )
        except BaseException:
            self.memory.forget_links()
            raise

    def _sync(self, report: SyncReport, accepted: list[str]) -> None:
        for peer in accepted:
            self._pull(peer, report)
        self._note_unknown(accepted, report)
        if not accepted:
            return
        previous = self.memory.snapshot
        self.memory.snapshot = None  # until this pass has published from the new one
        snapshot, changed = self._snapshot(self.hashes, previous)
        self.hashes.save()
        self._reload_permissions()
        if self.memory.permissions_changed:
            changed = None  # None: every file, for every peer
        if changed is None:
            self.memory.readable.clear()
            self.memory.settled.clear()
        for gone in self.memory.readable.keys() - set(accepted):  # kept up to date no longer
            del self.memory.readable[gone]
            self.memory.settled.pop(gone, None)
        for peer in accepted:
            readable, touched = self._readable(peer, snapshot, changed)
            if not touched and self.memory.settled.get(peer, False) == lstamp(
                self._link_path(peer)
            ):
                continue  # nothing it may read changed, nor its link since nothing was left
            try:
                self._publish(peer, snapshot, readable, report)
            except MalformedValueError as exc:  # e.g. a link planted in that peer's outbox
                report.problems.append(f"publishing to {peer}: {exc}; retried next sync")
        self.memory.snapshot = snapshot
        self.memory.permissions_changed = False

    def _reload_permissions(self) -> bool:
        """Permission files read again where they changed; whether any did."""
        reloaded = self.perms.reload()
        changed = bool(reloaded.files_loaded or reloaded.files_removed)
        if changed:
            self.memory.permissions_changed = True  # until a pass has published under them
        return changed

    def _readable(
        self, peer: str, snapshot: Snapshot, changed: set[str] | None
    ) -> tuple[dict[str, tuple[str, int, Path]], bool]:
        """The files of `snapshot` that `peer` may read now, and whether that differs from the
        last pass. Permissions depend on the path and the permission files only, so with
        neither changed since the last pass (`changed` holds the paths whose content changed,
        appeared or went) only those paths are checked again."""
        readable = self.memory.readable.get(peer)
        touched = False
        if readable is None or changed is None:
            readable = {
                rel: entry
                for rel, entry in snapshot.files.items()
                if self.perms.check(peer, rel, AccessLevel.READ)
            }
            touched = True
        else:
            for rel in changed:
                entry = snapshot.files.get(rel)
                if entry is not None and self.perms.check(peer, rel, AccessLevel.READ):
                    readable[rel] = entry
                    touched = True
                elif readable.pop(rel, None) is not None:
                    touched = True
        self.memory.readable[peer] = readable
        return readable, touched

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
                    blobs = {c.new_digest: c.size for c in allowed if c.new_digest is not None}
                    # Every write counts, not every content: one blob may be named by many paths.
                    self.limits.require_room(staging.folder, written_bytes(allowed))
                    channel.fetch(message_id, blobs, staging.path_for, message.declared)
                    folders.revalidate()  # anything moved or linked while the blobs came
                    revised = self._reload_permissions()  # ... or a permission file changed
                    uses = Counter(c.new_digest for c in allowed if c.new_digest is not None)
                    for change in sorted(allowed, key=_apply_order):
                        if revised and not self.perms.check(peer, change.path, AccessLevel.WRITE):
                            rejections.append((change, self._denied(peer, message_id, change)))
                            continue
                        outcome = self._apply_one(peer, message_id, change, staging, uses, folders)
                        if isinstance(outcome, Rejection):
                            rejections.append((change, outcome))
                            continue
                        if outcome == "changed":
                            events.append(_applied_event(peer, message_id, change))
                            report.applied.append(Applied(peer, change.path, change.is_deletion))
                        _believe(link, change.path, change.new_digest)
            finally:  # what was put in place is logged, even if the pass stops here
                self.datasite.events.append_many(events)
        events = [
            self._reject(peer, change, r, link, report)
            for change, r in _few(peer, message_id, rejections, link)
        ]
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
            clean = folders.check(change.path)
        except UnsafePathError as exc:
            return reject("invalid", str(exc))
        # Permission before anything is looked up on disk, and one reason for every refusal:
        # what is there, or which rule refused it, would tell the peer about files it may not
        # read (the owner's log keeps the explanation).
        if not self.perms.check(peer, clean, AccessLevel.WRITE):
            return self._denied(peer, message_id, change)
        try:
            folders.examine(clean)
        except UnsafePathError as exc:
            return reject("invalid", str(exc))
        too_large = change.new_digest is not None and self.limits.too_large(change.size)
        if too_large:
            return reject("invalid", f"{change.path} not accepted: {too_large}")
        return None

    @staticmethod
    def _denied(peer: str, message_id: str, change: FileChange) -> Rejection:
        return Rejection(
            path=change.path,
            kind="denied",
            reason=f"{peer} may not write {change.path}",
            message_id=message_id,
        )

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
            current = digest_at(fd, name) if fd is not None else None
        except UnsafePathError as exc:
            return Rejection(
                path=change.path, kind="invalid", reason=str(exc), message_id=message_id
            )
        if current == change.new_digest:
            return "unchanged"  # already in place (a re-delivery, or both sides made this change)
        if current != change.old_digest:
            readable = self.perms.check(peer, change.path, AccessLevel.READ)
            return Rejection(
                path=change.path,
                kind="conflict",
                reason=f"{change.path} changed on {self.me}'s side since {peer} last saw it",
                message_id=message_id,
                owner_digest=current if readable else None,
            )
        if change.new_digest is None:
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
            uses[change.new_digest] -= 1
            staged = staging.path_for(change.new_digest)
            verified = staged.stat()
            install_at(staged, fd, name, consume=uses[change.new_digest] == 0)
            # The snapshot this pass publishes from need not read it again (200 MiB: 0.14 s).
            # A rename keeps the inode, size and mtime (it moves ctime): still the verified file.
            placed = os.stat(name, dir_fd=fd, follow_symlinks=False)
            same = (verified.st_ino, verified.st_size, verified.st_mtime_ns)
            if (placed.st_ino, placed.st_size, placed.st_mtime_ns) == same:
                self.hashes.vouch(change.path, placed, change.new_digest)
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
            _believe(link, change.path, change.new_digest)
        reason = rejection.reason
        if rejection.kind == "denied":
            # Which rule refused it, for the owner's log only (the peer is told no more than
            # that it may not). Produced only for a refusal: it costs as much as the check.
            verdict = self.perms.explain(peer, change.path, AccessLevel.WRITE)
            reason = f"{reason}: {verdict.detail}"
        details = {"kind": rejection.kind, "reason": reason, "message_id": rejection.message_id}
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

    def _snapshot(
        self, cache: HashCache, previous: Snapshot | None
    ) -> tuple[Snapshot, set[str] | None]:
        """My files now, and the paths whose entry differs from `previous` (None: unknown).

        From a previous snapshot, only the files the scan found changed (appeared, stat changed,
        gone) are looked at again, with those found being written last time and those whose
        digest was taken within RACY_NS of their last write (a write in the same mtime tick
        leaves the stat as it was: the hash cache keeps no digest for them, and neither does
        this). Without one, every file is (each digest from the cache when its stat is known)."""
        if self.memory.scanner is None:
            self.memory.scanner = Scanner(self.datasite.root, watch=self.memory.watch)
        scan = self.memory.scanner.scan()
        racy: set[str] = set()
        unsettled: set[str] = set()
        if previous is None or scan.changed is None:
            files: dict[str, tuple[str, int, Path]] = {}
            for rel, found in scan.files.items():
                try:
                    sha = cache.digest(rel, found.path, found.stat)
                except FileNotFoundError:
                    continue  # deleted while scanning: it simply is not in this snapshot
                except SourceChangedError:
                    unsettled.add(rel)  # being written: published once it holds still
                    continue
                files[rel] = (sha, found.stat.st_size, found.path)
                if is_racy(found.stat):
                    racy.add(rel)
            cache.keep_only(set(files) | unsettled)
            self.memory.racy = racy
            return Snapshot(files, unsettled), None
        files = dict(previous.files)
        changed: set[str] = set()
        for rel in scan.changed | self.memory.racy | previous.unsettled:
            now_found = scan.files.get(rel)
            entry = None
            if now_found is not None:
                try:
                    sha = cache.digest(rel, now_found.path, now_found.stat)
                    entry = (sha, now_found.stat.st_size, now_found.path)
                    if is_racy(now_found.stat):
                        racy.add(rel)
                except FileNotFoundError:
                    pass  # deleted while scanning: it simply is not in this snapshot
                except SourceChangedError:
                    unsettled.add(rel)  # being written: published once it holds still
            if entry is None:
                if files.pop(rel, None) is not None:
                    changed.add(rel)
            elif files.get(rel) != entry:
                files[rel] = entry
                changed.add(rel)
        if len(files) < len(previous.files) or scan.changed - scan.files.keys():
            cache.keep_only(set(files) | unsettled)
        self.memory.racy = racy
        return Snapshot(files, unsettled), changed

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
            FileChange(path=rel, old_digest=link.published.get(rel), new_digest=sha, size=size)
            for rel, (sha, size, _) in sorted(readable.items())
            if link.published.get(rel) != sha
        ]
        changes += [
            FileChange(path=rel, old_digest=sha, new_digest=None)
            for rel, sha in sorted(link.published.items())
            if rel not in readable and rel not in snapshot.unsettled
        ]
        if not changes and not link.pending_rejections:
            if link.in_flight is None:
                self.memory.settled[peer] = lstamp(self._link_path(peer))
            return
        changes, rejections, left = _fitting(changes, link.pending_rejections)
        message = ChangeMessage(
            datasite=self.me,
            sender=self.me,
            recipient=peer,
            changes=changes,
            rejections=rejections,
        )
        message_id, _ = message.encode()
        link.in_flight = message_id
        self._save_link(peer, link)
        blobs = {c.new_digest: readable[c.path][2] for c in changes if c.new_digest is not None}
        try:
            channel.send(message, blobs)
        except SourceChangedError as exc:
            report.problems.append(f"publishing to {peer}: {exc}; retried next sync")
            return
        for change in changes:
            _believe(link, change.path, change.new_digest)
        link.pending_rejections = link.pending_rejections[len(rejections) :]
        link.in_flight = None
        saved = self._save_link(peer, link)
        if left:  # more than one manifest holds: the next pass sends the rest
            self.memory.settled.pop(peer, None)
        else:
            self.memory.settled[peer] = saved
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


def _few(
    peer: str, message_id: str, rejections: list[tuple[FileChange, Rejection]], link: OwnerLink
) -> list[tuple[FileChange, Rejection]]:
    """At most MAX_REJECTIONS of one message told back and logged one by one; the rest in one
    line. A message of a million refused changes costs the owner no more than a thousand."""
    if len(rejections) <= MAX_REJECTIONS:
        return rejections
    kept, rest = rejections[:MAX_REJECTIONS], rejections[MAX_REJECTIONS:]
    for change, rejection in rest:
        if rejection.kind != "invalid":
            _believe(link, change.path, change.new_digest)  # as _reject does
    first = rest[0][0]
    summary = Rejection(
        path=first.path,
        kind="invalid",
        reason=f"this and {len(rest) - 1:,} more changes of {peer}'s message were refused; "
        f"only the first {MAX_REJECTIONS:,} refusals of a message are listed",
        message_id=message_id,
    )
    return [*kept, (first, summary)]


def _fitting(
    changes: list[FileChange], rejections: list[Rejection]
) -> tuple[list[FileChange], list[Rejection], bool]:
    """The changes, then the rejections, that fit one manifest (PUBLISH_MANIFEST_BYTES, well
    within what a receiver reads: MAX_MANIFEST_BYTES), and whether any were left for the next
    one. Sizes are estimated from the paths and reasons, the only fields of unbounded length."""
    budget = PUBLISH_MANIFEST_BYTES
    fit: list[FileChange] = []
    for change in changes:
        budget -= len(change.path.encode()) + ENTRY_OVERHEAD_BYTES
        if budget < 0:
            return fit, [], True
        fit.append(change)
    told: list[Rejection] = []
    for rejection in rejections:
        budget -= len(rejection.path.encode()) + len(rejection.reason.encode())
        budget -= ENTRY_OVERHEAD_BYTES
        if budget < 0:
            return fit, told, True
        told.append(rejection)
    return fit, told, False


def _applied_event(peer: str, message_id: str, change: FileChange) -> Event:
    if change.new_digest is None:
        details: dict[str, Any] = {"message_id": message_id}
        return Event(who=peer, what="sync.deleted", path=change.path, details=details)
    details = {"blake3": change.new_digest, "message_id": message_id}
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
