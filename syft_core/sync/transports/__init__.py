"""Transports: one small interface (`Transport`), several real implementations."""

from syft_core.sync.transports.base import ProgressCallback, Transport, check_key
from syft_core.sync.transports.folder import FolderTransport
from syft_core.sync.transports.memory import MemoryTransport
from syft_core.sync.transports.s3 import S3Transport
from syft_core.sync.transports.url import transport_from_url

__all__ = [
    "FolderTransport",
    "MemoryTransport",
    "ProgressCallback",
    "S3Transport",
    "Transport",
    "check_key",
    "transport_from_url",
]
