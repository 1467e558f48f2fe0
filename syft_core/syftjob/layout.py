"""Where OpenMined's Syft job gateway keeps its jobs (syft-job 0.1.39 and 0.1.40).

    <datasite>/app_data/job/inbox/<ds>/JOB/       protocol 0: the scientist writes run.sh,
    <datasite>/app_data/job/inbox/<ds>/v1/JOB/    protocol 1:   config.yaml and code/
    <datasite>/app_data/job/review/<ds>/[v1/]JOB/ the owner's side writes state.yaml and results

JOB is free text (their default is `Job - <8 hex>`, with spaces); identity comes from the path.
Names starting with `v<digits>` are the layout's version folders, never a P0 job.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from syft_core.errors import JobError
from syft_core.identity import is_valid_email
from syft_core.names import name_problem

Protocol = Literal[0, 1]
GATEWAY = ("app_data", "job")
VERSION_FOLDER = "v1"
_VERSION_NAME = re.compile(r"v\d+")


@dataclass(frozen=True)
class SyftJobRef:
    """One Syft job of one owner: where its submission and its review folder are."""

    owner: str
    submitter: str
    protocol: Protocol
    name: str
    inbox: Path
    review: Path

    @property
    def key(self) -> str:
        """A stable id for logs: `p<protocol>/<ds>/<JOB>`."""
        return f"p{self.protocol}/{self.submitter}/{self.name}"

    @property
    def outputs_pattern(self) -> str:
        """The outputs rule's pattern, relative to `review/<ds>/` (as their runner writes it)."""
        prefix = f"{VERSION_FOLDER}/" if self.protocol == 1 else ""
        return f"{prefix}{self.name}/outputs/**"

    @property
    def review_root(self) -> Path:
        """`review/<ds>/`, which holds the permission file their clients read."""
        return self.review.parent.parent if self.protocol == 1 else self.review.parent


def gateway_root(datasite_root: Path) -> Path:
    return datasite_root.joinpath(*GATEWAY)


def ref_for(datasite_root: Path, submitter: str, protocol: Protocol, name: str) -> SyftJobRef:
    """The job `name` of `submitter`; JobError for a name no layout can hold."""
    if not is_valid_email(submitter):
        raise JobError(f"{submitter!r}: a Syft job's scientist folder must be an email")
    problem = name_problem(name)
    if problem or name in ("", ".", "..") or "/" in name or name.startswith("."):
        raise JobError(f"{name!r}: not a usable Syft job name ({problem or 'reserved'})")
    if protocol == 0 and _VERSION_NAME.fullmatch(name):
        raise JobError(f"{name!r}: a version folder, not a protocol-0 job")
    version = (VERSION_FOLDER,) if protocol == 1 else ()
    root = gateway_root(datasite_root)
    return SyftJobRef(
        owner=datasite_root.name,
        submitter=submitter,
        protocol=protocol,
        name=name,
        inbox=root.joinpath("inbox", submitter, *version, name),
        review=root.joinpath("review", submitter, *version, name),
    )


def scan(datasite_root: Path) -> list[SyftJobRef]:
    """Every Syft job in the inbox, both layouts, sorted; links and malformed names skipped
    (never followed). Listing only: nothing is read."""
    inbox = gateway_root(datasite_root) / "inbox"
    found: list[SyftJobRef] = []
    for submitter in _folders(inbox):
        for name in _folders(inbox / submitter):
            if name == VERSION_FOLDER:
                found += _refs(datasite_root, submitter, 1, _folders(inbox / submitter / name))
            elif not _VERSION_NAME.fullmatch(name):
                found += _refs(datasite_root, submitter, 0, [name])
    return sorted(found, key=lambda r: (r.submitter, r.protocol, r.name))


def _refs(root: Path, submitter: str, protocol: Protocol, names: list[str]) -> list[SyftJobRef]:
    refs = []
    for name in names:
        try:
            refs.append(ref_for(root, submitter, protocol, name))
        except JobError:
            continue
    return refs


def _folders(path: Path) -> list[str]:
    """Names of the real folders (not links) directly in `path`; [] if it is not one."""
    try:
        if not stat.S_ISDIR(path.lstat().st_mode):
            return []
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except OSError:
        return []
