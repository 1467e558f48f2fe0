"""What travels: a message is a JSON manifest (these models) plus one blob per new file content.

Messages are content-addressed: a message's id is `<created-ns>-<digest of its manifest bytes>`
and each blob's key ends in the digest of its content (BLAKE3-256 in hex, see
syft_core.sync.hashing), so a reader can prove that what it got is what was sent, and
re-delivering the same message changes nothing.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from syft_core.events import utcnow
from syft_core.identity import validate_email
from syft_core.sync.errors import CorruptMessageError, InvalidMessageError
from syft_core.sync.hashing import digest_bytes

Email = Annotated[str, AfterValidator(validate_email)]
Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]  # BLAKE3-256, hex
MAX_MANIFEST_BYTES = 64 << 20
_ID_RE = re.compile(r"^(?P<ns>[0-9]{20})-(?P<sha>[0-9a-f]{64})$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileChange(_Model):
    """One proposed or published change: a new content (`new_digest`) or a deletion (None).

    `old_digest` is the content the sender believes the recipient has (None: no file); the owner
    treats a mismatch with its actual file as a conflict.
    """

    path: str
    old_digest: Digest | None
    new_digest: Digest | None
    size: int = Field(default=0, ge=0)

    @property
    def is_deletion(self) -> bool:
        return self.new_digest is None


RejectionKind = Literal["denied", "conflict", "invalid"]


class Rejection(_Model):
    """A notice to a sender: one of their proposed changes was not applied, and why."""

    path: str
    kind: RejectionKind
    reason: str
    message_id: str
    owner_digest: Digest | None = None  # what the owner actually has, when the sender may know


class ChangeMessage(_Model):
    # 2: digests are BLAKE3 (1 was sha256, with fields named *_sha256): a format-1 message is
    # refused as malformed, never read with the wrong hash.
    format: Literal[2] = 2
    datasite: Email  # whose datasite the paths are relative to
    sender: Email
    recipient: Email
    created: datetime = Field(default_factory=utcnow)
    changes: list[FileChange] = Field(default_factory=list)
    rejections: list[Rejection] = Field(default_factory=list)

    @property
    def declared(self) -> dict[str, int]:
        """Every content the message names (digest -> the largest size declared for it)."""
        sizes: dict[str, int] = {}
        for change in self.changes:
            if change.new_digest is not None:
                sizes[change.new_digest] = max(change.size, sizes.get(change.new_digest, 0))
        return sizes

    def encode(self) -> tuple[str, bytes]:
        """The message id and the exact manifest bytes it names."""
        data = self.model_dump_json().encode("utf-8")
        ns = int(self.created.timestamp() * 1_000_000) * 1000
        return f"{ns:020d}-{digest_bytes(data)}", data


def written_bytes(changes: list[FileChange]) -> int:
    """The bytes putting `changes` in place writes: each path its own copy, so one content
    named by many paths counts once per path (against the free-space reserve)."""
    return sum(c.size for c in changes if c.new_digest is not None)


class PeerRequest(_Model):
    """A request to become a peer of `datasite`, written by `sender` into the owner's requests."""

    format: Literal[1] = 1
    datasite: Email
    sender: Email
    created: datetime = Field(default_factory=utcnow)
    note: str = Field(default="", max_length=1000)


def is_message_id(value: str) -> bool:
    return _ID_RE.fullmatch(value) is not None


def decode_message(message_id: str, data: bytes, *, where: str) -> ChangeMessage:
    """Verify `data` against its id, then parse it.

    A digest mismatch is corruption (transient: the message is retried); a digest match with bad
    content is a deliberately malformed message (permanent: it is refused).
    """
    match = _ID_RE.fullmatch(message_id)
    if match is None:
        raise InvalidMessageError(f"{where}: {message_id!r} is not a message id")
    if digest_bytes(data) != match["sha"]:
        raise CorruptMessageError(
            f"{where}: manifest does not match its blake3 digest (truncated?)"
        )
    try:
        return ChangeMessage.model_validate_json(data)
    except ValidationError as exc:
        raise InvalidMessageError(f"{where}: malformed manifest: {_first_error(exc)}") from exc


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(root)"
    return f"{loc}: {err['msg']} ({exc.error_count()} error(s))"
