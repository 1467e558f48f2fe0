"""Benchmark of the job runner against bare docker-py runs of the same hardened container.

Prints one table; every ratio is measured within this single run. Not a test: run it with
`.venv/bin/python bench/bench_runner.py [--jobs N] [--parallel P] [--finished F]`.

0. where the time goes: one trivial job at a time, the runner's phases (each method timed
   while Executor.run runs) beside a bare run's docker calls.
1. overhead: one trivial job at a time. "bare" = containers.create/start/wait/remove with the
   same container_kwargs and mounts; "executor" = Executor.run on an approved job folder (stage,
   verify, create, markers, logs, outputs, done, cleanup); "serve" = approval written → done
   marker seen, with the service noticing the approval through its watcher.
2. approval → start: the approval's timestamp to the container's StartedAt (from `done`).
3. throughput: P jobs at once (runner concurrency P) vs P threads of bare runs, P = 2, 4, 8.
4. idle CPU of a serving runner whose gateway holds F finished jobs (psutil, this process);
   bench_idle.py measures it at 100,000 jobs, with the approval latency beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import psutil
import yaml
from benchlib import Serving, pct, wait_done, write_job

from syft_core.datasite import Datasite
from syft_core.jobs import JobFolder
from syft_runner.config import RunnerConfig
from syft_runner.executor import job as job_module
from syft_runner.executor.backends.docker import DockerBackend
from syft_runner.executor.job import Executor
from syft_runner.executor.labels import LABEL_SYFTBOX
from syft_runner.sandbox.container import (
    DEFAULT_ENVIRONMENT,
    WORKDIR,
    Limits,
    Mount,
    container_kwargs,
    create_container,
    job_user,
)
from syft_runner.sandbox.engine import connect
from syft_runner.sandbox.images import build_images
from syft_runner.watcher import PendingScanner, pending_job_folders
from syft_runner.workspace import staging as staging_module

OWNER = "owner@bench.example"
SCIENTISTS = ("ds1@bench.example", "ds2@bench.example")
BENCH_LABEL = "org.syft.bench"


def bare_run(client: docker.DockerClient, image: str, job_dir: Path, out_dir: Path) -> float:
    bench_id = uuid.uuid4().hex[:12]
    kwargs = container_kwargs(
        image=image,
        name=f"syft-bench-{bench_id}",
        labels={BENCH_LABEL: "bare"},
        command=["/bin/bash", "/job/run.sh"],
        environment=dict(DEFAULT_ENVIRONMENT),
        mounts=[
            Mount(source=job_dir, target="/job", read_only=True),
            Mount(source=out_dir, target="/job/outputs", read_only=False),
            Mount(source=out_dir, target="/job/code/outputs", read_only=False),
        ],
        workdir=WORKDIR,
        limits=Limits(),
        user=job_user(bench_id),
    )
    started = time.perf_counter()
    with BARE.timed("docker create"):
        container = create_container(client, **kwargs)
    try:
        with BARE.timed("docker start"):
            container.start()
        with BARE.timed("docker wait"):
            container.wait()
    finally:
        with BARE.timed("docker remove"):
            container.remove(force=True)
    return time.perf_counter() - started


class Phases:
    """Time spent per named phase, summed per job (thread-safe enough for one job at a time)."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {}
        self.recording = False

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            if self.recording:
                self.seconds.setdefault(name, []).append(time.perf_counter() - started)

    def wrap(self, owner: object, attribute: str, name: str) -> None:
        """Time every call of `owner.attribute` (a method) under `name`."""
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            with self.timed(name):
                return original(*args, **kwargs)

        setattr(owner, attribute, timed_call)

    def per_job(self, jobs: int) -> list[tuple[str, float]]:
        return [(name, sum(values) / jobs) for name, values in self.seconds.items()]


