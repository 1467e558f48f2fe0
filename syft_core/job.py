"""The user-facing job handle (`Job`) and the list of them a client sees (`JobList`).

A Job holds only its folder and the acting user: every property reads the folder again, because
the folder is the state (another process, the runner or the sync, changes it under us).
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, overload

from syft_core.datasets import DatasetNotFoundError, list_datasets, require_names
from syft_core.datasite import Datasite
from syft_core.errors import JobError
from syft_core.job_html import job_html, jobs_table_html
from syft_core.jobs.config import SYFT_JOB_PROTOCOL, JobConfig
from syft_core.jobs.folder import JobFolder, JobState, Status
from syft_core.jobs.markers import DoneMarker, Outcome, ResultsReport
from syft_core.release import (
    RELEASE_REPORT,
    ReleaseReport,
    is_released,
    read_release_report,
    release_job,
    results_waiting,
)
from syft_core.safefile import read_capped

_LOG_READ_LIMIT = 64 * 1024 * 1024  # the runner caps logs well below this; never read unbounded
MAX_LISTED_KEYS = 10  # a not-found error lists at most this many keys to type
WaitUntil = Literal["done", "released"]


class ResultsNotReleasedError(JobError):
    """A submitter read the logs or outputs of a job on the owner's real data before the owner
    released them: they are not here (and never will be) until the release."""


class JobNotFoundError(JobError, KeyError):
    """No job, or more than one, matches a key; the message lists keys that can be typed."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class LogFile:
    """One of a job's logs; `text` is empty while the file does not exist. `held` says why the
    reader may not read it yet (a submitter's view of an unreleased real-data job): reading it
    then raises ResultsNotReleasedError with that reason, even where the file is at hand (a
    syftbox shared with the owner), as the permissions would refuse it."""

    path: Path
    held: str | None = None

    @property
    def text(self) -> str:
        if self.held is not None:
            raise ResultsNotReleasedError(self.held)
        try:
            # A synced log that is a link, fifo or folder: refused.
            data = read_capped(self.path, _LOG_READ_LIMIT)
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise JobError(f"{self.path}: cannot read log: {exc.strerror or exc}") from None
        return data.decode("utf-8", errors="replace")

    def __str__(self) -> str:
        return self.text


