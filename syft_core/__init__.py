"""syft_core: datasites, syft.pub.yaml permissions, the jobs gateway and the client API."""

from syft_core.datasite import Datasite, SyftBox
from syft_core.errors import (
    AccessDeniedError,
    InvalidEmailError,
    JobError,
    PermissionFileError,
    SyftError,
    UnsafePathError,
)

__all__ = [
    "AccessDeniedError",
    "Datasite",
    "InvalidEmailError",
    "JobError",
    "PermissionFileError",
    "SyftBox",
    "SyftError",
    "UnsafePathError",
]
