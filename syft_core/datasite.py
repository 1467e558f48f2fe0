"""The datasite: `<syftbox>/<email>/` (its layout is syft_core.datasite_layout) and the syftbox
that holds datasites.

`Datasite` adds to the layout the operations built on the modules above it (publishing a dataset,
syft_core.datasets), so the layout and datasets never import each other in a circle.
"""

from __future__ import annotations

from pathlib import Path

from syft_core.automock import DEFAULT_MAX_ROWS, DEFAULT_MIN_CATEGORY_COUNT
from syft_core.datasets import Dataset, create_dataset
from syft_core.datasite_layout import (
    EVENT_LOG,
    PERMISSION_FILE,
    STATUS_MARKERS,
    SUBMITTED,
    DatasiteLayout,
    default_permission_files,
)
from syft_core.identity import is_valid_email

# Re-exported: the layout's names have always been imported from here.
__all__ = [
    "EVENT_LOG",
    "PERMISSION_FILE",
    "STATUS_MARKERS",
    "SUBMITTED",
    "Datasite",
    "SyftBox",
    "default_permission_files",
]


class Datasite(DatasiteLayout):
    """One person's folder inside a syftbox."""

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
