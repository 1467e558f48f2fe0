"""Crash and load: the runner killed with SIGKILL at random moments over 50+ jobs, the Docker engine
restarted under running jobs, and 1,000 queued jobs from 10 submitters run 2 at a time (fair,
all complete, flat memory).

Evidence comes from outside the runner: Docker's event history (how often each job's container
was created and started), the datasite's event log (`job.running` / `job.done` per job) and the
job folders themselves. Figures are recorded as junit properties for bench/bench_security.py.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import docker
import psutil
import pytest

from syft_core.datasite import Datasite
from syft_core.jobs import JobFolder, Outcome, Status
from syft_runner.executor.labels import LABEL_JOB, LABEL_SYFTBOX
from tests.fixtures_runner import (
    OWNER,
    ServeProcess,
    approve,
    done_of,
    job_containers,
    start_serve,
    wait_done,
    wait_for,
    write_job,
    write_runner_config,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

RecordProperty = Callable[[str, object], None]
DOCKERD_PIDFILE = Path("/run/syft-runner-dockerd.pid")
ENSURE_DOCKER = Path(__file__).resolve().parents[1] / "scripts" / "ensure-docker.sh"


def _container_events(
    client: docker.DockerClient, syftbox: Path, since: float
) -> Counter[tuple[str, str]]:
    """(job label, action) → how many times Docker did it, for every container of `syftbox`."""
    stream = client.events(
        since=int(since) - 1,
        until=int(time.time()) + 1,
        filters={"type": "container", "label": f"{LABEL_SYFTBOX}={syftbox.resolve()}"},
        decode=True,
    )
    counts: Counter[tuple[str, str]] = Counter()
    for event in stream:
        attributes = event.get("Actor", {}).get("Attributes", {})
        counts[(attributes.get(LABEL_JOB, "?"), str(event.get("Action")))] += 1
    return counts


def _event_counts(syftbox: Path) -> Counter[tuple[str, str]]:
    """(job relpath, what) → count, from the owner's datasite event log."""
    events = Datasite(syftbox, OWNER).events
    return Counter((e.path, e.what) for e in events if e.what.startswith("job."))


def _running_order(syftbox: Path) -> list[str]:
    """Job relpaths in the order they got their `running` marker."""
    return [e.path for e in Datasite(syftbox, OWNER).events if e.what == "job.running"]


# -- kill -9 at random moments -----------------------------------------------------------------
KILL_JOBS = 50


def test_kill_9_at_random_moments_loses_nothing_and_runs_nothing_twice(
    syftbox: Path,
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    serve_processes: list[ServeProcess],
    record_property: RecordProperty,
) -> None:
    rng = random.Random(4711)
    since = time.time()
    jobs = [
        approve(
            write_job(
                syftbox,
                f"k{i:02d}",
                f"echo run-{i}\nsleep 0.{rng.randrange(1, 8)}\necho {i} > outputs/n\n",
            )
        )
        for i in range(KILL_JOBS)
    ]
    config = write_runner_config(syftbox, concurrency=2, rescan_seconds=0.3)
    kills = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and any(done_of(j) is None for j in jobs) and kills < 80:
        serve = start_serve(syftbox, config)
        serve_processes.append(serve)
        time.sleep(rng.uniform(0.2, 1.2))
        serve.kill9()  # this PID only: the runner we started
        kills += 1
    final = start_serve(syftbox, config, once=True)
    serve_processes.append(final)
    final.proc.wait(timeout=240)
    assert final.proc.returncode == 0, final.log.read_text()[-3000:]

    docker_counts = _container_events(docker_client, syftbox, since)
    log_counts = _event_counts(syftbox)
    lost, twice, wrong = [], [], []
    for i, job in enumerate(jobs):
        done = done_of(job)
        label = f"{OWNER}/{job.relpath}"
        if done is None:
            lost.append(job.name)
            continue
        if done.outcome is not Outcome.SUCCEEDED or job.stdout_path.read_text() != f"run-{i}\n":
            wrong.append((job.name, done.outcome.value, done.message))
        if docker_counts[(label, "start")] > 1 or log_counts[(job.relpath, "job.running")] > 1:
            twice.append(job.name)
        assert log_counts[(job.relpath, "job.done")] == 1, job.name
        assert (job.outputs_dir / "n").read_text() == f"{i}\n"
    record_property("kills", kills)
    record_property("kill_jobs", len(jobs))
    record_property("jobs_lost", len(lost))
    record_property("jobs_run_twice", len(twice))
    record_property("jobs_wrong", len(wrong))
    assert kills >= 10, f"only {kills} kills: the test did not exercise restarts"
    assert lost == [] and twice == [] and wrong == [], (lost, twice, wrong)
    assert job_containers(docker_client, syftbox) == [], "orphan containers after restart"
    state_dir = syftbox.resolve() / ".syft-runner" / OWNER
    leftovers = [p for kind in ("staging", "scratch") for p in (state_dir / kind).glob("*")]
    assert leftovers == [], leftovers


