"""What a job may leave in its outputs/: the one name policy of the collector, the report and the
clients.

A job's outputs are copied into the owner's datasite and synced to the submitter, so a file the
job names must never act as anything but an output:
- no `syft.pub.yaml` (a permission file would govern who reads the outputs), no status marker name
  (`done`, `approved`, ...) and no `.syft*` name (the datasite's own state: events, policies,
  sync state), compared case-insensitively because the submitter's disk may not distinguish case;
- no name the owner could misread (syft_core.names: hidden, control, bidi characters, non-NFC),
  so the names recorded in the report are exactly the names on disk, unescaped;
- a relative path without `..`, at most MAX_PATH_CHARS long.
"""

from __future__ import annotations

from syft_core.datasite import PERMISSION_FILE
from syft_core.errors import UnsafePathError
from syft_core.jobs.markers import MARKER_TYPES
from syft_core.names import name_problem
from syft_core.paths import normalize_relpath

MAX_PATH_CHARS = 255
RESERVED_NAMES = frozenset({PERMISSION_FILE, *MARKER_TYPES})
RESERVED_PREFIX = ".syft"


def output_name_problem(relpath: str) -> str | None:
    """Why `relpath` (relative to outputs/) cannot be an output, or None when it can."""
    for segment in relpath.split("/"):
        problem = name_problem(segment)
        if problem:
            return problem
        folded = segment.casefold()
        if folded in RESERVED_NAMES:
            return f"{segment!r} is reserved: it could act as a permission file or status marker"
        if folded.startswith(RESERVED_PREFIX):
            return f"names starting with {RESERVED_PREFIX!r} are reserved for the datasite"
    if len(relpath) > MAX_PATH_CHARS:
        return f"path is longer than {MAX_PATH_CHARS} characters"
    try:
        if normalize_relpath(relpath, what="output") != relpath:
            return "path is not in normal form"
    except UnsafePathError as exc:
        return str(exc)
    return None
