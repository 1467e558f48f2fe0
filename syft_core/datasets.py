"""Datasets: a public mock and an owner-only private counterpart, seen by a job at the same path.

Layout in the owner's datasite:

    public/datasets/<name>/dataset.yaml   metadata anyone may read: name, description, the mock's
                                          files with sizes and table columns, automock facts
    public/datasets/<name>/<entry>        the mock: one file or one folder, named <entry>
    private/datasets/<name>.yaml          owner-only: which private file or folder backs <entry>

The private mapping lives under private/ (terminal, owner-only, so never synced) rather than in
dataset.yaml because private path names can say something themselves (`private/hiv_2024.csv`).
A job reads `/data/<name>/<entry>` (or `/syftbox/<owner>/public/datasets/<name>/<entry>`) in both
modes: workspace.mounts binds the mock there for mock runs and the private entry for real runs,
so code written against the mock runs unchanged on the private data.

Datasets are plain files and folders: symlinks and special files are refused everywhere in them.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from syft_core.atomic import atomic_write_yaml
from syft_core.automock import (
    DEFAULT_MAX_ROWS,
    DEFAULT_MIN_CATEGORY_COUNT,
    AutomockError,
    AutomockInfo,
    generate_mock,
    is_table,
    table_columns,
)
from syft_core.datasite_layout import PERMISSION_FILE, DatasiteLayout
from syft_core.dp_automock import (
    DEFAULT_EPSILON,
    KEPT_DP,
    NOT_KEPT_DP,
    Bounds,
    generate_dp_mock,
)
from syft_core.errors import SyftError
from syft_core.events import utcnow
from syft_core.paths import contained_path, normalize_relpath
from syft_core.safefile import open_regular
from syft_core.yamlio import read_untrusted_yaml

logger = logging.getLogger(__name__)

DATASETS_DIR = "datasets"
METADATA_FILE = "dataset.yaml"
MAX_METADATA_BYTES = 1024 * 1024
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_RESERVED_ENTRIES = {METADATA_FILE, PERMISSION_FILE}
Privacy = Literal["dp", "none"]


class DatasetError(SyftError, ValueError):
    """A dataset cannot be created, read or removed; the message names the path and the reason."""


class DatasetNotFoundError(DatasetError, LookupError):
    """No dataset by that name; the message lists the datasets there are."""

    def __init__(self, message: str, available: list[str]) -> None:
        super().__init__(message)
        self.available = available


def require_names(
    owner: str, wanted: Sequence[str], available: Sequence[str], kind: str = "dataset"
) -> None:
    """DatasetNotFoundError naming what of `wanted` is not `available`, and what is: the one
    message for a missing dataset at submission, approval and run."""
    missing = [name for name in wanted if name not in available]
    if missing:
        known = sorted(available)
        raise DatasetNotFoundError(
            f"{owner} has no {kind} {', '.join(map(repr, missing))}; available: "
            f"{', '.join(known) or 'none'}",
            known,
        )


def validate_dataset_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise DatasetError(
            f"invalid dataset name {name!r}: use a-z, 0-9, '_' and '-', starting with a letter "
            "or digit, at most 64 characters"
        )
    return name


def _validate_entry(entry: str) -> str:
    if "/" in entry or entry in ("", ".", "..") or entry.startswith("."):
        raise ValueError(f"entry {entry!r} must be one visible file or folder name")
    if entry in _RESERVED_ENTRIES:
        raise ValueError(f"entry {entry!r} is a reserved name")
    normalize_relpath(entry, what="dataset entry")
    return entry


class Column(BaseModel):
    name: str
    dtype: str  # int, float, bool, date, string or empty


class MockFile(BaseModel):
    path: str  # relative to the dataset folder, e.g. "customers.csv" or "images/001.png"
    size: int
    columns: list[Column] | None = None  # tables (.csv, .tsv) only


class Dataset(BaseModel):
    """The public metadata (dataset.yaml), plus, for the owner, the private mapping and any
    warnings from creation. Those two are never written to dataset.yaml."""

    model_config = ConfigDict(extra="ignore")

    name: str
    owner: str
    description: str = ""
    created_at: datetime
    kind: Literal["file", "folder"]
    entry: str
    files: list[MockFile]
    automock: AutomockInfo | None = None
    private: str | None = Field(default=None, exclude=True)  # e.g. "private/customers.csv"
    warnings: list[str] = Field(default_factory=list, exclude=True)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return validate_dataset_name(value)

    @field_validator("entry")
    @classmethod
    def _valid_entry(cls, value: str) -> str:
        return _validate_entry(value)

    @property
    def mock_relpath(self) -> str:
        """The mock entry, relative to the datasite."""
        return f"public/{DATASETS_DIR}/{self.name}/{self.entry}"


class PrivateMapping(BaseModel):
    """private/datasets/<name>.yaml: which private file or folder backs the mock entry."""

    model_config = ConfigDict(extra="forbid")

    name: str
    entry: str
    private: str

    @field_validator("private")
    @classmethod
    def _under_private(cls, value: str) -> str:
        clean = normalize_relpath(value, what="private path")
        if not clean.startswith("private/"):
            raise ValueError(f"{value!r} is not under private/")
        return clean


def dataset_dir(datasite: DatasiteLayout, name: str) -> Path:
    return datasite.public / DATASETS_DIR / validate_dataset_name(name)


def private_mapping_path(datasite: DatasiteLayout, name: str) -> Path:
    return datasite.private / DATASETS_DIR / f"{validate_dataset_name(name)}.yaml"


# -- reading ---------------------------------------------------------------------------------------
def _load_yaml(path: Path) -> object:
    try:
        return read_untrusted_yaml(path, max_bytes=MAX_METADATA_BYTES)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing") from None
    except ValueError as exc:
        raise DatasetError(f"{path}: {exc}") from None


def _read_mapping(datasite: DatasiteLayout, name: str) -> PrivateMapping | None:
    """The private mapping, None when there is none here (e.g. in a peer's synced copy)."""
    path = private_mapping_path(datasite, name)
    if not path.exists() and not path.is_symlink():
        return None
    try:
        return PrivateMapping.model_validate(_load_yaml(path))
    except ValidationError as exc:
        raise DatasetError(f"{path}: invalid private dataset mapping: {exc}") from None


def get_dataset(datasite: DatasiteLayout, name: str) -> Dataset:
    """The dataset `name`; DatasetNotFoundError listing the available ones if there is none."""
    path = dataset_dir(datasite, name) / METADATA_FILE
    if not path.exists() and not path.is_symlink():
        available = [d.name for d in list_datasets(datasite)]
        raise DatasetNotFoundError(
            f"{datasite.email} has no dataset {name!r}; available: "
            f"{', '.join(available) or 'none'}",
            available,
        )
    try:
        dataset = Dataset.model_validate(_load_yaml(path))
    except ValidationError as exc:
        raise DatasetError(f"{path}: invalid dataset metadata: {exc}") from None
    if dataset.name != name:
        raise DatasetError(f"{path}: names dataset {dataset.name!r}, expected {name!r}")
    # Where the private data is comes only from the owner's own mapping: dataset.yaml is
    # public and, in a peer's synced copy, the peer's to write (a `private:` key there is
    # ignored, never shown or used as the owner's).
    dataset.private = None
    mapping = _read_mapping(datasite, name)
    if mapping is not None:
        if mapping.entry != dataset.entry:
            raise DatasetError(
                f"{private_mapping_path(datasite, name)}: maps entry {mapping.entry!r}, but "
                f"{path} publishes {dataset.entry!r}"
            )
        dataset.private = mapping.private
    return dataset


def list_datasets(datasite: DatasiteLayout) -> list[Dataset]:
    """Every readable dataset, by name; an unreadable one is logged and skipped."""
    root = datasite.public / DATASETS_DIR
    if not root.is_dir():
        return []
    found: list[Dataset] = []
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not NAME_RE.fullmatch(folder.name):
            continue
        if folder.is_symlink() or not folder.is_dir():
            logger.warning("%s: skipped, a dataset folder must be a plain folder", folder)
            continue
        try:
            found.append(get_dataset(datasite, folder.name))
        except DatasetError as exc:
            logger.warning("skipped dataset %s: %s", folder.name, exc)
    return found


# -- validating input paths ------------------------------------------------------------------------
def _relative_to_datasite(datasite: DatasiteLayout, given: Path, what: str) -> str:
    if not given.is_absolute():
        return given.as_posix()
    for root in (datasite.root, datasite.root.resolve()):
        if given.is_relative_to(root):
            return given.relative_to(root).as_posix()
    raise DatasetError(f"{what} {given}: outside the datasite {datasite.root}")


def locate(datasite: DatasiteLayout, given: Path, area: str, what: str) -> Path:
    """`given` (absolute, or relative to the datasite) as an absolute path, after proving it is an
    existing plain file or folder inside `<datasite>/<area>/` with no symlink on the way."""
    rel = normalize_relpath(_relative_to_datasite(datasite, given, what), what=f"{what} {given}")
    parts = rel.split("/") if rel else []
    if len(parts) < 2 or parts[0] != area:
        raise DatasetError(
            f"{what} {given}: must be a file or folder inside {datasite.root / area}/"
        )
    current = datasite.root
    for part in parts:
        current = current / part
        try:
            st = current.lstat()
        except FileNotFoundError:
            raise DatasetError(f"{what} {given}: {current} does not exist") from None
        if stat.S_ISLNK(st.st_mode):
            raise DatasetError(
                f"{what} {given}: {current} is a symlink; datasets must be plain files and folders"
            )
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise DatasetError(f"{what} {given}: not a regular file or folder")
    contained_path(datasite.root / area, "/".join(parts[1:]), what=what)
    return current


def plain_files(root: Path, what: str) -> list[tuple[str, Path]]:
    """(relpath, path) of every file under `root` (or `root` itself when it is a file), refusing
    symlinks and special files; relpaths start with root's name."""
    st = root.lstat()
    if stat.S_ISREG(st.st_mode):
        return [(root.name, root)]
    found: list[tuple[str, Path]] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                path = Path(entry.path)
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    stack.append(path)
                elif stat.S_ISREG(mode):
                    found.append((path.relative_to(root.parent).as_posix(), path))
                else:
                    kind = "a symlink" if stat.S_ISLNK(mode) else "a special file"
                    raise DatasetError(f"{what} {root}: {path} is {kind}; only plain files allowed")
    return sorted(found)


# -- creating --------------------------------------------------------------------------------------
def create_dataset(
    datasite: DatasiteLayout,
    name: str,
    *,
    private: Path,
    mock: Path | None,
    automock: bool = False,
    description: str = "",
    seed: int | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    min_category_count: int = DEFAULT_MIN_CATEGORY_COUNT,
    privacy: Privacy = "dp",
    epsilon: float = DEFAULT_EPSILON,
    mock_rows: int | None = None,
    bounds: dict[str, Bounds] | None = None,
) -> Dataset:
    """Publish a dataset: the mock (given, or generated from the private CSV with `automock`) is
    copied to public/datasets/<name>/, the private file or folder stays where it is and is only
    recorded in private/datasets/<name>.yaml. Paths are absolute or relative to the datasite.
    Column differences between mock and private tables are warnings (logged and returned in
    `Dataset.warnings`), never errors: the mock may be deliberately partial.

    An automock is differentially private by default (`privacy="dp"`, syft_core.dp_automock:
    `epsilon` the total budget, `mock_rows` a fixed size instead of the noisy row count, `bounds`
    per numeric/date column); `privacy="none"` keeps exact statistics (syft_core.automock), which
    disclose the row count and each column's extremes."""
    validate_dataset_name(name)
    _refuse_duplicate(datasite, name)
    private_path = locate(datasite, Path(private), "private", "private data")
    if private_path.is_relative_to(datasite.private / DATASETS_DIR):
        raise DatasetError(f"private data {private}: private/{DATASETS_DIR}/ holds dataset records")
    mock_path = _check_mock_choice(datasite, private_path, mock, automock)
    entry = _validate_entry_for(mock_path or private_path)
    plain_files(private_path, "private data")  # refuse symlinks/special files before publishing
    parent = datasite.public / DATASETS_DIR
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))
    mapping = PrivateMapping(name=name, entry=entry, private=datasite.relpath(private_path))
    mapping_path = private_mapping_path(datasite, name)
    try:
        if mock_path is not None:
            _copy_plain(mock_path, staging / entry)
            info = None
        else:
            settings = _AutomockSettings(
                privacy, seed, max_rows, min_category_count, epsilon, mock_rows, bounds or {}
            )
            info = _automock(private_path, staging / entry, settings)
        dataset = _describe(datasite, name, staging, entry, description, info)
        # An automock has the private columns by construction; a hand-made mock is checked.
        dataset.warnings = [] if info else _compare(private_path, dataset)
        atomic_write_yaml(staging / METADATA_FILE, dataset.model_dump(mode="json"))
        atomic_write_yaml(mapping_path, mapping.model_dump(mode="json"))
        _publish(staging, dataset_dir(datasite, name))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not dataset_dir(datasite, name).exists():
            mapping_path.unlink(missing_ok=True)
        raise
    dataset.private = mapping.private
    for warning in dataset.warnings:
        logger.warning("dataset %s: %s", name, warning)
    datasite.events.append(
        datasite.email,
        "dataset.created",
        dataset.mock_relpath,
        automock=info is not None,
        **({"privacy": info.privacy} if info else {}),
        **({"epsilon": info.dp.epsilon} if info and info.dp else {}),
    )
    return dataset


