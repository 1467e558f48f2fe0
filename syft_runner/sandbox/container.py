"""The hardened container spec every job runs under: limits, mounts, environment, docker-py kwargs.

The runner is the only holder of the Docker socket; this module decides what a job container may
do. Everything here is deliberately explicit (no daemon defaults relied upon) so that
`inspect_container` shows the whole policy.
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

import docker
from docker.models.containers import Container
from docker.types import LogConfig, Ulimit
from docker.types import Mount as DockerMount
from pydantic import BaseModel, ConfigDict, Field, field_validator

from syft_core.errors import JobError
from syft_runner.sandbox.seccomp import security_opts

# Container paths shared by the images, the executor and the jobs themselves.
JOB_DIR = "/job"  # the staged submission, read-only: run.sh and code/
OUTPUTS_DIR = "/job/outputs"  # the only writable bind mount (mounted twice: see CODE_OUTPUTS_DIR)
# A job runs in its own code folder, as it ran on the scientist's laptop (`python analysis.py`),
# and `outputs/` there is its outputs folder again.
WORKDIR = "/job/code"
CODE_OUTPUTS_DIR = "/job/code/outputs"
SYFTBOX_MOUNT = "/syftbox"
DATA_DIR = "/data"
# A job's Python environment (sandbox.envs): a venv built from its approved lock, read-only.
ENV_DIR = "/opt/syft-env"
TMP_DIR = "/tmp"  # the only writable path besides the outputs: a small tmpfs
HOME = TMP_DIR
JOB_HOSTNAME = "job"
JOB_GID = 65532  # the images' `job` group: every job runs in it, and no host file belongs to it
# Each job runs as a uid of its own from this range, which no account and no host file uses
# (above the ranges systemd and the usual /etc/subuid hand out to containers).
JOB_UID_FIRST = 2_000_000_000
JOB_UID_COUNT = 1_000_000
MOUNT_ROOTS = (JOB_DIR, SYFTBOX_MOUNT, DATA_DIR, ENV_DIR)

# Docker keeps a copy of stdout/stderr too; the executor streams its own capped copy, so this one
# only needs to be bounded (a `yes` job must not fill the host disk through the daemon).
LOG_MAX_SIZE = "10m"
# Under host memory pressure the kernel should pick a job before the runner or the daemon.
JOB_OOM_SCORE_ADJ = 500

# /proc and /sys paths a job sees as empty: a folder as an empty read-only tmpfs, a file as
# /dev/null (HostConfig.MaskedPaths, applied by runc). Setting them REPLACES Docker's own list, so
# that list (20.10's) comes first.
DOCKER_MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
)
# The host's block devices and filesystems. Every loop device's backing file names the runner's
# state folder and another job's image; their counters (I/O, in flight, bytes written per
# filesystem) and the device-event sequence number follow other jobs live. A job needs none of it.
BLOCK_MASKED_PATHS = (
    "/sys/block",
    "/sys/class/block",
    "/sys/dev/block",
    "/sys/devices/virtual/block",  # loop*, zram*, dm-*: what the indexes above point to
    "/sys/class/bdi",
    "/sys/devices/virtual/bdi",  # one entry per block device (7:N for loop devices)
    "/sys/module/loop",
    "/sys/fs/ext4",  # one folder per mounted ext4 (loopN: every job), lifetime_write_kbytes...
    "/sys/fs/btrfs",
    "/sys/fs/xfs",
    "/sys/fs/f2fs",
    "/sys/kernel/uevent_seqnum",  # counts device events: a loop device attached or detached
    "/proc/fs",  # ext4/<dev>/ (every mounted ext4), jbd2, xfs, nfsd statistics
    "/proc/diskstats",
    "/proc/partitions",
    "/proc/swaps",
)
# Docker's own read-only paths (20.10's), stated so that inspect_container shows them.
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
HOST_BLOCK_INDEX = Path("/sys/block")


def host_block_devices(index: Path = HOST_BLOCK_INDEX) -> list[str]:
    """Where this host's physical block devices (and their partitions) live in sysfs, e.g.
    /sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda: with /sys/block masked their counters
    are still reachable by walking /sys/devices. (The engine is on this host: jobs bind-mount
    its paths.)"""
    try:
        names = sorted(os.listdir(index))
    except OSError:
        return []
    found = []
    for name in names:
        real = os.path.realpath(index / name)
        if real.startswith("/sys/devices/") and not real.startswith("/sys/devices/virtual/"):
            found.append(real)
    return found


def masked_paths(index: Path = HOST_BLOCK_INDEX) -> list[str]:
    """Every path masked in a job container: Docker's defaults, the host's block devices and
    filesystems (a path absent on this kernel is skipped by runc)."""
    return [*DOCKER_MASKED_PATHS, *BLOCK_MASKED_PATHS, *host_block_devices(index)]


DEFAULT_ENVIRONMENT: MappingProxyType[str, str] = MappingProxyType(
    {
        "HOME": HOME,
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
)
# Names a job container may receive. Anything else (LD_PRELOAD, PYTHONPATH, cloud credentials, the
# runner's own settings) is refused rather than dropped, so a mistake is visible.
ALLOWED_ENV_NAMES = frozenset(
    {
        *DEFAULT_ENVIRONMENT,
        "LC_ALL",
        "TZ",
        "PYTHONIOENCODING",
        "PYTHONHASHSEED",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "MPLBACKEND",
        "VIRTUAL_ENV",  # ENV_DIR, for a job that has an environment
        # Set by the scientific runtime's image: paths on the job's writable /tmp.
        "MPLCONFIGDIR",
        "JUPYTER_RUNTIME_DIR",
    }
)
# The runner's own job-context variables (SYFT_JOB_ID, SYFTBOX_EMAIL, ...).
_RUNNER_ENV_NAME = re.compile(r"SYFT(BOX)?_[A-Z0-9_]+")
_MAX_ENV_VALUE = 32 * 1024


class ForbiddenEnvironmentError(JobError, ValueError):
    """An environment variable is not on the job allowlist, or its value is unusable."""


class ResourceRequest(BaseModel):
    """What a job's config.yaml may ask for; every field optional, every value positive
    (0 would mean "unlimited" to Docker)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    memory_mb: int | None = Field(default=None, gt=0)
    cpus: float | None = Field(default=None, ge=0.01)
    pids: int | None = Field(default=None, gt=0)
    timeout_seconds: int | None = Field(default=None, gt=0)


