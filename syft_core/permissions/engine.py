"""Evaluation: may `user` act at `level` on `path` of this datasite?

1. The owner is always allowed. 2. The governing file is found in the tree (deepest on the walk,
shallowest terminal stops it); no file: deny. 3. Its rules, most specific first, are matched
against the path relative to the file's folder; the first match decides, none: deny. A permission
file itself needs admin. A folder check (`dir/`) is a check of `dir/__any__`.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from syft_core.datasite import PERMISSION_FILE
from syft_core.errors import UnsafePathError
from syft_core.paths import normalize_relpath
from syft_core.permissions.models import AccessLevel
from syft_core.permissions.ruleset import CompiledRule, CompiledRuleSet
from syft_core.permissions.tree import PermissionTree, ReloadReport

ANY_CHILD = "__any__"


@dataclass(frozen=True, slots=True)
class Target:
    """A normalized datasite-relative path and whether it names a folder."""

    path: str  # "" is the datasite root
    is_folder: bool

    @classmethod
    def parse(cls, path: str | os.PathLike[str]) -> Target:
        """Raises UnsafePathError for a path that could lead outside the datasite."""
        text = os.fspath(path)
        return cls(normal_relpath(text), text.endswith("/"))

    @property
    def display(self) -> str:
        return f"{self.path}/" if self.is_folder and self.path else self.path or "./"

    @property
    def segments(self) -> list[str]:
        return self.path.split("/") if self.path else []

    @property
    def check_segments(self) -> list[str]:
        return [*self.segments, ANY_CHILD] if self.is_folder else self.segments


def normal_relpath(path: str) -> str:
    """`normalize_relpath(path)`, quick for the common already-normal path (the hot path)."""
    body = path[:-1] if path.endswith("/") else path
    parts = body.split("/")
    if (
        body
        and "" not in parts
        and "." not in parts
        and ".." not in parts
        and "\\" not in body
        and body.isprintable()
        and unicodedata.is_normalized("NFC", body)
    ):
        return body
    return normalize_relpath(path)


def check_segments(path: str) -> list[str]:
    """The segments a check of `path` walks; UnsafePathError if it could lead outside."""
    body = normal_relpath(path)
    parts = body.split("/") if body else []
    if path.endswith("/"):
        parts.append(ANY_CHILD)
    return parts


class Outcome(StrEnum):
    OWNER = "owner"
    UNSAFE_PATH = "unsafe path"
    NO_FILE = "no permission file"
    MALFORMED = "file malformed"
    NO_RULE = "no rule matched"
    GRANTED = "granted by rule"
    NOT_GRANTED = "rule does not grant"


class Explanation(BaseModel):
    """Why a check came out as it did: the governing file, the deciding rule, or the reason."""

    model_config = ConfigDict(frozen=True)

    user: str
    path: str
    level: AccessLevel
    allowed: bool
    outcome: Outcome
    governing_file: str | None = None  # relative to the datasite
    rule: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        return f"{'allowed' if self.allowed else 'denied'}: {self.detail}"


class Verdict(NamedTuple):
    allowed: bool
    outcome: Outcome
    ruleset: CompiledRuleSet | None = None
    rule: CompiledRule | None = None
    needs_admin: bool = False  # the path is a permission file


def effective_level(segments: list[str], level: AccessLevel) -> AccessLevel:
    # The reference tests `path.endswith("syft.pub.yaml")`, so `xsyft.pub.yaml` needs admin too.
    if segments and segments[-1].endswith(PERMISSION_FILE):
        return AccessLevel.ADMIN
    return level


def judge(ruleset: CompiledRuleSet, rel: str, user: str, level: AccessLevel) -> Verdict:
    """The decision of one rule set on `rel` (relative to its folder), owner aside."""
    if ruleset.broken:
        return Verdict(False, Outcome.MALFORMED, ruleset)
    rule = ruleset.first_match(rel, user)
    if rule is None:
        return Verdict(False, Outcome.NO_RULE, ruleset)
    allowed = rule.grants(user, level)
    return Verdict(allowed, Outcome.GRANTED if allowed else Outcome.NOT_GRANTED, ruleset, rule)


class PermissionEngine:
    """The owner, the tree of permission files, and the checks against them."""

    def __init__(self, datasite: Path, owner: str) -> None:
        self.datasite = datasite
        self.owner = owner
        self.tree = PermissionTree(datasite)
        self.tree.reload()

    def reload(self) -> ReloadReport:
        return self.tree.reload()

    def check(self, user: str, path: str, level: AccessLevel) -> bool:
        """Denies (never raises) for a path that could lead outside the datasite."""
        try:
            segments = check_segments(path)
        except UnsafePathError:
            return False
        return self.verdict(user, segments, level).allowed

    def verdict(self, user: str, segments: list[str], level: AccessLevel) -> Verdict:
        if user == self.owner:
            return Verdict(True, Outcome.OWNER)
        ruleset, depth = self.tree.governing(segments)
        if ruleset is None:
            return Verdict(False, Outcome.NO_FILE)
        rel = "/".join(segments[depth:]) if depth else "/".join(segments)
        wanted = effective_level(segments, level)
        verdict = judge(ruleset, rel, user, wanted)
        if wanted is not level:
            return Verdict(verdict.allowed, verdict.outcome, ruleset, verdict.rule, True)
        return verdict

    def explain(self, user: str, path: str, level: AccessLevel) -> Explanation:
        try:
            segments = check_segments(path)
        except UnsafePathError as exc:
            return Explanation(
                user=user,
                path=path,
                level=level,
                allowed=False,
                outcome=Outcome.UNSAFE_PATH,
                detail=str(exc),
            )
        return describe(self.verdict(user, segments, level), user, path, level)


def file_label(ruleset: CompiledRuleSet) -> str:
    return f"{ruleset.folder}/{PERMISSION_FILE}" if ruleset.folder else PERMISSION_FILE


def describe(verdict: Verdict, user: str, path: str, level: AccessLevel) -> Explanation:
    ruleset = verdict.ruleset
    rule = verdict.rule
    file = file_label(ruleset) if ruleset is not None else None
    pattern = rule.pattern if rule is not None else None
    return Explanation(
        user=user,
        path=path,
        level=level,
        allowed=verdict.allowed,
        outcome=verdict.outcome,
        governing_file=file,
        rule=pattern,
        detail=_detail(verdict, user, level, file, pattern),
    )


def _detail(
    verdict: Verdict, user: str, level: AccessLevel, file: str | None, pattern: str | None
) -> str:
    outcome = verdict.outcome
    if outcome is Outcome.OWNER:
        return f"{user} owns this datasite"
    if outcome is Outcome.NO_FILE:
        return "no syft.pub.yaml governs this path"
    if outcome is Outcome.MALFORMED:
        error = verdict.ruleset.error if verdict.ruleset is not None else ""
        return f"{file} is malformed and grants nothing: {error}"
    if outcome is Outcome.NO_RULE:
        return f"no rule in {file} matches this path"
    grants = "grants" if verdict.allowed else "does not grant"
    text = f"rule {pattern!r} in {file} {grants} {level.label} to {user}"
    if verdict.needs_admin and not verdict.allowed:
        text += " (a permission file needs admin)"
    return text
