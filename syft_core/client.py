"""The client API of the seed: `get_client(syftbox, email)`, then submit jobs and see them.

Roles are contextual: the same client is an owner (jobs in its own datasite, from everyone) and a
scientist (jobs it submitted to other datasites present in the syftbox). `client.jobs` lists the
owner view first, then the submitted jobs in other datasites; a job submitted to oneself appears
once, in the owner view. `owner_jobs` and `submitted_jobs` give each view alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from syft_core.datasite import Datasite, SyftBox
from syft_core.errors import SyftError
from syft_core.identity import validate_email
from syft_core.job import Job, JobList
from syft_core.jobs.folder import iter_job_folders
from syft_core.submit import Resources, submit_bash_job, submit_python_job


class Client:
    def __init__(self, syftbox: SyftBox, email: str) -> None:
        self.email = validate_email(email)
        self.syftbox = syftbox

    def __repr__(self) -> str:
        return f"Client({self.email!r} in {self.syftbox.root})"

    @property
    def datasite(self) -> Datasite:
        """This user's own datasite (it may not exist yet: see `syft-runner init`)."""
        return self.syftbox.datasite(self.email)

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
    def submit_bash_job(
        self,
        user: str,
        script: str,
        job_name: str,
        *,
        code_path: str | os.PathLike[str] | None = None,
        datasets: Sequence[str] | None = None,
        timeout_seconds: int | None = None,
        resources: Resources = None,
        description: str = "",
    ) -> Path:
        """Write a bash job into `<user>/jobs/<self.email>/<folder>/`; returns that folder."""
        return submit_bash_job(
            self.syftbox.root,
            self.email,
            user,
            script=script,
            job_name=job_name,
            code_path=code_path,
            datasets=datasets,
            timeout_seconds=timeout_seconds,
            resources=resources,
            description=description,
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
    ) -> Path:
        """Write a python job into `<user>/jobs/<self.email>/<folder>/`; returns that folder."""
        return submit_python_job(
            self.syftbox.root,
            self.email,
            user,
            code_path=code_path,
            job_name=job_name,
            entrypoint=entrypoint,
            dependencies=dependencies,
            datasets=datasets,
            timeout_seconds=timeout_seconds,
            resources=resources,
            description=description,
        )


def get_client(syftbox_path: str | os.PathLike[str], email: str) -> Client:
    """A client acting as `email` in the syftbox folder `syftbox_path` (which must exist)."""
    syftbox = SyftBox(Path(syftbox_path))
    if not syftbox.root.is_dir():
        raise SyftError(f"{syftbox.root}: syftbox folder does not exist")
    return Client(syftbox, email)
