"""Helpers for the attack suite: run hostile jobs, then look for what must NOT have happened.

Jobs are written and approved with the runner fixtures (`syftbox`, `start_runner`); these helpers
add the evidence side: Docker's own event history (was a container ever created or started for a
job?), a secret planted in the owner's private folder and searched for in everything a job left,
host disk usage measured without following links, and host processes searched by a unique token.
(`syft-runner serve` as a subprocess, for attacks that could harm the process running them, is
`start_serve` in tests/fixtures_runner.py.)
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from syft_core.jobs import DoneMarker, JobFolder
from syft_runner.executor.labels import LABEL_JOB
from syft_runner.workspace.staging import RUNNER_STATE_DIR
from tests.fixtures_runner import (
    OWNER,
    StartRunner,
    approve,
    job_containers,
    wait_done,
    write_job,
)


@dataclass(frozen=True)
class Secret:
    """A file in the owner's private folder whose content no job may ever see."""

    path: Path
    token: bytes


@pytest.fixture
def secret(syftbox: Path) -> Secret:
    token = f"SECRET-{uuid.uuid4().hex}".encode()
    path = syftbox / OWNER / "private" / "secret.csv"
    path.write_bytes(b"id,diagnosis\n1," + token + b"\n")
    return Secret(path, token)


def files_under(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every entry below `root` with its lstat; links are reported, never followed."""
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(Path(entry.path))
                yield Path(entry.path), st


def assert_not_leaked(root: Path, token: bytes) -> None:
    """No regular file under `root` contains `token`, and nothing there is a link."""
    for path, st in files_under(root):
        assert not stat.S_ISLNK(st.st_mode), f"{path} is a symlink"
        if stat.S_ISREG(st.st_mode):
            assert token not in path.read_bytes(), f"the secret leaked into {path}"


def disk_bytes(root: Path) -> int:
    """Bytes of disk actually allocated under `root` (st_blocks), links not followed."""
    if not root.exists():
        return 0
    total = root.lstat().st_blocks * 512
    return total + sum(st.st_blocks * 512 for _, st in files_under(root))


def container_actions(
    client: docker.DockerClient, job: JobFolder, since: float, *, until: float | None = None
) -> list[str]:
    """What Docker did with containers of `job` since `since` (create, start, die, destroy, ...),
    from the engine's event history: proof that does not depend on the runner's own account."""
    stream = client.events(
        since=int(since) - 1,
        until=int(until if until is not None else time.time()) + 1,
        filters={"type": "container", "label": f"{LABEL_JOB}={job.owner}/{job.relpath}"},
        decode=True,
    )
    return [str(event.get("Action", event.get("status"))) for event in stream]


def run_jobs(
    syftbox: Path,
    start_runner: StartRunner,
    scripts: dict[str, str],
    *,
    timeout: float = 60.0,
    runner: dict[str, Any] | None = None,
    **job_options: Any,
) -> dict[str, tuple[JobFolder, DoneMarker]]:
    """Write and approve one job per name → run.sh, serve them, wait for every `done`."""
    jobs = {
        name: approve(write_job(syftbox, name, script, **job_options))
        for name, script in scripts.items()
    }
    start_runner(**(runner or {}))
    return {name: (job, wait_done(job, timeout)) for name, job in jobs.items()}


def python_job(
    syftbox: Path, name: str, program: str, *, args: str = "", **job_options: Any
) -> JobFolder:
    """Write and approve a python job that runs `program` as `python3 main.py <args>`."""
    return approve(
        write_job(
            syftbox,
            name,
            f"python3 main.py {args}\n",
            job_type="python",
            code={"main.py": program},
            **job_options,
        )
    )


def probe_job(
    syftbox: Path,
    start_runner: StartRunner,
    name: str,
    program: str,
    *,
    args: str = "",
    timeout: float = 60.0,
    **job_options: Any,
) -> tuple[JobFolder, DoneMarker, dict[str, Any]]:
    """Run a python job (`python3 main.py <args>`) whose last stdout line is a JSON object
    of observations."""
    job = python_job(syftbox, name, program, args=args, **job_options)
    start_runner()
    done = wait_done(job, timeout)
    lines = job.stdout_path.read_text().strip().splitlines()
    assert lines, f"{name}: no output; stderr: {job.stderr_path.read_text()[-2000:]}"
    return job, done, json.loads(lines[-1])


def remove_tree(path: Path) -> None:
    """Remove a tree too deep for shutil.rmtree (GNU rm walks iteratively)."""
    if path.exists():
        subprocess.run(["rm", "-rf", "--", str(path)], check=True, timeout=120)


class PeakSampler:
    """Calls `measure` every `interval` seconds in a thread and keeps the largest value seen
    (a measurement that fails, e.g. on a file vanishing under it, is skipped)."""

    def __init__(self, measure: Any, interval: float = 0.1) -> None:
        self._measure = measure
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="peak-sampler")
        self.peak = 0.0
        self.samples = 0

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                value = float(self._measure())
            except (OSError, ValueError, docker.errors.DockerException):
                value = None
            if value is not None:
                self.peak = max(self.peak, value)
                self.samples += 1
            self._stop.wait(self._interval)


def scratch_root(syftbox: Path) -> Path:
    """Where the runner keeps every job's writable outputs folder on the host."""
    return syftbox.resolve() / RUNNER_STATE_DIR / OWNER / "scratch"


def cgroup_value(container: Any, controller: str, name: str) -> int:
    """A cgroup v1 counter of a running container, read on the host (e.g. pids, pids.current)."""
    container.reload()
    pid = int(container.attrs["State"]["Pid"])
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return int(Path(f"/sys/fs/cgroup/{controllers}{path}/{name}").read_text())
    raise OSError(f"no {controller} cgroup for pid {pid}")


def running_container(client: docker.DockerClient, syftbox: Path) -> Any:
    """The one running job container of this test's syftbox (OSError while there is none)."""
    running = [c for c in job_containers(client, syftbox) if c.status == "running"]
    if not running:
        raise OSError("no running job container")
    return running[0]


def host_latency() -> float:
    """Seconds a small host operation takes: fork+exec and a synced file write."""
    started = time.monotonic()
    subprocess.run(["true"], check=True)
    fd = os.open("/tmp/.h8-latency", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b"x" * 4096)
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.monotonic() - started
