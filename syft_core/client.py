"""The client API of the seed: `get_client(syftbox, email)`, then submit jobs and see them.

Roles are contextual: the same client is an owner (jobs in its own datasite, from everyone) and a
scientist (jobs it submitted to other datasites present in the syftbox). `client.jobs` lists the
owner view first, then the submitted jobs in other datasites; a job submitted to oneself appears
once, in the owner view. `owner_jobs` and `submitted_jobs` give each view alone.

Datasets: `client.datasets` are the ones this user publishes; `client.datasets_of(owner)` those a
peer publishes, from the synced copy of their datasite (metadata and mocks; never private data).
Code is developed against a peer's mocks with `client.run_local(...)`, in the same sandbox the
owner's runner uses, then submitted unchanged; `client.map(...)` submits it to many owners at once
(syft_core.mapreduce.wait_all gathers the results).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from syft_core.datasets import (
    DATASETS_DIR,
    Dataset,
    DatasetNotFoundError,
    get_dataset,
    list_datasets,
    require_names,
)
from syft_core.datasite import Datasite, SyftBox
from syft_core.dependencies import PackageIndex
from syft_core.errors import SyftError
from syft_core.identity import validate_email
from syft_core.job import Job, JobList
from syft_core.jobs.folder import iter_job_folders
from syft_core.local_runner import LocalRunner, LocalRunResult, find_local_runner
from syft_core.mapreduce import map_jobs
from syft_core.paths import normalize_relpath
from syft_core.submit import Resources, RunMode, submit_bash_job, submit_python_job


class DatasetList(Sequence[Dataset]):
    """The datasets one datasite publishes: index by position or by name (a missing name raises
    DatasetNotFoundError listing the available ones), iterate, len()."""

    def __init__(self, datasite: Datasite) -> None:
        self.datasite = datasite
        self._datasets = list_datasets(datasite)

    @overload
    def __getitem__(self, index: int) -> Dataset: ...
    @overload
    def __getitem__(self, index: slice) -> list[Dataset]: ...
    @overload
    def __getitem__(self, index: str) -> Dataset: ...

    def __getitem__(self, index: int | slice | str) -> Dataset | list[Dataset]:
        if isinstance(index, str):
            return get_dataset(self.datasite, index)
        return self._datasets[index]

    def __len__(self) -> int:
        return len(self._datasets)

    def __iter__(self) -> Iterator[Dataset]:
        return iter(self._datasets)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self._datasets]

    def __repr__(self) -> str:
        return f"DatasetList({self.datasite.email}: {', '.join(self.names) or 'none'})"


class Client:
    def __init__(
        self, syftbox: SyftBox, email: str, *, local_runner: LocalRunner | None = None
    ) -> None:
        self.email = validate_email(email)
        self.syftbox = syftbox
        self._local_runner = local_runner

    def __repr__(self) -> str:
        return f"Client({self.email!r} in {self.syftbox.root})"

    @property
    def datasite(self) -> Datasite:
        """This user's own datasite (it may not exist yet: see `syft-runner init`)."""
        return self.syftbox.datasite(self.email)

    # -- datasets -----------------------------------------------------------------------------
    @property
    def datasets(self) -> DatasetList:
        """The datasets this user publishes, with their private mapping (owner-only)."""
        return DatasetList(self.datasite)

    def datasets_of(self, owner: str) -> DatasetList:
        """The datasets `owner` publishes, as far as the local syftbox has them synced."""
        datasite = self.syftbox.datasite(owner)
        if not datasite.exists():
            raise SyftError(
                f"no datasite for {owner} in {self.syftbox.root}: sync with {owner} first"
            )
        return DatasetList(datasite)

    # -- jobs ---------------------------------------------------------------------------------
    @property
    def owner_jobs(self) -> JobList:
        """Jobs in this user's datasite, from every submitter."""
        return JobList(Job(f, self.email) for f in iter_job_folders(self.datasite.root))

    @property
    def submitted_jobs(self) -> JobList:
        """Jobs this user submitted, in every datasite present in the syftbox (its own too)."""
        return JobList(
            Job(f, self.email)
            for ds in self.syftbox.datasites()
            for f in iter_job_folders(ds.root)
            if f.submitter == self.email
        )

    @property
    def jobs(self) -> JobList:
        """The owner view, then jobs submitted to other datasites (see the module docstring)."""
        elsewhere = (j for j in self.submitted_jobs if j.owner != self.email)
        return JobList([*self.owner_jobs, *elsewhere])

    # -- submitting ---------------------------------------------------------------------------
    def check_datasets(self, owner: str, datasets: Sequence[str] | None) -> None:
        """Refuse dataset names `owner` does not publish in the local (synced) copy of their
        datasite: DatasetNotFoundError naming the available ones, or saying that the copy has
        no datasets listing at all (not synced yet, or the owner published none). A job asking
        for a missing dataset would otherwise be accepted and fail only when it runs."""
        if not datasets or isinstance(datasets, str):
            return  # a single string is refused by the submission with its own message
        for name in datasets:
            if isinstance(name, str):
                normalize_relpath(name, what="dataset path")  # UnsafePathError first, as before
        datasite = self.syftbox.datasite(owner)
        if not datasite.root.is_dir():
            return  # no datasite at all: the submission says so
        listing = datasite.public / DATASETS_DIR
        if not listing.is_dir():
            raise DatasetNotFoundError(
                f"{owner} publishes no datasets in {self.syftbox.root} ({listing} does not "
                f"exist), so {', '.join(map(repr, datasets))} cannot be checked: sync with "
                f"{owner} first (syft-runner sync), or ask them to publish the dataset",
                [],
            )
        require_names(owner, datasets, [d.name for d in list_datasets(datasite)])

    def submit_bash_job(
        self,
        user: str,
        script: str,
        job_name: str,
        *,
        code_path: str | os.PathLike[str] | None = None,
        dependencies: Sequence[str] | None = None,
        datasets: Sequence[str] | None = None,
        timeout_seconds: int | None = None,
        resources: Resources = None,
        description: str = "",
        mode: RunMode = "real",
        package_index: PackageIndex | None = None,
        runtime: str | None = None,
    ) -> Path:
        """Write a bash job into `<user>/jobs/<self.email>/<folder>/`; returns that folder.
        `mode`: "real" reads the owner's private data, "mock" their published mocks.
        `dependencies` are locked for the job image at submission (syft_core.submit). `runtime`:
        the job image (e.g. "minimal"); None for the owner's default ("scientific" unless the
        owner chose another). DatasetNotFoundError if `datasets` names one the owner does not
        publish (check_datasets)."""
        self.check_datasets(user, datasets)
        return submit_bash_job(
            self.syftbox.root,
            self.email,
            user,
            script=script,
            job_name=job_name,
            code_path=code_path,
            dependencies=dependencies,
            datasets=datasets,
            mode=mode,
            timeout_seconds=timeout_seconds,
            resources=resources,
            description=description,
            package_index=package_index,
            runtime=runtime,
        )

    def submit_python_job(
        self,
        user: str,
        code_path: str | os.PathLike[str],
        job_name: str,
        entrypoint: str | None = None,
        dependencies: Sequence[str] | None = None,
        datasets: Sequence[str] | None = None,
        timeout_seconds: int | None = None,
        resources: Resources = None,
        description: str = "",
        mode: RunMode = "real",
        package_index: PackageIndex | None = None,
        runtime: str | None = None,
    ) -> Path:
        """Write a python job into `<user>/jobs/<self.email>/<folder>/`; returns that folder.
        `code_path`: a .py file, a .ipynb notebook (run top to bottom; the executed copy lands
        in outputs/), or a folder with `main.py` or `entrypoint`. `mode`: "real" reads the
        owner's private data, "mock" their published mocks.
        `dependencies` (a list like ["tabulate>=0.9"]; or a requirements.txt / pyproject.toml in
        the code folder) are resolved into code/requirements.lock for the job image at
        submission; `package_index` says where from (default PyPI). An unresolvable list
        raises DependencyError with uv's reason, and nothing is written. `runtime`: the job
        image (e.g. "minimal"); None for the owner's default. DatasetNotFoundError if
        `datasets` names one the owner does not publish (check_datasets)."""
        self.check_datasets(user, datasets)
        return submit_python_job(
            self.syftbox.root,
            self.email,
            user,
            code_path=code_path,
            job_name=job_name,
            entrypoint=entrypoint,
            dependencies=dependencies,
            datasets=datasets,
            mode=mode,
            timeout_seconds=timeout_seconds,
            resources=resources,
            description=description,
            package_index=package_index,
            runtime=runtime,
        )

    def map(
        self,
        owners: Sequence[str],
        code_path: str | os.PathLike[str],
        job_name: str,
        **submit_kwargs: Any,
    ) -> list[Job]:
        """Submit the same python job to every owner (syft_core.mapreduce.map_jobs; see
        submit_python_job for `submit_kwargs`: entrypoint, datasets, mode, ...); gather the
        results with syft_core.mapreduce.wait_all."""

        def submit(owner: str) -> Path:
            return self.submit_python_job(owner, code_path, job_name, **submit_kwargs)

        return map_jobs(self.syftbox, self.email, owners, submit)

    # -- developing against mocks -------------------------------------------------------------
    def run_local(
        self,
        code_path: str | os.PathLike[str],
        *,
        owner: str,
        datasets: Sequence[str] | None = None,
        entrypoint: str | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        runtime: str | None = None,
    ) -> LocalRunResult:
        """Run code on this machine against `owner`'s synced mocks, in the sandbox the owner's
        runner uses: the client's `local_runner`, else the installed one (syft_core.local_runner;
        syft-runner's needs Docker and the job images)."""
        run_local = self._local_runner or find_local_runner()
        return run_local(
            Path(code_path),
            syftbox=self.syftbox.root,
            owner=owner,
            datasets=None if datasets is None else list(datasets),
            entrypoint=entrypoint,
            output_dir=None if output_dir is None else Path(output_dir),
            email=self.email,
            runtime=runtime,
        )


def get_client(
    syftbox_path: str | os.PathLike[str], email: str, *, local_runner: LocalRunner | None = None
) -> Client:
    """A client acting as `email` in the syftbox folder `syftbox_path` (which must exist).
    `local_runner`: what `run_local` runs code with (None: the installed runner's)."""
    syftbox = SyftBox(Path(syftbox_path))
    if not syftbox.root.is_dir():
        raise SyftError(f"{syftbox.root}: syftbox folder does not exist")
    return Client(syftbox, email, local_runner=local_runner)
