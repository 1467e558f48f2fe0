"""The datasite layout: `<syftbox>/<email>/` with public/, private/, jobs/, api_data/, events.

Following the seed's principle 1, the folder is the state: these classes only name paths and create
the skeleton; everything else reads and writes files under them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from syft_core.atomic import atomic_write_text
from syft_core.automock import DEFAULT_MAX_ROWS, DEFAULT_MIN_CATEGORY_COUNT
from syft_core.events import EventLog
from syft_core.identity import is_valid_email, validate_email
from syft_core.paths import contained_path

if TYPE_CHECKING:
    from syft_core.datasets import Dataset

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


class Datasite:
    """One person's folder inside a syftbox."""

    def __init__(self, syftbox_root: Path, email: str) -> None:
        self.email = validate_email(email)
        self.syftbox_root = Path(syftbox_root)
        self.root = self.syftbox_root / email

    def __repr__(self) -> str:
        return f"Datasite({self.email!r} at {self.root})"

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

    def init(self) -> Datasite:
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

    def create_dataset(
        self,
        name: str,
        *,
        private: Path,
        mock: Path | None = None,
        automock: bool = False,
        description: str = "",
        seed: int | None = None,
        max_rows: int = DEFAULT_MAX_ROWS,
        min_category_count: int = DEFAULT_MIN_CATEGORY_COUNT,
    ) -> Dataset:
        """Publish a dataset: a mock in public/datasets/<name>/ for scientists, the private file
        or folder recorded owner-only. See syft_core.datasets.create_dataset."""
        # Imported here: syft_core.datasets builds on this module.
        from syft_core.datasets import create_dataset

        return create_dataset(
            self,
            name,
            private=private,
            mock=mock,
            automock=automock,
            description=description,
            seed=seed,
            max_rows=max_rows,
            min_category_count=min_category_count,
        )


def _is_previous_default(path: Path) -> bool:
    try:
        return bool(yaml.safe_load(path.read_text()) == _PREVIOUS_JOBS_RULES)
    except (OSError, yaml.YAMLError):
        return False


class SyftBox:
    """A local syftbox folder: the user's own datasite plus synced copies of peers' datasites."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"SyftBox({self.root})"

    def datasite(self, email: str) -> Datasite:
        return Datasite(self.root, email)

    def datasites(self) -> list[Datasite]:
        """Every datasite folder present (folders whose name is a valid email)."""
        if not self.root.is_dir():
            return []
        return [
            Datasite(self.root, entry.name)
            for entry in sorted(self.root.iterdir())
            if entry.is_dir() and not entry.is_symlink() and is_valid_email(entry.name)
        ]
