"""Cost of serving OpenMined's Syft job gateway beside ours, without Docker.

Prints one table; every ratio is measured within this single run. Not a test: run it with
`.venv/bin/python bench/bench_syftjob.py [--finished N] [--pending P]`.

1. first sight: the pass that meets P new Syft jobs (state.yaml written, mirror rendered and
   written), per job.
2. idle pass: a pass over N finished and P pending, unchanged Syft jobs (what the gateway thread
   does every rescan), against our own gateway's rescan (`pending_job_folders`) over N finished
   native jobs: the ratio is what serving their gateway adds to a runner at rest.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from syft_core.datasite import Datasite
from syft_core.jobs import DoneMarker, JobConfig, JobFolder, Outcome
from syft_core.syftjob import SyftJobState, ref_for, write_state
from syft_runner.syftjob_gateway import SyftJobGateway
from syft_runner.watcher import pending_job_folders

DO = "do@example.org"
DS = "ds@example.org"


def submit(root: Path, name: str, status: str | None) -> None:
    """A protocol-1 bash job as their client writes it, with `status` in state.yaml if given."""
    ref = ref_for(root / DO, DS, 1, name)
    (ref.inbox / "code").mkdir(parents=True)
    (ref.inbox / "run.sh").write_text("echo hi\n")
    (ref.inbox / "code" / "script.sh").write_text("echo hi\n")
    config = {"name": name, "type": "bash", "dependencies": [], "version": "1"}
    (ref.inbox / "config.yaml").write_text(yaml.dump(config))
    if status is not None:
        write_state(ref, SyftJobState(status=status, return_code=0))


def finished_native(root: Path, name: str) -> None:
    """A finished job of our own gateway."""
    job = JobFolder.at(root, DO, DS, name)
    job.path.mkdir(parents=True)
    job.run_sh.write_text("true\n")
    job.config_path.write_text(JobConfig(name=name, type="bash").to_yaml())
    job.finish(DoneMarker(by=DO, outcome=Outcome.SUCCEEDED, message="ok"))


def timed(fn: Callable[[], object], repeat: int = 5) -> float:
    """Median seconds of `repeat` calls."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--finished", type=int, default=2000)
    parser.add_argument("--pending", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-syftjob-") as tmp:
        root = Path(tmp)
        Datasite(root, DO).init()
        gateway = SyftJobGateway(Datasite(root, DO), lock_dir=root / ".locks")
        for i in range(args.pending):
            submit(root, f"new-{i}", None)
        started = time.perf_counter()
        gateway.sync()
        first_sight = (time.perf_counter() - started) / max(args.pending, 1)
        for i in range(args.finished):
            submit(root, f"old-{i}", "done")
            finished_native(root, f"n{i}")
        idle = timed(gateway.sync)
        ours = timed(lambda: pending_job_folders(Datasite(root, DO).jobs))
    rows = [
        ("first sight, per new Syft job", f"{first_sight * 1000:.2f} ms", ""),
        (
            f"idle pass: {args.finished} finished + {args.pending} pending Syft jobs",
            f"{idle * 1000:.1f} ms",
            f"{idle / ours:.2f}x our rescan",
        ),
        (
            f"our gateway's rescan: {args.finished} finished + {args.pending} mirrors",
            f"{ours * 1000:.1f} ms",
            "1.00x",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'time':>10}  ratio")
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>10}  {ratio}")


if __name__ == "__main__":
    main()
