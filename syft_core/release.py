"""Results leave only with the owner's consent, enforced through permission files.

The default jobs/ rules (syft_core.datasite.default_permission_files) let a submitter read their own
job folder EXCEPT logs/** and outputs/**, so the sync, which only publishes what a peer may read,
never carries results out by itself. Releasing a done job writes a `released` marker and a
`syft.pub.yaml` in the job folder granting the submitter read of everything in it. That file is
then the nearest one and governs alone (no fallthrough to jobs/syft.pub.yaml), so it restates the
submitter's write rights on run.sh, config.yaml and code/**, and grants nothing else: markers stay
writable by the owner only.

Mock runs (config `mode: mock`) read only public mocks; the runner releases them at once with
method "auto:mock".
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from syft_core.atomic import atomic_write_text
from syft_core.datasite import PERMISSION_FILE
from syft_core.errors import JobError
from syft_core.jobs.folder import JobFolder, Status
from syft_core.jobs.markers import ReleasedMarker

AUTO_MOCK = "auto:mock"
_METHOD_RE = re.compile(r"manual|auto:mock|policy:[a-z0-9][a-z0-9_-]*")


def release_permissions(submitter: str) -> dict[str, Any]:
    """The job-folder syft.pub.yaml after release. Exact emails, not USER: outside a
    `{{.UserEmail}}` pattern USER would mean everyone."""
    return {
        "terminal": False,
        "rules": [
            {"pattern": "run.sh", "access": {"write": [submitter]}},
            {"pattern": "config.yaml", "access": {"write": [submitter]}},
            {"pattern": "code/**", "access": {"write": [submitter]}},
            {"pattern": "**", "access": {"read": [submitter]}},
        ],
    }


def release_job(job: JobFolder, by: str, method: str = "manual") -> ReleasedMarker:
    """Let the submitter read a done job's logs and outputs. Only the owner, only done jobs;
    idempotent (a second call keeps the first marker and rewrites the permission file).
    `method`: "manual", "policy:<name>", or "auto:mock" (only for jobs whose config says mock)."""
    if not _METHOD_RE.fullmatch(method):
        raise JobError(f"{job.path}: unknown release method {method!r}")
    if method == AUTO_MOCK and job.config().mode != "mock":
        raise JobError(f"{job.path}: {AUTO_MOCK} release is only for mock runs; this job is real")
    # The marker first: it checks owner and status, and if writing the permission file then
    # fails, the results stay private (the safe side) until a retry completes the release.
    marker = job.release(by, method)
    text = yaml.safe_dump(release_permissions(job.submitter), sort_keys=False)
    atomic_write_text(job.path / PERMISSION_FILE, text)
    return marker


def is_released(job: JobFolder) -> bool:
    return job.state().released is not None


def results_waiting(job: JobFolder) -> bool:
    """Done on real data and not yet released: the scientist's results wait for the owner."""
    state = job.state()
    if state.status is not Status.DONE or state.released is not None:
        return False
    try:
        return job.config().mode == "real"
    except JobError:
        return True  # no readable config: treated as real, so results are kept
