"""`review/<ds>/[v1/]JOB/state.yaml`: a Syft job's status, written exactly as their clients read it.

Their clients silently drop a job whose state misses one of the ten keys, has an unknown status,
or (protocol 1) lacks `canonical_name: JobState` or has a `version` other than the string '1'. So
every key is always written (null when unset), sorted, by PyYAML's `dump` as their clients do, and
timestamps in their form (UTC, microseconds, `Z`). Reading is as tolerant as they are (extra keys,
`+00:00` or naive timestamps, `return_code: "0"`) and refuses, naming the file, anything else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from syft_core.atomic import atomic_write_text
from syft_core.errors import JobError
from syft_core.jobs.config import validated_mapping
from syft_core.syftjob.layout import SyftJobRef, review_dir
from syft_core.syftjob.rules import ensure_review_rules
from syft_core.yamlio import read_untrusted_yaml

STATE_FILE = "state.yaml"
MAX_STATE_BYTES = 64 * 1024
Status = Literal["pending", "approved", "rejected", "running", "done", "failed"]
P1_STATE_KEYS = {"canonical_name": "JobState", "version": "1"}
_STAMPS = ("received_at", "approved_at", "rejected_at", "completed_at")


class SyftJobState(BaseModel):
    """The ten keys of their JobState; others (their P1 identity keys) are dropped on reading
    and written back from the protocol."""

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

    @field_validator(*_STAMPS, mode="before")
    @classmethod
    def _stamp(cls, value: object) -> object:
        """A timestamp their parser accepts; PyYAML reads an unquoted one as a datetime."""
        if isinstance(value, datetime):
            return format_stamp(value)
        if isinstance(value, str):
            parse_stamp(value)
        return value

    def approved_at_time(self) -> datetime | None:
        """`approved_at` as an aware UTC datetime (a naive one is UTC, as their runner means)."""
        return None if self.approved_at is None else parse_stamp(self.approved_at)


def parse_stamp(text: str) -> datetime:
    """An ISO timestamp (`Z`, `+00:00` or naive = UTC) as an aware UTC datetime; ValueError."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO timestamp") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def format_stamp(when: datetime) -> str:
    """`when` as their clients write it: `2026-12-03T06:49:24.858759Z` (naive = UTC)."""
    aware = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_stamp() -> str:
    """The current time in their form."""
    return format_stamp(datetime.now(UTC))


def read_state(ref: SyftJobRef) -> SyftJobState | None:
    """The job's state; None before the owner's side wrote one. JobError naming the file and the
    reason for anything unusable (a link, a fifo, too large, not YAML, unknown status ...)."""
    path = ref.review / STATE_FILE
    try:
        data = read_untrusted_yaml(
            review_dir(ref, create=False) / STATE_FILE, max_bytes=MAX_STATE_BYTES
        )
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise JobError(f"{path}: {STATE_FILE} {exc}") from None
    return validated_mapping(SyftJobState, data, path, "Syft job state")


def state_text(state: SyftJobState, protocol: int) -> str:
    """The file's content: what their clients write for `state` at `protocol`."""
    data: dict[str, Any] = state.model_dump()
    if protocol == 1:
        data.update(P1_STATE_KEYS)
    return yaml.dump(data, sort_keys=True)


def write_state(ref: SyftJobRef, state: SyftJobState) -> None:
    """Replace the job's state.yaml atomically (readers see the old state or the new)."""
    atomic_write_text(review_dir(ref, create=True) / STATE_FILE, state_text(state, ref.protocol))


def write_received(ref: SyftJobRef) -> SyftJobState:
    """The job's state, first written as `pending` (received now) when there is none yet, with
    the scientist's read rule on `review/<ds>/` their client would have written."""
    state = read_state(ref)
    if state is None:
        ensure_review_rules(ref)
        state = SyftJobState(status="pending", received_at=now_stamp())
        write_state(ref, state)
    return state


def mark_running(ref: SyftJobRef, state: SyftJobState) -> SyftJobState:
    """Write `state` as running, every other key kept; returns what was written."""
    running = state.model_copy(update={"status": "running"})
    write_state(ref, running)
    return running
