"""`review/<ds>/[v1/]JOB/state.yaml`: a Syft job's status, exactly as OpenMined's clients read it.

All ten keys are always written (null when unset), sorted, by `yaml.dump`, as their clients do;
protocol 1 adds `canonical_name: JobState` and `version: '1'` — a string: a client silently
drops a job whose version is the integer 1, or whose keys or status it does not know.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from syft_core.atomic import atomic_write_text
from syft_core.errors import JobError
from syft_core.jobs.config import describe_problems
from syft_core.syftjob.layout import SyftJobRef
from syft_core.yamlio import read_untrusted_yaml

STATE_FILE = "state.yaml"
MAX_STATE_BYTES = 64 * 1024
Status = Literal["pending", "approved", "rejected", "running", "done", "failed"]
_P1_KEYS = {"canonical_name": "JobState", "version": "1"}


class SyftJobState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Status
    received_at: str | None = None
    approved_by: str | None = None
    approved_at: str | None = None
    approval_method: str | None = None
    rejected_by: str | None = None
    rejected_at: str | None = None
    review_reason: str | None = None
    completed_at: str | None = None
    return_code: int | None = None

    @field_validator("received_at", "approved_at", "rejected_at", "completed_at", mode="before")
    @classmethod
    def _stamp_text(cls, value: object) -> object:
        # PyYAML reads an unquoted timestamp as a datetime; their clients write quoted ones.
        return stamp(value) if isinstance(value, datetime) else value

    def approved_at_time(self) -> datetime | None:
        """`approved_at` as an aware datetime (naive ones are UTC, as their runner writes)."""
        return parse_stamp(self.approved_at)


def stamp(when: datetime) -> str:
    """A timestamp as their clients write it: UTC, microseconds, `Z`."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_stamp() -> str:
    return stamp(datetime.now(UTC))


def parse_stamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def read_state(ref: SyftJobRef) -> SyftJobState | None:
    """The job's state; None when the owner's side has not written one yet. JobError naming the
    file and the reason for anything unusable (a link, a fifo, too large, unknown status)."""
    path = ref.review / STATE_FILE
    try:
        data = read_untrusted_yaml(path, max_bytes=MAX_STATE_BYTES)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise JobError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise JobError(f"{path}: expected a mapping, got {type(data).__name__}")
    try:
        return SyftJobState.model_validate(data)
    except ValidationError as exc:
        raise JobError(f"{path}: invalid Syft job state: {describe_problems(exc)}") from None


def write_state(ref: SyftJobRef, state: SyftJobState) -> None:
    data = state.model_dump()
    if ref.protocol == 1:
        data.update(_P1_KEYS)
    ref.review.mkdir(parents=True, exist_ok=True)
    atomic_write_text(ref.review / STATE_FILE, yaml.dump(data, sort_keys=True))