def _refuse_duplicate(datasite: DatasiteLayout, name: str) -> None:
    for path in (dataset_dir(datasite, name), private_mapping_path(datasite, name)):
        if path.exists() or path.is_symlink():
            raise DatasetError(f"dataset {name!r} already exists: {path}")


def _check_mock_choice(
    datasite: DatasiteLayout, private_path: Path, mock: Path | None, automock: bool
) -> Path | None:
    if automock and mock is not None:
        raise DatasetError("give either a mock or automock=True, not both")
    if not automock and mock is None:
        raise DatasetError(
            "a dataset needs a mock for scientists to develop against: give a mock path under "
            "public/, or automock=True to generate one from a private CSV"
        )
    if automock:
        if not private_path.is_file() or not is_table(private_path):
            raise DatasetError(
                f"automock: {private_path} must be one CSV/TSV file (.csv, .tsv); "
                "for anything else, make a mock by hand"
            )
        return None
    assert mock is not None
    mock_path = locate(datasite, Path(mock), "public", "mock")
    if mock_path.is_relative_to(datasite.public / DATASETS_DIR):
        raise DatasetError(f"mock {mock}: public/{DATASETS_DIR}/ belongs to published datasets")
    if mock_path.is_dir() != private_path.is_dir():
        kinds = {True: "a folder", False: "a file"}
        raise DatasetError(
            f"mock {mock} is {kinds[mock_path.is_dir()]} but private data {private_path} is "
            f"{kinds[private_path.is_dir()]}: both must be files or both folders"
        )
    return mock_path


