"""Fixtures for the runner tests: job folders written directly, a runner serving in a thread, and
`syft-runner serve` as a subprocess.

Job folders are written by hand (run.sh, config.yaml, code/...) rather than through the client
API, so these tests depend only on the job protocol. Every container a test's runner creates
carries the test's own syftbox path as a label, and is removed at teardown.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import psutil
import pytest
import yaml
from docker.models.containers import Container

from syft_core.datasite import Datasite
from syft_core.jobs import DoneMarker, JobFolder, ResultsReport
from syft_core.jobs.markers import read_marker
from syft_runner.config import RunnerConfig
from syft_runner.executor.labels import LABEL_SYFTBOX
from syft_runner.service import RunnerService
from syft_runner.workspace.jobfs import unmount_jobfs

OWNER = "owner@example.org"
SCIENTIST = "ds@example.org"
OTHER_SCIENTIST = "ds2@example.org"


def write_job(
    syftbox: Path,
    name: str,
    run_sh: str,
    *,
    submitter: str = SCIENTIST,
    job_type: str = "bash",
    code: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
    owner: str = OWNER,
) -> JobFolder:
    """A job folder as a submitter would leave it: run.sh, config.yaml, code/."""
    folder = syftbox / owner / "jobs" / submitter / name
    (folder / "code").mkdir(parents=True)
    (folder / "run.sh").write_text(run_sh)
    settings: dict[str, Any] = {"name": name, "type": job_type, "submitted_by": submitter}
    if job_type == "python":
        settings["entrypoint"] = "main.py"
    settings.update(config or {})
    (folder / "config.yaml").write_text(yaml.safe_dump(settings))
    for rel, text in (code or {}).items():
        path = folder / "code" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return JobFolder(folder)


def approve(job: JobFolder) -> JobFolder:
    """Approve as an owner who reviewed the job as it is now."""
    job.approve(job.owner, expected_hash=job.content_hash())
    return job


def done_of(job: JobFolder) -> DoneMarker | None:
    return read_marker(job.marker_path("done"), DoneMarker)


def results_of(job: JobFolder) -> ResultsReport:
    """The runner's results report of a done job (it is written before `done`)."""
    report = job.results()
    assert report is not None, f"{job.path}: no results report"
    return report


def wait_done(job: JobFolder, timeout: float = 60.0) -> DoneMarker:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = done_of(job)
        if done is not None:
            return done
        time.sleep(0.05)
    raise AssertionError(f"{job} has no done marker after {timeout} s: {job.state()}")


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def runner_config(**overrides: Any) -> RunnerConfig:
    """Fast settings for tests: short rescan and grace, a runner id unique to the tests."""
    settings: dict[str, Any] = {
        "rescan_seconds": 0.5,
        "grace_seconds": 1,
        "runner_id": "pytest",
        "concurrency": 2,
    }
    settings.update(overrides)
    return RunnerConfig.model_validate(settings)


def job_containers(
    client: docker.DockerClient, syftbox: Path, *, include_stopped: bool = True
) -> list[Container]:
    """The job containers of this test's syftbox (only the running ones if not include_stopped)."""
    label = f"{LABEL_SYFTBOX}={syftbox.resolve()}"
    return list(
        client.containers.list(all=include_stopped, ignore_removed=True, filters={"label": label})
    )


def remove_test_containers(client: docker.DockerClient, syftbox: Path) -> None:
    for container in job_containers(client, syftbox):
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: the runner is removing it already
                raise


def wait_runner_clean(client: docker.DockerClient, syftbox: Path) -> None:
    """Wait until the runner has removed every job container and its staging/scratch folders."""
    wait_for(lambda: not job_containers(client, syftbox), what="job containers removed")
    state = syftbox.resolve() / ".syft-runner" / OWNER
    wait_for(
        lambda: not [p for kind in ("staging", "scratch") for p in (state / kind).glob("*")],
        what="runner folders removed",
    )


def host_processes(token: str) -> list[psutil.Process]:
    """Host processes whose command line carries `token` (job processes are host processes)."""
    return [
        proc
        for proc in psutil.process_iter(["cmdline"])
        if token in " ".join(proc.info["cmdline"] or [])
    ]


