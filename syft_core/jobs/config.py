"""`config.yaml`: what a submitter says about their job. Unknown keys are kept, not dropped."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from syft_core.errors import JobError
from syft_core.events import utcnow
from syft_core.yamlio import load_untrusted_yaml, read_untrusted_yaml

MAX_CONFIG_BYTES = 64 * 1024
M = TypeVar("M", bound=BaseModel)
# What a config says about the job rather than how it runs: labels for people and the log.
METADATA_FIELDS = ("name", "description", "submitted_at", "submitted_by")
# A runtime (job image) name, as a job may ask for one and an owner allows it: `scientific`.
RUNTIME_NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,62}"
# A job that came in through OpenMined's Syft job gateway (syft_runner.syftjob_gateway): its bash
# script runs from the job folder, and its datasets are the owner's Syft datasets.
SYFT_JOB_PROTOCOL = "syft-job"
# What a python job's entrypoint may be: a script, or a notebook run top to bottom.
ENTRYPOINT_SUFFIXES = (".py", ".ipynb")


class JobResources(BaseModel):
    """Resources a job asks for. The runner may lower them to the owner's maximum, never raise."""

    model_config = ConfigDict(extra="forbid")

    memory_mb: int | None = Field(default=None, gt=0)
    cpus: float | None = Field(default=None, gt=0)
    pids: int | None = Field(default=None, gt=0)


class JobConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=200)
    # How run.sh was written (a script of the submitter's, or generated to run `entrypoint`); the
    # image is `runtime`'s, whatever the type.
    type: Literal["bash", "python"]
    entrypoint: str | None = None
    # The job image to run in; None: the owner's default. The owner's runner config lists the
    # runtimes it allows, and a job asking for another ends `error` naming them.
    runtime: str | None = Field(default=None, pattern=f"^{RUNTIME_NAME_PATTERN}$")
    datasets: list[str] = Field(default_factory=list)
    # "mock" runs against the owner's mock datasets and releases its results at once; "real" runs
    # against the private data and keeps results for the owner until released (syft_core.release).
    mode: Literal["real", "mock"] = "real"
    dependencies: list[str] = Field(default_factory=list)
    submitted_at: datetime = Field(default_factory=utcnow)
    submitted_by: str | None = None
    timeout_seconds: int | None = Field(default=None, gt=0)
    resources: JobResources | None = None
    description: str = ""
    # Which gateway's conventions the job was written for: ours, or SYFT_JOB_PROTOCOL.
    protocol: Literal["syftbox", "syft-job"] = "syftbox"

    @field_validator("name")
    @classmethod
    def _printable_name(cls, value: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("name contains control characters")
        return value

    @model_validator(mode="after")
    def _syft_job_runs_real(self) -> JobConfig:
        # A syft-job is approved with the private datasets the owner picks (its own protocol
        # names no mocks); "mock" would skip the output checks and release at once.
        if self.protocol == "syft-job" and self.mode != "real":
            raise ValueError("a syft-job job runs on the owner's real data: mode must be real")
        return self

    @model_validator(mode="after")
    def _entrypoint_fits_type(self) -> JobConfig:
        if self.type == "python":
            if not self.entrypoint:
                raise ValueError(
                    "a python job needs an entrypoint (a .py file or .ipynb notebook under code/)"
                )
            entry = PurePosixPath(self.entrypoint)
            if (
                entry.is_absolute()
                or ".." in entry.parts
                or entry.suffix not in ENTRYPOINT_SUFFIXES
            ):
                raise ValueError(
                    f"entrypoint {self.entrypoint!r} must be a relative .py or .ipynb path"
                )
        return self

    def run_fields(self) -> dict[str, Any]:
        """Everything but METADATA_FIELDS, as JSON-ready data: what decides how the job runs. The
        job sees none of the metadata (config.yaml is not in its container, nor is the name in
        its environment), so two jobs with the same code and run fields behave alike."""
        return self.model_dump(mode="json", exclude={*METADATA_FIELDS, *self._implied()})

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", exclude=self._implied())
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    def _implied(self) -> set[str]:
        # Our own gateway's protocol goes unsaid: configs written before the field read the same.
        return {"protocol"} if self.protocol == "syftbox" else set()


def load_config(path: Path) -> JobConfig:
    """Parse a job's config.yaml; any problem becomes a JobError naming the file and the reason."""
    try:
        data = read_untrusted_yaml(path, max_bytes=MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise JobError(f"{path}: missing config.yaml") from None
    except ValueError as exc:
        raise JobError(f"{path}: config.yaml {exc}") from None
    return _validated(data, path)


def parse_config(text: bytes, path: Path) -> JobConfig:
    """Like load_config, from bytes already read (syft_core.jobs.snapshot); `path` names them."""
    if len(text) > MAX_CONFIG_BYTES:
        raise JobError(f"{path}: config.yaml is {len(text)} bytes, over {MAX_CONFIG_BYTES}")
    try:
        data = load_untrusted_yaml(text)
    except ValueError as exc:
        raise JobError(f"{path}: config.yaml {exc}") from None
    return _validated(data, path)


def _validated(data: object, path: Path) -> JobConfig:
    return validated_mapping(JobConfig, data, path, "job config")


def validated_mapping(model: type[M], data: object, path: Path, what: str) -> M:
    """Parsed YAML `data` of the file at `path` as `model`; JobError naming the file and each
    problem (`invalid <what>: field: why`) when it is not a mapping or does not validate."""
    if not isinstance(data, dict):
        raise JobError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise JobError(f"{path}: invalid {what}: {describe_problems(exc)}") from None


def describe_problems(exc: ValidationError) -> str:
    """One line naming each invalid field and why, e.g. `timeout_seconds: Input should be ...`."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
    )
