"""The `syft.pub.yaml` file format, as pydantic models, and the access levels.

The schema mirrors the reference engine (syft-permissions 0.1.15) field for field, so a file it
accepts we accept; on top of that any template other than `{{.UserEmail}}` is refused, as the spec
says (the reference only refuses four named ones).
"""

from __future__ import annotations

import re
from enum import IntEnum

from pydantic import BaseModel, ConfigDict, field_validator

USER_EMAIL_TEMPLATE = "{{.UserEmail}}"
USER_PLACEHOLDER = "USER"
_ANY_TEMPLATE = re.compile(r"\{\{.*?\}\}", re.DOTALL)


class AccessLevel(IntEnum):
    """admin ⊇ write ⊇ read. Values match the reference engine's."""

    READ = 1
    WRITE = 2
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()


class AccessLists(BaseModel):
    """Who holds each level: exact emails, `*`, email globs (`*@example.org`) or `USER`."""

    model_config = ConfigDict(extra="ignore")

    admin: list[str] = []
    write: list[str] = []
    read: list[str] = []

    def for_level(self, level: AccessLevel) -> list[str]:
        return {AccessLevel.READ: self.read, AccessLevel.WRITE: self.write}.get(level, self.admin)


class PermissionRule(BaseModel):
    model_config = ConfigDict(extra="ignore")

    pattern: str
    access: AccessLists

    @field_validator("pattern")
    @classmethod
    def _only_user_email_template(cls, pattern: str) -> str:
        unsupported = _ANY_TEMPLATE.findall(pattern.replace(USER_EMAIL_TEMPLATE, ""))
        if unsupported:
            raise ValueError(
                f"unsupported template {unsupported[0]} in pattern {pattern!r} "
                f"(only {USER_EMAIL_TEMPLATE} is supported)"
            )
        return pattern


class PermissionFile(BaseModel):
    """The content of one `syft.pub.yaml`."""

    model_config = ConfigDict(extra="ignore")

    terminal: bool = False
    rules: list[PermissionRule] = []

    def to_yaml_data(self) -> dict[str, object]:
        """The plain data written back to disk, in the spec's key order."""
        return {
            "terminal": self.terminal,
            "rules": [
                {
                    "pattern": rule.pattern,
                    "access": {
                        "admin": list(rule.access.admin),
                        "write": list(rule.access.write),
                        "read": list(rule.access.read),
                    },
                }
                for rule in self.rules
            ],
        }