BARE = Phases()
RUNNER = Phases()
# The runner's phases, in the order a job meets them (the outer ones include the inner ones).
RUNNER_PHASES = [
    (Executor, "prepare", "prepare: stage + plan"),
    (job_module, "stage", "  staging (copy, hash, job fs)"),
    (staging_module, "mount_jobfs", "    job filesystem mount"),
    (DockerBackend, "prepare", "docker create"),
    (JobFolder, "start", "running marker + event"),
    (DockerBackend, "execute", "attach 2 streams + docker start"),
    (Executor, "supervise", "supervise (the job runs)"),
    (Executor, "finalize", "finalize: outputs, report, done"),
    (Executor, "_check_outputs", "  output checks"),
    (Executor, "_release_if_due", "  release policies"),
    (Executor, "cleanup", "cleanup"),
    (DockerBackend, "cleanup", "  docker remove"),
    (staging_module.RunnerDirs, "remove", "  unmount + delete folders"),
]


def bare_fixture(root: Path) -> tuple[Path, Path]:
    job_dir = root / "bare-job"
    (job_dir / "outputs").mkdir(parents=True)
    (job_dir / "code" / "outputs").mkdir(parents=True)  # the working directory, as staged
    (job_dir / "run.sh").write_text("true\n")
    out_dir = root / "bare-out"
    out_dir.mkdir()
    out_dir.chmod(0o777)
    return job_dir.resolve(), out_dir.resolve()


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20, help="trivial jobs per measurement")
    parser.add_argument(
        "--parallel", type=int, nargs="+", default=[2, 4, 8], help="jobs at once (throughput)"
    )
    parser.add_argument("--finished", type=int, default=10_000, help="finished jobs (idle CPU)")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    args = parser.parse_args()

    client = connect()
    image = build_images(client)["minimal"]
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="syft-bench-") as tmp:
        root = Path(tmp) / "syftbox"
        Datasite(root, OWNER).init()
        config = RunnerConfig(runner_id="bench", concurrency=max(args.parallel))
        try:
            rows += overhead(client, image, root, config, args.jobs)
            for parallel in args.parallel:
                at_once = config.model_copy(update={"concurrency": parallel})
                rows += throughput(client, image, root, at_once, args.jobs * 2, parallel)
            rows += idle_cpu(client, root, config, args.finished, args.idle_seconds)
        finally:
            for container in client.containers.list(
                ignore_removed=True,
                all=True,
                filters={"label": f"{LABEL_SYFTBOX}={root.resolve()}"},
            ):
                container.remove(force=True)
    rows.append(
        (
            "machine load (1, 5, 15 min) at the end",
            " ".join(f"{x:.1f}" for x in os.getloadavg()),
            "",
        )
    )
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measurement'.ljust(width)}  {'value':>22}  target")
    for name, value, target in rows:
        print(f"{name.ljust(width)}  {value:>22}  {target}")


def overhead(
    client: docker.DockerClient, image: str, root: Path, config: RunnerConfig, n: int
) -> list[tuple[str, str, str]]:
    job_dir, out_dir = bare_fixture(root.parent)
    bare_run(client, image, job_dir, out_dir)  # warm-up
    executor = Executor(client, config, root, OWNER)
    bare, direct = [], []
    for owner, attribute, name in RUNNER_PHASES:
        RUNNER.wrap(owner, attribute, name)
    BARE.recording = RUNNER.recording = True
    for i in range(n):  # interleaved, so that load from elsewhere hits both alike
        bare.append(bare_run(client, image, job_dir, out_dir))
        job = write_job(root / OWNER / "jobs", SCIENTISTS[0], f"direct-{i}")
        job.approve(OWNER, without_review=True)
        direct.append(timed(lambda job=job: executor.run(job)))  # type: ignore[misc]
    BARE.recording = RUNNER.recording = False
    served, latency = [], []
    with Serving(root, OWNER, config, client):
        for i in range(n):
            job = write_job(root / OWNER / "jobs", SCIENTISTS[0], f"served-{i}")
            started = time.perf_counter()
            approved = job.approve(OWNER, without_review=True)
            done = wait_done(job)
            served.append(time.perf_counter() - started)
            assert done.started_at is not None, done.message
            latency.append((done.started_at - approved.at).total_seconds())
    b, d, s = (statistics.median(x) for x in (bare, direct, served))
    breakdown = [
        (f"  bare: {name}, mean", f"{seconds * 1000:.1f} ms", "")
        for name, seconds in BARE.per_job(n)
    ]
    breakdown += [
        (f"  runner: {name}, mean", f"{seconds * 1000:.1f} ms", "")
        for name, seconds in RUNNER.per_job(n)
    ]
    return [
        ("bare docker-py run, p50", f"{b * 1000:.0f} ms", ""),
        ("runner Executor.run, p50", f"{d * 1000:.0f} ms ({d / b:.2f}x)", "<= 1.1x"),
        *breakdown,
        ("runner serve approve->done, p50", f"{s * 1000:.0f} ms ({s / b:.2f}x)", ""),
        ("runner serve approve->done, p95", f"{pct(served, 0.95) * 1000:.0f} ms", ""),
        ("approval -> container start, p50", f"{statistics.median(latency) * 1000:.0f} ms", ""),
        ("approval -> container start, p95", f"{pct(latency, 0.95) * 1000:.0f} ms", "<= 250 ms"),
    ]


