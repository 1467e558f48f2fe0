"""Where a Swarm task's approval -> start goes, phase by phase (a tool, not a test).

Brings up the 3-node test cluster and runs trivial tasks through the SwarmBackend alone, one at
a time and then K at once, timing the backend's calls, the task's states on the manager (polled
every 20 ms) and the workers' own events (network connect, container create/start/die), all
relative to the `prepare` call.

    .venv/bin/python bench/profile_swarm.py [--single N] [--together K]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from syft_runner.executor.backends.swarm import SwarmBackend
from syft_runner.executor.contract import TaskSpec
from syft_runner.sandbox.container import DEFAULT_ENVIRONMENT, JOB_GID, Limits, Mount
from syft_runner.workspace.logs import LogStreamer
from tests.swarm.cluster import SwarmCluster

UID = 2_000_000_123
LIMITS = Limits(memory_mb=64, cpus=0.5, pids=64, tmpfs_mb=8, shm_mb=4)
MINIMAL = "syft-runner/minimal:latest"


class Recorder:
    """Wall-clock times of named moments per task."""

    def __init__(self) -> None:
        self.marks: dict[str, dict[str, float]] = defaultdict(dict)
        self.lock = threading.Lock()

    def mark(self, task: str, what: str, at: float | None = None) -> None:
        with self.lock:
            self.marks[task].setdefault(what, time.time() if at is None else at)


def watch_events(
    client: docker.DockerClient, node: str, rec: Recorder, stop: threading.Event
) -> Any:
    events = client.events(decode=True, since=int(time.time()))

    def run() -> None:
        for ev in events:
            if stop.is_set():
                return
            attrs = ev.get("Actor", {}).get("Attributes", {})
            at = ev.get("timeNano", 0) / 1e9
            name = attrs.get("com.docker.swarm.service.name") or attrs.get("name", "")
            if ev.get("Type") == "network":
                name = attrs.get("name", "")
            if not name.startswith("syft-job-"):
                continue
            rec.mark(name, f"{node}:{ev.get('Type')}:{ev.get('Action')}", at)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return events


def watch_tasks(manager: docker.DockerClient, rec: Recorder, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            names = {s["ID"]: s["Spec"]["Name"] for s in manager.api.services()}
            for task in manager.api.tasks():
                service = names.get(task["ServiceID"])
                if service is None:
                    continue
                rec.mark(service, f"task:{task['Status']['State']}")
                if task["Status"].get("ContainerStatus", {}).get("ContainerID"):
                    rec.mark(service, f"task: container id first seen ({task['Status']['State']})")
                node = task.get("NodeID", "")[:4]
                if node:
                    rec.mark(service, f"task on {node}")
        except docker.errors.APIError:
            pass
        time.sleep(0.01)


def spec_for(cluster: SwarmCluster, image: str) -> TaskSpec:
    name = f"syft-job-{secrets.token_hex(6)}"
    folder = cluster.shared_dir / name
    for sub in ("code", "outputs"):
        (folder / sub).mkdir(parents=True)
    os.chown(folder / "outputs", UID, JOB_GID)
    (folder / "code" / "run.sh").write_text("echo hi\n")
    return TaskSpec(
        name=name,
        image=image,
        command=("bash", "/job/code/run.sh"),
        environment=dict(DEFAULT_ENVIRONMENT),
        mounts=(
            Mount(source=folder / "code", target="/job/code"),
            Mount(source=folder / "outputs", target="/job/outputs", read_only=False),
        ),
        workdir="/job/code",
        limits=LIMITS,
        user=(UID, JOB_GID),
        labels={"org.syft.profile": "1"},
    )


def one(
    backend: SwarmBackend, cluster: SwarmCluster, image: str, rec: Recorder, ahead: float = 0
) -> str:
    spec = spec_for(cluster, image)
    name = spec.name
    folder = cluster.shared_dir / name
    if ahead:  # the network made `ahead` s earlier: times from execute
        backend.prepare(spec)
        time.sleep(ahead)
    rec.mark(name, "0 prepare")
    backend.prepare(spec)
    rec.mark(name, "1 prepared")
    logs = LogStreamer(folder / "stdout.txt", folder / "stderr.txt", 1 << 20)
    backend.execute(name, logs)
    rec.mark(name, "2 executed")
    while not backend.wait(name, 1.0):
        pass
    rec.mark(name, "3 wait returned")
    logs.join(5)
    result = backend.finalize(name)
    rec.mark(name, "4 finalized")
    if result.started_at:
        rec.mark(name, "C started_at", result.started_at.timestamp())
    backend.cleanup(name)
    rec.mark(name, "5 cleaned up")
    return name


def report(title: str, names: list[str], rec: Recorder) -> None:
    rows: dict[str, list[float]] = defaultdict(list)
    for name in names:
        marks = rec.marks[name]
        t0 = marks["0 prepare"]
        for what, at in marks.items():
            rows[what].append((at - t0) * 1000)
    print(f"\n== {title} (ms after prepare; median [min-max] over {len(names)})")
    for what, values in sorted(rows.items(), key=lambda kv: statistics.median(kv[1])):
        print(
            f"  {what:45s} {statistics.median(values):7.0f}  [{min(values):.0f}-{max(values):.0f}]"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--single", type=int, default=6)
    parser.add_argument("--together", type=int, default=4)
    parser.add_argument("--ahead", type=float, default=0)
    parser.add_argument("--debug-logs", type=Path, help="worker dockerd debug logs copied here")
    args = parser.parse_args()
    if args.debug_logs:
        import tests.swarm.cluster as cluster_module

        config = cluster_module._daemon_config
        cluster_module._daemon_config = lambda *a: {**config(*a), "log-level": "debug"}
    image = str(docker.from_env().images.get(MINIMAL).id)
    base = Path("/tmp/syftsw-bench")
    base.mkdir(exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="p", dir=base) as work,
        SwarmCluster(Path(work) / "cluster", workers=2, images=[MINIMAL]) as cluster,
    ):
        workers = {n: cluster.node_client(n) for n in cluster.worker_sockets}
        backend = SwarmBackend(cluster.client(), workers, runner_id="profile")
        found_by_event = []
        by_event = backend._started_container

        def counted(name: str) -> Any:
            container = by_event(name)
            if container is not None:
                found_by_event.append(name)
            return container

        backend._started_container = counted  # type: ignore[method-assign]
        rec = Recorder()
        stop = threading.Event()
        streams = [watch_events(c, n, rec, stop) for n, c in workers.items()]
        streams.append(watch_events(cluster.client(), "mgr", rec, stop))
        threading.Thread(
            target=watch_tasks, args=(cluster.client(), rec, stop), daemon=True
        ).start()
        one(backend, cluster, image, rec)  # warm-up
        singles = [one(backend, cluster, image, rec) for _ in range(args.single)]
        report("one at a time", singles, rec)
        with ThreadPoolExecutor(args.together) as pool:
            together = list(
                pool.map(lambda _: one(backend, cluster, image, rec), range(args.together))
            )
        report(f"{args.together} together", together, rec)
        if args.ahead:
            ahead = [one(backend, cluster, image, rec, args.ahead) for _ in range(args.single)]
            report(f"network made {args.ahead} s ahead, one at a time", ahead, rec)
        stop.set()
        if args.debug_logs:
            import shutil

            args.debug_logs.mkdir(parents=True, exist_ok=True)
            for node in cluster.node_names:
                shutil.copy(Path(work) / "cluster" / node / "dockerd.log", args.debug_logs / node)
        for s in streams:
            s.close()
        print("containers found by a worker's event:", len(set(found_by_event)))
        print("load", os.getloadavg())


if __name__ == "__main__":
    main()
