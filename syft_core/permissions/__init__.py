"""The `syft.pub.yaml` permission engine: same answers as syft-permissions 0.1.15, compiled once."""

from syft_core.permissions.context import PermissionFileIssue, PermissionHandle, SyftPermContext
from syft_core.permissions.engine import Explanation, Outcome
from syft_core.permissions.models import AccessLevel, PermissionFile
from syft_core.permissions.tree import ReloadReport

__all__ = [
    "AccessLevel",
    "Explanation",
    "Outcome",
    "PermissionFile",
    "PermissionFileIssue",
    "PermissionHandle",
    "ReloadReport",
    "SyftPermContext",
]
