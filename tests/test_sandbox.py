"""The hardened container spec: limits arithmetic, input validation, and the real HostConfig."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from pydantic import ValidationError

from syft_runner.sandbox.container import (
    BLOCK_MASKED_PATHS,
    DEFAULT_ENVIRONMENT,
    DOCKER_MASKED_PATHS,
    JOB_DIR,
    OUTPUTS_DIR,
    READONLY_PATHS,
    WORKDIR,
    ForbiddenEnvironmentError,
    Limits,
    Mount,
    ResourceRequest,
    container_kwargs,
    create_container,
    host_block_devices,
    masked_paths,
    validate_environment,
)
from syft_runner.workspace.jobfs import MOUNT_OPTIONS
from tests.fixtures_docker import SANDBOX_USER, TEST_LABEL, RunSandboxed

MB = 1024 * 1024


# --- Limits and requests -------------------------------------------------------------------


def test_lowered_by_takes_the_lower_of_limit_and_request() -> None:
    limits = Limits(memory_mb=1024, cpus=1.0, pids=256, timeout_seconds=3600)
    lowered = limits.lowered_by(ResourceRequest(memory_mb=256, cpus=0.5, timeout_seconds=60))
    assert (lowered.memory_mb, lowered.cpus, lowered.timeout_seconds) == (256, 0.5, 60)
    assert lowered.pids == 256  # not requested: unchanged


def test_lowered_by_never_raises_a_limit() -> None:
    limits = Limits(memory_mb=512, pids=64)
    raised = limits.lowered_by(ResourceRequest(memory_mb=4096, pids=10_000, cpus=64))
    assert (raised.memory_mb, raised.pids, raised.cpus) == (512, 64, 1.0)


def test_lowered_by_none_keeps_the_limits() -> None:
    limits = Limits(memory_mb=300)
    assert limits.lowered_by(None) == limits


@pytest.mark.parametrize("field", ["memory_mb", "pids", "timeout_seconds", "cpus"])
def test_request_of_zero_is_rejected_because_docker_reads_it_as_unlimited(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        ResourceRequest.model_validate({field: 0})


def test_request_with_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="privileged"):
        ResourceRequest.model_validate({"privileged": True})


def test_limits_are_frozen_and_bounded() -> None:
    with pytest.raises(ValidationError):
        Limits(memory_mb=4)  # Docker refuses < 6 MB
    with pytest.raises(ValidationError):
        Limits(pids=0)
    limits = Limits()
    with pytest.raises(ValidationError):
        limits.memory_mb = 1  # type: ignore[misc]


# --- Environment ---------------------------------------------------------------------------


def test_environment_allowlist_accepts_defaults_and_runner_names() -> None:
    env = {**DEFAULT_ENVIRONMENT, "TZ": "UTC", "SYFT_JOB_ID": "abc", "SYFTBOX_EMAIL": "a@b.org"}
    validated = validate_environment(env)
    assert validated == env
    assert validated is not env


@pytest.mark.parametrize(
    "name", ["LD_PRELOAD", "PYTHONPATH", "AWS_SECRET_ACCESS_KEY", "BASH_ENV", "syft_x", "SYFT_"]
)
def test_environment_allowlist_rejects_other_names(name: str) -> None:
    with pytest.raises(ForbiddenEnvironmentError, match=name):
        validate_environment({"HOME": "/tmp", name: "x"})


def test_environment_value_with_nul_is_rejected() -> None:
    with pytest.raises(ForbiddenEnvironmentError, match="TZ"):
        validate_environment({"TZ": "UTC\x00evil"})


def test_container_kwargs_never_copies_the_runner_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SYFT_RUNNER_SECRET", "leak")
    kwargs = _kwargs(environment={"HOME": "/tmp"})
    assert kwargs["environment"] == {"HOME": "/tmp"}


# --- Mounts --------------------------------------------------------------------------------


def test_mount_rejects_relative_and_symlinked_sources(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(ValidationError, match="not absolute"):
        Mount(source=Path("data"), target="/data")
    with pytest.raises(ValidationError, match="not a resolved path"):
        Mount(source=tmp_path / "link", target="/data")
    with pytest.raises(ValidationError, match="not a resolved path"):
        Mount(source=real / ".." / "real", target="/data")
    assert Mount(source=real, target="/data/x").read_only is True


@pytest.mark.parametrize("target", ["/etc", "/", "data", "/data/../etc", "/proc/self", "/job/"])
def test_mount_rejects_targets_outside_the_convention(tmp_path: Path, target: str) -> None:
    with pytest.raises(ValidationError, match="mount target"):
        Mount(source=tmp_path, target=target)


def test_every_writable_mount_is_noexec_nosuid_nodev() -> None:
    # /tmp is Docker's tmpfs; /job/outputs is a bind of the job's filesystem, whose flags a bind
    # inherits (Docker's bind mounts take no noexec of their own); /dev/shm is Docker's own
    # nosuid,nodev,noexec tmpfs (seen inside a container by the probe).
    hardened = {"noexec", "nosuid", "nodev"}
    for target, options in _kwargs()["tmpfs"].items():
        assert hardened <= set(options.split(",")), target
    assert hardened <= set(MOUNT_OPTIONS.split(","))


# --- Masked paths --------------------------------------------------------------------------

# What the outside review found readable in a job (issue #9), and Docker 20.10's own defaults,
# which setting MaskedPaths replaces.
MUST_BE_MASKED = [
    "/sys/block",
    "/sys/class/block",
    "/sys/dev/block",
    "/sys/devices/virtual/block",
    "/sys/fs/ext4",
    "/proc/fs/ext4",
    "/proc/diskstats",
    "/proc/partitions",
    "/sys/class/bdi",
    "/sys/devices/virtual/bdi",
    "/proc/swaps",
]
DOCKER_20_10_DEFAULTS = [
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
]


def _covered(path: str, masked: list[str]) -> bool:
    return any(path == m or path.startswith(m + "/") for m in masked)


def test_masked_paths_keep_dockers_defaults_and_hide_block_devices() -> None:
    masked = _kwargs()["masked_paths"]
    assert masked[: len(DOCKER_MASKED_PATHS)] == list(DOCKER_MASKED_PATHS) == DOCKER_20_10_DEFAULTS
    assert [p for p in MUST_BE_MASKED if not _covered(p, masked)] == []
    assert set(BLOCK_MASKED_PATHS) <= set(masked)
    assert len(set(masked)) == len(masked)
    assert all(p.startswith(("/proc/", "/sys/")) and os.path.normpath(p) == p for p in masked)
    # Never what a job needs: its cgroup limits, its own mounts, /proc/self.
    for needed in ("/sys/fs/cgroup", "/proc/self", "/proc/meminfo", "/proc/cpuinfo", "/sys"):
        assert not _covered(needed, masked), needed
    assert _kwargs()["readonly_paths"] == list(READONLY_PATHS)
    assert "/proc/sys" in READONLY_PATHS and "/proc/sysrq-trigger" in READONLY_PATHS


def test_physical_disks_are_masked_where_sysfs_keeps_them(tmp_path: Path) -> None:
    # /sys/block only indexes devices; their counters live under /sys/devices/..., reachable
    # by walking sysfs, so each physical disk's own folder is masked too.
    index = tmp_path / "block"
    index.mkdir()
    disk = "/sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda"
    (index / "vda").symlink_to(disk)
    (index / "loop0").symlink_to("/sys/devices/virtual/block/loop0")  # under a masked folder
    (index / "odd").symlink_to(tmp_path)  # not sysfs: never masked
    assert host_block_devices(index) == [disk]
    assert masked_paths(index)[-1] == disk
    assert host_block_devices(tmp_path / "absent") == []
    real = [os.path.realpath(f"/sys/block/{n}") for n in sorted(os.listdir("/sys/block"))]
    assert [p for p in real if not _covered(p, masked_paths())] == []


def test_create_container_refuses_a_spec_without_masked_paths() -> None:
    # (No engine needed: both refuse before any request.)
    client = docker.DockerClient(base_url="unix:///nonexistent.sock", version="1.41")
    kwargs = _kwargs()
    del kwargs["masked_paths"]
    with pytest.raises(ValueError, match="masked_paths"):
        create_container(client, **kwargs)
    # And docker-py's own create refuses the full spec, so it cannot be used by mistake.
    with pytest.raises(TypeError, match=r"masked_paths|readonly_paths"):
        client.containers.create(**_kwargs())


# --- The real container --------------------------------------------------------------------


def _kwargs(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "image": "syft-runner/scientific:latest",
        "name": f"syft-test-{uuid.uuid4().hex[:12]}",
        "labels": {TEST_LABEL: "sandbox"},
        "command": ["true"],
        "environment": dict(DEFAULT_ENVIRONMENT),
        "mounts": [],
        "workdir": WORKDIR,
        "limits": Limits(),
        "user": SANDBOX_USER,
    }
    spec.update(overrides)
    return container_kwargs(**spec)


@pytest.fixture
def created_container(
    docker_client: docker.DockerClient, job_images: dict[str, str], tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """A created (not started) job container; yields its `inspect_container` document."""
    (tmp_path / "outputs").mkdir()
    limits = Limits(memory_mb=300, cpus=0.5, pids=64, nofile=512, fsize_mb=8, tmpfs_mb=32, shm_mb=8)
    kwargs = _kwargs(
        image=job_images["scientific"],
        limits=limits,
        mounts=[
            Mount(source=tmp_path, target=JOB_DIR),
            Mount(source=tmp_path / "outputs", target=OUTPUTS_DIR, read_only=False),
        ],
    )
    container = create_container(docker_client, **kwargs)
    try:
        yield docker_client.api.inspect_container(container.id)
    finally:
        container.remove(force=True)


@pytest.mark.docker
def test_host_config_is_hardened(created_container: dict[str, Any]) -> None:
    host = created_container["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert not host["CapAdd"]
    assert host["Privileged"] is False
    assert "no-new-privileges:true" in host["SecurityOpt"]
    seccomp = [o for o in host["SecurityOpt"] if o.startswith("seccomp=")]
    assert len(seccomp) == 1 and '"defaultAction":"SCMP_ACT_ERRNO"' in seccomp[0]
    assert host["PidsLimit"] == 64
    assert host["Memory"] == host["MemorySwap"] == 300 * MB
    assert host["NanoCpus"] == 500_000_000
    assert host["IpcMode"] == "private"
    assert host["CgroupnsMode"] == "private"
    assert host["ShmSize"] == 8 * MB
    assert host["Init"] is True
    assert not host["Devices"]
    assert host["AutoRemove"] is False
    assert host["Tmpfs"] == {"/tmp": "rw,noexec,nosuid,nodev,size=32m"}
    assert host["MaskedPaths"] == masked_paths()
    assert host["ReadonlyPaths"] == list(READONLY_PATHS)
    assert host["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "10m", "max-file": "1"},
    }
    ulimits = {u["Name"]: (u["Soft"], u["Hard"]) for u in host["Ulimits"]}
    assert ulimits == {"nofile": (512, 512), "fsize": (8 * MB, 8 * MB), "core": (0, 0)}
    mounts = {m["Target"]: m for m in host["Mounts"]}
    assert mounts[JOB_DIR]["ReadOnly"] is True and mounts[JOB_DIR]["Type"] == "bind"
    assert mounts[OUTPUTS_DIR].get("ReadOnly", False) is False
    assert all(m["BindOptions"]["Propagation"] == "rprivate" for m in mounts.values())


@pytest.mark.docker
def test_container_config_is_explicit(created_container: dict[str, Any]) -> None:
    config = created_container["Config"]
    assert config["User"] == f"{SANDBOX_USER[0]}:{SANDBOX_USER[1]}"
    assert config["Hostname"] == "job"
    assert config["WorkingDir"] == WORKDIR
    assert config["Labels"][TEST_LABEL] == "sandbox"
    assert config["Tty"] is False and config["OpenStdin"] is False
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["HOME"] == "/tmp"
    assert "SYFT_RUNNER_SECRET" not in env


@pytest.mark.docker
def test_limits_hold_inside_the_container(run_sandboxed: RunSandboxed, tmp_path: Path) -> None:
    # The executor's staging must do the same: the job's uid needs to traverse the staged
    # folder and own the outputs folder.
    tmp_path.chmod(0o755)
    (tmp_path / "outputs").mkdir()
    (tmp_path / "code").mkdir(mode=0o755)  # the working directory
    os.chown(tmp_path / "outputs", *SANDBOX_USER)
    script = (
        "ulimit -n; ulimit -c; ulimit -f; id -u; "
        "touch /job/nope 2>/dev/null && echo job-writable || echo job-read-only; "
        "echo ok > /job/outputs/out.txt && echo outputs-writable; "
        "cp /bin/true /tmp/t && /tmp/t 2>/dev/null && echo tmp-exec || echo tmp-noexec; "
        "head -c 3M /dev/zero > /job/outputs/big 2>/dev/null; "
        "echo big=$(stat -c %s /job/outputs/big)"
    )
    result = run_sandboxed(
        ["bash", "-c", script],
        runtime="minimal",
        limits=Limits(nofile=512, fsize_mb=1),
        mounts=[
            Mount(source=tmp_path, target=JOB_DIR),
            Mount(source=tmp_path / "outputs", target=OUTPUTS_DIR, read_only=False),
        ],
    )
    lines = result.stdout.split()
    # bash reports `ulimit -f` in 1024-byte blocks: 1 MB = 1024 blocks.
    assert lines[:4] == ["512", "0", "1024", str(SANDBOX_USER[0])]
    assert lines[4:] == [
        "job-read-only",
        "outputs-writable",
        "tmp-noexec",
        f"big={1024 * 1024}",
    ]
    assert (tmp_path / "outputs" / "out.txt").read_text() == "ok\n"
    assert not (tmp_path / "nope").exists()


FORK_BOMB = """
import os, time
forked = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(2)
            os._exit(0)
        forked += 1
