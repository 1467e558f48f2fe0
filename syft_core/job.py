"""The user-facing job handle (`Job`) and the list of them a client sees (`JobList`).

A Job holds only its folder and the acting user: every property reads the folder again, because
the folder is the state (another process, the runner or the sync, changes it under us).
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import overload

from syft_core.errors import JobError
from syft_core.job_html import job_html, jobs_table_html
from syft_core.jobs.config import SYFT_JOB_PROTOCOL, JobConfig
from syft_core.jobs.folder import JobFolder, JobState, Status
from syft_core.jobs.markers import DoneMarker, Outcome, ResultsReport
from syft_core.release import is_released, release_job, results_waiting
from syft_core.safefile import open_regular

_LOG_READ_LIMIT = 64 * 1024 * 1024  # the runner caps logs well below this; never read unbounded


@dataclass(frozen=True)
class LogFile:
    """One of a job's logs; `text` is empty while the file does not exist."""

    path: Path

    @property
    def text(self) -> str:
        try:
            fd = open_regular(self.path)  # a synced log that is a link, fifo or folder: refused
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise JobError(f"{self.path}: cannot read log: {exc.strerror or exc}") from None
        with os.fdopen(fd, "rb") as fh:
            return fh.read(_LOG_READ_LIMIT).decode("utf-8", errors="replace")

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

    @property
    def stdout(self) -> LogFile:
        return LogFile(self.folder.stdout_path)

    @property
    def stderr(self) -> LogFile:
        return LogFile(self.folder.stderr_path)

    @property
    def results(self) -> ResultsReport | None:
        """The runner's report of what the job produced (output names, refusals, peak memory,
        truncated logs); None until the job is done and, for a submitter, released and synced."""
        return self.folder.results()

    @property
    def outputs(self) -> list[Path]:
        """Regular files under outputs/, sorted; links and special files are not listed."""
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
        datasets it may read; it names none itself)."""
        self.folder.approve(
            self.user,
            expected_hash=expected_hash,
            without_review=without_review,
            reason=reason,
            datasets=datasets,
        )
        return self

    def reject(self, reason: str) -> Job:
        self.folder.reject(self.user, reason)
        return self

    def release(self) -> Job:
        """Let the submitter read this done job's logs and outputs (owner only)."""
        release_job(self.folder, by=self.user)
        return self

    def cancel(self, reason: str | None = None) -> Job:
        """Ends a job not yet running at once; asks the runner to stop a running one."""
        self.folder.request_cancel(self.user, reason)
        return self

    def wait(self, timeout: float | None = None, poll: float = 0.1) -> Job:
        """Block until the job is done. TimeoutError after `timeout` seconds (None: no limit);
        JobError at once if the job is rejected, since a rejected job never runs."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.state
            if state.status is Status.DONE:
                return self
            if state.status is Status.REJECTED:
                raise JobError(f"job {self.name!r} ({self.full_key}) was rejected: {state.reason}")
            if deadline is not None and time.monotonic() >= deadline:
                why = f" ({state.reason})" if state.reason else ""
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
        """The one job `key` names; KeyError listing the names (none) or candidates (several)."""
        exact = [j for j in self._jobs if key in (j.key, j.full_key)]
        matches = exact or [j for j in self._jobs if key in (j.name, j.folder_name)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            names = ", ".join(repr(j.name) for j in self._jobs) or "none"
            raise KeyError(f"no job named {key!r}; available: {names}")
        candidates = ", ".join(j.full_key for j in matches)
        raise KeyError(f"{key!r} names {len(matches)} jobs: {candidates}; use one of these")

    def __repr__(self) -> str:
        if not self._jobs:
            return "JobList([])"
        lines = [f"  {j.status.value:<8} {j.name!r} ({j.full_key})" for j in self._jobs]
        return "JobList([\n" + "\n".join(lines) + "\n])"

    def _repr_html_(self) -> str:
        return jobs_table_html(self._jobs)
