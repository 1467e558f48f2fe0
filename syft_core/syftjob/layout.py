"""Where OpenMined's Syft job gateway keeps its jobs (syft-job 0.1.39 and 0.1.40).

    <datasite>/app_data/job/inbox/<ds>/JOB/       protocol 0: the scientist's client writes run.sh,
    <datasite>/app_data/job/inbox/<ds>/v1/JOB/    protocol 1:   config.yaml and code/
    <datasite>/app_data/job/review/<ds>/[v1/]JOB/ the owner's side writes state.yaml and results

JOB is free text (their default, `Job - <8 hex>`, has spaces) and identity comes from the path,
so a job is never renamed. `v<digits>` names are the layout's version folders, never a P0 job.
The inbox is the scientist's to write: it is listed without following links, every name is
checked, and each folder is checked to be a real one before it is read or written.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from syft_core.datasite import PERMISSION_FILE
from syft_core.errors import JobError
from syft_core.filestamp import Stamp, is_racy, stamp
from syft_core.identity import is_valid_email
from syft_core.names import name_problem, visible
from syft_core.permissions.matching import escape_literal
from syft_core.safefile import file_kind

Protocol = Literal[0, 1]
PROTOCOLS: tuple[Protocol, ...] = (0, 1)
GATEWAY = ("app_data", "job")
VERSION_FOLDER = "v1"  # protocol 1's folder under inbox/<ds>/ and review/<ds>/
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
        """A stable id for logs and the CLI: `p<protocol>/<ds>/<JOB>`."""
        return f"p{self.protocol}/{self.submitter}/{self.name}"

    @property
    def relparts(self) -> tuple[str, ...]:
        """The job folder's path under `inbox/` and `review/`: (ds, [v1,] JOB)."""
        version = (VERSION_FOLDER,) if self.protocol == 1 else ()
        return (self.submitter, *version, self.name)

    @property
    def outputs_pattern(self) -> str:
        """The outputs rule's pattern relative to `review/<ds>/`, as their runner writes it
        (`[v1/]JOB/outputs/**`); glob characters in JOB escaped so it names this job only."""
        return "/".join((*self.relparts[1:-1], escape_literal(self.name), "outputs", "**"))

    @property
    def review_root(self) -> Path:
        """`review/<ds>/`, whose syft.pub.yaml governs every job of this scientist."""
        return self.review.parents[len(self.relparts) - 2]


def gateway_root(datasite_root: Path) -> Path:
    """`<datasite>/app_data/job`."""
    return datasite_root.joinpath(*GATEWAY)


