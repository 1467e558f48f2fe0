"""Email addresses identify datasites and users."""

from __future__ import annotations

import re

from syft_core.errors import InvalidEmailError

# Deliberately conservative: an email is also a folder name on every platform we sync to and is
# substituted into permission globs ({{.UserEmail}}), so no slashes, whitespace, glob characters
# (* ? [ ] { }), leading dots or control characters; ASCII only (look-alike unicode is refused).
_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
MAX_EMAIL_LENGTH = 254


def is_valid_email(value: str) -> bool:
    return len(value) <= MAX_EMAIL_LENGTH and _EMAIL_RE.fullmatch(value) is not None


def validate_email(value: str) -> str:
    """Return `value` unchanged if it is a usable email, else raise InvalidEmailError."""
    if not isinstance(value, str) or not is_valid_email(value):
        raise InvalidEmailError(f"not a valid email address: {value!r}")
    return value
