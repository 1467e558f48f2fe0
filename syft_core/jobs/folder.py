"""One job folder, `<syftbox>/<owner>/jobs/<submitter>/<job>/`, and its validated state machine.

The folder is the state: status is derived from the marker files every time, never cached.

    inbox ──approve──▶ approved ──start──▶ running ──finish──▶ done
      │                  │  └────────finish (failed before start / cancelled)──▶ done
      └──reject──▶ rejected ◀──reject──┘
    inbox ──cancel──▶ done(cancelled)
    done ──release──▶ done, released (the submitter may now read logs/ and outputs/)

An approval binds to the submission's content hash: if run.sh, config.yaml or code/ change after
approval, the job reads as `inbox` again, with the reason, and must be re-approved.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

from syft_core.datasite import EVENT_LOG
from syft_core.errors import AccessDeniedError, JobError, SyftError
from syft_core.events import EventLog
from syft_core.identity import is_valid_email
from syft_core.jobs.config import MAX_CONFIG_BYTES, SYFT_JOB_PROTOCOL, JobConfig, load_config
from syft_core.jobs.markers import (
    ApprovedMarker,
    CancelMarker,
    DoneMarker,
    Marker,
    Outcome,
    RejectedMarker,
    ReleasedMarker,
    ResultsReport,
    RunningMarker,
    read_marker,
    read_results,
    write_marker,
)
from syft_core.jobs.snapshot import Snapshot, submission_hash
from syft_core.paths import normalize_relpath
from syft_core.review import record_review


class ContentChangedError(JobError):
    """The submission differs from the content hash the approver reviewed."""


class Status(StrEnum):
    INBOX = "inbox"
    APPROVED = "approved"
    REJECTED = "rejected"
    RUNNING = "running"
    DONE = "done"


@dataclass(frozen=True)
class JobState:
    status: Status
    reason: str | None = None  # why the status is what it is, when that is not obvious
    approved: ApprovedMarker | None = None
    rejected: RejectedMarker | None = None
    running: RunningMarker | None = None
    done: DoneMarker | None = None
    cancel: CancelMarker | None = None
    released: ReleasedMarker | None = None  # only ever set on a done job


class JobFolder:
    """Paths and state transitions of one job. Construct from its path; the shape is checked."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        parts = self.path.parts
        if len(parts) < 4 or parts[-3] != "jobs":
            raise JobError(f"{path}: not a job folder (<syftbox>/<owner>/jobs/<submitter>/<job>)")
        self.name = parts[-1]
        self.submitter = parts[-2]
        self.owner = parts[-4]
        for role, email in (("owner", self.owner), ("submitter", self.submitter)):
            if not is_valid_email(email):
                raise JobError(f"{path}: the {role} folder {email!r} is not an email")
        normalize_relpath(self.name, what="job folder name")

    @classmethod
    def at(cls, syftbox_root: Path, owner: str, submitter: str, name: str) -> JobFolder:
        return cls(Path(syftbox_root) / owner / "jobs" / submitter / name)

    def __repr__(self) -> str:
        return f"JobFolder({self.owner}:{self.submitter}/{self.name})"

    # -- layout -------------------------------------------------------------------------------
    @property
    def datasite_root(self) -> Path:
        return self.path.parents[2]

    @property
    def relpath(self) -> str:
        """The job folder relative to the owner's datasite."""
        return f"jobs/{self.submitter}/{self.name}"

    @property
    def run_sh(self) -> Path:
        return self.path / "run.sh"

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def code_dir(self) -> Path:
        return self.path / "code"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def stdout_path(self) -> Path:
        return self.logs_dir / "stdout.txt"

    @property
    def stderr_path(self) -> Path:
        return self.logs_dir / "stderr.txt"

    @property
    def results_path(self) -> Path:
        """The runner's ResultsReport: under logs/, so it leaves only with the release."""
        return self.logs_dir / "results.yaml"

    def results(self) -> ResultsReport | None:
        return read_results(self.results_path)

    @property
    def outputs_dir(self) -> Path:
        return self.path / "outputs"

    def marker_path(self, kind: str) -> Path:
        return self.path / kind

    @property
    def events(self) -> EventLog:
        return EventLog(self.datasite_root / EVENT_LOG)

    # -- reading ------------------------------------------------------------------------------
    def config(self) -> JobConfig:
        return load_config(self.config_path)

    def content_hash(self) -> str:
        return submission_hash(self.path)

    def state(self) -> JobState:
        """Derive the status from the markers. Cheap for finished jobs: no hashing once done."""
        try:
            done = read_marker(self.marker_path("done"), DoneMarker)
        except JobError as exc:
            return JobState(Status.DONE, reason=str(exc))
        if done is not None:
            return JobState(Status.DONE, done=done, reason=done.message, released=self._released())
        markers: dict[str, Marker | None] = {}
        for kind, model in (
            ("approved", ApprovedMarker),
            ("rejected", RejectedMarker),
            ("running", RunningMarker),
            ("cancel", CancelMarker),
        ):
            try:
                markers[kind] = read_marker(self.marker_path(kind), model)
            except JobError as exc:
                return JobState(Status.INBOX, reason=str(exc))
        approved = markers["approved"]
        rejected = markers["rejected"]
        running = markers["running"]
        cancel = markers["cancel"]
        assert approved is None or isinstance(approved, ApprovedMarker)
        assert rejected is None or isinstance(rejected, RejectedMarker)
        assert running is None or isinstance(running, RunningMarker)
        assert cancel is None or isinstance(cancel, CancelMarker)
        if running is not None:
            return JobState(Status.RUNNING, approved=approved, running=running, cancel=cancel)
        if rejected is not None:
            return JobState(Status.REJECTED, rejected=rejected, reason=rejected.reason)
        if approved is not None:
            changed = self._changed_since(approved)
            if changed:
                return JobState(Status.INBOX, reason=changed, approved=approved, cancel=cancel)
            return JobState(Status.APPROVED, approved=approved, cancel=cancel)
        return JobState(Status.INBOX, cancel=cancel)

    def _released(self) -> ReleasedMarker | None:
        """The release marker; an unreadable one counts as not released, so results stay private."""
        try:
            return read_marker(self.marker_path("released"), ReleasedMarker)
        except JobError:
            return None

    def _changed_since(self, approved: ApprovedMarker) -> str | None:
        """Why the approval no longer holds, or None if the submission is what was approved."""
        try:
            current = self.content_hash()
        except JobError as exc:
            return f"submission changed after approval and is no longer valid: {exc}"
        if current != approved.content_hash:
            return (
                "submission changed after approval (approved "
                f"{approved.content_hash[:19]}…, now {current[:19]}…); it must be approved again"
            )
        return None

    # -- transitions --------------------------------------------------------------------------
    def _require_owner(self, by: str, action: str) -> None:
        if by != self.owner:
            raise AccessDeniedError(
                f"{self.path}: only the owner {self.owner} may {action} this job, not {by}"
            )

    def _require(self, state: JobState, allowed: set[Status], action: str) -> None:
        if state.status not in allowed:
            names = ", ".join(sorted(s.value for s in allowed))
            raise JobError(
                f"{self.path}: cannot {action} a job that is {state.status.value} "
                f"(allowed from: {names})"
            )

    def _record(self, by: str, what: str, **details: object) -> None:
        self.events.append(by, f"job.{what}", self.relpath, **details)

    def approve(
        self,
        by: str,
        *,
        expected_hash: str | None = None,
        without_review: bool = False,
        reason: str | None = None,
        method: str = "manual",
        datasets: list[str] | None = None,
    ) -> ApprovedMarker:
        """Approve exactly what was reviewed: `expected_hash` is the content hash the approver
        was shown (`syft-runner show`, Snapshot.content_hash). ContentChangedError when the
        submission differs from it now, so a file swapped between review and approval is never
        approved. `without_review=True` approves the current content unread, for scripts; the
        marker and the event log record that it was unreviewed. `datasets` narrows what the run
        may read to these (each must be one the config asks for; a Syft job's config asks for
        none, so the owner names its datasets here)."""
        self._require_owner(by, "approve")
        if expected_hash is None and not without_review:
            raise JobError(
                f"{self.path}: approving needs the content hash that was reviewed "
                "(`syft-runner show` prints it; pass it as --hash / expected_hash), or "
                "without_review=True to approve whatever the folder holds now"
            )
        self._require(self.state(), {Status.INBOX}, "approve")
        snapshot = Snapshot.take(self.path, keep_bytes=MAX_CONFIG_BYTES)
        if expected_hash is not None and snapshot.content_hash != expected_hash:
            raise ContentChangedError(
                f"{self.path}: the submission is not what was reviewed (reviewed "
                f"{expected_hash[:19]}…, now {snapshot.content_hash[:19]}…); review it again"
            )
        config = snapshot.config()  # a job whose config is invalid cannot be approved
        if datasets is not None:
            _check_chosen_datasets(self.path, config, datasets)
        marker = ApprovedMarker(
            by=by,
            reason=reason,
            method=method,
            content_hash=snapshot.content_hash,
            unreviewed=without_review,
            datasets=None if datasets is None else list(dict.fromkeys(datasets)),
        )
        write_marker(self.marker_path("approved"), marker)
        record_review(self, snapshot, "approved")
        self._record(
            by,
            "approved",
            method=method,
            reason=reason,
            hash=marker.content_hash,
            unreviewed=without_review,
            datasets=marker.datasets,
        )
        return marker

    def reject(self, by: str, reason: str) -> RejectedMarker:
        self._require_owner(by, "reject")
        self._require(self.state(), {Status.INBOX, Status.APPROVED}, "reject")
        marker = RejectedMarker(by=by, reason=reason)
        write_marker(self.marker_path("rejected"), marker)
        with contextlib.suppress(JobError):  # an unsafe submission: nothing to compare later
            record_review(self, Snapshot.take(self.path), "rejected")
        self._record(by, "rejected", reason=reason)
        return marker

    def start(
        self, by: str, *, container: str, image: str, image_id: str, content_hash: str
    ) -> RunningMarker:
        self._require_owner(by, "start")
        self._require(self.state(), {Status.APPROVED}, "start")
        marker = RunningMarker(
            by=by, container=container, image=image, image_id=image_id, content_hash=content_hash
        )
        write_marker(self.marker_path("running"), marker)
        self._record(by, "running", **_running_details(marker))
        return marker

    def finish(self, marker: DoneMarker) -> DoneMarker:
        """Write the terminal `done` marker. From running, or from approved/inbox when the job
        failed before it could start (e.g. a changed submission) or was cancelled."""
        self._require_owner(marker.by, "finish")
        self._require(self.state(), {Status.INBOX, Status.APPROVED, Status.RUNNING}, "finish")
        # The submitter reads `done`: a path in its message is named as they know it (from the
        # syftbox, `<owner>/jobs/...`), never by where the owner's syftbox sits on its disk.
        box = f"{self.datasite_root.parent}{os.sep}"
        marker = marker.model_copy(update={"message": marker.message.replace(box, "")})
        write_marker(self.marker_path("done"), marker)
        self._record(marker.by, "done", **_done_details(marker))
        return marker

    def release(
        self,
        by: str,
        method: str = "manual",
        *,
        scope: Literal["all", "partial"] = "all",
        released_count: int | None = None,
        withheld_count: int = 0,
    ) -> ReleasedMarker:
        """Mark a done job's results as released; idempotent once everything is released (that
        release is kept). A partial release is replaced by the next one, which widens it. Only
        the marker: the permission file that lets the submitter read them is syft_core.release's."""
        self._require_owner(by, "release")
        state = self.state()
        self._require(state, {Status.DONE}, "release")
        if state.released is not None and state.released.scope == "all":
            return state.released
        marker = ReleasedMarker(
            by=by,
            method=method,
            scope=scope,
            released_count=released_count,
            withheld_count=withheld_count,
        )
        write_marker(self.marker_path("released"), marker)
        self._record(by, "released", **_released_details(marker))
        return marker

    def request_cancel(self, by: str, reason: str | None = None) -> JobState:
        """Cancel: a job not yet running ends at once; a running one gets a `cancel` request that
        the runner answers by stopping the container and writing `done` (cancelled)."""
        self._require_owner(by, "cancel")
        state = self.state()
        self._require(state, {Status.INBOX, Status.APPROVED, Status.RUNNING}, "cancel")
        if state.status is Status.RUNNING:
            write_marker(self.marker_path("cancel"), CancelMarker(by=by, reason=reason))
            self._record(by, "cancel_requested", reason=reason)
        else:
            message = f"cancelled by {by}" + (f": {reason}" if reason else "")
            self.finish(DoneMarker(by=by, outcome=Outcome.CANCELLED, message=message))
        return self.state()

    def restore_events(self, by: str) -> list[str]:
        """After a crash: log the `running`, `done` and `released` transitions whose marker was
        written but whose event was not (the process died between the two writes). The markers
        are the truth; the event log is rebuilt from them. Idempotent; returns what it logged."""
        restored: list[str] = []
        for kind, model, details in _RESTORABLE:
            try:
                marker = read_marker(self.marker_path(kind), model)
            except JobError:
                continue
            if marker is None or self.events.recorded_since(f"job.{kind}", self.relpath, marker.at):
                continue
            self._record(by, kind, restored=True, **details(marker))
            restored.append(kind)
        return restored