def throughput(
    client: docker.DockerClient,
    image: str,
    root: Path,
    config: RunnerConfig,
    n: int,
    parallel: int,
) -> list[tuple[str, str, str]]:
    job_dir, out_dir = root.parent / "bare-job", root.parent / "bare-out"
    with ThreadPoolExecutor(parallel) as pool:
        started = time.perf_counter()
        list(pool.map(lambda _: bare_run(client, image, job_dir, out_dir), range(n)))
        bare_rate = n / (time.perf_counter() - started)
    jobs = [
        write_job(root / OWNER / "jobs", SCIENTISTS[i % 2], f"tp{parallel}-{i}") for i in range(n)
    ]
    with Serving(root, OWNER, config, client):
        started = time.perf_counter()
        for job in jobs:
            job.approve(OWNER, without_review=True)
        for job in jobs:
            wait_done(job)
        runner_rate = n / (time.perf_counter() - started)
    return [
        (f"bare runs, {parallel} at once", f"{bare_rate:.1f} jobs/s", ""),
        (
            f"runner, concurrency {parallel}",
            f"{runner_rate:.1f} jobs/s ({runner_rate / bare_rate:.2f}x)",
            ">= 0.9x",
        ),
    ]


def idle_cpu(
    client: docker.DockerClient, root: Path, config: RunnerConfig, finished: int, seconds: float
) -> list[tuple[str, str, str]]:
    done_text = yaml.safe_dump({"by": OWNER, "outcome": "succeeded", "message": "bench"})
    for i in range(finished):
        job = write_job(root / OWNER / "jobs", SCIENTISTS[i % 2], f"old-{i:05d}")
        for sub in ("logs", "outputs"):
            (job.path / sub).mkdir()
        job.marker_path("done").write_text(done_text)
    me = psutil.Process()
    with Serving(root, OWNER, config, client):
        time.sleep(config.rescan_seconds + 2)  # the first rescan and the watches are set up
        before = me.cpu_times()
        time.sleep(seconds)
        after = me.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    rescan = statistics.median(
        timed(lambda: pending_job_folders(root / OWNER / "jobs")) for _ in range(5)
    )
    scanner = PendingScanner(root / OWNER / "jobs")
    scanner.scan()  # what the serve loop's rescans cost once it has seen the finished jobs
    cached = statistics.median(timed(scanner.scan) for _ in range(5))
    return [
        (f"one full listing, {finished} finished jobs, p50", f"{rescan * 1000:.1f} ms", ""),
        (f"one rescan of the serve loop, {finished} finished jobs", f"{cached * 1000:.2f} ms", ""),
        (
            f"idle CPU, {finished} finished jobs",
            f"{100 * used / seconds:.2f} % of a core",
            "< 1 %",
        ),
    ]


if __name__ == "__main__":
    main()
