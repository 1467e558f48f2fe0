"""What `show` says about a job besides its files: the data it would read and its limits.

The owner approves a job against their own datasite and runner config, so these lines are
computed there: for each dataset the job asks for (or, for a Syft job, the Syft datasets it
would be approved with), which private file or folder it exposes, the public mock, and their
sizes; a dataset that does not exist is said to be missing before anything is approved.
"""

from __future__ import annotations

import os
from pathlib import Path

from syft_core.datasets import DatasetError, get_dataset, list_datasets
from syft_core.datasite import Datasite
from syft_core.jobs.config import JobConfig
from syft_runner.config import RunnerConfig
from syft_runner.sandbox.container import ResourceRequest


def dataset_lines(datasite: Datasite, config: JobConfig) -> list[str]:
    """One line per requested dataset: what it exposes, or why it cannot be mounted."""
    if not config.datasets:
        return ["datasets:     none (nothing private is mounted)"]
    lines = ["datasets:"]
    for name in config.datasets:
        try:
            dataset = get_dataset(datasite, name)
        except DatasetError:
            available = ", ".join(d.name for d in list_datasets(datasite)) or "none"
            lines.append(f"  {name}: MISSING on this datasite (available: {available})")
            continue
        mock = f"mock {dataset.mock_relpath} ({_size(datasite.root / dataset.mock_relpath)})"
        if config.mode == "mock":
            lines.append(f"  {name}: {mock}; mock run: nothing private is read")
        elif dataset.private is None:
            lines.append(f"  {name}: NO PRIVATE DATA recorded; {mock}")
        else:
            private = f"private {dataset.private} ({_size(datasite.root / dataset.private)})"
            lines.append(f"  {name}: {private}; {mock}")
    return lines


def limit_line(settings: RunnerConfig, config: JobConfig) -> str:
    """The limits the job would run with here (its request capped by the owner's maxima)."""
    resources = config.resources.model_dump(exclude_none=True) if config.resources else {}
    try:
        limits = settings.limits_for(
            ResourceRequest(timeout_seconds=config.timeout_seconds, **resources)
        )
    except ValueError as exc:
        return f"limits:       UNUSABLE request: {exc}"
    return (
        f"limits:       {limits.memory_mb} MB memory, {limits.cpus:g} CPU, {limits.pids} "
        f"processes, {limits.timeout_seconds} s, files up to {limits.fsize_mb} MB"
    )


def _size(path: Path) -> str:
    """Total bytes of a file or a folder's files (links not followed), for people."""
    try:
        if path.is_file():
            total = path.lstat().st_size
        else:
            total = sum(
                (Path(folder) / name).lstat().st_size
                for folder, _, names in os.walk(path)
                for name in names
            )
    except OSError:
        return "unreadable"
    if total < 1024:
        return f"{total} bytes"
    scaled = float(total)
    for unit in ("KB", "MB", "GB"):
        scaled /= 1024
        if scaled < 1024 or unit == "GB":
            break
    return f"{scaled:.1f} {unit}"
