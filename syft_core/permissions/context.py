"""The user-facing API: `SyftPermContext(datasite=...)`, `ctx.open(path).grant_read_access(...)`.

`ctx.check()` is the hot-path checker: pure memory, as fresh as the last `ctx.reload()` (cheap:
only changed files are re-read). The handle methods (`has_*_access`, `explain`, grants) first
re-check the permission files on the way to their path, so they always see the disk as it is.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from syft_core.identity import validate_email
from syft_core.permissions import granting
from syft_core.permissions.engine import Explanation, PermissionEngine, Target, describe
from syft_core.permissions.models import AccessLevel
from syft_core.permissions.tree import ReloadReport


class PermissionFileIssue(BaseModel):
    """A permission file that grants nothing, and why."""

    model_config = ConfigDict(frozen=True)

    file: Path
    reason: str


class SyftPermContext:
    """Permissions of one datasite; its owner is the datasite folder's name (an email)."""

    def __init__(self, datasite: Path | str) -> None:
        self.datasite = Path(datasite)
        self.owner = validate_email(self.datasite.name)
        self._engine = PermissionEngine(self.datasite, self.owner)

    def __repr__(self) -> str:
        return f"SyftPermContext({self.datasite})"

    def open(self, path: str | os.PathLike[str]) -> PermissionHandle:
        """A handle on `path` (relative to the datasite). A path ending in `/` or naming an
        existing folder is a folder. Raises UnsafePathError for paths that could lead outside."""
        target = Target.parse(path)
        if not target.is_folder and self._is_dir(target.path):
            target = Target(target.path, is_folder=True)
        return PermissionHandle(self._engine, target)

    def check(self, user: str, path: str, level: AccessLevel) -> bool:
        """Hot path: may `user` act at `level` on `path`? (`dir/` checks the folder.)"""
        return self._engine.check(user, path, level)

    def explain(self, user: str, path: str, level: AccessLevel = AccessLevel.READ) -> Explanation:
        return self._engine.explain(user, path, level)

    def reload(self) -> ReloadReport:
        """Re-read changed permission files, pick up new ones and drop removed ones."""
        return self._engine.reload()

    def refresh(self, path: str) -> None:
        """Re-check just the permission files that can govern `path`."""
        self._engine.tree.refresh_path(Target.parse(path).check_segments)

    @property
    def errors(self) -> list[PermissionFileIssue]:
        """Permission files that are malformed (or unreadable) and so grant nothing."""
        return [
            PermissionFileIssue(file=rs.file, reason=rs.error)
            for rs in self._engine.tree.rulesets()
            if rs.error is not None
        ]

    def _is_dir(self, rel: str) -> bool:
        try:
            return stat.S_ISDIR(os.lstat(self.datasite / rel).st_mode)
        except OSError:
            return False


class PermissionHandle:
    """Permissions of one file or folder of the datasite."""

    def __init__(self, engine: PermissionEngine, target: Target) -> None:
        self._engine = engine
        self.target = target

    def __repr__(self) -> str:
        return f"PermissionHandle({self.target.display!r})"

    def grant_read_access(self, user: str) -> None:
        granting.grant(self._engine, self.target, user, AccessLevel.READ)

    def grant_write_access(self, user: str) -> None:
        granting.grant(self._engine, self.target, user, AccessLevel.WRITE)

    def grant_admin_access(self, user: str) -> None:
        granting.grant(self._engine, self.target, user, AccessLevel.ADMIN)

    def revoke_read_access(self, user: str) -> None:
        """Afterwards `user` cannot read (nor write, nor administer) here."""
        granting.revoke(self._engine, self.target, user, AccessLevel.READ)

    def revoke_write_access(self, user: str) -> None:
        """Afterwards `user` cannot write (nor administer) here; read is kept."""
        granting.revoke(self._engine, self.target, user, AccessLevel.WRITE)

    def revoke_admin_access(self, user: str) -> None:
        granting.revoke(self._engine, self.target, user, AccessLevel.ADMIN)

    def has_read_access(self, user: str) -> bool:
        return self._has(user, AccessLevel.READ)

    def has_write_access(self, user: str) -> bool:
        return self._has(user, AccessLevel.WRITE)

    def has_admin_access(self, user: str) -> bool:
        return self._has(user, AccessLevel.ADMIN)

    def explain(self, user: str, level: AccessLevel = AccessLevel.READ) -> Explanation:
        verdict = self._engine.verdict(user, self._fresh_segments(), level)
        return describe(verdict, user, self.target.display, level)

    def _has(self, user: str, level: AccessLevel) -> bool:
        return self._engine.verdict(user, self._fresh_segments(), level).allowed

    def _fresh_segments(self) -> list[str]:
        segments = self.target.check_segments
        self._engine.tree.refresh_path(segments)
        return segments
