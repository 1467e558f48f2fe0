"""The runner's own settings: the owner's limits, concurrency, caps and runtimes.

Loaded from a YAML file, by default `<syftbox>/<owner>/.syft/runner.yaml` (a dot-folder: never
synced to peers). A missing file means the defaults; a malformed one is an error naming the file
and the reason, never a silent fallback.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from syft_core.errors import SyftError
from syft_core.jobs.config import RUNTIME_NAME_PATTERN, describe_problems
from syft_core.output_checks import OutputRules
from syft_runner.sandbox.container import Limits, ResourceRequest
from syft_runner.sandbox.images import DEFAULT_RUNTIME, MINIMAL_RUNTIME

RUNNER_CONFIG = ".syft/runner.yaml"
MAX_CONFIG_BYTES = 64 * 1024
MiB = 1024 * 1024


class RunnerConfigError(SyftError):
    """The runner's config file is unreadable or invalid."""


class RuntimeNotAllowedError(SyftError):
    """A job asked for a runtime this runner does not allow."""


DEFAULT_ALLOWED_RUNTIMES = (DEFAULT_RUNTIME, MINIMAL_RUNTIME)
_RUNTIME_NAME = re.compile(RUNTIME_NAME_PATTERN)


def _default_concurrency() -> int:
    # One job per core: each job defaults to one CPU, and the daemon itself needs some headroom
    # that jobs waiting in the queue do not take.
    return max(1, os.cpu_count() or 1)


def _default_maximum() -> Limits:
    return Limits(
        memory_mb=8192,
        cpus=float(os.cpu_count() or 1),
        pids=1024,
        timeout_seconds=24 * 3600,
        nofile=4096,
        fsize_mb=4096,
        tmpfs_mb=1024,
        shm_mb=256,
    )


def _default_runner_id() -> str:
    return socket.gethostname() or "runner"


