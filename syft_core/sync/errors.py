"""Errors raised by the sync layer. Each names the key, file or peer at fault and the reason."""

from __future__ import annotations

from syft_core.errors import SyftError


class SyncError(SyftError):
    """Base class for every error the sync layer raises on purpose."""


class TransportError(SyncError):
    """The transport could not be reached or refused an operation; the sync can be retried."""


class MissingKeyError(TransportError, KeyError):
    """A key the sync expected on the transport is not there."""

    def __str__(self) -> str:  # KeyError's repr-quoting makes messages unreadable
        return str(self.args[0]) if self.args else "missing key"


class SourceChangedError(SyncError):
    """A local file changed while being sent; nothing was stored, the next sync resends it."""


class OversizeError(SyncError):
    """A stored value is larger than its reader allowed (a blob longer than its declared size)."""


class InvalidKeyError(SyncError, ValueError):
    """A transport key is malformed (empty segments, `..`, dot segments, backslashes)."""


class CorruptMessageError(SyncError):
    """A message or one of its blobs does not match its sha256 (truncated or damaged in transit)."""


class NoSpaceError(SyncError):
    """A message does not fit on the disk with the reserve kept free; it waits for the next sync."""


class InvalidMessageError(SyncError):
    """A message is intact but not acceptable (bad schema, wrong sender or datasite)."""


class SyncBusyError(SyncError):
    """Another sync already holds this syftbox's lock."""


class PeerConfigError(SyncError):
    """A peers file or transport setting is malformed."""