def _validate_entry_for(path: Path) -> str:
    try:
        return _validate_entry(path.name)
    except ValueError as exc:
        raise DatasetError(f"{path}: {exc}") from None


def _copy_plain(source: Path, target: Path) -> None:
    """Copy a file or folder of plain files, never following a link (one swapped in is refused)."""
    for rel, path in plain_files(source, "mock"):
        dest = target.parent / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(open_regular(path), "rb") as src, dest.open("xb") as dst:
            shutil.copyfileobj(src, dst)


@dataclass(frozen=True)
class _AutomockSettings:
    privacy: Privacy
    seed: int | None
    max_rows: int
    min_category_count: int
    epsilon: float
    mock_rows: int | None
    bounds: dict[str, Bounds]


def _automock(private_path: Path, target: Path, settings: _AutomockSettings) -> AutomockInfo:
    try:
        if settings.privacy == "none":
            return generate_mock(
                private_path,
                target,
                max_rows=settings.max_rows,
                min_category_count=settings.min_category_count,
                seed=settings.seed,
            )
        profiles, rows, dp_info, threshold = generate_dp_mock(
            private_path,
            target,
            epsilon=settings.epsilon,
            max_rows=settings.max_rows,
            rows=settings.mock_rows,
            bounds=settings.bounds,
            seed=settings.seed,
        )
    except (AutomockError, ValueError) as exc:
        raise DatasetError(f"automock: {exc}") from None
    return AutomockInfo(
        generator="syft-automock-dp/1",
        privacy="dp",
        dp=dp_info,
        rows=rows,
        max_rows=settings.max_rows,
        min_category_count=threshold,
        deterministic=False,
        columns=profiles,
        kept=list(KEPT_DP),
        not_kept=list(NOT_KEPT_DP),
    )


