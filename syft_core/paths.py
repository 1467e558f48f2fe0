"""Containment of paths inside a datasite: nothing a peer names may lead outside it."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from syft_core.errors import UnsafePathError

_CONTROL = re.compile("[\x00-\x1f\x7f]")


def normalize_relpath(rel: str | os.PathLike[str], *, what: str = "path") -> str:
    """Validate a datasite-relative path and return it in POSIX form without a trailing slash.

    Refused: absolute paths, `..` segments, empty segments after `.` removal, NUL and control
    characters, backslashes, and non-NFC unicode (look-alike spellings of the same name).
    """
    text = os.fspath(rel)
    if not text or text in (".", "./"):
        return ""
    if _CONTROL.search(text):
        raise UnsafePathError(f"{what} {text!r} contains control characters")
    if "\\" in text:
        raise UnsafePathError(f"{what} {text!r} contains a backslash")
    if not unicodedata.is_normalized("NFC", text):
        raise UnsafePathError(f"{what} {text!r} is not in NFC unicode form")
    if text.startswith("/"):
        raise UnsafePathError(f"{what} {text!r} is absolute; it must be relative to the datasite")
    # As PurePosixPath would parse it (repeated slashes and `.` segments drop out), in plain
    # string operations: this runs for every file a peer names.
    parts = [p for p in text.split("/") if p and p != "."]
    if ".." in parts:
        raise UnsafePathError(f"{what} {text!r} contains '..'")
    return "/".join(parts)


def contained_path(root: Path, rel: str | os.PathLike[str], *, what: str = "path") -> Path:
    """Join `rel` to `root` and prove the result stays inside `root`, symlinks resolved.

    The path need not exist; whatever prefix of it exists is resolved, so a symlink anywhere on
    the way that points outside `root` is refused.
    """
    clean = normalize_relpath(rel, what=what)
    candidate = root / clean if clean else root
    real_root = root.resolve()
    resolved = candidate.resolve()  # strict=False: resolves the existing prefix, keeps the rest
    if resolved != real_root and real_root not in resolved.parents:
        raise UnsafePathError(f"{what} {os.fspath(rel)!r} resolves outside {root}: {resolved}")
    return candidate