class Limits(BaseModel):
    """The limits a container runs with; owner defaults and maxima live in the runner config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    memory_mb: int = Field(default=1024, ge=6)  # Docker refuses less than 6 MB
    cpus: float = Field(default=1.0, ge=0.01)
    pids: int = Field(default=256, gt=0)
    timeout_seconds: int = Field(default=3600, gt=0)  # enforced by the runner, not by Docker
    nofile: int = Field(default=1024, gt=0)
    fsize_mb: int = Field(default=1024, gt=0)
    tmpfs_mb: int = Field(default=64, gt=0)
    shm_mb: int = Field(default=16, gt=0)

    def lowered_by(self, requested: ResourceRequest | None) -> Limits:
        """These limits with the job's requests applied: a request may lower a limit, and a
        request above it is capped at it (never raised)."""
        if requested is None:
            return self
        asked = requested.model_dump(exclude_none=True)
        return self.model_copy(update={k: min(getattr(self, k), v) for k, v in asked.items()})


class Mount(BaseModel):
    """A host path bind-mounted into the job container (read-only unless said otherwise)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Path
    target: str
    read_only: bool = True

    @field_validator("source")
    @classmethod
    def _real_absolute_source(cls, source: Path) -> Path:
        # Docker follows links in a bind source; the runner must hand over resolved paths only.
        if not source.is_absolute():
            raise ValueError(f"mount source {source} is not absolute")
        if os.path.realpath(source) != str(source):
            raise ValueError(f"mount source {source} is not a resolved path (symlink or '..')")
        return source

    @field_validator("target")
    @classmethod
    def _conventional_target(cls, target: str) -> str:
        path = PurePosixPath(target)
        if not path.is_absolute() or ".." in path.parts or str(path) != target:
            raise ValueError(f"mount target {target!r} must be a normalised absolute path")
        roots = [PurePosixPath(r) for r in MOUNT_ROOTS]
        if not any(path == root or root in path.parents for root in roots):
            raise ValueError(f"mount target {target!r} is outside {', '.join(MOUNT_ROOTS)}")
        return target


def validate_environment(env: dict[str, str]) -> dict[str, str]:
    """A copy of `env` if every name is allowed and every value usable; otherwise an error that
    names the offending variable."""
    for name, value in env.items():
        if name not in ALLOWED_ENV_NAMES and not _RUNNER_ENV_NAME.fullmatch(name):
            raise ForbiddenEnvironmentError(
                f"environment variable {name!r} is not allowed in a job container; allowed: "
                f"{', '.join(sorted(ALLOWED_ENV_NAMES))} and SYFT_*/SYFTBOX_* names"
            )
        if not isinstance(value, str) or "\x00" in value or len(value) > _MAX_ENV_VALUE:
            raise ForbiddenEnvironmentError(
                f"environment variable {name!r}: value must be a string without NUL bytes, "
                f"at most {_MAX_ENV_VALUE} characters"
            )
    return dict(env)


def docker_mount(mount: Mount) -> DockerMount:
    # rprivate: nothing mounted later on either side propagates through the bind.
    return DockerMount(
        target=mount.target,
        source=str(mount.source),
        type="bind",
        read_only=mount.read_only,
        propagation="rprivate",
    )