class Job:
    """A job folder seen by `user`. Only the job's owner may approve, reject or cancel it."""

    def __init__(self, folder: JobFolder, user: str) -> None:
        self.folder = folder
        self.user = user

    # -- identity -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The name in config.yaml; the folder name when the config cannot be read."""
        try:
            return self.config.name
        except JobError:
            return self.folder.name

    @property
    def folder_name(self) -> str:
        return self.folder.name

    @property
    def submitted_by(self) -> str:
        """The submitter folder the job sits in: unlike config.yaml's claim, write permissions
        guarantee it (only that user may write under jobs/<user>/)."""
        return self.folder.submitter

    @property
    def owner(self) -> str:
        return self.folder.owner

    @property
    def location(self) -> Path:
        return self.folder.path

    @property
    def key(self) -> str:
        """`<submitter>/<folder>`: unique within one owner's jobs/."""
        return f"{self.submitted_by}/{self.folder_name}"

    @property
    def full_key(self) -> str:
        """`<owner>/jobs/<submitter>/<folder>`: unique within a syftbox."""
        return f"{self.owner}/{self.folder.relpath}"

    @property
    def config(self) -> JobConfig:
        return self.folder.config()

    @property
    def submitted_at(self) -> datetime | None:
        """When the submitter says they submitted (config.yaml); None if it cannot be read."""
        try:
            return self.config.submitted_at
        except JobError:
            return None

    # -- state --------------------------------------------------------------------------------
    @property
    def state(self) -> JobState:
        return self.folder.state()

    @property
    def status(self) -> Status:
        """inbox, approved, rejected, running or done (a str enum: compares equal to the text)."""
        return self.state.status

    @property
    def status_reason(self) -> str | None:
        return self.state.reason

    @property
    def done(self) -> DoneMarker | None:
        return self.state.done

    @property
    def outcome(self) -> Outcome | None:
        done = self.done
        return done.outcome if done else None

    @property
    def exit_code(self) -> int | None:
        done = self.done
        return done.exit_code if done else None

    @property
    def released(self) -> bool:
        """Whether the owner released the results (logs/, outputs/) to the submitter."""
        return is_released(self.folder)

    @property
    def results_waiting(self) -> bool:
        """Done on real data and not yet released: the results wait for the owner's release."""
        return results_waiting(self.folder)

    def held_reason(self) -> str | None:
        """Why this user cannot read the job's logs and outputs yet: it runs on the owner's real
        data, this user is not the owner, and the owner has not released the results. None when
        nothing holds them (the owner's own view, a mock run, a released job)."""
        if self.user == self.owner:
            return None
        state = self.state
        if state.released is not None:
            return None
        try:
            if self.config.mode == "mock":
                return None
        except JobError:
            pass  # no readable config: treated as real, as the release rules do
        where = (
            f"{state.status.value}, outcome {state.done.outcome.value}"
            if state.done is not None
            else state.status.value
        )
        return (
            f"job {self.name!r} ({self.full_key}) runs on {self.owner}'s real data: its logs and "
            f"outputs reach you only after {self.owner} releases them (now: {where}, not "
            f"released); job.wait() waits for the release"
        )

    @property
    def stdout(self) -> LogFile:
        """The job's stdout. ResultsNotReleasedError when read before the release (see
        held_reason), rather than an empty text."""
        return LogFile(self.folder.stdout_path, self.held_reason())

    @property
    def stderr(self) -> LogFile:
        return LogFile(self.folder.stderr_path, self.held_reason())

    @property
    def results(self) -> ResultsReport | None:
        """The runner's report of what the job produced (output names, refusals, peak memory,
        truncated logs); None until the job is done and, for a submitter, released and synced."""
        return self.folder.results()

    @property
    def outputs(self) -> list[Path]:
        """Regular files under outputs/, sorted; links and special files are not listed.
        ResultsNotReleasedError for a submitter before the release (see held_reason)."""
        held = self.held_reason()
        if held is not None:
            raise ResultsNotReleasedError(held)
        root = self.folder.outputs_dir
        if root.is_symlink() or not root.is_dir():
            return []
        found: list[Path] = []
        for folder, dirs, files in os.walk(root):  # os.walk never descends into linked folders
            dirs.sort()
            for name in files:
                path = Path(folder) / name
                if stat.S_ISREG(path.lstat().st_mode):
                    found.append(path)
        return sorted(found)

    # -- actions ------------------------------------------------------------------------------
    @property
    def content_hash(self) -> str:
        """The hash of the submission as it is now: what `approve(expected_hash=...)` compares."""
        return self.folder.content_hash()

    def approve(
        self,
        reason: str | None = None,
        *,
        expected_hash: str | None = None,
        without_review: bool = False,
        datasets: list[str] | None = None,
    ) -> Job:
        """Approve exactly the content reviewed: `expected_hash` is the hash shown with it
        (`syft-runner show`, `Snapshot.content_hash`); ContentChangedError if the submission
        differs now. `without_review=True` approves unread (recorded as such), for scripts.
        `datasets` narrows what the run may read (a Syft job's: which of the owner's Syft
        datasets it may read; it names none itself). A dataset the job would read that this
        datasite does not have is refused here, naming the available ones."""
        self._require_datasets(datasets)
        self.folder.approve(
            self.user,
            expected_hash=expected_hash,
            without_review=without_review,
            reason=reason,
            datasets=datasets,
        )
        return self

    def _require_datasets(self, chosen: list[str] | None) -> None:
        try:
            config = self.config
        except JobError:
            return  # the approval itself names what is wrong with the config
        if config.protocol == SYFT_JOB_PROTOCOL:
            return  # their datasets are checked where they are mounted (workspace.staging)
        datasite = Datasite(self.folder.datasite_root.parent, self.folder.owner)
        wanted = chosen if chosen is not None else config.datasets
        try:
            require_names(datasite.email, wanted, [d.name for d in list_datasets(datasite)])
        except DatasetNotFoundError as exc:
            raise JobError(f"{self.folder.path}: not approved: {exc}") from None

    def reject(self, reason: str) -> Job:
        self.folder.reject(self.user, reason)
        return self

    def release(self, *, only: list[str] | None = None, override: str | None = None) -> Job:
        """Let the submitter read this done job's logs and outputs (owner only), after the
        output checks: `only` releases just these files (paths relative to the job folder or to
        outputs/); outputs failing a disclosure rule need `override`, a reason (recorded)."""
        release_job(self.folder, by=self.user, only=only, override=override)
        return self

    @property
    def release_decisions(self) -> ReleaseReport | None:
        """What the submitter got of each file the job wrote, and why the rest was withheld
        (logs/release.yaml); None before a release."""
        if not (self.folder.path / RELEASE_REPORT).is_file():
            return None
        return read_release_report(self.folder)

    def cancel(self, reason: str | None = None) -> Job:
        """Ends a job not yet running at once; asks the runner to stop a running one."""
        self.folder.request_cancel(self.user, reason)
        return self

    def wait(
        self, timeout: float | None = None, poll: float = 0.1, until: WaitUntil | None = None
    ) -> Job:
        """Block until the job's results can be read. `until="released"`: the job is done and
        its owner released the results (logs, outputs); `until="done"`: only done. The default
        is "released" for a submitter's job on real data, "done" for a mock run (released
        automatically) and for the owner's own view. A cancelled job returns once done.
        TimeoutError after `timeout` seconds (None: no limit), naming what it still waits for;
        JobError at once if the job is rejected, since a rejected job never runs."""
        if until is None:
            until = "released" if self.held_reason() is not None else "done"
        if until not in ("done", "released"):
            raise ValueError(f"until must be 'done' or 'released', not {until!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.state
            if state.status is Status.DONE and (
                until == "done"
                or state.released is not None
                or (state.done is not None and state.done.outcome is Outcome.CANCELLED)
            ):
                return self
            if state.status is Status.REJECTED:
                raise JobError(f"job {self.name!r} ({self.full_key}) was rejected: {state.reason}")
            if deadline is not None and time.monotonic() >= deadline:
                why = f" ({state.reason})" if state.reason else ""
                if state.status is Status.DONE:
                    raise TimeoutError(
                        f"job {self.name!r} ({self.full_key}) is done "
                        f"({state.done.outcome.value if state.done else '?'}) but {self.owner} "
                        f"has not released its results after {timeout}s"
                    )
                raise TimeoutError(
                    f"job {self.name!r} ({self.full_key}) not done after {timeout}s; "
                    f"last status: {state.status.value}{why}"
                )
            time.sleep(poll)

    # -- display ------------------------------------------------------------------------------
    @property
    def gateway(self) -> str:
        """Which gateway the job came through: "jobs" (ours) or "syft-job p0|p1" (OpenMined's
        clients, protocol 0 or 1, mirrored by the runner); "" when the config cannot be read."""
        try:
            if self.config.protocol != SYFT_JOB_PROTOCOL:
                return "jobs"
        except JobError:
            return ""
        found = re.match(r"syftjob-(p\d)-", self.folder_name)
        return f"syft-job {found.group(1)}" if found else "syft-job"

    def summary(self) -> dict[str, str]:
        """The fields shown by repr, the notebook table and the CLI, as text."""
        state = self.state
        submitted = self.submitted_at
        return {
            "name": self.name,
            "folder": self.folder_name,
            "gateway": self.gateway,
            "owner": self.owner,
            "submitted_by": self.submitted_by,
            "submitted_at": submitted.isoformat(timespec="seconds") if submitted else "",
            "status": state.status.value,
            "reason": state.reason or "",
            "outcome": state.done.outcome.value if state.done else "",
            "exit_code": ""
            if state.done is None or state.done.exit_code is None
            else str(state.done.exit_code),
            "location": str(self.location),
        }

    def __repr__(self) -> str:
        return f"Job({self.name!r}, {self.full_key}, status={self.status.value})"

    def _repr_html_(self) -> str:
        return job_html(self)


class JobList(Sequence[Job]):
    """Jobs a client sees: index by position, by name (config or folder name), by
    `<submitter>/<folder>` or by `<owner>/jobs/<submitter>/<folder>`; iterate; len()."""

    def __init__(self, jobs: Iterable[Job]) -> None:
        self._jobs = list(jobs)

    @overload
    def __getitem__(self, index: int) -> Job: ...
    @overload
    def __getitem__(self, index: slice) -> JobList: ...
    @overload
    def __getitem__(self, index: str) -> Job: ...

    def __getitem__(self, index: int | slice | str) -> Job | JobList:
        if isinstance(index, str):
            return self.find(index)
        if isinstance(index, slice):
            return JobList(self._jobs[index])
        return self._jobs[index]

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[Job]:
        return iter(self._jobs)

    def find(self, key: str) -> Job:
        """The one job `key` names: its `<submitter>/<folder>` (or, for a job submitted to
        another owner, `<owner>/<folder>`), its `<owner>/jobs/<submitter>/<folder>`, its folder
        or its name; exactly first, then ignoring letter case. JobNotFoundError (a KeyError)
        listing at most MAX_LISTED_KEYS keys to type when none matches, or the candidates'
        keys when several do."""
        folded = key.casefold()
        tiers: list[Callable[[Job], bool]] = [
            lambda j: key in _keys(j),
            lambda j: key in (j.name, j.folder_name),
            lambda j: folded in {k.casefold() for k in _keys(j)},
            lambda j: folded in (j.name.casefold(), j.folder_name.casefold()),
        ]
        for matches_key in tiers:
            matches = [j for j in self._jobs if matches_key(j)]
            if len(matches) == 1:
                return matches[0]
            if matches:
                candidates = ", ".join(typeable_key(j) for j in matches[:MAX_LISTED_KEYS])
                more = len(matches) - MAX_LISTED_KEYS
                raise JobNotFoundError(
                    f"{key!r} names {len(matches)} jobs: {candidates}"
                    + (f" and {more} more" if more > 0 else "")
                    + "; use one of these"
                )
        listed = [typeable_key(j) for j in self._jobs[:MAX_LISTED_KEYS]]
        more = len(self._jobs) - len(listed)
        available = ", ".join(listed) + (f" and {more} more" if more > 0 else "")
        raise JobNotFoundError(f"no job {key!r}; jobs: {available or 'none'}")

    def __repr__(self) -> str:
        if not self._jobs:
            return "JobList([])"
        lines = [f"  {j.status.value:<8} {j.name!r} ({j.full_key})" for j in self._jobs]
        return "JobList([\n" + "\n".join(lines) + "\n])"

    def _repr_html_(self) -> str:
        return jobs_table_html(self._jobs)


def typeable_key(job: Job) -> str:
    """The short key to type for `job`: `<submitter>/<folder>` in the owner's own datasite,
    `<owner>/<folder>` for a job submitted elsewhere (the submitter is then the user)."""
    if job.owner == job.user:
        return job.key
    return f"{job.owner}/{job.folder_name}"


def _keys(job: Job) -> tuple[str, ...]:
    return (job.key, job.full_key, f"{job.owner}/{job.folder_name}")
