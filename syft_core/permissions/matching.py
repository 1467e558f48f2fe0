"""Path globs and grantee lists, compiled once.

Path patterns use the glob flavour of `wcmatch.glob.globmatch(path, pattern, flags=GLOBSTAR)`
(what the reference engine calls on every check); here each pattern is translated to its regex by
wcmatch itself, once, so the answers are the same by construction and checked by the differential
test. Grantee entries follow the reference's `_user_in_list`: `*` is everyone, an entry with `*` or
`?` is an fnmatch glob (case-sensitive), anything else must equal the email exactly.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import lru_cache

from wcmatch import glob as wcglob

from syft_core.identity import is_valid_email
from syft_core.permissions.models import USER_EMAIL_TEMPLATE, USER_PLACEHOLDER

GLOB_CHARS = ("*", "?", "[")
# Bounds the per-user regexes of template rules (one per rule and user) and the email checks.
TEMPLATE_CACHE_SIZE = 8192


def has_glob_chars(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern or "[" in pattern  # GLOB_CHARS, unrolled: hot path


@lru_cache(maxsize=TEMPLATE_CACHE_SIZE)
def template_for(pattern: str, user: str) -> re.Pattern[str] | str | None:
    """What the template rule `pattern` means for `user`: the regex its paths must match, the
    literal path they must equal, or None when `user` may not be substituted at all."""
    if not usable_in_template(user):
        return None
    resolved = pattern.replace(USER_EMAIL_TEMPLATE, user)
    return glob_regex(resolved) if has_glob_chars(resolved) else resolved


@lru_cache(maxsize=TEMPLATE_CACHE_SIZE)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """The regex `globmatch(path, pattern, flags=GLOBSTAR)` matches paths with (fullmatch)."""
    include, exclude = wcglob.translate(pattern, flags=wcglob.GLOBSTAR)
    if len(include) != 1 or exclude:
        # Cannot happen without the BRACE/SPLIT/NEGATE flags; refuse rather than guess.
        raise ValueError(f"glob {pattern!r} does not translate to a single regex")
    return re.compile(include[0])


@lru_cache(maxsize=TEMPLATE_CACHE_SIZE)
def usable_in_template(user: str) -> bool:
    """Whether `user` may be substituted for {{.UserEmail}}.

    Only real emails: a "user" such as `*` or `x/y` would turn `{{.UserEmail}}/**` into a
    pattern covering other people's folders. (The reference substitutes any string.)
    """
    return is_valid_email(user)


def escape_literal(path: str) -> str:
    """A pattern matching exactly `path` (glob characters in file names escaped)."""
    return wcglob.escape(path) if has_glob_chars(path) else path


def specificity_key(pattern: str) -> tuple[int, int, int, int, int]:
    """Higher sorts first. A copy of the reference's `specificity_key`, quirks included
    (`{` makes a segment neither literal nor wildcard)."""
    segments = pattern.split("/")
    has_template = 1 if USER_EMAIL_TEMPLATE in pattern else 0
    literal_count = sum(
        1
        for s in segments
        if not any(c in s for c in ("*", "?", "[", "{")) and USER_EMAIL_TEMPLATE not in s
    )
    wildcard_count = sum(
        1 for s in segments if s != "**" and has_glob_chars(s) and USER_EMAIL_TEMPLATE not in s
    )
    doublestar_count = sum(1 for s in segments if s == "**")
    return (has_template, literal_count, wildcard_count, -doublestar_count, len(segments))


@dataclass(frozen=True, slots=True)
class Grantees:
    """A compiled access list.

    `requester` is set when the list holds `USER` in a template rule: it then admits the user the
    rule was resolved for. (In other rules `USER` means everyone and sets `everyone`.)
    """

    everyone: bool
    requester: bool
    exact: frozenset[str]
    globs: tuple[re.Pattern[str], ...]

    @classmethod
    def compile(cls, entries: list[str], *, template_rule: bool) -> Grantees:
        everyone = "*" in entries or (USER_PLACEHOLDER in entries and not template_rule)
        requester = template_rule and USER_PLACEHOLDER in entries
        plain = [e for e in entries if e not in ("*", USER_PLACEHOLDER)]
        globs = tuple(re.compile(fnmatch.translate(e)) for e in plain if "*" in e or "?" in e)
        exact = frozenset(e for e in plain if "*" not in e and "?" not in e)
        return cls(everyone, requester, exact, globs)

    def admits(self, user: str) -> bool:
        if self.everyone or self.requester or user in self.exact:
            return True
        return any(g.match(user) for g in self.globs)
