"""The datasite layout: `<syftbox>/<email>/` with public/, private/, jobs/, api_data/, events.

Following the seed's principle 1, the folder is the state: this class only names paths and creates
the skeleton; everything else reads and writes files under them. It is the bottom of syft_core:
syft_core.datasets builds on it, and syft_core.datasite adds the conveniences that need the
layers above (Datasite.create_dataset), so no module imports back down-and-up in a circle.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

import yaml

from syft_core.atomic import atomic_write_text
from syft_core.events import EventLog
from syft_core.identity import validate_email
from syft_core.paths import contained_path

PERMISSION_FILE = "syft.pub.yaml"
EVENT_LOG = ".syft/events.jsonl"  # a dot-folder: no `*`/`**` rule ever matches it, so never shared


def default_permission_files(owner: str) -> dict[str, dict[str, Any]]:
    """The permission files a new datasite starts with, keyed by folder (relative to the datasite).

    - public/: readable by everyone.
    - private/: terminal and empty: only the owner, and no deeper file can open it up.
    - api_data/: no rules yet; the owner grants specific peers.
    - jobs/: the single gateway. A submitter may write only run.sh, config.yaml and code/** inside
      their own `jobs/<self>/<job>/` folders, and read only those and the status markers: an
      allow-list, so nothing else the owner's side writes there (logs/, outputs/, the results
      report, anything added later) is readable until the owner releases it. The owner is always
      allowed. Releasing writes a job-folder syft.pub.yaml (syft_core.release) that governs
      instead of these rules.
    """
    del owner  # the owner needs no rule: they are always allowed
    return {
        "public": {"terminal": False, "rules": [{"pattern": "**", "access": {"read": ["*"]}}]},
        "private": {"terminal": True, "rules": []},
        "api_data": {"terminal": False, "rules": []},
        "jobs": {"terminal": False, "rules": _jobs_rules()},
    }


_OWN = "{{.UserEmail}}"
SUBMITTED = ("run.sh", "config.yaml", "code/**")
# The status markers (syft_core.jobs.markers.MARKER_TYPES), readable before release.
STATUS_MARKERS = ("approved", "rejected", "cancel", "running", "done", "released")


def _jobs_rules() -> list[dict[str, Any]]:
    writes = [{"pattern": f"{_OWN}/*/{p}", "access": {"write": ["USER"]}} for p in SUBMITTED]
    reads = [{"pattern": f"{_OWN}/*/{m}", "access": {"read": ["USER"]}} for m in STATUS_MARKERS]
    return writes + reads


# The jobs/ rules of datasites made before the allow-list: they let a submitter read everything
# of their jobs but logs/ and outputs/, so a new runner-written file would leak. `init` replaces
# them (and only them: a file the owner edited is theirs).
_PREVIOUS_JOBS_RULES: dict[str, Any] = {
    "terminal": False,
    "rules": [
        {"pattern": f"{_OWN}/*/run.sh", "access": {"write": ["USER"]}},
        {"pattern": f"{_OWN}/*/config.yaml", "access": {"write": ["USER"]}},
        {"pattern": f"{_OWN}/*/code/**", "access": {"write": ["USER"]}},
        {"pattern": f"{_OWN}/*/logs/**", "access": {}},
        {"pattern": f"{_OWN}/*/outputs/**", "access": {}},
        {"pattern": f"{_OWN}/**", "access": {"read": ["USER"]}},
    ],
}


class DatasiteLayout:
    """One person's folder inside a syftbox: its paths and skeleton (syft_core.datasite.Datasite
    is the one to use)."""

    def __init__(self, syftbox_root: Path, email: str) -> None:
        self.email = validate_email(email)
        self.syftbox_root = Path(syftbox_root)
        self.root = self.syftbox_root / email

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.email!r} at {self.root})"

    @property
    def public(self) -> Path:
        return self.root / "public"

    @property
    def private(self) -> Path:
        return self.root / "private"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def api_data(self) -> Path:
        return self.root / "api_data"

    @property
    def events(self) -> EventLog:
        return EventLog(self.root / EVENT_LOG)

    def exists(self) -> bool:
        return self.root.is_dir()

    def path(self, rel: str | os.PathLike[str]) -> Path:
        """The absolute path of `rel`, refused if it would lead outside this datasite."""
        return contained_path(self.root, rel, what=f"path in {self.email}'s datasite")

    def relpath(self, path: Path) -> str:
        """`path` relative to the datasite root, in POSIX form."""
        return path.relative_to(self.root).as_posix()

    def init(self) -> Self:
        """Create the folders and default permission files; existing files are never overwritten."""
        for folder, perms in default_permission_files(self.email).items():
            target = self.root / folder
            target.mkdir(parents=True, exist_ok=True)
            perm_file = target / PERMISSION_FILE
            if not perm_file.exists() or (folder == "jobs" and _is_previous_default(perm_file)):
                atomic_write_text(perm_file, yaml.safe_dump(perms, sort_keys=False))
        (self.root / EVENT_LOG).parent.mkdir(parents=True, exist_ok=True)
        self.events.append(self.email, "datasite.init", "")
        return self


def _is_previous_default(path: Path) -> bool:
    try:
        return bool(yaml.safe_load(path.read_text()) == _PREVIOUS_JOBS_RULES)
    except (OSError, yaml.YAMLError):
        return False