def _ulimits(limits: Limits) -> list[Ulimit]:
    # nproc is deliberately absent: RLIMIT_NPROC counts per uid across the host, and pids_limit
    # is the per-container bound already.
    fsize = limits.fsize_mb * 1024 * 1024  # RLIMIT_FSIZE is in bytes
    return [
        Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
        Ulimit(name="fsize", soft=fsize, hard=fsize),
        Ulimit(name="core", soft=0, hard=0),
    ]


def job_user(job_id: str) -> tuple[int, int]:
    """The uid and gid of the job whose id (hex, see staging.job_id) is `job_id`.

    A uid per job, so that what the kernel counts per user (inotify instances and watches, pipe
    buffers, mqueue bytes, RLIMIT_NPROC) is not shared by jobs running at the same time: one job
    could otherwise exhaust it for the others. Derived from the id, so a restarted runner
    re-attaches to the same one; with 4 jobs at a time, two share one with odds of about 1 in
    160,000, which is only what every job had before."""
    return JOB_UID_FIRST + int(job_id[:12], 16) % JOB_UID_COUNT, JOB_GID


def container_kwargs(
    *,
    image: str,
    name: str,
    labels: dict[str, str],
    command: list[str],
    environment: dict[str, str],
    mounts: list[Mount],
    workdir: str,
    limits: Limits,
    user: tuple[int, int],
) -> dict[str, Any]:
    """Keyword arguments for `create_container(docker_client, **kwargs)` of one job container,
    run as `user` (uid, gid; see job_user). `masked_paths` and `readonly_paths` have no
    docker-py parameter: `client.containers.create` refuses them, so a job container cannot be
    made without them by mistake."""
    memory = limits.memory_mb * 1024 * 1024
    return {
        "image": image,
        "name": name,
        "labels": dict(labels),
        "command": list(command),
        "environment": validate_environment(environment),
        "working_dir": workdir,
        "hostname": JOB_HOSTNAME,
        "user": f"{user[0]}:{user[1]}",
        "detach": True,
        "auto_remove": False,  # the runner reads State/OOMKilled and the logs before removing
        "stdin_open": False,
        "tty": False,
        "init": True,  # reaps zombies and forwards the runner's stop signal to the job
        "privileged": False,
        "network_mode": "none",
        "ipc_mode": "private",
        "cgroupns": "private",  # hides the host's cgroup paths from /proc/self/cgroup
        "read_only": True,
        "tmpfs": {TMP_DIR: f"rw,noexec,nosuid,nodev,size={limits.tmpfs_mb}m"},
        "shm_size": limits.shm_mb * 1024 * 1024,
        "cap_drop": ["ALL"],
        "security_opt": security_opts(),
        "pids_limit": limits.pids,
        "mem_limit": memory,
        "memswap_limit": memory,  # equal to mem_limit: no swap, so OOM is reported, not hidden
        "oom_score_adj": JOB_OOM_SCORE_ADJ,
        "nano_cpus": round(limits.cpus * 1e9),
        "ulimits": _ulimits(limits),
        "mounts": [docker_mount(m) for m in mounts],
        "log_config": LogConfig(
            type=LogConfig.types.JSON, config={"max-size": LOG_MAX_SIZE, "max-file": "1"}
        ),
        "masked_paths": masked_paths(),
        "readonly_paths": list(READONLY_PATHS),
    }


# container_kwargs' keys that docker-py has no parameter for, and their HostConfig names.
_RAW_HOST_CONFIG = {"masked_paths": "MaskedPaths", "readonly_paths": "ReadonlyPaths"}


def create_container(client: docker.DockerClient, **kwargs: Any) -> Container:
    """Create (not start) a job container from `container_kwargs(...)`: what
    `client.containers.create(**kwargs)` does, through the low-level API so that HostConfig also
    gets MaskedPaths and ReadonlyPaths, which docker-py cannot pass (the engine honours them:
    tests/attacks/test_sandbox_edges.py looks from inside). Both are required. Docker's errors
    (APIError 409 for a name in use, ...) pass through unchanged."""
    missing = [key for key in _RAW_HOST_CONFIG if key not in kwargs]
    if missing:
        raise ValueError(f"create_container needs {', '.join(missing)} (see container_kwargs)")
    raw = {name: list(kwargs.pop(key)) for key, name in _RAW_HOST_CONFIG.items()}
    create_parameters = inspect.signature(client.api.create_container).parameters
    create = {key: kwargs.pop(key) for key in list(kwargs) if key in create_parameters}
    host_config = client.api.create_host_config(**kwargs)  # TypeError on anything unknown
    host_config.update(raw)
    # use_config_proxy=False: no proxy variables from the runner's ~/.docker/config.json either;
    # the environment is exactly the allowlisted one.
    created = client.api.create_container(host_config=host_config, use_config_proxy=False, **create)
    return client.containers.get(created["Id"])
