"""Draining a channel in order, shared by both roles: verify, check parties, handle, remove.

A corrupt message (digest mismatch, missing blob, a blob longer than declared), or one that does
not fit on the disk with the reserve kept free, stops the drain: it is retried next sync, and the
messages behind it wait, since their old hashes may depend on it. An intact but unacceptable
message is refused for good and logged, and so is one the transport cannot read through its
sender's fault (MalformedValueError: on a shared folder, a link, folder or fifo the sender put
where its manifest or a blob belongs; a manifest over the size limit): retrying could never mend
it, and it must not hold up the messages behind it. A transient transport failure (share
missing, network, an S3 error) is left to abort the pass: it is retried next pass, as it would
fail for every peer alike. Each message is marked processed before it is removed, so a
re-delivered copy (same id) is skipped; re-applying one would change nothing anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from syft_core.sync.channel import Channel
from syft_core.sync.errors import (
    CorruptMessageError,
    InvalidMessageError,
    MalformedValueError,
    NoSpaceError,
)
from syft_core.sync.messages import ChangeMessage
from syft_core.sync.report import SyncReport
from syft_core.sync.state import InboundLog

Handler = Callable[[str, ChangeMessage], None]
Recorder = Callable[..., Any]  # record(what, message_id, **details) -> appends an event


@dataclass(frozen=True)
class Parties:
    datasite: str
    sender: str
    recipient: str

    def check(self, message: ChangeMessage) -> None:
        claimed = Parties(message.datasite, message.sender, message.recipient)
        if claimed != self:
            raise InvalidMessageError(
                f"message claims {claimed.sender} -> {claimed.recipient} about "
                f"{claimed.datasite}'s datasite, but its channel is {self.sender} -> "
                f"{self.recipient} about {self.datasite}'s"
            )


def drain(
    channel: Channel,
    log: InboundLog,
    parties: Parties,
    handle: Handler,
    *,
    record: Recorder,
    save: Callable[[], None],
    report: SyncReport,
) -> None:
    for message_id in channel.pending():
        if message_id not in log.processed:
            try:
                message = channel.read(message_id)
                parties.check(message)
                handle(message_id, message)
            except (CorruptMessageError, NoSpaceError) as exc:
                _note_failure(log, message_id, exc, record, report)
                save()
                return
            except (InvalidMessageError, MalformedValueError) as exc:
                record("sync.message_refused", message_id, reason=str(exc))
                report.problems.append(str(exc))
            log.mark_processed(message_id)
            save()
        try:
            channel.remove(message_id)
        except MalformedValueError as exc:  # e.g. a link planted on the way: it stays, unread
            report.problems.append(f"message {channel.prefix}/{message_id} not removed: {exc}")


def _note_failure(
    log: InboundLog,
    message_id: str,
    exc: CorruptMessageError | NoSpaceError,
    record: Recorder,
    report: SyncReport,
) -> None:
    attempts = log.failing.get(message_id, 0) + 1
    log.failing[message_id] = attempts
    if attempts == 1:  # logged once, not on every retry
        what = "sync.message_corrupt" if isinstance(exc, CorruptMessageError) else "sync.no_space"
        record(what, message_id, reason=str(exc))
    report.problems.append(f"{exc} (attempt {attempts}; retried next sync)")