def _describe(
    datasite: DatasiteLayout,
    name: str,
    staging: Path,
    entry: str,
    description: str,
    info: AutomockInfo | None,
) -> Dataset:
    files = [_mock_file(rel, path) for rel, path in plain_files(staging / entry, "mock")]
    return Dataset(
        name=name,
        owner=datasite.email,
        description=description,
        created_at=utcnow(),
        kind="folder" if (staging / entry).is_dir() else "file",
        entry=entry,
        files=files,
        automock=info,
    )


def _mock_file(rel: str, path: Path) -> MockFile:
    columns = None
    if is_table(path):
        try:
            columns = [Column(name=n, dtype=t) for n, t in table_columns(path)]
        except AutomockError:
            columns = None  # a hand-made mock may be anything; it just gets no column list
    return MockFile(path=rel, size=path.stat().st_size, columns=columns)


def _compare(private_entry: Path, dataset: Dataset) -> list[str]:
    """Warnings about a hand-made mock: hidden files, and tables whose columns differ from their
    private counterparts (the file at the same place in the private folder)."""
    warnings: list[str] = []
    for mock_file in dataset.files:
        if any(part.startswith(".") for part in mock_file.path.split("/")):
            warnings.append(f"{mock_file.path}: hidden, so no peer's permission rule matches it")
        if mock_file.columns is None:
            continue
        inner = mock_file.path.split("/", 1)[1] if dataset.kind == "folder" else ""
        counterpart = private_entry / inner if inner else private_entry
        warnings.extend(_table_warnings(mock_file, counterpart))
    return warnings