# -- the Docker engine restarted under running jobs ---------------------------------------------
def _our_dockerd() -> int | None:
    """The PID of the dockerd scripts/ensure-docker.sh started, if it is alive."""
    try:
        pid = int(DOCKERD_PIDFILE.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        proc = psutil.Process(pid)
        return pid if proc.name() == "dockerd" else None
    except psutil.Error:
        return None


def _engine_answers(client: docker.DockerClient) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def test_engine_restart_while_jobs_run(
    syftbox: Path,
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    serve_processes: list[ServeProcess],
    record_property: RecordProperty,
) -> None:
    pid = _our_dockerd()
    if pid is None:
        pytest.skip(f"{DOCKERD_PIDFILE} does not name a live dockerd started by ensure-docker.sh")
    label = f"{LABEL_SYFTBOX}={syftbox.resolve()}"
    foreign = [
        c.name
        for c in docker_client.containers.list(ignore_removed=True)
        if label not in _labels(c)
    ]
    if foreign:
        pytest.skip(f"other containers are running on this engine ({', '.join(foreign[:5])})")
    config = write_runner_config(syftbox, concurrency=2, rescan_seconds=0.3)
    serve = start_serve(syftbox, config)
    serve_processes.append(serve)
    long_jobs = [approve(write_job(syftbox, f"long-{i}", "echo begun\nsleep 60\n")) for i in (1, 2)]
    # Running means the job's own process printed: a `running` marker and a container exist a
    # moment before `start`, and a job the engine restart catches there is started afterwards
    # (resumed, correctly: tests/test_runner_executor.py), which is not what this test is about.
    wait_for(lambda: all(_printed(j, "begun\n") for j in long_jobs), 30, "both jobs to print")
    assert len(job_containers(docker_client, syftbox)) == 2

    os.kill(pid, signal.SIGTERM)  # the dockerd ensure-docker.sh started, and only that one
    wait_for(lambda: not psutil.pid_exists(pid), 60, "dockerd to exit")
    # Started the same way again, in its own session so it outlives this test.
    subprocess.run([str(ENSURE_DOCKER)], check=True, timeout=120, start_new_session=True)
    wait_for(lambda: _engine_answers(docker_client), 60, "the engine to answer again")

    ended = [wait_done(job, 90) for job in long_jobs]
    nxt = approve(write_job(syftbox, "after-restart", "echo after\n"))
    assert wait_done(nxt, 60).outcome is Outcome.SUCCEEDED
    assert serve.alive(), serve.log.read_text()[-2000:]
    record_property("engine_restart_outcomes", ",".join(d.outcome.value for d in ended))
    for done in ended:
        assert done.outcome is Outcome.ERROR and "engine" in done.message, done.message


def _printed(job: JobFolder, text: str) -> bool:
    try:
        return job.stdout_path.read_text() == text
    except FileNotFoundError:
        return False


def _labels(container: object) -> str:
    labels = getattr(container, "labels", {}) or {}
    return ",".join(f"{k}={v}" for k, v in labels.items())


# -- load -----------------------------------------------------------------------------------
LOAD_SUBMITTERS = [f"ds{i:02d}@example.org" for i in range(1, 11)]
LOAD_PER_SUBMITTER = 100
LOAD_JOBS = len(LOAD_SUBMITTERS) * LOAD_PER_SUBMITTER
# Fairness: the queue rotates over submitters, so every 10 consecutive starts would hold all
# 10 submitters and none would be more than one start ahead of another; with 2 workers the
# `running` markers of jobs started close together can land out of order. Measured over 1,000
# jobs, two runs: every submitter seen within 11 consecutive starts, a lead of at most 2 and 1.
# Allowed: twice the ideal window, and a lead of 3.
FAIR_WINDOW = 2 * len(LOAD_SUBMITTERS)
FAIR_SPREAD = 3
# Memory: the runner keeps nothing per finished job (its queue entry, approval stamp and worker
# thread are dropped when the job is reaped). Measured RSS (MiB) by jobs done, two runs: 63.6 /
# 64.6 at 50, 67.9 / 67.9 at about 550, 69.3 / 69.7 at 1,000: growth that levels off, 1.4-1.8
# MiB over the second half. It is not Python objects: with tracemalloc, the runner's traced
# heap went from 0.46 MiB at 100 jobs done to 0.41 MiB at 400; the rest is the C allocator
# (arenas of the per-job worker threads, fragmentation). Allowed: 20 MiB in all, and 8 MiB over
# the second half; keeping one container object or worker thread per job (tens of KiB each)
# would break both.
RSS_GROWTH_MAX = 20 * 2**20
RSS_SECOND_HALF_MAX = 8 * 2**20


def _fairness(order: list[str]) -> tuple[int, int]:
    """The widest window of consecutive starts needed to see every submitter (its maximum over
    the run), and the largest lead one submitter had over another at any point."""
    widest = 0
    for at in range(len(order) - len(LOAD_SUBMITTERS)):
        seen: set[str] = set()
        end = at
        while end < len(order) and len(seen) < len(LOAD_SUBMITTERS):
            seen.add(order[end])
            end += 1
        if len(seen) == len(LOAD_SUBMITTERS):
            widest = max(widest, end - at)
    counts = dict.fromkeys(LOAD_SUBMITTERS, 0)
    spread = 0
    for submitter in order:
        counts[submitter] += 1
        if min(counts.values()) < LOAD_PER_SUBMITTER:  # before anyone has run out of jobs
            spread = max(spread, max(counts.values()) - min(counts.values()))
    return widest, spread


def _finished(jobs: list[JobFolder]) -> int:
    """How many jobs have a `done` marker: an lstat each, so polling costs the runner nothing."""
    return sum(os.path.lexists(j.marker_path("done")) for j in jobs)


@pytest.mark.timeout(1800)
def test_1000_queued_jobs_from_10_submitters(
    syftbox: Path,
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    serve_processes: list[ServeProcess],
    record_property: RecordProperty,
) -> None:
    # Approved submitter by submitter: a FIFO queue would run all of ds01's jobs first.
    jobs: list[JobFolder] = []
    for submitter in LOAD_SUBMITTERS:
        for i in range(LOAD_PER_SUBMITTER):
            jobs.append(approve(write_job(syftbox, f"l{i:03d}", "echo x\n", submitter=submitter)))
    serve = start_serve(syftbox, write_runner_config(syftbox, concurrency=2, rescan_seconds=1.0))
    serve_processes.append(serve)
    started = time.monotonic()
    wait_for(lambda: _finished(jobs) >= 50, 300, "the first 50 jobs")
    rss_start = serve.rss()
    samples = [(_finished(jobs), rss_start)]
    deadline = time.monotonic() + 1500
    while (done := _finished(jobs)) < len(jobs):
        assert time.monotonic() < deadline, f"only {done} of {len(jobs)} jobs done"
        assert serve.alive(), serve.log.read_text()[-3000:]
        if done >= samples[-1][0] + 100:
            samples.append((done, serve.rss()))
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    rss_end = serve.rss()
    samples.append((len(jobs), rss_end))
    outcomes = Counter(done_of(j).outcome for j in jobs)  # type: ignore[union-attr]
    order = [path.split("/")[1] for path in _running_order(syftbox)]
    widest, spread = _fairness(order)
    record_property("load_jobs", len(jobs))
    record_property("load_submitters", len(LOAD_SUBMITTERS))
    record_property("load_completed", outcomes[Outcome.SUCCEEDED])
    record_property("load_seconds", round(elapsed, 1))
    record_property("load_fair_window", widest)
    record_property("load_fair_spread", spread)
    record_property("runner_rss_start_mb", round(rss_start / 2**20, 1))
    record_property("runner_rss_end_mb", round(rss_end / 2**20, 1))
    record_property(
        "runner_rss_samples_mb", " ".join(f"{n}:{rss / 2**20:.1f}" for n, rss in samples)
    )
    assert outcomes == {Outcome.SUCCEEDED: len(jobs)}, outcomes
    assert all(j.state().status is Status.DONE for j in jobs)
    assert len(order) == len(jobs) and Counter(order) == dict.fromkeys(
        LOAD_SUBMITTERS, LOAD_PER_SUBMITTER
    ), Counter(order)
    assert widest <= FAIR_WINDOW, f"a window of {widest} starts was needed to see every submitter"
    assert spread <= FAIR_SPREAD, f"a submitter got {spread} starts ahead of another"
    assert rss_end < rss_start + RSS_GROWTH_MAX, samples
    halfway = next(rss for n, rss in samples if n >= LOAD_JOBS // 2)
    assert rss_end < halfway + RSS_SECOND_HALF_MAX, samples
    assert job_containers(docker_client, syftbox) == []
