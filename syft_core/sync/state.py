"""The sync's own files (no database): what each link has sent, received and believes.

Everything lives under `<syftbox>/.syft-sync/` (a dot-folder of the syftbox, never synced):
    config.yaml                 this syftbox's email and transport URL (set by the CLI)
    lock                        held by the one sync running on this syftbox
    staging/                    blobs being received (same filesystem: renamed into place)
    <me>/hashes-blake3.json     digest cache of my own datasite
    <me>/owner/<peer>.json      OwnerLink: what I published to a peer, notices owed to them
    <me>/watch/<peer>.json      WatchLink: my manifest of a peer's datasite (the source of truth)
    <me>/unknown.json           messages from not-yet-accepted peers already logged
    <me>/conflicts/<peer>/...   my versions of files a peer's version replaced (kept, not synced)
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from syft_core.atomic import atomic_write_text
from syft_core.filestamp import is_racy, stamp
from syft_core.sync.errors import SyncBusyError, SyncError
from syft_core.sync.messages import Digest, Rejection
from syft_core.sync.scope import NAME_MAX

STATE_DIR = ".syft-sync"
MAX_REMEMBERED_IDS = 1000

M = TypeVar("M", bound=BaseModel)


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InboundLog(_State):
    """Re-delivery guard and retry count for the messages a link receives."""

    processed: list[str] = Field(default_factory=list)
    failing: dict[str, int] = Field(default_factory=dict)  # message id -> failed attempts

    def mark_processed(self, message_id: str) -> None:
        self.processed = [*self.processed, message_id][-MAX_REMEMBERED_IDS:]
        self.failing.pop(message_id, None)


class _Digests(_State):
    # The digests this file holds are BLAKE3. Written into every file; a file without it was
    # written when they were sha256, and is refused by `_load` rather than misread.
    digests: Literal["blake3"] = "blake3"


class OwnerLink(_Digests):
    """My side of a link where I own the datasite and `peer` proposes changes to it."""

    inbound: InboundLog = Field(default_factory=InboundLog)
    published: dict[str, Digest] = Field(default_factory=dict)  # path -> what the peer holds
    pending_rejections: list[Rejection] = Field(default_factory=list)
    in_flight: str | None = None  # an outbox message whose send may have been interrupted


class WatchEntry(_State):
    remote: Digest | None  # what the owner holds, as far as I know (None: no file)
    local: Digest  # my file's content when I last looked at or sent it
    # syft_core.filestamp when `local` was computed; () when too fresh to trust (racy), and an
    # older state's stamp of another shape matches nothing: the file is read again.
    stamp: tuple[int, ...]
    theirs: Digest | None = None  # the content the owner last sent me here (None: never)


class WatchLink(_Digests):
    """My side of a link where `peer` owns the datasite and I propose changes to it."""

    inbound: InboundLog = Field(default_factory=InboundLog)
    files: dict[str, WatchEntry] = Field(default_factory=dict)
    in_flight: str | None = None


class UnknownLog(_State):
    logged: list[str] = Field(default_factory=list)


def stamp_of(st: os.stat_result) -> tuple[int, ...]:
    """The stamp a WatchEntry keeps: none for a file changed too recently to trust it."""
    return () if is_racy(st) else stamp(st)


class SyncState:
    def __init__(self, syftbox_root: Path, email: str) -> None:
        self.root = syftbox_root / STATE_DIR
        self.mine = self.root / email
        self.staging = self.root / "staging"

    def owner_link(self, peer: str) -> OwnerLink:
        return _load(self.mine / "owner" / f"{peer}.json", OwnerLink)

    def save_owner_link(self, peer: str, link: OwnerLink) -> None:
        _save(self.mine / "owner" / f"{peer}.json", link)

    def watch_link(self, peer: str) -> WatchLink:
        return _load(self.mine / "watch" / f"{peer}.json", WatchLink)

    def save_watch_link(self, peer: str, link: WatchLink) -> None:
        _save(self.mine / "watch" / f"{peer}.json", link)

    def unknown_log(self) -> UnknownLog:
        return _load(self.mine / "unknown.json", UnknownLog)

    def save_unknown_log(self, log: UnknownLog) -> None:
        _save(self.mine / "unknown.json", log)

    def conflict_copy(self, peer: str, rel: str) -> Path:
        """A new place for my version of `rel` in `peer`'s datasite, before theirs replaces it:
        `<rel>.<UTC time>`, the name cut short if the time would make it over NAME_MAX bytes."""
        suffix = datetime.now(UTC).strftime(".%Y%m%dT%H%M%S.%fZ").encode()
        folder, _, name = rel.rpartition("/")
        kept = os.fsencode(name)[: NAME_MAX - len(suffix)] + suffix
        return self.mine / "conflicts" / peer / folder / os.fsdecode(kept)

    @property
    def hash_cache_file(self) -> Path:
        return self.mine / "hashes-blake3.json"  # sha256 caches (hashes.json) are ignored

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold this syftbox's sync lock; a second sync on the same syftbox is refused."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise SyncBusyError(f"another sync is running on {self.root.parent}") from exc
            yield
        finally:
            os.close(fd)


def _load(path: Path, model: type[M]) -> M:
    try:
        loaded = model.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return model()
    except (OSError, ValidationError) as exc:
        raise SyncError(f"sync state file {path} is unreadable or damaged: {exc}") from exc
    if isinstance(loaded, _Digests) and "digests" not in loaded.model_fields_set:
        raise SyncError(
            f"sync state file {path} names contents by sha256 (written before the sync moved to "
            f"BLAKE3); move {path.parents[2]} aside and let the sync start afresh"
        )
    return loaded


def _save(path: Path, value: BaseModel) -> None:
    atomic_write_text(path, value.model_dump_json())
