"""Attack 13: the sandbox's edges. A job running what it wrote into /job/outputs (execve, the ELF
loader, dlopen, an executable mmap), and a job reading the host's block-device and filesystem
state (/sys/block, loop devices' backing files, /proc/diskstats, ...) to learn the runner's state
folder and to watch another job running beside it: nothing runs, nothing shows."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from syft_core.jobs import Outcome
from syft_runner.workspace.staging import RUNNER_STATE_DIR
from tests.attacks.conftest import probe_job, python_job
from tests.fixtures_runner import StartRunner, results_of, wait_done

pytestmark = pytest.mark.docker

# Each attempt, if it ran, would leave a `pwned-*` file in the outputs (the side effect to look
# for): a script, a copy of touch run directly, the same copy run by the ELF loader (which maps it
# itself instead of asking execve), and a library mapped executable by dlopen and by mmap.
EXEC_PROGRAM = r"""
import ctypes, ctypes.util, json, mmap, os, shutil, subprocess
OUT = "/job/outputs"

def drop(name, source):
    path = os.path.join(OUT, name)
    shutil.copyfile(source, path)
    os.chmod(path, 0o755)
    return path

def run(argv):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except OSError as exc:
        return "OSError: " + exc.strerror
    return "exit %d: %s" % (proc.returncode, proc.stderr.strip()[-300:])

script = os.path.join(OUT, "pwn.sh")
with open(script, "w") as fh:
    fh.write("#!/bin/sh\necho pwned > /job/outputs/pwned-script\n")
os.chmod(script, 0o755)
touch = drop("touch-copy", shutil.which("touch"))
libm = os.path.realpath("/lib/x86_64-linux-gnu/" + ctypes.util.find_library("m"))
library = drop("libm-copy.so", libm)
report = {
    "script": run([script]),
    "binary": run([touch, os.path.join(OUT, "pwned-binary")]),
    "loader": run(["/lib64/ld-linux-x86-64.so.2", touch, os.path.join(OUT, "pwned-loader")]),
}
try:
    ctypes.CDLL(library)
    report["dlopen"] = "loaded"
    open(os.path.join(OUT, "pwned-dlopen"), "w").close()
except OSError as exc:
    report["dlopen"] = "OSError: %s" % exc
with open(library, "rb") as fh:
    try:
        prot = mmap.PROT_READ | mmap.PROT_EXEC
        mmap.mmap(fh.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=prot).close()
        report["mmap"] = "mapped"
        open(os.path.join(OUT, "pwned-mmap"), "w").close()
    except OSError as exc:
        report["mmap"] = "OSError: " + exc.strerror
mountinfo = [line.split() for line in open("/proc/self/mountinfo")]
report["outputs mount"] = [fields for fields in mountinfo if fields[4] == OUT]
print(json.dumps(report))
"""


def test_files_written_to_outputs_cannot_be_executed(
    syftbox: Path, start_runner: StartRunner
) -> None:
    job, done, report = probe_job(syftbox, start_runner, "exec-outputs", EXEC_PROGRAM)
    # The job itself ran (`/bin/bash /job/run.sh` → `python3 main.py` from /job) and ended
    # well: only what it wrote is refused execution.
    assert done.outcome is Outcome.SUCCEEDED, job.stderr_path.read_text()
    assert report["script"] == "OSError: Permission denied", report
    assert report["binary"] == "OSError: Permission denied", report
    assert report["loader"].startswith("exit 127: "), report
    assert "failed to map segment from shared object" in report["loader"], report
    assert "failed to map segment from shared object" in report["dlopen"], report
    assert report["mmap"] == "OSError: Operation not permitted", report
    [mount] = report["outputs mount"]
    assert {"rw", "noexec", "nosuid", "nodev"} <= set(mount[5].split(",")), mount
    # No side effect: nothing an attempt would have written exists; what the job wrote does.
    outputs = results_of(job).outputs
    assert not [name for name in outputs if name.startswith("pwned")], outputs
    assert {"pwn.sh", "touch-copy", "libm-copy.so"} <= set(outputs), outputs
    assert not list(job.outputs_dir.glob("pwned*"))


# The victim keeps its filesystem busy (its loop device and ext4 counting) while the spy looks.
WRITER_PROGRAM = """
import os, time
with open("/job/outputs/data.bin", "wb") as fh:
    for _ in range(4):
        fh.write(os.urandom(1 << 20))
        fh.flush()
        os.fsync(fh.fileno())
