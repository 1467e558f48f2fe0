"""The scientist's side: propose my local changes to a peer's datasite, apply what they publish.

My copy of `<syftbox>/<owner>/` is compared with a manifest of content digests (the source of truth;
a stat stamp only avoids re-reading unchanged files). Each entry remembers what the owner holds
(`remote`) and what my file held when I last looked (`local`): a file is proposed when its content
differs from `local`, with `remote` as the old hash the owner checks against. Rejection notices move
`remote` to what the owner says it has, so a refused change is not proposed again until I edit the
file again.

Published changes from the owner are trusted for content (the owner decides what its datasite
holds) but not for paths: they must stay inside my copy of that datasite, with no symlink on the
way, never under `private/` or a dot-folder, and be paths a file system can hold. A change that
cannot be put in place for a reason of its own is skipped and logged (`sync.refused_from_peer`);
the rest of the message, and the owner's later messages, still apply.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from syft_core.datasite import Datasite, SyftBox
from syft_core.errors import UnsafePathError
from syft_core.sync import packs
from syft_core.sync.apply import Staging, current_sha, install
from syft_core.sync.channel import Channel
from syft_core.sync.errors import MalformedValueError, SourceChangedError, is_environmental
from syft_core.sync.hashing import digest_as_scanned, digest_bytes
from syft_core.sync.inbound import Parties, drain
from syft_core.sync.limits import ReceiveLimits
from syft_core.sync.messages import ChangeMessage, FileChange, Rejection, written_bytes
from syft_core.sync.progress import Progress
from syft_core.sync.report import Applied, Notice, SyncReport
from syft_core.sync.scope import ScannedFile, safe_target, scan_datasite
from syft_core.sync.state import SyncState, WatchEntry, WatchLink, stamp_of
from syft_core.sync.transports.base import Transport

KEEP_READ_BYTES = 64 << 20  # small files' contents kept from hashing to sending, in all
MAX_LOGGED_REJECTIONS = 1000  # of one message, in my event log (all are in the report)
MAX_REASON_CHARS = 1000  # of an owner's reason, in my event log


class WatcherSyncer:
    def __init__(
        self,
        box: SyftBox,
        me: str,
        transport: Transport,
        state: SyncState,
        *,
        pool: Executor,
        progress: Progress,
        limits: ReceiveLimits,
    ) -> None:
        self.box = box
        self.me = me
        self.transport = transport
        self.state = state
        self.pool = pool
        self.progress = progress
        self.limits = limits

    @property
    def my_datasite(self) -> Datasite:
        return self.box.datasite(self.me)

    def _record(self, owner: str, what: str, path: str, **details: Any) -> None:
        """Events about my links go to my own datasite's log."""
        self.my_datasite.events.append(owner, what, path, **details)

    def sync(self, owner: str, report: SyncReport) -> None:
        """Push my local changes to `owner`'s datasite first, then take theirs."""
        try:
            self.push(owner, report)
        except MalformedValueError as exc:  # e.g. a link planted in my inbox at the owner
            report.problems.append(f"proposing to {owner}: {exc}; retried next sync")
        self.sync_down(owner, report)

    # -- proposing ---------------------------------------------------------------------------

    def push(self, owner: str, report: SyncReport) -> None:
        link = self.state.watch_link(owner)
        channel = Channel(
            self.transport, owner, "inbox", self.me, pool=self.pool, progress=self.progress
        )
        if link.in_flight is not None:
            channel.discard(link.in_flight)
            link.in_flight = None
        scan = scan_datasite(self.box.datasite(owner).root)
        for rel in scan.skipped:
            report.problems.append(f"{owner}/{rel} is a symlink or special file; not sent")
        # Entries of files I deleted that the owner never had need no message: just forget them.
        link.files = {r: e for r, e in link.files.items() if r in scan.files or e.remote}
        changes, updates, contents = self._local_changes(link, scan.files)
        if not changes:
            link.files.update(updates)
            self.state.save_watch_link(owner, link)
            return
        message = ChangeMessage(datasite=owner, sender=self.me, recipient=owner, changes=changes)
        link.in_flight, _ = message.encode()
        self.state.save_watch_link(owner, link)
        blobs = {c.new_digest: scan.files[c.path].path for c in changes if c.new_digest}
        try:
            message_id = channel.send(message, blobs, contents)
        except SourceChangedError as exc:
            report.problems.append(f"proposing to {owner}: {exc}; retried next sync")
            return
        for change in changes:
            if change.is_deletion:
                link.files.pop(change.path, None)
        link.files.update(updates)
        link.in_flight = None
        self.state.save_watch_link(owner, link)
        self._record(
            owner, "sync.proposed", f"{owner}", message_id=message_id, changes=len(changes)
        )
        report.proposed[owner] = report.proposed.get(owner, 0) + len(changes)

    def _local_changes(
        self, link: WatchLink, files: dict[str, ScannedFile]
    ) -> tuple[list[FileChange], dict[str, WatchEntry], dict[str, bytes]]:
        """Changes to propose, the manifest entries to record once they are sent, and the
        contents of small files as read to hash them (sha -> bytes), when the transport packs
        them: sent as read, within KEEP_READ_BYTES in all."""
        changes: list[FileChange] = []
        updates: dict[str, WatchEntry] = {}
        contents: dict[str, bytes] = {}
        budget = KEEP_READ_BYTES if self.transport.pack_small_blobs else 0
        for rel, found in sorted(files.items()):
            entry = link.files.get(rel)
            stamp = stamp_of(found.stat)
            if entry is not None and entry.stamp and entry.stamp == stamp:
                continue
            data = None
            try:
                if found.stat.st_size <= min(budget, packs.PACK_BLOB_BYTES):
                    data = packs.read_as_scanned(found.path, found.stat)
                    sha = digest_bytes(data)
                else:
                    sha = digest_as_scanned(found.path, found.stat)
            except FileNotFoundError:
                continue  # deleted while scanning; the next scan proposes the deletion
            except SourceChangedError:
                continue  # being written; proposed once it holds still
            remote = entry.remote if entry is not None else None
            if (entry is None or sha != entry.local) and sha != remote:
                changes.append(
                    FileChange(path=rel, old_digest=remote, new_digest=sha, size=found.stat.st_size)
                )
                remote = sha
                if data is not None:
                    contents[sha] = data
                    budget -= len(data)
            theirs = entry.theirs if entry is not None else None
            updates[rel] = WatchEntry(remote=remote, local=sha, stamp=stamp, theirs=theirs)
        for rel, entry in sorted(link.files.items()):
            if rel not in files and entry.remote is not None:
                changes.append(FileChange(path=rel, old_digest=entry.remote, new_digest=None))
        return changes, updates, contents

    # -- receiving ---------------------------------------------------------------------------

    def sync_down(self, owner: str, report: SyncReport) -> None:
        """Apply what `owner` published to me, and surface their rejection notices."""
        link = self.state.watch_link(owner)
        channel = Channel(
            self.transport, owner, "outbox", self.me, pool=self.pool, progress=self.progress
        )

        def record(what: str, message_id: str, **details: Any) -> None:
            self._record(owner, what, f"{owner}", message_id=message_id, **details)

        def handle(message_id: str, message: ChangeMessage) -> None:
            self._take_notices(owner, message.rejections, link, report)
            self._apply(owner, message_id, message, link, channel, report)

        drain(
            channel,
            link.inbound,
            Parties(datasite=owner, sender=owner, recipient=self.me),
            handle,
            record=record,
            save=lambda: self.state.save_watch_link(owner, link),
            report=report,
        )

    def _refuse(self, owner: str, reason: str, report: SyncReport) -> None:
        self._record(owner, "sync.refused_from_peer", f"{owner}", reason=reason)
        report.problems.append(reason)

    def _keep_mine(
        self,
        owner: str,
        rel: str,
        target: Path,
        current: str,
        link: WatchLink,
        report: SyncReport,
    ) -> Path | None:
        """Move my version of `rel` aside before `owner`'s replaces or removes it, if it is one
        the owner does not hold (an edit they refused, or one not yet sent): nothing I wrote is
        lost to a conflict. Where it was kept, or None if it needed no keeping."""
        entry = link.files.get(rel)
        if entry is not None and current == entry.theirs:
            return None  # what the owner sent me last: nothing of mine in it
        kept = self.state.conflict_copy(owner, rel)
        kept.parent.mkdir(parents=True, exist_ok=True)
        os.replace(target, kept)
        self._record(owner, "sync.conflict_kept", f"{owner}/{rel}", blake3=current, kept=str(kept))
        report.problems.append(
            f"{owner}/{rel}: {owner}'s version replaced yours; yours is kept at {kept}"
        )
        return kept

    def _take_notices(
        self, owner: str, rejections: list[Rejection], link: WatchLink, report: SyncReport
    ) -> None:
        for index, rejection in enumerate(rejections):
            if index < MAX_LOGGED_REJECTIONS:  # the owner's words in my log: bounded
                self._record(
                    owner,
                    "sync.rejected_by_peer",
                    f"{owner}/{rejection.path}",
                    kind=rejection.kind,
                    reason=rejection.reason[:MAX_REASON_CHARS],
                    message_id=rejection.message_id,
                )
            report.notices.append(Notice(owner, rejection))
            entry = link.files.get(rejection.path)
            if entry is not None:
                link.files[rejection.path] = entry.model_copy(
                    update={"remote": rejection.owner_digest}
                )

    def _apply(
        self,
        owner: str,
        message_id: str,
        message: ChangeMessage,
        link: WatchLink,
        channel: Channel,
        report: SyncReport,
    ) -> None:
        root = self.box.datasite(owner).root
        accepted: list[FileChange] = []
        refused = 0

        def refuse(reason: str) -> None:
            nonlocal refused
            refused += 1
            if refused <= MAX_LOGGED_REJECTIONS:  # one message cannot grow my log without end
                self._refuse(owner, reason, report)

        for change in message.changes:
            try:
                safe_target(root, change.path, what=f"path published by {owner}")
            except UnsafePathError as exc:
                refuse(str(exc))
                continue
            too_large = change.new_digest is not None and self.limits.too_large(change.size)
            if too_large:
                refuse(f"{owner}/{change.path} not taken: {too_large}")
                continue
            accepted.append(change)
        if refused > MAX_LOGGED_REJECTIONS:
            self._refuse(owner, f"{refused - MAX_LOGGED_REJECTIONS:,} more paths refused", report)
        with Staging(self.state.staging, message_id) as staging:
            blobs = {c.new_digest: c.size for c in accepted if c.new_digest is not None}
            # Every write counts, not every content: one blob may be named by many paths.
            self.limits.require_room(staging.folder, written_bytes(accepted))
            channel.fetch(message_id, blobs, staging.path_for, message.declared)
            uses = Counter(c.new_digest for c in accepted if c.new_digest is not None)
            for change in accepted:
                try:
                    self._put_in_place(owner, root, change, staging, uses, link, report)
                except UnsafePathError as exc:
                    report.problems.append(str(exc))
                    continue
                except OSError as exc:
                    if is_environmental(exc):
                        raise
                    reason = f"{owner}/{change.path} could not be written: {exc.strerror}"
                    self._refuse(owner, reason, report)
                    continue
                report.received.append(Applied(owner, change.path, change.is_deletion))

    def _put_in_place(
        self,
        owner: str,
        root: Path,
        change: FileChange,
        staging: Staging,
        uses: Counter[str],
        link: WatchLink,
        report: SyncReport,
    ) -> None:
        # Again: a symlink could have appeared while the blobs were fetched.
        target = safe_target(root, change.path, what=f"path published by {owner}")
        current = current_sha(target)
        kept = None
        if current not in (change.new_digest, None):
            kept = self._keep_mine(owner, change.path, target, current, link, report)
        try:
            if change.new_digest is None:
                target.unlink(missing_ok=True)
                link.files.pop(change.path, None)
                return
            if current != change.new_digest:
                uses[change.new_digest] -= 1
                staged = staging.path_for(change.new_digest)
                install(staged, target, consume=uses[change.new_digest] == 0)
            sha = change.new_digest
            link.files[change.path] = WatchEntry(
                remote=sha, local=sha, stamp=stamp_of(target.stat()), theirs=sha
            )
        except BaseException:
            if kept is not None and not os.path.lexists(target):
                with contextlib.suppress(OSError):  # mine back: the owner's did not land
                    os.replace(kept, target)
            raise