def _table_warnings(mock_file: MockFile, counterpart: Path) -> list[str]:
    assert mock_file.columns is not None
    if not counterpart.is_file():
        return [f"mock table {mock_file.path} has no private counterpart {counterpart}"]
    try:
        private_columns = table_columns(counterpart)
    except AutomockError as exc:
        return [f"mock table {mock_file.path}: its private counterpart is unreadable: {exc}"]
    mock_columns = [(c.name, c.dtype) for c in mock_file.columns]
    return _column_differences(mock_file.path, mock_columns, private_columns)


def _column_differences(
    rel: str, mock: list[tuple[str, str]], private: list[tuple[str, str]]
) -> list[str]:
    mock_types, private_types = dict(mock), dict(private)
    found: list[str] = []
    missing = [n for n in private_types if n not in mock_types]
    extra = [n for n in mock_types if n not in private_types]
    if missing:
        found.append(f"mock {rel} lacks columns of the private data: {missing}")
    if extra:
        found.append(f"mock {rel} has columns the private data lacks: {extra}")
    if not missing and not extra and list(mock_types) != list(private_types):
        found.append(f"mock {rel} has the private data's columns in another order")
    for column, mock_type in mock_types.items():
        private_type = private_types.get(column)
        if private_type and "empty" not in (mock_type, private_type) and mock_type != private_type:
            found.append(f"mock {rel} column {column!r} is {mock_type}, private is {private_type}")
    return found


def _publish(staging: Path, final: Path) -> None:
    try:
        os.rename(staging, final)  # atomic; refuses an existing non-empty folder
    except OSError as exc:
        raise DatasetError(f"dataset folder {final}: cannot publish: {exc.strerror}") from None


# -- removing --------------------------------------------------------------------------------------
def remove_dataset(datasite: DatasiteLayout, name: str) -> None:
    """Unpublish a dataset: its public folder and private mapping go; the private data stays."""
    folder = dataset_dir(datasite, name)
    mapping = private_mapping_path(datasite, name)
    if not folder.exists() and not folder.is_symlink() and not mapping.exists():
        get_dataset(datasite, name)  # raises DatasetNotFoundError listing the available ones
    if folder.is_symlink():
        folder.unlink()
    elif folder.exists():
        datasite.path(datasite.relpath(folder))  # refuses a public/ that leads out of the datasite
        shutil.rmtree(folder)
    mapping.unlink(missing_ok=True)
    datasite.events.append(datasite.email, "dataset.removed", datasite.relpath(folder))
