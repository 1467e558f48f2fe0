"""Benchmark of job environments (syft_runner.sandbox.envs), against the real package index.

Prints one table; every ratio is measured within this single run. Not a test: run it with
`.venv/bin/python bench/bench_envs.py [--jobs N]`.

1. lock: `resolve_lock` at submission (two uv passes), for a small set (tabulate) and a large one
   (scikit-learn, scipy, matplotlib).
2. build cold / cached: `EnvCache.ensure` into an empty cache (a build container downloads and
   installs every wheel, bytecode compiled) versus the same call once cached (manifest checked
   against the lock, the venv's distributions listed); bytes on disk and files per environment.
3. approval -> container start, with a serving runner: the same job with the small environment
   (cached) and with none, interleaved; from the approval's timestamp to the container's
   StartedAt (`done`). Target: with an environment <= 1.1x without.
4. a job importing numpy, scipy.stats, sklearn and matplotlib.pyplot from the large environment
   (read-only, bytecode precompiled): its wall time, as a sanity check that it runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import docker
from benchlib import wait_done

from syft_core.datasite import Datasite
from syft_core.dependencies import resolve_lock
from syft_core.jobs import JobFolder, Outcome
from syft_core.jobs.lock import EnvLock, Requested, parse_lock
from syft_core.submit import submit_python_job
from syft_runner.config import RunnerConfig
from syft_runner.executor.job import Executor
from syft_runner.executor.labels import LABEL_SYFTBOX
from syft_runner.sandbox.engine import connect
from syft_runner.sandbox.envs import EnvCache, EnvSettings, default_ca_bundle
from syft_runner.sandbox.images import build_images
from syft_runner.service import RunnerService

OWNER = "owner@bench.example"
SCIENTIST = "ds@bench.example"
SMALL = ["tabulate"]
LARGE = ["scikit-learn", "scipy", "matplotlib"]
LARGE_IMPORTS = "import numpy, scipy.stats, sklearn.linear_model, matplotlib.pyplot\nprint('ok')\n"

Row = tuple[str, str, str]
T = TypeVar("T")


def timed(fn: Callable[..., T], *args: Any) -> tuple[float, T]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"


def builds(client: docker.DockerClient, image: str, cache_dir: Path) -> tuple[list[Row], EnvLock]:
    rows: list[Row] = []
    large_lock: EnvLock | None = None
    for label, packages in (("small (tabulate)", SMALL), ("large (sklearn+scipy+mpl)", LARGE)):
        lock_seconds, text = timed(resolve_lock, [Requested(n, "bench") for n in packages])
        lock = parse_lock(text)
        cache = EnvCache(
            EnvSettings(cache_dir / label.split()[0], 1 << 40, ca_bundle=default_ca_bundle())
        )
        cold, ready = timed(cache.ensure, client, lock, image)
        cached = [timed(cache.ensure, client, lock, image)[0] for _ in range(20)]
        hot = statistics.median(cached)
        entry = cache.entries()[0]
        assert entry.manifest is not None and ready is not None
        rows += [
            (
                f"{label}: packages, download",
                f"{len(lock.pins)}, {mb(lock.download_bytes or 0)}",
                "",
            ),
            (f"{label}: lock at submission", f"{lock_seconds:.2f} s", ""),
            (f"{label}: env build, cold", f"{cold:.2f} s", ""),
            (
                f"{label}: env build, cached (p50 of 20)",
                f"{hot * 1000:.2f} ms ({cold / hot:.0f}x faster)",
                "",
            ),
            (
                f"{label}: bytes on disk per env",
                f"{mb(entry.manifest.bytes)}, {entry.manifest.files} files",
                "",
            ),
        ]
        if packages is LARGE:
            large_lock = lock
    assert large_lock is not None
    return rows, large_lock


def write(root: Path, code: Path, name: str, dependencies: list[str] | None) -> JobFolder:
    return JobFolder(
        submit_python_job(
            root, SCIENTIST, OWNER, code_path=code, job_name=name, dependencies=dependencies
        )
    )


def approval_to_start(
    client: docker.DockerClient, root: Path, config: RunnerConfig, n: int
) -> list[Row]:
    code = root.parent / "code.py"
    code.write_text("print('hello')\n")
    service = RunnerService(root, OWNER, config, client)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    service.ready.wait(30)
    try:
        warm = write(root, code, "warm-env", SMALL)  # builds the small environment once
        warm.approve(OWNER, expected_hash=warm.content_hash())
        assert wait_done(warm, 600, 0.02).outcome is Outcome.SUCCEEDED
        latency: dict[str, list[float]] = {"with": [], "without": []}
        for i in range(n):  # interleaved, so that load from elsewhere hits both alike
            for kind, deps in (("with", SMALL), ("without", None)):
                job = write(root, code, f"{kind}-{i}", deps)
                approved = job.approve(OWNER, expected_hash=job.content_hash())
                done = wait_done(job, 600, 0.02)
                assert done.outcome is Outcome.SUCCEEDED and done.started_at is not None, done
                latency[kind].append((done.started_at - approved.at).total_seconds())
    finally:
        stop.set()
        thread.join(timeout=30)
    w, wo = (statistics.median(latency[k]) for k in ("with", "without"))
    return [
        ("approval -> start, no environment, p50", f"{wo * 1000:.0f} ms", ""),
        (
            "approval -> start, cached environment, p50",
            f"{w * 1000:.0f} ms ({w / wo:.2f}x)",
            "<= 1.1x",
        ),
    ]


def large_job(client: docker.DockerClient, root: Path, config: RunnerConfig) -> list[Row]:
    code = root.parent / "imports.py"
    code.write_text(LARGE_IMPORTS)
    executor = Executor(client, config, root, OWNER)
    job = write(root, code, "large-imports", LARGE)
    job.approve(OWNER, expected_hash=job.content_hash())
    seconds, _ = timed(executor.run, job)
    done = wait_done(job, 600, 0.02)
    assert done.outcome is Outcome.SUCCEEDED, (done, job.stderr_path.read_text())
    return [
        (
            "large env: job importing numpy/scipy/sklearn/pyplot",
            f"{done.duration_seconds:.2f} s in the container",
            "",
        ),
        ("large env: Executor.run incl. a cold build", f"{seconds:.1f} s", ""),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs", type=int, default=15, help="jobs of each kind (approval -> start)"
    )
    args = parser.parse_args()

    client = connect()
    image = build_images(client)["scientific"]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="syft-bench-envs-") as tmp:
        root = Path(tmp) / "syftbox"
        Datasite(root, OWNER).init()
        config = RunnerConfig(
            runner_id="bench-envs", concurrency=1, env_cache_dir=Path(tmp) / "runner-envs"
        )
        try:
            build_rows, _ = builds(client, image, Path(tmp) / "build-bench")
            rows += build_rows
            rows += approval_to_start(client, root, config, args.jobs)
            rows += large_job(client, root, config)
        finally:
            for container in client.containers.list(
                ignore_removed=True,
                all=True,
                filters={"label": f"{LABEL_SYFTBOX}={root.resolve()}"},
            ):
                container.remove(force=True)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measurement'.ljust(width)}  {'value':>30}  target")
    for name, value, target in rows:
        print(f"{name.ljust(width)}  {value:>30}  {target}")


if __name__ == "__main__":
    main()
