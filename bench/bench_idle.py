"""Idle cost of a serving runner whose gateway holds a large history (issue 14, point 3).

Prints one table; every ratio is measured within this single run. Not a test: run it with
`.venv/bin/python bench/bench_idle.py [--finished F] [--others O] [--seconds S]`.

The gateway is built directly (job folders and markers written by hand, as sync would deliver
them): F finished jobs (outputs/ and `done`: the runner reads no other file of theirs) and O
jobs in other states (waiting for review, rejected), spread over 10 submitters. Then, in this
process:

1. a runner serves an empty gateway: approval -> container start for a few trivial jobs;
2. a runner serves the big gateway: the watcher's start-up cost, the CPU of this process (the
   runner's threads: the serve loop, the watcher, the Syft gateway thread) over S seconds at rest,
   its RSS, and approval -> container start for the same number of jobs (ratio to 1).
The machine's load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml
from benchlib import Serving, wait_done, write_job

from syft_core.datasite import Datasite
from syft_runner.config import RunnerConfig
from syft_runner.executor.labels import LABEL_SYFTBOX
from syft_runner.sandbox.engine import connect
from syft_runner.sandbox.images import build_images
from syft_runner.watcher import pending_job_folders

OWNER = "owner@bench.example"
SUBMITTERS = tuple(f"ds{i}@bench.example" for i in range(10))
Row = tuple[str, str, str]


def build_gateway(jobs: Path, finished: int, others: int) -> None:
    """F finished and O other jobs, written directly (no event log, no API: what sync delivers)."""
    done_text = yaml.safe_dump({"by": OWNER, "outcome": "succeeded", "message": "bench"})
    rejected_text = yaml.safe_dump({"by": OWNER, "reason": "bench"})
    config_text = yaml.safe_dump({"name": "old", "type": "bash", "runtime": "minimal"})
    for i in range(finished + others):
        folder = jobs / SUBMITTERS[i % len(SUBMITTERS)] / f"old-{i:06d}"
        if i < finished:  # what the runner could look at: the folder, a subfolder, `done`
            os.makedirs(folder / "outputs")
            with open(folder / "done", "w") as f:
                f.write(done_text)
            continue
        os.makedirs(folder / "code")
        (folder / "run.sh").write_text("true\n")
        (folder / "config.yaml").write_text(config_text)
        if i % 2:
            (folder / "rejected").write_text(rejected_text)


def latencies(jobs: Path, prefix: str, n: int) -> list[float]:
    """Approval -> container start (the `done` marker's StartedAt), one job at a time."""
    found = []
    for i in range(n):
        job = write_job(jobs, SUBMITTERS[0], f"{prefix}-{i}")
        time.sleep(0.2)  # the new folder is seen (and watched) before the approval, as in life
        approved = job.approve(OWNER, without_review=True)
        done = wait_done(job)
        assert done.started_at is not None, done.message
        found.append((done.started_at - approved.at).total_seconds())
    return found


def cpu_seconds(me: psutil.Process) -> float:
    times = me.cpu_times()
    return times.user + times.system


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finished", type=int, default=100_000)
    parser.add_argument("--others", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=60.0, help="idle window")
    parser.add_argument("--jobs", type=int, default=8, help="jobs per latency measurement")
    args = parser.parse_args()

    client = connect()
    build_images(client)
    me = psutil.Process()
    with tempfile.TemporaryDirectory(prefix="syft-bench-idle-") as tmp:
        config = RunnerConfig(runner_id="bench-idle", concurrency=2)
        empty_root, big_root = Path(tmp) / "empty", Path(tmp) / "big"
        try:
            Datasite(empty_root, OWNER).init()
            with Serving(empty_root, OWNER, config, connect()):
                latencies(Datasite(empty_root, OWNER).jobs, "warm", 2)
                empty = latencies(Datasite(empty_root, OWNER).jobs, "empty", args.jobs)

            big = Datasite(big_root, OWNER)
            big.init()
            started = time.perf_counter()
            build_gateway(big.jobs, args.finished, args.others)
            built = time.perf_counter() - started
            print(f"gateway built in {built:.0f} s ({args.finished} finished, {args.others} other)")
            print("(removing it at the end takes as long)", flush=True)
            rss_before = me.memory_info().rss
            cpu_before = cpu_seconds(me)
            started = time.perf_counter()
            with Serving(big_root, OWNER, config, connect()):
                ready = time.perf_counter() - started
                # The first rescan (every job is new to this runner) and the watches set up.
                time.sleep(config.rescan_seconds + 2)
                startup_cpu = cpu_seconds(me) - cpu_before
                before, t0 = cpu_seconds(me), time.perf_counter()
                time.sleep(args.seconds)
                used = (cpu_seconds(me) - before) / (time.perf_counter() - t0)
                idle_load = load()
                rss = me.memory_info().rss
                loaded = latencies(big.jobs, "big", args.jobs)
            rescan = _timed(lambda: pending_job_folders(big.jobs))
            report(
                args, used, idle_load, rss, rss_before, ready, startup_cpu, rescan, empty, loaded
            )
        finally:
            for container in client.containers.list(
                ignore_removed=True,
                all=True,
                filters={"label": f"{LABEL_SYFTBOX}={Path(tmp).resolve()}"},
            ):
                container.remove(force=True)


def report(
    args: argparse.Namespace,
    used: float,
    idle_load: str,
    rss: int,
    rss_before: int,
    ready: float,
    startup_cpu: float,
    rescan: float,
    empty: list[float],
    loaded: list[float],
) -> None:
    rows: list[Row] = []
    e50, b50 = statistics.median(empty), statistics.median(loaded)
    n = f"{args.finished:,} finished + {args.others:,} other jobs"
    rows += [
        (f"idle CPU, {n}, {args.seconds:.0f} s", f"{100 * used:.2f} % of a core", "< 1 %"),
        ("  machine load during the idle window", idle_load, ""),
        (f"runner RSS, {n}", f"{rss / 2**20:.0f} MB", "< 200 MB"),
        ("  RSS added by serving", f"{(rss - rss_before) / 2**20:.0f} MB", ""),
        ("start-up: ready / CPU to first idle", f"{ready:.2f} s / {startup_cpu:.2f} s", ""),
        ("full listing of the big gateway (no cache), p50", f"{rescan * 1000:.0f} ms", ""),
        ("approval -> start, empty gateway, p50", f"{e50 * 1000:.0f} ms", ""),
        (
            "approval -> start, big gateway, p50",
            f"{b50 * 1000:.0f} ms ({b50 / e50:.2f}x)",
            "same latency (~1.0x)",
        ),
        (
            "approval -> start, empty / big, max",
            f"{max(empty) * 1000:.0f} / {max(loaded) * 1000:.0f} ms",
            "",
        ),
        ("  machine load at the end", load(), ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measurement'.ljust(width)}  {'value':>26}  target")
    for name, value, target in rows:
        print(f"{name.ljust(width)}  {value:>26}  {target}")

    sys.stdout.flush()


def _timed(fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
