"""Attack 6: the Docker socket, devices and raw sockets. A job that finds the Docker socket owns
the host; one that can make a device node or a raw socket can read disks or forge traffic. None
of that exists or works; neither do the runner's own environment variables reach the job."""

from __future__ import annotations

from pathlib import Path

import pytest

from syft_core.jobs import Outcome
from tests.attacks.conftest import probe_job
from tests.fixtures_runner import StartRunner

pytestmark = pytest.mark.docker

DEVICE_PROGRAM = r"""
import json, os, socket, stat

def walk(root):
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.path in ("/proc", "/sys"):
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
            yield entry.path, st

def attempt(fn):
    try:
        fn()
        return "OK"
    except OSError as exc:
        return exc.strerror

files = list(walk("/"))
print(json.dumps({
    "sockets": [p for p, st in files if stat.S_ISSOCK(st.st_mode)],
    "devices": sorted(
        "%s %d:%d" % (p, os.major(st.st_rdev), os.minor(st.st_rdev)) for p, st in files
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
    ),
    "docker_paths": [p for p in ("/var/run/docker.sock", "/run/docker.sock",
                     "/run/containerd/containerd.sock", "/var/lib/docker") if os.path.lexists(p)],
    "mknod_char": attempt(lambda: os.mknod("/tmp/mem", 0o600 | stat.S_IFCHR, os.makedev(1, 1))),
    "mknod_block": attempt(lambda: os.mknod("/tmp/sda", 0o600 | stat.S_IFBLK, os.makedev(8, 0))),
    "raw_inet": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)),
    "raw_packet": attempt(lambda: socket.socket(17, socket.SOCK_RAW, 0)),
    "open_tty": attempt(lambda: open("/dev/tty", "rb")),
    "environ": dict(os.environ),
    "init_environ": open("/proc/1/environ", "rb").read().decode("latin-1").split("\0"),
}))
"""

DEFAULT_DEVICES = {
    "/dev/full 1:7",
    "/dev/null 1:3",
    "/dev/random 1:8",
    "/dev/tty 5:0",
    "/dev/urandom 1:9",
    "/dev/zero 1:5",
    "/dev/pts/ptmx 5:2",
}


def test_no_docker_socket_no_devices_no_raw_sockets_no_runner_env(
    syftbox: Path, start_runner: StartRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Planted in the runner's own environment: a job must never see it.
    canary = "h8-canary-7f3a"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", canary)
    monkeypatch.setenv("SYFT_RUNNER_TOKEN", canary)
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
    job, done, report = probe_job(syftbox, start_runner, "devices", DEVICE_PROGRAM)
    assert done.outcome is Outcome.SUCCEEDED, job.stderr_path.read_text()
    assert report["sockets"] == [] and report["docker_paths"] == []
    assert set(report["devices"]) <= DEFAULT_DEVICES, report["devices"]
    for key in ("mknod_char", "mknod_block", "raw_inet", "raw_packet"):
        assert report[key] == "Operation not permitted", (key, report[key])
    assert report["open_tty"] != "OK"
    environ = report["environ"]
    assert canary not in repr(environ) and canary not in repr(report["init_environ"])
    assert "DOCKER_HOST" not in environ and "AWS_SECRET_ACCESS_KEY" not in environ
    assert environ["HOME"] == "/tmp" and environ["SYFT_IS_IN_JOB"] == "true"
