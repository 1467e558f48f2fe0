"""The job protocol: job folders, their config, status markers and validated transitions."""

from syft_core.jobs.config import JobConfig, JobResources, load_config
from syft_core.jobs.folder import (
    ContentChangedError,
    JobFolder,
    JobState,
    Status,
    iter_job_folders,
)
from syft_core.jobs.markers import (
    ApprovedMarker,
    CancelMarker,
    DoneMarker,
    Outcome,
    RefusedOutput,
    RejectedMarker,
    ReleasedMarker,
    ResultsReport,
    RunningMarker,
)
from syft_core.jobs.snapshot import Snapshot, submission_hash
from syft_core.jobs.submission import SubmittedFile, UnsafeSubmissionError, walk_submission

__all__ = [
    "ApprovedMarker",
    "CancelMarker",
    "ContentChangedError",
    "DoneMarker",
    "JobConfig",
    "JobFolder",
    "JobResources",
    "JobState",
    "Outcome",
    "RefusedOutput",
    "RejectedMarker",
    "ReleasedMarker",
    "ResultsReport",
    "RunningMarker",
    "Snapshot",
    "Status",
    "SubmittedFile",
    "UnsafeSubmissionError",
    "iter_job_folders",
    "load_config",
    "submission_hash",
    "walk_submission",
]
