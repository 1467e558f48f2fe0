"""Attack 12: raising privileges. setuid binaries, su/setpriv, `unshare -r`, `mount`, `chroot`,
ptrace and process_vm_readv, setuid(0), writing the image (/etc/passwd, /etc/ld.so.preload,
/usr/bin), and a setuid copy executed from /tmp: every attempt fails and the job has no
capabilities at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from syft_core.jobs import Outcome
from tests.attacks.conftest import probe_job
from tests.fixtures_runner import StartRunner

pytestmark = pytest.mark.docker

PRIVILEGE_PROGRAM = r"""
import ctypes, json, os, shutil, stat, subprocess

libc = ctypes.CDLL(None, use_errno=True)

def run(*command):
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=10)
    except OSError as exc:
        return exc.strerror
    return "OK" if done.returncode == 0 else "exit %d: %s" % (done.returncode, done.stderr[-80:])

def attempt(fn):
    try:
        fn()
        return "OK"
    except OSError as exc:
        return exc.strerror or str(exc)

def syscall(number, *args):
    def call():
        if libc.syscall(number, *args) < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
    return call

def append(path):
    def write():
        with open(path, "a") as fh:
            fh.write("x")
    return write

def setuid_files():
    root = os.lstat("/").st_dev
    found = []
    for folder, dirs, files in os.walk("/"):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in ("/proc", "/sys")]
        for name in files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if st.st_dev == root and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                found.append(path)
    return found

def setuid_copy():
    shutil.copy("/usr/bin/id", "/tmp/id")
    os.chmod("/tmp/id", 0o4755)
    return run("/tmp/id", "-u")

child = subprocess.Popen(["sleep", "30"])
status = {k: v.strip() for k, v in
          (l.split(":", 1) for l in open("/proc/self/status") if ":" in l)}
print(json.dumps({
    "setuid_files": setuid_files(),
    "caps": [status[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")],
    "no_new_privs": status["NoNewPrivs"],
    "su": run("su", "-c", "id", "root"),
    "setpriv": run("setpriv", "--reuid=0", "--regid=0", "--clear-groups", "id"),
    "unshare_r": run("unshare", "-r", "id"),
    "unshare_u": run("unshare", "-U", "true"),
    "mount": run("mount", "-t", "tmpfs", "none", "/tmp"),
    "chroot": run("chroot", "/", "true"),
    "setuid0": attempt(lambda: os.setuid(0)),
    "ptrace_attach": attempt(syscall(101, 16, child.pid, 0, 0)),
    "process_vm_readv": attempt(syscall(310, child.pid, None, 0, None, 0, 0)),
    "keyctl": attempt(syscall(250, 0, 0, 0, 0, 0)),
    "write_passwd": attempt(append("/etc/passwd")),
    "write_preload": attempt(append("/etc/ld.so.preload")),
    "write_usr_bin": attempt(append("/usr/bin/evil")),
    "write_job": attempt(append("/job/run.sh")),
    "setuid_copy": setuid_copy(),
}))
child.kill()
"""


def test_no_privilege_can_be_gained(syftbox: Path, start_runner: StartRunner) -> None:
    job, done, report = probe_job(syftbox, start_runner, "privilege", PRIVILEGE_PROGRAM)
    assert done.outcome is Outcome.SUCCEEDED, job.stderr_path.read_text()
    assert report.pop("setuid_files") == []
    assert report.pop("caps") == ["0000000000000000"] * 5
    assert report.pop("no_new_privs") == "1"
    for attack, result in report.items():
        assert result != "OK", f"{attack} succeeded"
    for attack in ("setuid0", "ptrace_attach", "process_vm_readv", "keyctl"):
        assert report[attack] == "Operation not permitted", (attack, report[attack])
    for attack in ("write_passwd", "write_preload", "write_usr_bin", "write_job"):
        assert report[attack] in ("Read-only file system", "Permission denied"), attack
    assert report["setuid_copy"] == "Permission denied"  # /tmp is noexec
