"""The job protocol: job folders, their config, status markers and validated transitions."""

from syft_core.jobs.config import JobConfig, JobResources, load_config
from syft_core.jobs.folder import JobFolder, JobState, Status, iter_job_folders
from syft_core.jobs.markers import (
    ApprovedMarker,
    CancelMarker,
    DoneMarker,
    Outcome,
    RefusedOutput,
    RejectedMarker,
    ReleasedMarker,
    RunningMarker,
)
from syft_core.jobs.submission import (
    SubmittedFile,
    UnsafeSubmissionError,
    code_hash,
    submission_hash,
    walk_submission,
)

__all__ = [
    "ApprovedMarker",
    "CancelMarker",
    "DoneMarker",
    "JobConfig",
    "JobFolder",
    "JobResources",
    "JobState",
    "Outcome",
    "RefusedOutput",
    "RejectedMarker",
    "ReleasedMarker",
    "RunningMarker",
    "Status",
    "SubmittedFile",
    "UnsafeSubmissionError",
    "code_hash",
    "iter_job_folders",
    "load_config",
    "submission_hash",
    "walk_submission",
]
