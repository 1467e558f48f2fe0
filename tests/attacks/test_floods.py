"""Attack 8: output floods. `yes` to stdout and stderr, one endless line, a giant file, a sparse
1 TB file, host disk filled through the writable outputs folder, a million tiny files, deep and
wide folder trees, hostile file names. Everything stays bounded and marked truncated or refused,
the job's state stays sane and readable, the host disk stays safe (sizes measured on the host),
and the runner carries on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from syft_core.jobs import JobFolder, Outcome
from syft_core.jobs.markers import MAX_MARKER_BYTES
from syft_runner.workspace.jobfs import INODE_SLACK
from tests.attacks.conftest import (
    PeakSampler,
    disk_bytes,
    files_under,
    remove_tree,
    run_jobs,
    scratch_root,
)
from tests.fixtures_runner import (
    ServeProcess,
    StartRunner,
    approve,
    done_of,
    job_containers,
    results_of,
    start_serve,
    wait_done,
    wait_for,
    write_job,
    write_runner_config,
)

pytestmark = pytest.mark.docker

MiB = 1024 * 1024
LOG_CAP = 100_000
CAPS: dict[str, Any] = {
    "log_max_bytes": LOG_CAP,
    "output_max_file_bytes": 1 * MiB,
    "output_max_total_bytes": 4 * MiB,
    "output_max_files": 100,
    "default_limits": {"fsize_mb": 8, "timeout_seconds": 30},
}
TRUNCATED = b"truncated: the job wrote more than 100000 bytes; the rest was discarded\n"


def _docker_log_bytes(client: docker.DockerClient, syftbox: Path) -> int:
    found = [c for c in job_containers(client, syftbox) if c.status == "running"]
    return max((Path(c.attrs["LogPath"]).stat().st_size for c in found), default=0)


def test_yes_to_stdout_and_stderr_is_capped(
    syftbox: Path, start_runner: StartRunner, docker_client: docker.DockerClient
) -> None:
    with PeakSampler(lambda: _docker_log_bytes(docker_client, syftbox), 0.2) as daemon_log:
        results = run_jobs(
            syftbox,
            start_runner,
            {"yes": "(yes &)\nyes >&2\n"},
            runner=CAPS,
            config={"timeout_seconds": 3},
        )
    job, done = results["yes"]
    assert done.outcome is Outcome.TIMED_OUT
    assert results_of(job).stdout_truncated and results_of(job).stderr_truncated
    for path in (job.stdout_path, job.stderr_path):
        data = path.read_bytes()
        assert data.startswith(b"y\ny\n") and data.endswith(TRUNCATED)
        assert len(data) < LOG_CAP + 200
    assert disk_bytes(job.path) < 2 * MiB
    # Docker's own copy is bounded too (json-file, max-size 10m, one file).
    assert daemon_log.peak <= 11 * MiB, daemon_log.peak


def test_one_endless_line_is_capped(syftbox: Path, start_runner: StartRunner) -> None:
    results = run_jobs(
        syftbox,
        start_runner,
        {"line": "tr '\\0' a < /dev/zero\n"},
        runner=CAPS,
        config={"timeout_seconds": 3},
    )
    job, done = results["line"]
    assert done.outcome is Outcome.TIMED_OUT and results_of(job).stdout_truncated
    data = job.stdout_path.read_bytes()
    assert data.startswith(b"aaaa") and data.endswith(TRUNCATED)
    assert data.count(b"\n") == 2 and len(data) < LOG_CAP + 200


def test_giant_and_sparse_files_are_bounded_and_refused(
    syftbox: Path, start_runner: StartRunner
) -> None:
    # fine.txt first: after the filesystem is full, whether a few blocks are left for it depends
    # on ext4's reservations, not on the runner.
    script = (
        "echo fine > outputs/fine.txt\n"
        "head -c 100M /dev/zero > outputs/giant\n"
        "echo giant=$?\n"
        "truncate -s 1T outputs/sparse-1t; echo sparse=$?\n"
        "dd if=/dev/zero of=outputs/seek-1t bs=1 count=1 seek=1T 2>/dev/null; echo seek=$?\n"
        "truncate -s 7M outputs/sparse-7m; echo small=$?\n"
    )
    results = run_jobs(syftbox, start_runner, {"giant": script}, runner=CAPS)
    job, done = results["giant"]
    assert done.outcome is Outcome.SUCCEEDED, done.message
    out = job.stdout_path.read_text()
    # RLIMIT_FSIZE (8 MiB here) or the job's capped filesystem (4 MiB of outputs, ENOSPC)
    # stops every write and truncate beyond it; which one first depends on the file.
    codes = dict(line.split("=") for line in out.split())
    assert codes["small"] == "0" and all(
        codes[k] in ("1", "153") for k in ("giant", "sparse", "seek")
    )
    assert "File size limit exceeded" in job.stderr_path.read_text()
    refused = {r.path: r.reason for r in results_of(job).refused_outputs}
    assert "per-file limit" in refused["giant"] and "per-file limit" in refused["sparse-7m"]
    # What truncate/dd managed to create before the limit stopped them is empty.
    assert sorted(results_of(job).outputs) == ["fine.txt", "seek-1t", "sparse-1t"]
    assert (job.outputs_dir / "seek-1t").stat().st_size == 0
    assert (job.outputs_dir / "sparse-1t").stat().st_size == 0
    assert disk_bytes(job.outputs_dir) < 64 * 1024


def test_outputs_folder_cannot_fill_the_host_disk(syftbox: Path, start_runner: StartRunner) -> None:
    # 40 files of 8 MiB (the per-file limit here) = 320 MiB; with the defaults (1 GiB files, a
    # 1 h timeout) the same loop writes until the disk is full.
    script = "for i in $(seq 40); do head -c 8M /dev/zero > outputs/f$i; done\nsleep 1\n"
    with PeakSampler(lambda: disk_bytes(scratch_root(syftbox)), 0.1) as scratch:
        results = run_jobs(syftbox, start_runner, {"fill": script}, runner=CAPS)
    done = results["fill"][1]
    assert done.outcome is Outcome.SUCCEEDED
    assert scratch.samples > 0
    bound = CAPS["output_max_total_bytes"] + 8 * MiB
    assert scratch.peak <= bound, f"the job used {scratch.peak // MiB} MiB of host disk"


@pytest.mark.slow
def test_a_million_tiny_files_are_bounded(syftbox: Path, start_runner: StartRunner) -> None:
    # Asks for a million files. The job's own filesystem has inodes for the file cap plus
    # INODE_SLACK, so creation fails there (ENOSPC); the collector stops at the file cap.
    script = (
        "cd outputs\n"
        "for d in $(seq 0 999); do\n"
        "  mkdir d$d && (cd d$d && seq -f f%g 1000 | xargs touch) && echo $(( (d + 1) * 1000 ))\n"
        "done\n"
    )
    job = approve(write_job(syftbox, "tiny", script, config={"timeout_seconds": 8}))
    start_runner(**CAPS)
    started = time.monotonic()
    done = wait_done(job, timeout=120)
    elapsed = time.monotonic() - started
    progress = job.stdout_path.read_text().split()
    made = int(progress[-1]) if progress else 0
    assert 1_000 <= made <= CAPS["output_max_files"] + INODE_SLACK, made
    assert "No space left on device" in job.stderr_path.read_text()
    # The cap counts files and the folders made to hold them: 100 entries in all.
    folders = {path.rsplit("/", 1)[0] for path in results_of(job).outputs if "/" in path}
    assert (
        len(results_of(job).outputs) + len(folders) == 100 and "more than 100 files" in done.message
    )
    assert sum(1 for _ in job.outputs_dir.rglob("*")) == 100
    wait_for(lambda: not any(scratch_root(syftbox).iterdir()), 60, "the scratch folder removed")
    assert elapsed < 40, f"{made} files took {elapsed:.0f} s to settle"


DEEP_PROGRAM = (
    "import os\n"
    "os.chdir('outputs')\n"
    "for _ in range(3000):\n"
    "    os.mkdir('d')\n"
    "    os.chdir('d')\n"
    "open('bottom.txt', 'w').write('deep')\n"
    "print('made it')\n"
)


def _deep_job(syftbox: Path, name: str) -> JobFolder:
    return approve(
        write_job(
            syftbox,
            name,
            "python3 main.py\n",
            job_type="python",
            code={"main.py": DEEP_PROGRAM},
        )
    )


@pytest.fixture
def deep_cleanup(syftbox: Path) -> Iterator[None]:
    yield
    # Should the runner leave the 3000-deep tree behind (the regression these tests catch),
    # pytest's own tmp cleanup (shutil.rmtree) could not remove it either.
    remove_tree(syftbox.resolve() / ".syft-runner")


@pytest.mark.usefixtures("deep_cleanup")
def test_deep_nesting_in_outputs_is_refused_at_the_depth_cap(
    syftbox: Path, start_runner: StartRunner
) -> None:
    job = _deep_job(syftbox, "deep")
    start_runner(**CAPS)
    done = wait_done(job)
    assert done.outcome is Outcome.SUCCEEDED and job.stdout_path.read_text() == "made it\n"
    assert any("nested deeper than 32" in r.reason for r in results_of(job).refused_outputs)
    depth = max(
        (len(p.relative_to(job.outputs_dir).parts) for p, _ in files_under(job.outputs_dir)),
        default=0,
    )
    assert depth <= 33


@pytest.mark.usefixtures("deep_cleanup")
def test_deep_nesting_in_outputs_is_removed_from_the_host(
    syftbox: Path, start_runner: StartRunner
) -> None:
    job = _deep_job(syftbox, "deep-cleanup")
    start_runner(**CAPS)
    assert wait_done(job).outcome is Outcome.SUCCEEDED
    wait_for(lambda: not any(scratch_root(syftbox).iterdir()), 5, "the scratch folder removed")


@pytest.mark.usefixtures("deep_cleanup")
def test_deep_nesting_does_not_stop_the_next_runner(
    syftbox: Path, start_runner: StartRunner
) -> None:
    job = _deep_job(syftbox, "deep-restart")
    first = start_runner(**CAPS)
    assert wait_done(job).outcome is Outcome.SUCCEEDED
    first.shutdown()
    second = start_runner(**CAPS)
    nxt = approve(write_job(syftbox, "after-deep", "echo after\n"))
    wait_for(lambda: done_of(nxt) is not None or bool(second.errors), 30, "the job or a crash")
    assert not second.errors, f"the restarted runner died: {second.errors[0]!r}"
    assert wait_done(nxt).outcome is Outcome.SUCCEEDED


def test_many_folders_do_not_exhaust_the_runners_descriptors(
    syftbox: Path, serve_processes: list[ServeProcess]
) -> None:
    # 1024 is the usual default soft limit for a service; a job needs one folder more per fd.
    config = write_runner_config(syftbox, **CAPS)
    serve = start_serve(syftbox, config, nofile=1024)
    serve_processes.append(serve)
    wide = approve(write_job(syftbox, "wide", "mkdir outputs/d{1..1500}\necho made\n"))
    done = wait_done(wide, 60)
    assert done.outcome is Outcome.SUCCEEDED, done.message
    after = approve(write_job(syftbox, "after-wide", "echo after\n"))
    done_after = wait_done(after, 60)
    assert done_after.outcome is Outcome.SUCCEEDED, done_after.message
    assert serve.alive() and serve.open_fds() < 200


def test_hostile_output_names_are_refused_and_shown_escaped(
    syftbox: Path, start_runner: StartRunner
) -> None:
    script = (
        "cd outputs\n"
        "echo a > \"$(printf 'new\\nline')\"\n"
        "echo b > \"$(printf '\\033[2J\\033]0;pwned\\007')\"\n"
        "echo c > \"$(printf '\\xff\\xfe')\"\n"
        "echo d > \"$(printf 'back\\\\slash')\"\n"
        "echo e > \"$(printf 'e\\xcc\\x81')\"\n"  # NFD
        "mkdir -p \"$(printf 'x%.0s' $(seq 200))/$(printf 'y%.0s' $(seq 100))\"\n"
        "echo f > \"$(printf 'x%.0s' $(seq 200))/$(printf 'y%.0s' $(seq 100))/long\"\n"
        "echo g > -rf\n"
        "echo h > ...\n"
        "echo ok > fine.txt\n"
    )
    results = run_jobs(syftbox, start_runner, {"names": script}, runner=CAPS)
    job, done = results["names"]
    assert done.outcome is Outcome.SUCCEEDED, done.message
    assert sorted(results_of(job).outputs) == ["-rf", "...", "fine.txt"]
    reasons = {r.path: r.reason for r in results_of(job).refused_outputs}
    assert "control characters" in reasons["new\\x0aline"]
    assert any("control characters" in r for p, r in reasons.items() if p.startswith("\\x1b"))
    assert "not valid UTF-8" in reasons["\\xff\\xfe"]
    assert any("backslash" in r for p, r in reasons.items() if p.startswith("back"))
    assert any("longer than 255" in r for r in reasons.values())
    assert any("NFC" in r for r in reasons.values())
    raw = job.marker_path("done").read_bytes()
    assert b"\x1b" not in raw and b"\x07" not in raw and b"\xff" not in raw
    files = sorted(p.name for p in job.outputs_dir.iterdir() if p.is_file())
    assert files == ["-rf", "...", "fine.txt"]


def test_long_output_names_keep_the_done_marker_readable(
    syftbox: Path, start_runner: StartRunner
) -> None:
    program = (
        "import os\n"
        "folder = os.path.join('outputs', *['\\U0001F600' * 63] * 3)\n"
        "os.makedirs(folder)\n"
        "for i in range(500):\n"
        "    open(os.path.join(folder, '\\U0001F600' * 60 + '%03d' % i), 'w').close()\n"
    )
    job = approve(
        write_job(
            syftbox,
            "bloat",
            "python3 main.py\n",
            job_type="python",
            code={"main.py": program},
        )
    )
    start_runner(output_max_files=1000)
    wait_for(lambda: job.marker_path("done").exists(), 60, "the done marker")
    size = job.marker_path("done").stat().st_size
    assert size <= MAX_MARKER_BYTES, f"the done marker is {size} bytes"
    assert wait_done(job).outcome is Outcome.SUCCEEDED


def test_locked_down_outputs_are_still_collected_and_removed(
    syftbox: Path, start_runner: StartRunner
) -> None:
    # The job owns its outputs folder: it may make everything in it unreadable and unwritable.
    script = (
        "mkdir -p outputs/locked/deeper && echo secret-ok > outputs/locked/deeper/f.txt\n"
        "echo top > outputs/top.txt\n"
        "chmod 000 outputs/locked/deeper/f.txt outputs/locked/deeper outputs/locked "
        "outputs/top.txt\nchmod 500 outputs\n"
    )
    results = run_jobs(syftbox, start_runner, {"locked": script}, runner=CAPS)
    job, done = results["locked"]
    assert done.outcome is Outcome.SUCCEEDED, done.message
    assert sorted(results_of(job).outputs) == ["locked/deeper/f.txt", "top.txt"], results_of(
        job
    ).refused_outputs
    assert (job.outputs_dir / "locked/deeper/f.txt").read_text() == "secret-ok\n"
    for path, st in files_under(job.outputs_dir):
        assert st.st_mode & 0o777 in (0o644, 0o755), (path, oct(st.st_mode))
    wait_for(lambda: not any(scratch_root(syftbox).iterdir()), 10, "the scratch folder removed")


def test_empty_folders_count_against_the_output_cap(
    syftbox: Path, start_runner: StartRunner
) -> None:
    results = run_jobs(
        syftbox, start_runner, {"dirs": "mkdir outputs/d{1..3000}\necho made\n"}, runner=CAPS
    )
    job, done = results["dirs"]
    assert done.outcome is Outcome.SUCCEEDED, done.message
    entries = sum(1 for _ in files_under(job.outputs_dir))
    assert entries <= CAPS["output_max_files"], f"{entries} entries in {job.outputs_dir}"
