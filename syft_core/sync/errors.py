"""Errors raised by the sync layer. Each names the key, file or peer at fault and the reason."""

from __future__ import annotations

import errno

from syft_core.errors import SyftError

# Local file operations that fail for these reasons fail for the machine's state (disk full or
# read-only, an I/O error, out of memory or descriptors, interrupted or busy), not for what a
# change names: the sync pass fails and is retried next pass. Any other OSError that one change
# causes (a name too long, a file where a folder belongs, permission denied on that one path)
# refuses that change only.
ENVIRONMENTAL_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EIO,
        errno.ENOMEM,
        errno.EMFILE,
        errno.ENFILE,
        errno.EAGAIN,
        errno.EINTR,
        errno.EBUSY,
        errno.ETXTBSY,
        errno.ESTALE,
        errno.ETIMEDOUT,
        errno.ENOLCK,
    }
)


def is_environmental(exc: OSError) -> bool:
    """Whether `exc` comes from the machine's state rather than from the path it was about."""
    return exc.errno in ENVIRONMENTAL_ERRNOS


class SyncError(SyftError):
    """Base class for every error the sync layer raises on purpose."""


class TransportError(SyncError):
    """The transport could not be reached or refused an operation (share missing, permission
    denied, network down, an S3 error): transient, the sync pass fails and is retried next pass.
    A MalformedValueError is the one kind that is not retried."""


class MalformedValueError(TransportError):
    """What is stored at a transport key is not a plain value its writer could have sent: on a
    folder transport a symlink anywhere on the key's way, a folder, fifo, socket or device where
    a file belongs, a file where a folder belongs; on any transport a value larger than its
    reader allows. The fault of whoever wrote it, and retrying cannot mend it: a message read
    from such a key is refused for good, a link whose folder is tampered with is skipped (and
    reported) for the pass, and nothing else waits for it."""


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
    """A message or one of its blobs does not match its digest (truncated or damaged in transit)."""


class NoSpaceError(SyncError):
    """A message does not fit on the disk with the reserve kept free; it waits for the next sync."""


class InvalidMessageError(SyncError):
    """A message is intact but not acceptable (bad schema, wrong sender or datasite)."""


class SyncBusyError(SyncError):
    """Another sync already holds this syftbox's lock."""


class PeerConfigError(SyncError):
    """A peers file or transport setting is malformed."""
