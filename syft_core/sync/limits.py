"""What a receiver accepts from a peer: no file over a size, and never the last of its disk.

An accepted peer is trusted with write access to some paths, not with the owner's disk: without
these, one message could fill the disk that holds the owner's datasite (and the runner's job
filesystems beside it). Both roles apply them to what they receive.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from syft_core.sync.errors import NoSpaceError

MiB = 1 << 20


class ReceiveLimits(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_file_bytes: int = Field(default=4096 * MiB, gt=0)  # one received file
    min_free_bytes: int = Field(default=1024 * MiB, ge=0)  # left free after staging a message

    def too_large(self, size: int) -> str | None:
        """Why a file of `size` bytes is refused, or None."""
        if size <= self.max_file_bytes:
            return None
        return f"it is {size:,} bytes, over this datasite's limit of {self.max_file_bytes:,}"

    def require_room(self, folder: Path, incoming: int) -> None:
        """NoSpaceError unless `incoming` bytes fit in `folder`'s filesystem with the reserve."""
        free = shutil.disk_usage(folder).free
        if free - incoming < self.min_free_bytes:
            raise NoSpaceError(
                f"{incoming:,} bytes to receive, {free:,} free on the disk holding {folder}: "
                f"that would leave less than the {self.min_free_bytes:,} bytes kept free"
            )