time.sleep(5)
"""

HIDDEN_FOLDERS = [
    "/sys/block",
    "/sys/class/block",
    "/sys/dev/block",
    "/sys/devices/virtual/block",
    "/sys/class/bdi",
    "/sys/devices/virtual/bdi",
    "/sys/module/loop",
    "/sys/fs/ext4",
    "/proc/fs/ext4",
    "/proc/fs",
]
HIDDEN_FILES = ["/proc/diskstats", "/proc/partitions", "/proc/swaps", "/sys/kernel/uevent_seqnum"]

SPY_PROGRAM = f"""
import glob, json, os, time
time.sleep(1.5)  # the writer is running by now (checked afterwards from both done markers)

def listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return "ERROR " + exc.strerror

def read(path):
    try:
        with open(path, "rb") as fh:
            return fh.read(1 << 20).decode("latin-1")
    except OSError as exc:
        return "ERROR " + exc.strerror

patterns = ["/sys/block/*/loop/backing_file", "/sys/devices/virtual/block/*/loop/backing_file",
            "/sys/class/block/*/loop/backing_file", "/sys/dev/block/*/loop/backing_file",
            "/sys/block/*/stat", "/sys/devices/*/*/*/block/*/stat", "/sys/devices/*/*/block/*/stat",
            "/sys/fs/ext4/*/lifetime_write_kbytes", "/sys/fs/ext4/*/session_write_kbytes",
            "/proc/fs/ext4/*/options", "/sys/class/bdi/*/read_ahead_kb"]
print(json.dumps({{
    "folders": {{path: listing(path) for path in {HIDDEN_FOLDERS!r}}},
    "files": {{path: read(path) for path in {HIDDEN_FILES!r}}},
    "globbed": {{path: read(path) for pattern in patterns for path in glob.glob(pattern)}},
    "mountinfo": read("/proc/self/mountinfo"),
}}))
"""


def test_block_devices_and_other_jobs_filesystems_are_hidden(
    syftbox: Path, start_runner: StartRunner
) -> None:
    # A mock job (released to its submitter automatically) spying on a job running beside it:
    # loop devices' backing files name the runner's state folder and the other job's image;
    # /proc/diskstats, /sys/fs/ext4/loopN/... count its writes live.
    writer = python_job(syftbox, "victim", WRITER_PROGRAM)
    spy = python_job(syftbox, "spy", SPY_PROGRAM)
    start_runner()  # two at a time: both run at once
    spy_done, writer_done = wait_done(spy), wait_done(writer)
    assert writer_done.outcome is Outcome.SUCCEEDED, writer.stderr_path.read_text()
    assert spy_done.outcome is Outcome.SUCCEEDED, spy.stderr_path.read_text()
    assert results_of(writer).outputs == ["data.bin"]
    assert spy_done.started_at and writer_done.started_at and writer_done.duration_seconds
    writer_end = writer_done.started_at + timedelta(seconds=writer_done.duration_seconds)
    assert writer_done.started_at < spy_done.started_at + timedelta(seconds=1.5) < writer_end

    report = json.loads(spy.stdout_path.read_text().strip().splitlines()[-1])
    # Masked: each an empty read-only folder (or gone, as /proc/fs/ext4 under a masked /proc/fs).
    hidden: tuple[object, ...] = ([], "ERROR No such file or directory")
    visible = {path: seen for path, seen in report["folders"].items() if seen not in hidden}
    assert visible == {}, visible
    assert {path: text for path, text in report["files"].items() if text} == {}
    assert report["globbed"] == {}
    # What the spy saw names neither the runner's state folder nor any loop device but the one
    # behind its own /job (its mount table names that one, as the job's own).
    seen = json.dumps(report)
    assert str(syftbox.resolve()) not in seen and RUNNER_STATE_DIR not in seen
    own = set(re.findall(r" - ext4 /dev/(loop\d+) ", report["mountinfo"]))
    assert len(own) == 1, report["mountinfo"]
    assert set(re.findall(r"\bloop\d+\b", seen)) == own
