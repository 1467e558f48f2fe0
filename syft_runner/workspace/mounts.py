"""Dataset mounts and the job environment: mock and real runs see the same paths.

Each requested dataset appears read-only at its published mock path in the syftbox namespace,
`/syftbox/<owner>/public/datasets/<name>/<entry>`, and at the short alias `/data/<name>/<entry>`.
A mock run binds the mock there; a real run binds the PRIVATE file or folder there, so code
developed against the mock reads the private data without a change.

Every source is resolved (realpath) before it is handed to Docker, and must stay inside the owner's
datasite and inside public/ (mock) or private/ (real): a symlink swapped in anywhere on the way
that leads out is refused, never followed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from syft_core.datasets import (
    DATASETS_DIR,
    Dataset,
    DatasetError,
    list_datasets,
    require_names,
)
from syft_core.datasite import Datasite
from syft_core.errors import UnsafePathError
from syft_core.identity import validate_email
from syft_runner.sandbox.container import DATA_DIR, OUTPUTS_DIR, SYFTBOX_MOUNT, Mount

RunMode = Literal["mock", "real"]
# OpenMined's dataset folders (syft-dataset), under public/ and private/ of the owner's datasite.
SYFT_DATASETS_DIR = "syft_datasets"


def dataset_mounts(syftbox_root: Path, owner: str, names: list[str], mode: RunMode) -> list[Mount]:
    """Two read-only mounts per requested dataset (namespace path and /data alias), in request
    order. DatasetNotFoundError (listing the available datasets) if any is missing."""
    if mode not in ("mock", "real"):
        raise ValueError(f"run mode must be 'mock' or 'real', not {mode!r}")
    datasite = Datasite(syftbox_root, owner)
    available = {d.name: d for d in list_datasets(datasite)}
    require_names(owner, names, list(available))
    mounts: list[Mount] = []
    for name in dict.fromkeys(names):  # a name asked for twice is mounted once
        dataset = available[name]
        source = _source(datasite, dataset, mode)
        for target in dataset_targets(owner, dataset):
            mounts.append(Mount(source=source, target=target, read_only=True))
    return mounts


def syft_dataset_mounts(syftbox_root: Path, owner: str, names: list[str]) -> list[Mount]:
    """Two read-only mounts per OpenMined Syft dataset (their `syft-dataset` layout), at the very
    paths their client's `resolve_dataset_file_path(name)` reads under SYFTBOX_FOLDER: the private
    folder `<owner>/private/syft_datasets/<name>/` and the public one (`dataset.yaml`, the mock).
    DatasetNotFoundError naming the missing one and the available ones."""
    datasite = Datasite(syftbox_root, owner)
    require_names(owner, names, syft_dataset_names(datasite), kind="Syft dataset")
    mounts: list[Mount] = []
    for name in dict.fromkeys(names):
        for area in ("private", "public"):
            relpath = f"{area}/{SYFT_DATASETS_DIR}/{name}"
            source = _resolved_inside(datasite, area, relpath, name)
            target = f"{SYFTBOX_MOUNT}/{owner}/{relpath}"
            mounts.append(Mount(source=source, target=target, read_only=True))
    return mounts


def syft_dataset_names(datasite: Datasite) -> list[str]:
    """The owner's Syft datasets: folders with both a public `dataset.yaml` and a private side."""
    public = datasite.root / "public" / SYFT_DATASETS_DIR
    private = datasite.root / "private" / SYFT_DATASETS_DIR
    if not public.is_dir() or public.is_symlink():
        return []
    return sorted(
        entry.name
        for entry in public.iterdir()
        if not entry.is_symlink()
        and (entry / "dataset.yaml").is_file()
        and (private / entry.name).is_dir()
    )


def dataset_targets(owner: str, dataset: Dataset) -> tuple[str, str]:
    """Where a job finds the dataset: its syftbox-namespace path and its /data alias."""
    return (
        f"{SYFTBOX_MOUNT}/{owner}/public/{DATASETS_DIR}/{dataset.name}/{dataset.entry}",
        f"{DATA_DIR}/{dataset.name}/{dataset.entry}",
    )


def _source(datasite: Datasite, dataset: Dataset, mode: RunMode) -> Path:
    if mode == "mock":
        return _resolved_inside(datasite, "public", dataset.mock_relpath, dataset.name)
    if dataset.private is None:
        raise DatasetError(
            f"dataset {dataset.name!r} has no private counterpart recorded "
            f"(private/{DATASETS_DIR}/{dataset.name}.yaml is missing)"
        )
    return _resolved_inside(datasite, "private", dataset.private, dataset.name)


def _resolved_inside(datasite: Datasite, area: str, relpath: str, name: str) -> Path:
    """The realpath of `<datasite>/<relpath>`, proven to be inside `<datasite>/<area>/` (both
    resolved) and to be a regular file or folder."""
    path = datasite.root / relpath
    try:
        resolved = path.resolve(strict=True)
    except FileNotFoundError:
        raise DatasetError(f"dataset {name!r}: {path} does not exist") from None
    except RuntimeError as exc:  # a symlink loop
        raise UnsafePathError(f"dataset {name!r}: {path}: {exc}") from None
    area_root = (datasite.root / area).resolve()
    datasite_root = datasite.root.resolve()
    for root in (datasite_root, area_root):
        if resolved == root or root not in resolved.parents:
            raise UnsafePathError(
                f"dataset {name!r}: {path} resolves to {resolved}, outside {root}; refused"
            )
    if not (resolved.is_file() or resolved.is_dir()):
        raise DatasetError(f"dataset {name!r}: {resolved} is not a regular file or folder")
    return resolved


def job_environment(owner: str, mode: RunMode) -> dict[str, str]:
    """The job-context variables a job container gets (the runner adds them to its allowlist).
    SYFTBOX_FOLDER, SYFTBOX_EMAIL and SYFT_IS_IN_JOB (and PYTHONUNBUFFERED, a default of every job)
    are what OpenMined's runner sets too, so their clients' `resolve_dataset_file_path` works
    unchanged in a job."""
    validate_email(owner)
    if mode not in ("mock", "real"):
        raise ValueError(f"run mode must be 'mock' or 'real', not {mode!r}")
    return {
        "SYFTBOX_FOLDER": SYFTBOX_MOUNT,
        "SYFTBOX_EMAIL": owner,
        "SYFT_DATA_DIR": DATA_DIR,
        "SYFT_OUTPUT_DIR": OUTPUTS_DIR,
        "SYFT_RUN_MODE": mode,
        "SYFT_IS_IN_JOB": "true",
        "SYFT_DATASITE": owner,
    }