def name_refusal(name: str) -> str | None:
    """Why `name` cannot be a Syft job folder of ours, or None."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        return "not a single folder name"
    if name.startswith("."):
        return "a hidden name"
    if name.casefold() == PERMISSION_FILE:
        return "the permission file's name"
    return name_problem(name)


def ref_for(datasite_root: Path, submitter: str, protocol: Protocol, name: str) -> SyftJobRef:
    """The job `name` of `submitter`; JobError naming the value and the reason when no layout
    can hold it."""
    owner = datasite_root.name
    for who, email in (("datasite owner", owner), ("scientist folder", submitter)):
        if not is_valid_email(email):
            raise JobError(f"{visible(email)!r}: the {who} of a Syft job must be an email")
    if protocol not in PROTOCOLS:
        raise JobError(f"{protocol!r}: not a Syft job protocol (0 or 1)")
    problem = name_refusal(name)
    if problem is None and protocol == 0 and _VERSION_NAME.fullmatch(name):
        problem = "a version folder, not a protocol-0 job"
    if problem:
        raise JobError(f"{visible(name)!r}: not a usable Syft job name: {problem}")
    root = gateway_root(datasite_root)
    parts = (submitter, *((VERSION_FOLDER,) if protocol == 1 else ()), name)
    return SyftJobRef(
        owner=owner,
        submitter=submitter,
        protocol=protocol,
        name=name,
        inbox=root.joinpath("inbox", *parts),
        review=root.joinpath("review", *parts),
    )


def scan(datasite_root: Path) -> list[SyftJobRef]:
    """Every Syft job folder in the inbox, both layouts, sorted by (ds, protocol, JOB). Listing
    only: links are skipped (never followed), so are malformed names and non-email folders."""
    return Scanner(datasite_root).scan()


class Scanner:
    """`scan` for a caller that scans again and again (the runner, every few seconds): a folder
    whose stamp (adding, removing or renaming an entry changes it) is what it was is not listed
    again, nor are its jobs' refs rebuilt; one listed within RACY_NS of its last change is (an
    entry added in the same clock tick would leave the stamp as it was). Memory only."""

    def __init__(self, datasite_root: Path) -> None:
        self.root = datasite_root
        self._listed: dict[Path, tuple[Stamp, list[str]]] = {}
        self._refs: dict[tuple[str, int, str], SyftJobRef | None] = {}

    def scan(self) -> list[SyftJobRef]:
        inbox = gateway_root(self.root) / "inbox"
        if not is_valid_email(self.root.name):
            return []
        found: list[SyftJobRef] = []
        for submitter in filter(is_valid_email, self._folders(inbox)):
            for name in self._folders(inbox / submitter):
                if name == VERSION_FOLDER:
                    names = self._folders(inbox / submitter / name)
                    found += self._refs_of(submitter, 1, names)
                else:
                    found += self._refs_of(submitter, 0, [name])
        return sorted(found, key=lambda r: (r.submitter, r.protocol, r.name))

    def _folders(self, path: Path) -> list[str]:
        try:
            st = path.lstat()
        except OSError:
            return []
        cached = self._listed.get(path)
        if cached is not None and cached[0] == stamp(st):
            return cached[1]
        names = _folders(path)
        if is_racy(st):
            self._listed.pop(path, None)
        else:
            self._listed[path] = (stamp(st), names)
        return names

    def _refs_of(self, submitter: str, protocol: Protocol, names: list[str]) -> list[SyftJobRef]:
        refs = []
        for name in names:
            key = (submitter, protocol, name)
            if key not in self._refs:
                self._refs[key] = next(iter(_refs(self.root, submitter, protocol, [name])), None)
            ref = self._refs[key]
            if ref is not None:
                refs.append(ref)
        return refs


def _refs(root: Path, submitter: str, protocol: Protocol, names: list[str]) -> list[SyftJobRef]:
    refs = []
    for name in names:
        try:
            refs.append(ref_for(root, submitter, protocol, name))
        except JobError:
            continue
    return refs


def _folders(path: Path) -> list[str]:
    """The names of the real folders (not links) directly in `path`; [] when it is not one."""
    try:
        if not stat.S_ISDIR(path.lstat().st_mode):
            return []
        with os.scandir(path) as entries:
            return [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def inbox_dir(ref: SyftJobRef, *, error: type[JobError] = JobError) -> Path:
    """`ref.inbox`, checked to be a real folder down from `inbox/` (no link on the way);
    `error` naming the path otherwise, FileNotFoundError when it is absent."""
    return _real_dir(ref.inbox.parents[len(ref.relparts) - 1], ref.relparts, error, create=False)


def review_dir(ref: SyftJobRef, *, create: bool) -> Path:
    """`ref.review`, checked to be a real folder down from `review/` (created with `create`);
    JobError naming the path for a link or a file on the way."""
    base = ref.review.parents[len(ref.relparts) - 1]
    if create:
        base.mkdir(parents=True, exist_ok=True)
    return _real_dir(base, ref.relparts, JobError, create=create)


def _real_dir(base: Path, parts: tuple[str, ...], error: type[JobError], *, create: bool) -> Path:
    path = base
    for part in parts:
        path = path / part
        if create:
            with contextlib.suppress(FileExistsError):
                path.mkdir()
        mode = path.lstat().st_mode  # FileNotFoundError when absent
        if not stat.S_ISDIR(mode):
            kind = "a file" if stat.S_ISREG(mode) else file_kind(mode)
            raise error(f"{path}: is {kind}, not a folder (not followed)")
    return path
