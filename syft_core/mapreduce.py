"""MapReduce (the seed's principle 11): the same job to many owners, the results reduced locally.

Map: `client.map` (through `map_jobs`) submits one python job to each owner's `jobs/<you>/` gateway;
every owner reviews, runs and releases it on their own schedule. Reduce is the caller's code:
`wait_all` waits until each job's results are released and present in the local syftbox (the
sync brings them) and returns the output files per owner, ready to aggregate.

A job that cannot give results (rejected, failed, timed out, ...) is not waited for; once every
job has finished one way or the other, `wait_all` raises MapError naming each failure with its
reason, carrying the outputs of the jobs that succeeded: a total over some owners only is never
returned as if it were the total.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from syft_core.datasite import SyftBox
from syft_core.errors import JobError
from syft_core.identity import validate_email
from syft_core.job import Job
from syft_core.jobs.folder import JobFolder, Status
from syft_core.jobs.markers import Outcome

POLL_SECONDS = 0.2


class MapError(JobError):
    """Some jobs of a map gave no results; `failed` lists them, `outputs` has the others'."""

    def __init__(self, message: str, failed: list[Job], outputs: dict[str, list[Path]]) -> None:
        super().__init__(message)
        self.failed = failed
        self.outputs = outputs


def map_jobs(
    syftbox: SyftBox, email: str, owners: Sequence[str], submit: Callable[[str], Path]
) -> list[Job]:
    """Submit one job to every owner with `submit(owner) -> job folder` (Client.map passes its
    submit_python_job), as `email`; one Job per owner, in order. Every owner's datasite must be
    present in `syftbox` before anything is submitted."""
    if isinstance(owners, str) or not owners:
        raise JobError("owners must be a non-empty list of emails")
    emails = [validate_email(owner) for owner in owners]
    repeated = sorted({e for e in emails if emails.count(e) > 1})
    if repeated:
        raise JobError(f"owners must be distinct; repeated: {', '.join(repeated)}")
    missing = [e for e in emails if not syftbox.datasite(e).exists()]
    if missing:
        raise JobError(
            f"no local datasite for {', '.join(missing)} in {syftbox.root}: sync with "
            "these owners first; nothing was submitted"
        )
    jobs: list[Job] = []
    for owner in emails:
        try:
            folder = submit(owner)
        except JobError as exc:
            sent = ", ".join(j.owner for j in jobs) or "none"
            raise JobError(
                f"submitting to {owner} failed: {exc} (already submitted: {sent})"
            ) from None
        jobs.append(Job(JobFolder(folder), email))
    return jobs


def wait_all(
    jobs: Sequence[Job], timeout: float | None = None, poll: float = POLL_SECONDS
) -> dict[str, list[Path]]:
    """Block until every job's results are here: done, succeeded, released, and every output
    its done marker lists present locally. The output files per owner (a map has one job per
    owner; more are concatenated). TimeoutError after `timeout` seconds (None: no limit) says
    what each unfinished job waits for; MapError (once all finished) names the jobs that gave
    no results."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        waiting = [(job, why) for job in jobs if (why := _waiting_for(job)) is not None]
        if not waiting:
            return _results(jobs)
        if deadline is not None and time.monotonic() >= deadline:
            lines = "; ".join(f"{job.full_key}: {why}" for job, why in waiting)
            raise TimeoutError(
                f"{len(waiting)} of {len(jobs)} jobs unfinished after {timeout}s: {lines}"
            )
        time.sleep(poll)


def _waiting_for(job: Job) -> str | None:
    """What the job still waits for, or None once it has finished (with results or not)."""
    state = job.state
    if state.status is Status.REJECTED:
        return None
    if state.status is not Status.DONE:
        reason = f" ({state.reason})" if state.reason else ""
        return f"{state.status.value}{reason}"
    if state.done is None or state.done.outcome is not Outcome.SUCCEEDED:
        return None
    if state.released is None:
        return f"done; the results wait for {job.owner} to release them"
    here = len(job.outputs)
    if here < state.done.output_count:
        return f"released; {here} of {state.done.output_count} outputs synced so far"
    return None


def _results(jobs: Sequence[Job]) -> dict[str, list[Path]]:
    outputs: dict[str, list[Path]] = {}
    failed: list[Job] = []
    for job in jobs:
        if job.outcome is Outcome.SUCCEEDED:
            outputs.setdefault(job.owner, []).extend(job.outputs)
        else:
            failed.append(job)
    if failed:
        reasons = "; ".join(f"{job.full_key}: {_failure(job)}" for job in failed)
        raise MapError(
            f"{len(failed)} of {len(jobs)} jobs gave no results: {reasons}", failed, outputs
        )
    return outputs


def _failure(job: Job) -> str:
    state = job.state
    if state.done is None:
        return f"{state.status.value}: {state.reason or 'no reason given'}"
    return f"{state.done.outcome.value}: {state.done.message}"
