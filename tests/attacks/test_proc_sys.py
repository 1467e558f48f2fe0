"""Attack 5: /proc and /sys. Host paths through /proc/self/mountinfo, writes to /proc/sys (e.g.
core_pattern, the classic escape), to /sys/fs/cgroup (release_agent, limits), /proc/sysrq-trigger,
and kernel memory through /proc/kcore: nothing leaks, nothing changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from syft_core.datasets import create_dataset
from syft_core.datasite import Datasite
from syft_core.jobs import Outcome
from tests.attacks.conftest import probe_job
from tests.fixtures_runner import OWNER, StartRunner

pytestmark = pytest.mark.docker

WRITES = [
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/hostname",
    "/proc/sys/vm/drop_caches",
    "/proc/sysrq-trigger",
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    "/sys/fs/cgroup/memory/release_agent",
    "/sys/fs/cgroup/memory/notify_on_release",
    "/sys/fs/cgroup/pids/pids.max",
    "/sys/fs/cgroup/memory.max",
    "/sys/kernel/mm/transparent_hugepage/enabled",
    "/sys/class/net/lo/mtu",
]

PROC_PROGRAM = f"""
import json, os
def write(path):
    try:
        with open(path, "w") as fh:
            fh.write("|/tmp/x" if "core_pattern" in path else "1")
        return "WROTE"
    except OSError as exc:
        return exc.strerror
def read(path, size=4096):
    try:
        with open(path, "rb") as fh:
            return fh.read(size).decode("latin-1")
    except OSError as exc:
        return "ERROR " + str(exc.strerror)
limit = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
print(json.dumps({{
    "writes": {{p: write(p) for p in {WRITES!r}}},
    "limit_after": read(limit).strip(),
    "kcore": read("/proc/kcore", 64),
    "kallsyms": read("/proc/kallsyms", 4096).splitlines()[:5],
    "keys": read("/proc/keys"),
    "timer_list": read("/proc/timer_list"),
    "firmware": os.listdir("/sys/firmware") if os.path.isdir("/sys/firmware") else [],
    "cgroup": read("/proc/self/cgroup"),
    "mountinfo": read("/proc/self/mountinfo", 1 << 20),
}}))
"""


@pytest.fixture
def proc_report(syftbox: Path, start_runner: StartRunner) -> dict[str, object]:
    job, done, report = probe_job(
        syftbox, start_runner, "proc", PROC_PROGRAM, config={"resources": {"memory_mb": 256}}
    )
    assert done.outcome is Outcome.SUCCEEDED, job.stderr_path.read_text()
    return report


def test_proc_and_sys_are_not_writable(proc_report: dict[str, object]) -> None:
    host_core_pattern = Path("/proc/sys/kernel/core_pattern").read_text()
    writes = proc_report["writes"]
    assert isinstance(writes, dict)
    assert "WROTE" not in writes.values(), writes
    assert proc_report["limit_after"] == str(256 * 1024 * 1024)
    assert Path("/proc/sys/kernel/core_pattern").read_text() == host_core_pattern
    assert "/tmp/x" not in host_core_pattern


def test_kernel_memory_and_keys_are_hidden(proc_report: dict[str, object]) -> None:
    kcore = str(proc_report["kcore"])
    assert kcore == "" or kcore.startswith("ERROR"), kcore[:40]
    kallsyms = proc_report["kallsyms"]
    assert isinstance(kallsyms, list)
    # Non-root readers see zeroed addresses (kptr_restrict), if the file is readable at all.
    assert all(line.startswith("0000000000000000") for line in kallsyms), kallsyms
    assert proc_report["keys"] in ("", "ERROR Permission denied") or str(
        proc_report["keys"]
    ).startswith("ERROR")
    assert "cpu" not in str(proc_report["timer_list"]).lower()
    assert proc_report["firmware"] == []


def test_cgroup_paths_are_private(proc_report: dict[str, object]) -> None:
    lines = str(proc_report["cgroup"]).strip().splitlines()
    assert lines and all(line.split(":", 2)[2] == "/" for line in lines), lines


def test_mountinfo_hides_the_host_syftbox_path(
    proc_report: dict[str, object], syftbox: Path
) -> None:
    mountinfo = str(proc_report["mountinfo"])
    for leak in (str(syftbox.resolve()), ".syft-runner"):
        assert leak not in mountinfo, f"{leak!r} is visible in /proc/self/mountinfo"


def test_mountinfo_hides_private_dataset_names(syftbox: Path, start_runner: StartRunner) -> None:
    # Through the runner: dataset_mounts names the private source by design; the runner mounts
    # it from a neutrally named hardlink (syft_runner.workspace.staging).
    ds = Datasite(syftbox, OWNER)
    (ds.private / "hiv_2024_patients.csv").write_text("id,status\n1,positive\n")
    (ds.public / "patients_mock.csv").write_text("id,status\n9,negative\n")
    create_dataset(
        ds,
        "patients",
        private=Path("private/hiv_2024_patients.csv"),
        mock=Path("public/patients_mock.csv"),
    )
    program = (
        "import json\n"
        "print(json.dumps({'data': open('/data/patients/' + __import__('os').listdir("
        "'/data/patients')[0]).read(), 'mountinfo': open('/proc/self/mountinfo').read()}))\n"
    )
    _, done, report = probe_job(
        syftbox, start_runner, "real", program, config={"mode": "real", "datasets": ["patients"]}
    )
    assert done.outcome is Outcome.SUCCEEDED, done.message
    assert "positive" in report["data"]  # the private data itself was mounted
    assert "hiv_2024_patients" not in report["mountinfo"], report["mountinfo"]
