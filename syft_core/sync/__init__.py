"""Sync between peers: proposed changes travel to a datasite's owner, who applies only what the
permission files allow; the owner publishes back to each peer only what that peer may read.

See docs/sync.md. Entry point: `SyncClient(syftbox, email, transport).sync_once()`.
"""

from syft_core.sync.client import SyncClient
from syft_core.sync.errors import (
    CorruptMessageError,
    InvalidMessageError,
    MalformedValueError,
    MissingKeyError,
    NoSpaceError,
    OversizeError,
    PeerConfigError,
    SourceChangedError,
    SyncBusyError,
    SyncError,
    TransportError,
)
from syft_core.sync.limits import ReceiveLimits
from syft_core.sync.messages import ChangeMessage, FileChange, PeerRequest, Rejection
from syft_core.sync.peers import PeerBook, PeerList
from syft_core.sync.report import Applied, Notice, SyncReport
from syft_core.sync.transports import (
    FolderTransport,
    MemoryTransport,
    S3Transport,
    Transport,
    transport_from_url,
)

__all__ = [
    "Applied",
    "ChangeMessage",
    "CorruptMessageError",
    "FileChange",
    "FolderTransport",
    "InvalidMessageError",
    "MalformedValueError",
    "MemoryTransport",
    "MissingKeyError",
    "NoSpaceError",
    "Notice",
    "OversizeError",
    "PeerBook",
    "PeerConfigError",
    "PeerList",
    "PeerRequest",
    "ReceiveLimits",
    "Rejection",
    "S3Transport",
    "SourceChangedError",
    "SyncBusyError",
    "SyncClient",
    "SyncError",
    "SyncReport",
    "Transport",
    "TransportError",
    "transport_from_url",
]
