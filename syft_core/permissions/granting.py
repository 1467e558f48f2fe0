"""Granting and revoking: edits of the governing `syft.pub.yaml`, proven to take effect.

A grant edits the file that governs the path (adding the user to the rule whose pattern is the
path relative to that file's folder: `<rel>/**` for a folder, `<rel>` for a file, reusing a rule
with that exact pattern) or, when no file governs, creates one in the folder (or the file's
parent). A revoke removes the user from that rule at the level and every level above it.

Before writing, the edited file is compiled and the user's check is re-evaluated against it; an
edit that would not change the answer (a more specific rule decides, `*` still grants, ...) is
refused with the reason instead of being written. A malformed governing file is never edited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from syft_core.atomic import atomic_write_yaml
from syft_core.datasite import PERMISSION_FILE
from syft_core.errors import InvalidEmailError, PermissionFileError, SyftError
from syft_core.identity import is_valid_email
from syft_core.paths import contained_path
from syft_core.permissions.engine import (
    PermissionEngine,
    Target,
    effective_level,
    file_label,
    judge,
)
from syft_core.permissions.matching import escape_literal
from syft_core.permissions.models import AccessLevel, AccessLists, PermissionFile, PermissionRule
from syft_core.permissions.ruleset import CompiledRuleSet, compile_ruleset

# `*@example.org`, `bob*@example.org`, `*@*.example.org`: email globs (fnmatch) an owner may grant.
_EMAIL_GLOB = re.compile(r"[A-Za-z0-9_%+.*?-]+@[A-Za-z0-9.*?-]+")


def validate_grantee(user: str) -> str:
    """An access entry a grant may add: `*`, an email, or an email glob."""
    if user == "*" or is_valid_email(user):
        return user
    if ("*" in user or "?" in user) and _EMAIL_GLOB.fullmatch(user):
        return user
    raise InvalidEmailError(f"cannot grant to {user!r}: expected an email, an email glob or '*'")


@dataclass(frozen=True, slots=True)
class _Plan:
    folder: str  # folder of the file to write, relative to the datasite
    model: PermissionFile  # its current content (a copy, safe to edit)
    pattern: str  # the rule pattern naming the target
    rel: str  # the checked path relative to `folder`
    creates: bool  # no file governs the target yet: this one would be new

    @property
    def label(self) -> str:
        return f"{self.folder}/{PERMISSION_FILE}" if self.folder else PERMISSION_FILE


def grant(engine: PermissionEngine, target: Target, user: str, level: AccessLevel) -> None:
    validate_grantee(user)
    plan = _plan(engine, target)
    rule = next((r for r in plan.model.rules if r.pattern == plan.pattern), None)
    if rule is None:
        rule = PermissionRule(pattern=plan.pattern, access=AccessLists())
        plan.model.rules.append(rule)
    entries = rule.access.for_level(level)
    if user not in entries:
        entries.append(user)
    if not _allowed_after(engine, plan, target, user, level):
        raise PermissionFileError(
            f"{plan.label}: granting {level.label} on {target.path or '.'!r} to {user} would have "
            f"no effect: {_why_denied(engine, plan, target, user, level)}"
        )
    _write(engine, plan, target)


def revoke(engine: PermissionEngine, target: Target, user: str, level: AccessLevel) -> None:
    if user == engine.owner:
        raise SyftError(f"{user} owns this datasite and always has access; it cannot be revoked")
    plan = _plan(engine, target)
    if plan.creates:
        return  # no file governs: nobody but the owner has access already
    doomed = [lvl for lvl in AccessLevel if lvl >= level]
    changed = False
    for rule in (r for r in plan.model.rules if r.pattern == plan.pattern):
        for lvl in doomed:
            entries = rule.access.for_level(lvl)
            if user in entries:
                entries[:] = [e for e in entries if e != user]
                changed = True
    if _allowed_after(engine, plan, target, user, level):
        raise PermissionFileError(
            f"{plan.label}: cannot revoke {level.label} on {target.path or '.'!r} from {user}: "
            f"{_why_allowed(engine, plan, target, user, level)}"
        )
    if changed:
        _write(engine, plan, target)


def _plan(engine: PermissionEngine, target: Target) -> _Plan:
    engine.tree.refresh_path(target.check_segments)
    ruleset, depth = engine.tree.governing(target.check_segments)
    if ruleset is None:
        segments = target.segments if target.is_folder else target.segments[:-1]
        folder, model = "/".join(segments), PermissionFile()
    elif ruleset.source is None:
        raise PermissionFileError(
            f"{file_label(ruleset)} is malformed ({ruleset.error}); fix or delete it before "
            "changing permissions under it"
        )
    elif depth > len(target.segments):
        raise SyftError(f"{target.path!r} is governed by {file_label(ruleset)} below it")
    else:
        folder, model = ruleset.folder, ruleset.source.model_copy(deep=True)
    base = len(folder.split("/")) if folder else 0
    rel = "/".join(target.segments[base:])
    if "{{" in rel:
        raise SyftError(f"{target.path!r} contains '{{{{' and cannot be named by a pattern")
    if target.is_folder:
        pattern = f"{escape_literal(rel)}/**" if rel else "**"
    elif rel:
        pattern = escape_literal(rel)
    else:
        raise SyftError(f"{target.path!r} holds a permission file: open it as a folder")
    rel_checked = "/".join(target.check_segments[base:])
    return _Plan(folder, model, pattern, rel_checked, creates=ruleset is None)


def _compiled(engine: PermissionEngine, plan: _Plan) -> CompiledRuleSet:
    return compile_ruleset(plan.model, plan.folder, engine.datasite / plan.label)


def _allowed_after(
    engine: PermissionEngine, plan: _Plan, target: Target, user: str, level: AccessLevel
) -> bool:
    if user == engine.owner:
        return True
    wanted = effective_level(target.check_segments, level)
    return judge(_compiled(engine, plan), plan.rel, user, wanted).allowed


def _why_denied(
    engine: PermissionEngine, plan: _Plan, target: Target, user: str, level: AccessLevel
) -> str:
    if effective_level(target.check_segments, level) is not level:
        return "a permission file needs admin"
    rule = _compiled(engine, plan).first_match(plan.rel, user)
    decider = rule.pattern if rule is not None else "none"
    return f"the more specific rule {decider!r} decides for this path"


def _why_allowed(
    engine: PermissionEngine, plan: _Plan, target: Target, user: str, level: AccessLevel
) -> str:
    rule = _compiled(engine, plan).first_match(plan.rel, user)
    decider = rule.pattern if rule is not None else "none"
    return f"rule {decider!r} still grants it to {user} (edit that rule's entries)"


def _write(engine: PermissionEngine, plan: _Plan, target: Target) -> None:
    # Proves no symlink on the way leads the write outside the datasite.
    path = contained_path(engine.datasite, plan.label, what="permission file")
    atomic_write_yaml(path, plan.model.to_yaml_data())
    engine.tree.refresh_path(target.check_segments)
