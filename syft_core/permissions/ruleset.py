"""One `syft.pub.yaml`, read from disk and compiled: its rules sorted most specific first.

A file that cannot be read, parsed or validated becomes a *broken* rule set: no rules, terminal
(fail closed: it might have said `terminal: true`, so deeper files must not open up what it
governs), and the reason kept for `ctx.errors` and `explain()`.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from syft_core.permissions.matching import (
    Grantees,
    glob_regex,
    has_glob_chars,
    specificity_key,
    template_for,
)
from syft_core.permissions.models import (
    USER_EMAIL_TEMPLATE,
    AccessLevel,
    PermissionFile,
    PermissionRule,
)
from syft_core.safefile import NotRegularFileError, open_regular, read_fd_capped

log = logging.getLogger(__name__)

# Generous bounds on what one file may hold, so a hostile file (YAML aliases can repeat a big list
# cheaply) cannot make validation or evaluation crawl.
MAX_FILE_BYTES = 1 << 20
MAX_RULES = 10_000
MAX_GRANTEE_ENTRIES = 100_000


@dataclass(frozen=True, slots=True)
class CompiledRule:
    pattern: str
    is_template: bool
    regex: (
        re.Pattern[str] | None
    )  # None: the pattern has no glob characters and must equal the path
    admin: Grantees
    write: Grantees  # admin ∪ write
    read: Grantees  # admin ∪ write ∪ read

    @classmethod
    def compile(cls, rule: PermissionRule) -> CompiledRule:
        access = rule.access
        template = USER_EMAIL_TEMPLATE in rule.pattern

        def lists(*entries: list[str]) -> Grantees:
            return Grantees.compile([e for lst in entries for e in lst], template_rule=template)

        regex = None
        if not template and has_glob_chars(rule.pattern):
            regex = glob_regex(rule.pattern)
        return cls(
            pattern=rule.pattern,
            is_template=template,
            regex=regex,
            admin=lists(access.admin),
            write=lists(access.admin, access.write),
            read=lists(access.admin, access.write, access.read),
        )

    def matches(self, rel: str, user: str) -> bool:
        if self.is_template:
            return self._matches_for(rel, user)
        if self.regex is not None:
            return self.regex.fullmatch(rel) is not None
        return self.pattern == rel

    def _matches_for(self, rel: str, user: str) -> bool:
        meant = template_for(self.pattern, user)  # resolved once per rule and user, then cached
        if meant is None:
            return False
        if isinstance(meant, str):
            return meant == rel
        return meant.fullmatch(rel) is not None

    def grants(self, user: str, level: AccessLevel) -> bool:
        if level is AccessLevel.READ:
            return self.read.admits(user)
        if level is AccessLevel.WRITE:
            return self.write.admits(user)
        return self.admin.admits(user)


@dataclass(frozen=True, slots=True)
class CompiledRuleSet:
    folder: str  # the file's folder, relative to the datasite ("" for the root)
    file: Path
    terminal: bool
    rules: tuple[CompiledRule, ...]  # most specific first
    source: PermissionFile | None  # None when broken
    error: str | None

    @property
    def broken(self) -> bool:
        return self.error is not None

    def first_match(self, rel: str, user: str) -> CompiledRule | None:
        for rule in self.rules:
            if rule.matches(rel, user):
                return rule
        return None


def compile_ruleset(model: PermissionFile, folder: str, file: Path) -> CompiledRuleSet:
    compiled = [CompiledRule.compile(rule) for rule in model.rules]
    # Stable sort, reverse=True, exactly as the reference: ties keep file order.
    compiled.sort(key=lambda r: specificity_key(r.pattern), reverse=True)
    return CompiledRuleSet(folder, file, model.terminal, tuple(compiled), model, None)


def broken_ruleset(folder: str, file: Path, reason: str) -> CompiledRuleSet:
    """The stand-in for a file that cannot be used; logged once, when it is (re)loaded."""
    log.warning("permission file %s grants nothing: %s", file, reason)
    return CompiledRuleSet(folder, file, True, (), None, reason)


def parse_permission_file(data: bytes) -> PermissionFile:
    """Parse the bytes of a `syft.pub.yaml`; ValueError says what is wrong."""
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"file is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
        # `or {}` as the reference: an empty (or falsy) document is a file with no rules.
        raw = yaml.safe_load(text) or {}
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text: {exc}") from exc
    except (yaml.YAMLError, RecursionError) as exc:
        raise ValueError(f"invalid YAML: {_yaml_reason(exc)}") from exc
    _check_size(raw)
    try:
        return PermissionFile.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"does not fit the schema: {_summarize(exc)}") from exc


def read_permission_file(file: Path) -> tuple[os.stat_result, bytes]:
    """The stat and bytes of `file`, opened without following a symlink.

    Raises ValueError naming the reason when it is not a readable regular file.
    """
    try:
        fd = open_regular(file)
    except NotRegularFileError as exc:
        if exc.kind == "a symlink":
            raise ValueError("is a symbolic link (not followed)") from exc
        raise ValueError("is not a regular file") from exc
    except OSError as exc:
        raise ValueError(f"cannot be opened: {exc.strerror or exc}") from exc
    try:
        # One byte over the cap is enough for parse_permission_file to refuse the file.
        return os.fstat(fd), read_fd_capped(fd, MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot be read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def ruleset_from_bytes(data: bytes, folder: str, file: Path) -> CompiledRuleSet:
    try:
        model = parse_permission_file(data)
        return compile_ruleset(model, folder, file)
    except (ValueError, re.error) as exc:
        return broken_ruleset(folder, file, str(exc))


def _check_size(raw: Any) -> None:
    rules = raw.get("rules") if isinstance(raw, dict) else None
    if not isinstance(rules, list):
        return
    if len(rules) > MAX_RULES:
        raise ValueError(f"more than {MAX_RULES} rules")
    entries = 0
    for rule in rules:
        access = rule.get("access") if isinstance(rule, dict) else None
        if isinstance(access, dict):
            entries += sum(len(v) for v in access.values() if isinstance(v, list))
    if entries > MAX_GRANTEE_ENTRIES:
        raise ValueError(f"more than {MAX_GRANTEE_ENTRIES} access entries")


def _yaml_reason(exc: Exception) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def _summarize(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
