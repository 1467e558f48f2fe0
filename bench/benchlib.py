"""What the bench scripts share: trivial job folders, waiting for `done`, a serving runner in a
thread, percentiles. Imported by the scripts (bench/ is their first path entry)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import docker
import yaml

from syft_core.jobs import DoneMarker, JobFolder
from syft_core.jobs.markers import read_marker
from syft_runner.config import RunnerConfig
from syft_runner.executor.contract import Backend
from syft_runner.service import RunnerService


def write_job(jobs: Path, submitter: str, name: str, script: str = "true\n") -> JobFolder:
    """A bash job on the minimal runtime (the image the bare docker runs use too)."""
    folder = jobs / submitter / name
    (folder / "code").mkdir(parents=True)
    (folder / "run.sh").write_text(script)
    config = {"name": name, "type": "bash", "runtime": "minimal", "submitted_by": submitter}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return JobFolder(folder)


def wait_done(job: JobFolder, timeout: float = 60.0, poll: float = 0.005) -> DoneMarker:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = read_marker(job.marker_path("done"), DoneMarker)
        if done is not None:
            return done
        time.sleep(poll)
    raise TimeoutError(f"{job.path}: not done after {timeout} s")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Serving:
    """A RunnerService in a background thread of this process."""

    def __init__(
        self,
        root: Path,
        owner: str,
        config: RunnerConfig,
        client: docker.DockerClient,
        backend: Backend | None = None,
    ) -> None:
        self.service = RunnerService(root, owner, config, client, backend=backend)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.service.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Serving:
        self.thread.start()
        if not self.service.ready.wait(120):
            raise TimeoutError("the runner did not get ready")
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
