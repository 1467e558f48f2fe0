"""syft_core: datasites, syft.pub.yaml permissions, the jobs gateway and the client API."""

from syft_core.client import get_client
from syft_core.datasite import Datasite, SyftBox
from syft_core.errors import (
    AccessDeniedError,
    InvalidEmailError,
    JobError,
    PermissionFileError,
    SyftError,
    UnsafePathError,
)
from syft_core.permissions import AccessLevel, SyftPermContext

__all__ = [
    "AccessDeniedError",
    "AccessLevel",
    "Datasite",
    "InvalidEmailError",
    "JobError",
    "PermissionFileError",
    "SyftBox",
    "SyftError",
    "SyftPermContext",
    "UnsafePathError",
    "get_client",
]