def _check_chosen_datasets(path: Path, config: JobConfig, chosen: list[str]) -> None:
    if config.protocol == SYFT_JOB_PROTOCOL:
        return  # a Syft job names no datasets: the owner's choice is the whole list
    extra = [name for name in chosen if name not in config.datasets]
    if extra:
        asked = ", ".join(config.datasets) or "none"
        raise JobError(
            f"{path}: --dataset may only narrow what the job asks for ({asked}); "
            f"not asked for: {', '.join(extra)}"
        )


def _running_details(marker: Marker) -> dict[str, object]:
    assert isinstance(marker, RunningMarker)
    return {"container": marker.container, "image_id": marker.image_id}


def _done_details(marker: Marker) -> dict[str, object]:
    assert isinstance(marker, DoneMarker)
    return {
        "outcome": marker.outcome.value,
        "exit_code": marker.exit_code,
        "message": marker.message,
    }


def _released_details(marker: Marker) -> dict[str, object]:
    assert isinstance(marker, ReleasedMarker)
    if marker.scope == "all":
        return {"method": marker.method}
    return {
        "method": marker.method,
        "scope": marker.scope,
        "released_count": marker.released_count,
        "withheld_count": marker.withheld_count,
    }


# The transitions a runner makes on its own, in the order it makes them.
_RESTORABLE: tuple[tuple[str, type[Marker], Callable[[Marker], dict[str, object]]], ...] = (
    ("running", RunningMarker, _running_details),
    ("done", DoneMarker, _done_details),
    ("released", ReleasedMarker, _released_details),
)


def iter_job_folders(datasite_root: Path) -> list[JobFolder]:
    """Every job folder under `<datasite>/jobs/<submitter>/<job>/`, skipping anything malformed."""
    jobs_root = datasite_root / "jobs"
    found: list[JobFolder] = []
    if not jobs_root.is_dir():
        return found
    for submitter in sorted(jobs_root.iterdir()):
        if submitter.is_symlink() or not submitter.is_dir() or not is_valid_email(submitter.name):
            continue
        for job in sorted(submitter.iterdir()):
            if job.is_symlink() or not job.is_dir() or job.name.startswith("."):
                continue
            try:
                found.append(JobFolder(job))
            except SyftError:  # JobError, or UnsafePathError for an unusable folder name
                continue
    return found
