"""Status markers: small YAML files the owner's side writes into a job folder.

`approved`, `rejected`, `running`, `done` and `released` record who, when, how and why; `cancel` is
the owner's request to stop a job, which the runner answers with a `done` marker. Only the owner's
side writes them: the default jobs/ permission rules deny every submitter (see syft_core.datasite).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from syft_core.atomic import atomic_write_text
from syft_core.errors import JobError
from syft_core.events import utcnow
from syft_core.yamlio import dump_yaml_json, read_untrusted_yaml


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    OOM_KILLED = "oom_killed"
    CANCELLED = "cancelled"
    ERROR = "error"


class Marker(BaseModel):
    model_config = ConfigDict(extra="allow")

    by: str
    at: datetime = Field(default_factory=utcnow)


class ApprovedMarker(Marker):
    reason: str | None = None
    method: str = "manual"  # "manual" or "policy:<name>"
    content_hash: str
    # True when approved without a reviewed hash to compare (JobFolder.approve without_review).
    unreviewed: bool = False
    # The datasets the owner lets this run read, when they chose at approval (`approve
    # --dataset`): a subset of what the config asks for, or, for a Syft job (which names none),
    # the owner's Syft datasets to mount. None: what the config asks for.
    datasets: list[str] | None = None


class RejectedMarker(Marker):
    reason: str


class CancelMarker(Marker):
    reason: str | None = None


class RunningMarker(Marker):
    container: str
    image: str
    image_id: str
    content_hash: str


class ReleasedMarker(Marker):
    """The owner let the submitter read this job's logs and outputs (see syft_core.release)."""

    method: str = "manual"  # "manual", "policy:<name>" or "auto:mock"
    # "all": everything in the job folder. "partial": only the files listed in logs/release.yaml
    # (ReleaseReport, syft_core.release), which the job folder's syft.pub.yaml grants one by one.
    scope: Literal["all", "partial"] = "all"
    released_count: int | None = None  # files the job wrote that the submitter may read
    withheld_count: int = 0


class RefusedOutput(BaseModel):
    path: str
    reason: str


class DoneMarker(Marker):
    """How a job ended. The submitter may read it before release (the default jobs/ rules), so it
    holds only status, outcome, exit code, timing and counts: nothing a job chooses (output names,
    sizes, memory use) that could carry data out. The rest is in ResultsReport, under logs/."""

    outcome: Outcome
    message: str
    exit_code: int | None = None
    started_at: datetime | None = None
    duration_seconds: float | None = None
    cpu_seconds: float | None = None
    memory_limit_mb: int | None = None
    timeout_seconds: int | None = None
    image_id: str | None = None
    content_hash: str | None = None
    output_count: int = 0
    refused_count: int = 0


class ResultsReport(BaseModel):
    """What a job produced, for the owner and, once released, the submitter: `logs/results.yaml`,
    written by the runner before `done`. Output names are exactly the files in outputs/."""

    model_config = ConfigDict(extra="allow")

    outputs: list[str] = Field(default_factory=list)  # the first ones, as many as fit a budget
    output_count: int = 0
    output_bytes: int = 0
    refused_outputs: list[RefusedOutput] = Field(default_factory=list)
    refused_count: int = 0
    note: str | None = None  # why collection stopped early, when it did
    peak_memory_bytes: int | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    node: str | None = None  # the cluster node the job ran on (a Swarm backend)


MARKER_TYPES: dict[str, type[Marker]] = {
    "approved": ApprovedMarker,
    "rejected": RejectedMarker,
    "cancel": CancelMarker,
    "running": RunningMarker,
    "done": DoneMarker,
    "released": ReleasedMarker,
}
MAX_MARKER_BYTES = 256 * 1024

M = TypeVar("M", bound=Marker)


def read_marker(path: Path, kind: type[M]) -> M | None:
    """The marker at `path`, None when absent; JobError naming the file when it is unreadable."""
    try:
        return kind.model_validate(read_untrusted_yaml(path, max_bytes=MAX_MARKER_BYTES))
    except FileNotFoundError:
        return None
    except ValueError as exc:  # pydantic's ValidationError is a ValueError too
        raise JobError(f"{path}: unreadable status marker: {exc}") from None


def read_results(path: Path) -> ResultsReport | None:
    """The results report at `path`; None when absent (not finished, or not released and synced
    yet); JobError naming the file when it is unreadable."""
    try:
        return ResultsReport.model_validate(read_untrusted_yaml(path, max_bytes=MAX_MARKER_BYTES))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise JobError(f"{path}: unreadable results report: {exc}") from None


def write_marker(path: Path, marker: Marker | ResultsReport) -> None:
    atomic_write_text(path, dump_yaml_json(marker.model_dump(mode="json")))
