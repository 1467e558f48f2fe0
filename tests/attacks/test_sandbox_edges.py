"""Attack 13: the sandbox's edges. A job running what it wrote into /job/outputs (execve, the ELF
loader, dlopen, an executable mmap), and a job reading the host's block-device and filesystem
state (/sys/block, loop devices' backing files, /proc/diskstats, ...) to learn the runner's state
folder and to watch another job running beside it: nothing runs, nothing shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from syft_core.jobs import Outcome
from tests.attacks.conftest import probe_job
from tests.fixtures_runner import StartRunner

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
    # The job itself ran (`/bin/bash /job/run.sh` → `python3 code/main.py` from /job) and ended
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
    assert not [name for name in done.outputs if name.startswith("pwned")], done.outputs
    assert {"pwn.sh", "touch-copy", "libm-copy.so"} <= set(done.outputs), done.outputs
    assert not list(job.outputs_dir.glob("pwned*"))
