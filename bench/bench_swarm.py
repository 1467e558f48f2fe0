"""Benchmark of the Swarm backend against the local one, side by side in one run.

Brings up the 3-node test cluster (1 drained manager, 2 workers: tests/swarm/cluster.py) beside
the main engine, then measures the same serving runner on each backend:

1. throughput: N jobs of `sleep 1`, all approved at once, with the same per-node concurrency
   limit C: the local backend runs C at a time on this machine's engine, the Swarm backend C per
   worker (2C). Target: Swarm >= 1.6x local.
2. approval -> start: one job at a time, the approval's timestamp to the task's start (`done`'s
   started_at, the engine's clock). Target: Swarm p50 <= 2x local p50.
3. the time per job on each, split: approval -> start, start -> end, end -> done.

Not a test: `.venv/bin/python bench/bench_swarm.py [--jobs N] [--per-node C] [--latency K]`.
Needs root (network namespaces) and the job images (`make images`). Both backends share this
machine's 2 cores: the cluster's workers are processes here, not machines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.swarm.cluster

from benchlib import Serving, pct, wait_done, write_job

from syft_core.datasite import Datasite
from syft_core.jobs.markers import ApprovedMarker, read_marker
from syft_runner.config import RunnerConfig
from syft_runner.executor.backends import make_backend
from syft_runner.sandbox.engine import connect
from syft_runner.sandbox.images import build_images
from tests.swarm.cluster import SwarmCluster

OWNER = "owner@bench.example"
SCIENTISTS = ("ds1@bench.example", "ds2@bench.example")
IMAGES = ["syft-runner/minimal:latest"]
Row = tuple[str, str, str]


@dataclass(frozen=True)
class Result:
    rate: float  # jobs/s
    latency: list[float]  # approval -> start, s
    phases: list[tuple[float, float, float]]  # per job: approval -> start, run, end -> done


def measure(
    label: str,
    root: Path,
    config: RunnerConfig,
    client: docker.DockerClient,
    args: argparse.Namespace,
) -> Result:
    """Throughput of N `sleep 1` jobs, then K single jobs' approval -> start."""
    Datasite(root, OWNER).init()
    jobs = [
        write_job(root / OWNER / "jobs", SCIENTISTS[i % 2], f"tp-{i}", "sleep 1\n")
        for i in range(args.jobs)
    ]
    latency: list[float] = []
    phases: list[tuple[float, float, float]] = []
    with Serving(root, OWNER, config, client, make_backend(config, client)):
        started = time.perf_counter()
        for job in jobs:
            job.approve(OWNER, without_review=True)
        dones = [wait_done(job, 300, 0.02) for job in jobs]
        elapsed = time.perf_counter() - started
        for i in range(args.latency):
            job = write_job(root / OWNER / "jobs", SCIENTISTS[0], f"lat-{i}")
            approved = job.approve(OWNER, without_review=True)
            done = wait_done(job)
            assert done.started_at is not None, done.message
            latency.append((done.started_at - approved.at).total_seconds())
    failed = [d.message for d in dones if d.outcome.value != "succeeded"]
    assert not failed, f"{label}: {failed[:3]}"
    for job, done in zip(jobs, dones, strict=True):
        marker = read_marker(job.marker_path("approved"), ApprovedMarker)
        assert marker is not None and done.started_at is not None
        ran = done.duration_seconds or 0.0
        to_start = (done.started_at - marker.at).total_seconds()
        to_done = (done.at - done.started_at).total_seconds() - ran
        phases.append((to_start, ran, to_done))
    return Result(len(jobs) / elapsed, latency, phases)


def rows_for(local: Result, swarm: Result, args: argparse.Namespace) -> list[Row]:
    lrate, srate, llat, slat = local.rate, swarm.rate, local.latency, swarm.latency
    lp50, sp50 = statistics.median(llat), statistics.median(slat)
    c = args.per_node
    rows: list[Row] = [
        (f"local, {args.jobs} x sleep 1, {c} at once", f"{lrate:.2f} jobs/s", ""),
        (
            f"swarm, {args.jobs} x sleep 1, {c} per worker x 2",
            f"{srate:.2f} jobs/s ({srate / lrate:.2f}x)",
            ">= 1.6x local",
        ),
        ("local approval -> start, p50", f"{lp50 * 1000:.0f} ms", ""),
        ("local approval -> start, p95", f"{pct(llat, 0.95) * 1000:.0f} ms", ""),
        (
            "swarm approval -> start, p50",
            f"{sp50 * 1000:.0f} ms ({sp50 / lp50:.2f}x)",
            "<= 2x local p50",
        ),
        ("swarm approval -> start, p95", f"{pct(slat, 0.95) * 1000:.0f} ms", ""),
    ]
    for label, result in (("local", local), ("swarm", swarm)):
        start, ran, finish = (statistics.median(p[i] for p in result.phases) for i in range(3))
        rows.append(
            (
                f"{label} per job under load, p50",
                f"wait+start {start:.2f} s, run {ran:.2f} s, end->done {finish:.2f} s",
                "",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40, help="`sleep 1` jobs (throughput)")
    parser.add_argument("--per-node", type=int, default=2, help="jobs at once per node")
    parser.add_argument("--latency", type=int, default=10, help="single jobs (approval->start)")
    args = parser.parse_args()
    client = connect()
    build_images(client)
    base = Path("/tmp/syftsw-bench")
    base.mkdir(exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="c", dir=base) as work,
        SwarmCluster(Path(work) / "cluster", workers=2, images=IMAGES) as cluster,
    ):
        up = cluster.timings.get("bring-up total", 0.0)
        shared = cluster.shared_dir
        local_config = RunnerConfig(
            runner_id=f"bench-local-{os.getpid()}",
            concurrency=args.per_node,
            state_dir=shared / "local-state",
        )
        swarm_config = RunnerConfig.model_validate(
            {
                "runner_id": f"bench-swarm-{os.getpid()}",
                "concurrency": args.per_node * len(cluster.worker_sockets),
                "state_dir": str(shared / "swarm-state"),
                "backend": "swarm",
                "swarm": {"manager": cluster.manager_socket, "workers": cluster.worker_sockets},
            }
        )
        local = measure("local", shared / "local", local_config, client, args)
        swarm = measure("swarm", shared / "swarm", swarm_config, client, args)
    rows = [("cluster bring-up (3 dockerd, swarm, images)", f"{up:.1f} s", "")]
    rows += rows_for(local, swarm, args)
    load = os.getloadavg()
    rows.append(("machine load (1, 5, 15 min) at the end", " ".join(f"{x:.1f}" for x in load), ""))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measurement'.ljust(width)}  {'value':>40}  target")
    for name, value, target in rows:
        print(f"{name.ljust(width)}  {value:>40}  {target}")


if __name__ == "__main__":
    main()