def unmount_test_filesystems(root: Path) -> None:
    """Job filesystems a test left mounted under `root` (a runner stopped between a job's `done`
    and its cleanup leaves them for its next start, which a test never makes)."""
    prefix = f"{root.resolve()}/"
    with open("/proc/self/mountinfo") as mounts:
        points = [line.split()[4] for line in mounts if line.split()[4].startswith(prefix)]
    for point in sorted(points, reverse=True):
        jid = Path(point).parent.name
        unmount_jobfs(Path(point).parents[2] / "volumes" / f"{jid}.img", Path(point))


@pytest.fixture
def syftbox(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "syftbox"
    Datasite(root, OWNER).init()
    yield root
    unmount_test_filesystems(root)


@dataclass
class RunningRunner:
    service: RunnerService
    stop: threading.Event
    thread: threading.Thread
    errors: list[BaseException] = field(default_factory=list)

    def shutdown(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


StartRunner = Callable[..., RunningRunner]


@pytest.fixture
def start_runner(
    docker_client: docker.DockerClient, job_images: dict[str, str], syftbox: Path
) -> Iterator[StartRunner]:
    """start_runner(**config_overrides) serves the test's syftbox in a background thread."""
    started: list[RunningRunner] = []

    def start(**overrides: Any) -> RunningRunner:
        service = RunnerService(syftbox, OWNER, runner_config(**overrides), docker_client)
        stop = threading.Event()
        runner = RunningRunner(service, stop, threading.Thread(target=lambda: None))

        def serve() -> None:
            try:
                service.run(stop)
            except BaseException as exc:  # surfaced by the test through runner.errors
                runner.errors.append(exc)

        runner.thread = threading.Thread(target=serve, daemon=True, name="test-runner")
        runner.thread.start()
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.shutdown()
    remove_test_containers(docker_client, syftbox)


# -- a runner in its own process ---------------------------------------------------------------
SYFT_RUNNER = Path(sys.executable).with_name("syft-runner")


@dataclass
class ServeProcess:
    """`syft-runner serve` as a subprocess: for tests that kill or may damage the runner process."""

    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def open_fds(self) -> int:
        return int(psutil.Process(self.proc.pid).num_fds())

    def rss(self) -> int:
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def kill9(self) -> None:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM, and SIGKILL if the runner has not exited after 15 s."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill9()


def write_runner_config(syftbox: Path, **overrides: Any) -> Path:
    """A runner.yaml with fast test settings and a runner id no other test uses."""
    settings: dict[str, Any] = {
        "rescan_seconds": 0.3,
        "grace_seconds": 1,
        "concurrency": 2,
        "runner_id": f"h8-{uuid.uuid4().hex[:8]}",
    }
    settings.update(overrides)
    path = syftbox.parent / f"runner-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def start_serve(
    syftbox: Path,
    config: Path,
    *,
    once: bool = False,
    nofile: int | None = None,
    env: dict[str, str] | None = None,
) -> ServeProcess:
    """Start `syft-runner serve` for OWNER; its JSON log goes to a file beside the syftbox."""
    log = syftbox.parent / f"serve-{uuid.uuid4().hex[:6]}.log"
    command = [str(SYFT_RUNNER), "serve", "--syftbox", str(syftbox), "--email", OWNER]
    command += ["--config", str(config)] + (["--once"] if once else [])

    def limit_fds() -> None:  # runs in the child before exec
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})}
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=environment, preexec_fn=limit_fds
        )
    return ServeProcess(proc, log)


@pytest.fixture
def serve_processes(
    docker_client: docker.DockerClient, job_images: dict[str, str], syftbox: Path
) -> Iterator[list[ServeProcess]]:
    """Runner subprocesses a test starts are appended here and stopped (by PID) at teardown,
    and their containers removed."""
    started: list[ServeProcess] = []
    yield started
    for serve in started:
        serve.kill9()
    remove_test_containers(docker_client, syftbox)