class SwarmSettings(BaseModel):
    """`backend: swarm`: jobs run as one-shot services on a Docker Swarm's workers
    (executor/backends/swarm.py; README "Choosing a backend")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # A manager's Docker API: unix://, or tcp:// with TLS (DOCKER_CERT_PATH, DOCKER_TLS_VERIFY).
    manager: str = Field(min_length=1)
    # Each worker's own Docker API, by node hostname: a job is stopped, its OOM kill read and its
    # output streamed there (the manager sees none of these in time).
    workers: dict[str, str] = Field(min_length=1)
    # A worker the manager reports down this long ends its jobs `error`, naming the node (Swarm
    # itself would show their tasks "running" for much longer).
    node_lost_seconds: float = Field(default=30.0, gt=0)
    # Keep a job on the nodes labelled as holding each dataset it reads
    # (`docker node update --label-add org.syft.dataset.<name>=true <node>`).
    dataset_placement: bool = False


class RunnerConfig(BaseModel):
    """Everything the owner may tune. Field names are the keys of runner.yaml."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # What a job gets when its config.yaml asks for nothing, and the most it may ask for.
    default_limits: Limits = Field(default_factory=Limits)
    max_limits: Limits = Field(default_factory=_default_maximum)
    concurrency: int = Field(default_factory=_default_concurrency, gt=0, le=256)
    log_max_bytes: int = Field(default=10 * MiB, gt=0)  # per stream: stdout.txt and stderr.txt
    output_max_file_bytes: int = Field(default=100 * MiB, gt=0)
    output_max_total_bytes: int = Field(default=1024 * MiB, gt=0)
    output_max_files: int = Field(default=1000, gt=0)
    # A running job is stopped (error) when the disk holding its outputs has less free than this.
    min_free_disk_mb: int = Field(default=512, ge=0)
    grace_seconds: int = Field(default=10, ge=0, le=600)  # SIGTERM → SIGKILL (docker stop -t)
    # The runtimes (job images, built by `syft-runner images build` as syft-runner/<name>) a job
    # may ask for with `runtime:` in its config.yaml, and the one a job asking for none gets.
    default_runtime: str = DEFAULT_RUNTIME
    allowed_runtimes: tuple[str, ...] = Field(default=DEFAULT_ALLOWED_RUNTIMES, min_length=1)
    # The watcher notices approvals at once; the rescan is the safety net behind it.
    # Staged jobs and scratch outputs (default <syftbox>/.syft-runner). Jobs can read this path in
    # /proc/self/mountinfo; a neutral one such as /var/lib/syft-runner hides the syftbox location.
    state_dir: Path | None = None
    rescan_seconds: float = Field(default=5.0, gt=0, le=3600)
    # Labels the containers this runner starts, so a restarted runner finds its own (and only
    # its own) containers again; keep it stable across restarts.
    runner_id: str = Field(default_factory=_default_runner_id, min_length=1, max_length=100)
    # Job environments (sandbox.envs): built once per (approved lock, image), cached here
    # (default <state_dir>/envs), least recently used evicted above the cap.
    env_cache_dir: Path | None = None
    env_cache_max_mb: int = Field(default=20 * 1024, gt=0)
    # Where builds get packages: PyPI unless `index_url` names a mirror; `find_links` adds
    # wheelhouse folders (absolute paths) or pages of wheels (URLs); `no_index: true` uses only
    # those (with only folders, the build container gets no network at all: air-gapped).
    index_url: str | None = None
    find_links: list[str] = Field(default_factory=list)
    no_index: bool = False
    # The CA bundle the build container trusts to reach the index (default $SSL_CERT_FILE, else
    # the system bundle). Only build containers get it; job containers never have a network.
    ca_bundle: Path | None = None
    env_build_timeout_seconds: int = Field(default=1800, gt=0)
    env_build_memory_mb: int = Field(default=4096, ge=256)
    # OpenMined's Syft job gateway (app_data/job/, syft_runner.syftjob_gateway), served beside ours.
    syft_jobs: bool = True
    # The owner's Syft datasets a Syft job approved with OpenMined's clients (a notebook's
    # `job.approve()`, syft-bg's auto-approval) may read: those approvals cannot name any.
    syft_job_datasets: list[str] = Field(default_factory=list)
    # OpenMined's behaviour: a Syft job's results reach the scientist when it finishes. Default
    # (False): when the owner releases them (`syft-runner release`), as on our own gateway.
    syft_job_share_on_completion: bool = False
    # Disclosure rules a real run's outputs are checked against before release (ACRO's meanings:
    # syft_core.output_checks); a policy auto-releases only outputs that pass every one.
    output_rules: OutputRules = Field(default_factory=OutputRules)
    # Where jobs run: `docker`, this machine's engine; `swarm`, a Swarm cluster's workers.
    backend: Literal["docker", "swarm"] = "docker"
    swarm: SwarmSettings | None = None

    @field_validator("index_url")
    @classmethod
    def _index_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"index_url {value!r} must be an http(s) URL")
        return value

    @field_validator("find_links")
    @classmethod
    def _find_links(cls, value: list[str]) -> list[str]:
        for link in value:
            if not (link.startswith(("https://", "http://")) or Path(link).is_absolute()):
                raise ValueError(f"find_links entry {link!r}: an absolute folder or http(s) URL")
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_images_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and "images" in data:
            raise ValueError(
                "`images` (job type → image) is replaced by `default_runtime` (the runtime a job "
                "gets when it asks for none) and `allowed_runtimes` (those a job may ask for)"
            )
        return data

    @model_validator(mode="after")
    def _runtimes_named_and_default_allowed(self) -> RunnerConfig:
        for name in (self.default_runtime, *self.allowed_runtimes):
            if not _RUNTIME_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a runtime name (e.g. {DEFAULT_RUNTIME!r})")
        if len(set(self.allowed_runtimes)) != len(self.allowed_runtimes):
            raise ValueError(f"allowed_runtimes names one twice: {list(self.allowed_runtimes)}")
        if self.default_runtime not in self.allowed_runtimes:
            raise ValueError(
                f"default_runtime {self.default_runtime!r} is not in allowed_runtimes "
                f"{list(self.allowed_runtimes)}"
            )
        return self

    def runtime_for(self, requested: str | None) -> str:
        """The runtime of a job asking for `requested` (None: the default). A runtime that is not
        allowed is a RuntimeNotAllowedError naming the allowed ones."""
        if requested is None:
            return self.default_runtime
        if requested not in self.allowed_runtimes:
            raise RuntimeNotAllowedError(
                f"the job asks for runtime {requested!r}, which this runner does not allow; "
                f"allowed: {', '.join(self.allowed_runtimes)} (default: {self.default_runtime})"
            )
        return requested

    @model_validator(mode="after")
    def _swarm_settings_with_swarm(self) -> RunnerConfig:
        if self.backend == "swarm" and self.swarm is None:
            raise ValueError("backend: swarm needs a `swarm:` section (manager, workers)")
        return self

    @model_validator(mode="after")
    def _defaults_within_maximum(self) -> RunnerConfig:
        too_high = [
            f"{name} {getattr(self.default_limits, name)} > {getattr(self.max_limits, name)}"
            for name in Limits.model_fields
            if getattr(self.default_limits, name) > getattr(self.max_limits, name)
        ]
        if too_high:
            raise ValueError("default_limits exceed max_limits: " + ", ".join(too_high))
        return self

    def limits_for(self, requested: ResourceRequest | None) -> Limits:
        """A job's limits: what it asked for, capped at the owner's maximum; the owner's default
        for anything it did not ask for. A job may ask for more than the default, never more
        than the maximum."""
        asked = requested.model_dump(exclude_none=True) if requested else {}
        capped = {name: min(value, getattr(self.max_limits, name)) for name, value in asked.items()}
        # Validated, not copied: a request can still be below what Docker accepts (memory < 6 MB).
        return Limits.model_validate({**self.default_limits.model_dump(), **capped})


def default_config_path(syftbox: Path, owner: str) -> Path:
    return Path(syftbox) / owner / RUNNER_CONFIG


def load_runner_config(path: Path) -> RunnerConfig:
    """The config at `path`; defaults when the file does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return RunnerConfig()
    if st.st_size > MAX_CONFIG_BYTES:
        raise RunnerConfigError(f"{path}: {st.st_size} bytes, over the limit of {MAX_CONFIG_BYTES}")
    try:
        data = yaml.safe_load(path.read_bytes())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RunnerConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return RunnerConfig()
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise RunnerConfigError(f"{path}: expected a mapping of settings, got {kind}")
    try:
        return RunnerConfig.model_validate(data)
    except ValidationError as exc:
        problems = describe_problems(exc)
        raise RunnerConfigError(f"{path}: invalid runner config: {problems}") from None