except OSError as exc:
    print(forked, exc.errno)
"""


@pytest.mark.docker
def test_pids_limit_stops_a_fork_bomb(run_sandboxed: RunSandboxed) -> None:
    result = run_sandboxed(["python3", "-c", FORK_BOMB], limits=Limits(pids=20))
    forked, errno = map(int, result.stdout.split())
    assert errno == 11  # EAGAIN from the pids cgroup
    assert forked < 20


@pytest.mark.docker
def test_memory_limit_kills_without_swap(run_sandboxed: RunSandboxed) -> None:
    hog = "b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); print('survived')"
    result = run_sandboxed(["python3", "-c", hog], limits=Limits(memory_mb=64))
    assert result.oom_killed
    assert result.exit_code == 137
    assert "survived" not in result.stdout


@pytest.mark.docker
def test_environment_is_exactly_what_was_given(
    run_sandboxed: RunSandboxed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYFT_RUNNER_SECRET", "leak")
    env = {"HOME": "/tmp", "SYFT_JOB_ID": "j1"}
    result = run_sandboxed(["bash", "-c", "env | sort"], runtime="minimal", environment=env)
    seen = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert seen["SYFT_JOB_ID"] == "j1"
    assert "SYFT_RUNNER_SECRET" not in seen
    # Only the image's own ENV (PATH, LANG) and Docker's HOSTNAME are added.
    assert set(seen) <= {"HOME", "SYFT_JOB_ID", "PATH", "LANG", "HOSTNAME", "PWD", "SHLVL", "_"}
