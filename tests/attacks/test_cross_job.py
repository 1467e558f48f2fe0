"""Attack 11: leaving something for the next job. One job plants files in /tmp and /dev/shm,
System V shared memory, a message queue and a semaphore, a POSIX message queue, an abstract unix
socket and an outputs file, then stays alive; a job running at the same time and one running after
it look for every one of them and find nothing. And one job using up what the kernel counts per
user (inotify instances) leaves a job running beside it its own."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from syft_core.jobs import Outcome
from tests.attacks.conftest import python_job
from tests.fixtures_runner import StartRunner, wait_done

pytestmark = pytest.mark.docker

PLANT = r"""
import ctypes, os, socket, subprocess, time
open("/tmp/leak-from-a", "w").write("a")
open("/dev/shm/leak-from-a", "w").write("a")
open("outputs/leak-from-a", "w").write("a")
for flag in ("-M 4096", "-Q", "-S 1"):
    subprocess.run(["ipcmk", *flag.split()], check=True)
librt = ctypes.CDLL("librt.so.1", use_errno=True)
librt.mq_open(b"/leak-from-a", os.O_CREAT | os.O_RDWR, 0o666, None)
listener = socket.socket(socket.AF_UNIX)
listener.bind("\0leak-from-a")
listener.listen()
print(subprocess.run(["ipcs"], capture_output=True, text=True).stdout, flush=True)
time.sleep(5)
"""

LOOK = r"""
import json, os, socket, subprocess, sys, time
time.sleep(float(sys.argv[1]))
def connect():
    try:
        socket.socket(socket.AF_UNIX).connect("\0leak-from-a")
        return "connected"
    except OSError as exc:
        return exc.strerror
ipcs = subprocess.run(["ipcs"], capture_output=True, text=True).stdout
print(json.dumps({
    "tmp": sorted(os.listdir("/tmp")),
    "shm": sorted(os.listdir("/dev/shm")),
    "mqueue": sorted(os.listdir("/dev/mqueue")),
    "outputs": sorted(os.listdir("outputs")),
    "ipcs_rows": [l for l in ipcs.splitlines() if l[:2] == "0x"],
    "abstract": connect(),
}))
"""


def test_nothing_crosses_between_concurrent_or_consecutive_jobs(
    syftbox: Path, start_runner: StartRunner
) -> None:
    planter = python_job(syftbox, "a-planter", PLANT)
    during = python_job(syftbox, "b-during", LOOK, args="1.5")
    start_runner(concurrency=2)
    planted, seen_during = wait_done(planter), wait_done(during)
    after = python_job(syftbox, "c-after", LOOK, args="0")
    seen_after = wait_done(after)
    assert planted.outcome is Outcome.SUCCEEDED, planted.message
    # The planter really made them: its own ipcs lists a segment, a queue and a semaphore.
    assert planter.stdout_path.read_text().count("0x") >= 3
    # b ran while a was alive and holding everything.
    assert seen_during.started_at is not None and planted.started_at is not None
    assert planted.duration_seconds is not None
    assert seen_during.started_at < planted.started_at + timedelta(
        seconds=planted.duration_seconds - 1.5
    )
    for job, done in ((during, seen_during), (after, seen_after)):
        assert done.outcome is Outcome.SUCCEEDED, done.message
        seen = json.loads(job.stdout_path.read_text())
        assert seen["tmp"] == [] and seen["shm"] == [] and seen["mqueue"] == []
        assert seen["outputs"] == [] and seen["ipcs_rows"] == []
        assert seen["abstract"] == "Connection refused"


HOG_INOTIFY = r"""
import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
held = []
while len(held) < 4096 and (fd := libc.inotify_init1(0)) >= 0:
    held.append(fd)
print(len(held), ctypes.get_errno(), flush=True)
time.sleep(5)
"""

NEEDS_INOTIFY = r"""
import ctypes, os, sys, time
time.sleep(float(sys.argv[1]))
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(0)
print("ok" if fd >= 0 else os.strerror(ctypes.get_errno()))
"""


def test_a_job_cannot_use_up_a_per_user_kernel_limit_for_another(
    syftbox: Path, start_runner: StartRunner
) -> None:
    """fs.inotify.max_user_instances counts per uid across the host: with one uid for every job,
    a job holding all of them would leave none to a job running beside it."""
    limit = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
    if limit >= 1000:
        pytest.skip(f"max_user_instances is {limit}: a job cannot reach it under its nofile cap")
    hog = python_job(syftbox, "a-inotify-hog", HOG_INOTIFY)
    beside = python_job(syftbox, "b-needs-inotify", NEEDS_INOTIFY, args="1.5")
    start_runner(concurrency=2)
    hogged, needed = wait_done(hog), wait_done(beside)
    assert hogged.outcome is Outcome.SUCCEEDED, hogged.message
    held, errno_after = (int(x) for x in hog.stdout_path.read_text().split())
    assert held == limit and errno_after == 24  # it took every instance its uid may have: EMFILE
    assert needed.started_at is not None and hogged.started_at is not None
    assert needed.started_at < hogged.started_at + timedelta(seconds=3)  # they overlapped
    assert needed.outcome is Outcome.SUCCEEDED, needed.message
    assert beside.stdout_path.read_text() == "ok\n"
