"""The isolation probe's in-container program (see syft_runner.diagnostics.probe).

This file is not imported by the runner: `probe.probe_source()` reads its text and the job
container runs it as `python3 -c <text>` with the image's own python3 (3.11). So it imports
nothing but the standard library, and nothing from this project. Importing it runs nothing;
`main()` runs every check and prints one JSON object per line (checks, then facts), then a table.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import json
import mmap
import os
import re
import shutil
import socket
import stat
import subprocess
from collections.abc import Callable, Iterator
from functools import cache
from typing import TypedDict


class Check(TypedDict):
    kind: str
    name: str
    allowed: bool
    detail: str


# An attempt: (whether the job could do it, what it saw).
Attempt = Callable[[], tuple[bool, str]]
# A walked file: its path and its lstat.
Walked = tuple[str, os.stat_result]

CHECKS: list[Check] = []
FACTS: dict[str, object] = {}


def check(name: str, attempt: Attempt) -> None:
    try:
        allowed, detail = attempt()
    except Exception as exc:  # the probe itself must never stop half-way
        allowed, detail = False, f"probe error: {type(exc).__name__}: {exc}"
    CHECKS.append({"kind": "check", "name": name, "allowed": bool(allowed), "detail": detail})


def fact(name: str, value: object) -> None:
    FACTS[name] = value


def status_field(field: str) -> str:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    return ""


def read(path: str, limit: int = 4096) -> str:
    with open(path, "rb") as fh:
        return fh.read(limit).decode("utf-8", "replace").strip()


@cache
def libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def errno_text() -> str:
    return os.strerror(ctypes.get_errno())


def raw_syscall(number: int, *args: object) -> tuple[bool, str]:
    result: int = libc().syscall(number, *args)
    return result >= 0, f"returned {result}" if result >= 0 else errno_text()


def sock(family: int, kind: int = socket.SOCK_STREAM, proto: int = 0) -> Attempt:
    def attempt() -> tuple[bool, str]:
        try:
            socket.socket(family, kind, proto).close()
            return True, "created"
        except OSError as exc:
            return False, exc.strerror or str(exc)

    return attempt


def writable(folder: str) -> Attempt:
    def attempt() -> tuple[bool, str]:
        path = os.path.join(folder, f".syft-probe-{os.getpid()}")
        try:
            with open(path, "w") as fh:
                fh.write("x")
        except OSError as exc:
            return False, exc.strerror or str(exc)
        os.unlink(path)
        return True, f"created {path}"

    return attempt


def write_existing(path: str, data: str) -> Attempt:
    def attempt() -> tuple[bool, str]:
        try:
            with open(path, "w") as fh:
                fh.write(data)
            return True, f"wrote {path}"
        except OSError as exc:
            return False, exc.strerror or str(exc)

    return attempt


def ids() -> tuple[bool, str]:
    root = os.getuid() == 0 or os.geteuid() == 0
    return root, f"uid={os.getuid()} gid={os.getgid()} groups={os.getgroups()}"


def caps(field: str) -> Attempt:
    def attempt() -> tuple[bool, str]:
        value = status_field(field)
        return int(value or "0", 16) != 0, f"{field}={value}"

    return attempt


def no_new_privs() -> tuple[bool, str]:
    value = status_field("NoNewPrivs")
    return value != "1", f"NoNewPrivs={value}"


def seccomp_mode() -> tuple[bool, str]:
    value = status_field("Seccomp")
    return value != "2", f"Seccomp={value} (2 = filter)"


def interfaces() -> tuple[bool, str]:
    names = sorted(os.listdir("/sys/class/net"))
    fact("interfaces", names)
    return names != ["lo"], "interfaces: {}".format(", ".join(names))


def io_uring() -> tuple[bool, str]:
    params = ctypes.create_string_buffer(120)
    return raw_syscall(425, 1, params)


def dns() -> tuple[bool, str]:
    try:
        found = socket.getaddrinfo("example.com", 80)
        return True, f"resolved to {found[0][4][0]}"
    except OSError as exc:
        return False, str(exc)


def metadata() -> tuple[bool, str]:
    try:
        socket.create_connection(("169.254.169.254", 80), timeout=2).close()
        return True, "connected"
    except OSError as exc:
        return False, exc.strerror or str(exc)


def drop(folder: str) -> str:
    """A copy of an executable (`true`) written into `folder`, made executable."""
    path = os.path.join(folder, f".syft-probe-exec-{os.getpid()}")
    shutil.copyfile(shutil.which("true") or "/bin/true", path)
    os.chmod(path, 0o755)
    return path


def with_dropped(folder: str, use: Callable[[str], tuple[bool, str]]) -> Attempt:
    def attempt() -> tuple[bool, str]:
        try:
            path = drop(folder)
        except OSError as exc:
            return False, f"cannot write there: {exc.strerror or exc}"
        try:
            return use(path)
        except OSError as exc:
            return False, exc.strerror or str(exc)
        finally:
            os.unlink(path)

    return attempt


def execute(path: str) -> tuple[bool, str]:
    code = subprocess.run([path], capture_output=True).returncode
    return code == 0, f"exit code {code}"


def through_loader(path: str) -> tuple[bool, str]:
    # The ELF loader maps the file itself instead of asking execve: only noexec on its mount
    # (which refuses executable mappings) stops this.
    loaders = sorted(glob.glob("/lib64/ld-linux*.so*") + glob.glob("/lib/ld-linux*.so*"))
    if not loaders:
        return False, "no ELF loader in the image"
    proc = subprocess.run([loaders[0], path], capture_output=True)
    detail = proc.stderr.decode("utf-8", "replace").strip()[-200:]
    return proc.returncode == 0, f"{loaders[0]}: exit code {proc.returncode} {detail}"


def map_executable(path: str) -> tuple[bool, str]:
    with open(path, "rb") as fh:
        prot = mmap.PROT_READ | mmap.PROT_EXEC
        mmap.mmap(fh.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=prot).close()
    return True, "mapped with PROT_EXEC"


def unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def unhardened_writable_mounts() -> tuple[bool, str]:
    # Every mount whose folder (or file) this job can write must be noexec, nosuid and nodev.
    found: list[str] = []
    writable_mounts: list[str] = []
    with open("/proc/self/mountinfo") as fh:
        lines = list(fh)
    for line in lines:
        fields = line.split(" - ")[0].split()
        target, options = unescape(fields[4]), fields[5].split(",")
        try:
            st = os.stat(target)
        except OSError:
            continue
        if "ro" in options or not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            continue
        if not os.access(target, os.W_OK):
            continue
        writable_mounts.append(f"{target} {fields[5]}")
        missing = [o for o in ("noexec", "nosuid", "nodev") if o not in options]
        if missing:
            found.append("{} ({})".format(target, ", ".join("no " + o for o in missing)))
    fact("writable mounts", writable_mounts)
    return bool(found), "; ".join(found) or "every mount this job can write is noexec,nosuid,nodev"


def kcore() -> tuple[bool, str]:
    try:
        with open("/proc/kcore", "rb") as fh:
            data = fh.read(64)
    except OSError as exc:
        return False, exc.strerror or str(exc)
    return len(data) > 0, f"read {len(data)} bytes"


def processes() -> tuple[bool, str]:
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    names: list[str] = []
    for pid in pids:
        with contextlib.suppress(OSError):
            names.append(read(f"/proc/{pid}/comm"))
    fact("processes", names)
    # A private pid namespace holds the init, this probe and at most a child or two.
    return len(pids) > 4, "{} processes: {}".format(len(pids), ", ".join(names))


# The host's block devices and filesystems: masked (empty) in a job container.
BLOCK_FOLDERS = (
    "/sys/block",
    "/sys/class/block",
    "/sys/dev/block",
    "/sys/devices/virtual/block",
    "/sys/class/bdi",
    "/sys/devices/virtual/bdi",
    "/sys/fs/ext4",
    "/proc/fs/ext4",
)
BLOCK_FILES = ("/proc/diskstats", "/proc/partitions", "/proc/swaps")


def block_devices() -> tuple[bool, str]:
    seen: list[str] = []
    for path in BLOCK_FOLDERS:
        try:
            entries = os.listdir(path)
        except OSError:
            continue
        if entries:
            seen.append("{}: {}".format(path, " ".join(sorted(entries)[:8])))
    for path in BLOCK_FILES:
        try:
            text = read(path)
        except OSError:
            continue
        if text:
            seen.append(f"{path}: {len(text.splitlines())} lines")
    return bool(seen), "; ".join(seen) or "empty: " + ", ".join(BLOCK_FOLDERS + BLOCK_FILES)


def backing_files() -> tuple[bool, str]:
    found: dict[str, str] = {}
    for index in ("/sys/block", "/sys/devices/virtual/block", "/sys/dev/block"):
        pattern = index + "/*/loop/backing_file"
        for path in glob.glob(pattern):
            with contextlib.suppress(OSError):
                found[os.path.realpath(path)] = read(path)
    return bool(found), "; ".join(f"{k}: {v}" for k, v in sorted(found.items())) or "none"


JOB_MOUNT_ROOTS = ("/job", "/data", "/syftbox")


def mountinfo() -> list[dict[str, str]]:
    mounts: list[dict[str, str]] = []
    with open("/proc/self/mountinfo") as fh:
        lines = list(fh)
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        fstype = right.split()[0] if right else "?"
        opts = fields[5].split(",")
        mounts.append(
            {
                "root": fields[3],
                "target": fields[4],
                "fstype": fstype,
                "mode": "ro" if "ro" in opts else "rw",
            }
        )
    return mounts


def mounts_fact() -> list[dict[str, str]]:
    entries = mountinfo()
    fact("mounts", [f"{m['target']} {m['mode']} {m['fstype']}" for m in entries])
    return entries


def host_paths() -> tuple[bool, str]:
    # A bind mount's root is its source path within its filesystem: "/" or a path the job sees
    # anyway (the runner's per-job filesystem: /job/code/outputs <- /job/outputs) tell nothing;
    # anything else is a host path.
    entries = mounts_fact()
    seen = {m["target"] for m in entries}
    leaks = [
        "{} <- {}".format(m["target"], m["root"])
        for m in entries
        if m["root"] != "/"
        and m["root"] not in seen
        and any(m["target"] == r or m["target"].startswith(r + "/") for r in JOB_MOUNT_ROOTS)
    ]
    return bool(leaks), "; ".join(leaks) or "bind mount roots hidden"


def cgroup_paths() -> tuple[bool, str]:
    lines = read("/proc/self/cgroup").splitlines()
    visible = [line for line in lines if line.split(":", 2)[2] not in ("/", "")]
    return bool(visible), "; ".join(visible) or "every cgroup path is /"


SOCKET_PATHS = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
)


def walk_files() -> Iterator[Walked]:
    """(path, lstat) of every file outside /proc and /sys."""
    stack = ["/"]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.path in ("/proc", "/sys"):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
            yield entry.path, st


def docker_socket(files: list[Walked]) -> tuple[bool, str]:
    found = [p for p in SOCKET_PATHS if os.path.lexists(p)]
    found += [p for p, st in files if stat.S_ISSOCK(st.st_mode) and p not in found]
    return bool(found), ", ".join(found) or "no socket files anywhere"


DEFAULT_DEVICES = {(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, 0)}


def devices(files: list[Walked]) -> tuple[bool, str]:
    nodes = [(p, st) for p, st in files if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)]
    fact("devices", sorted(p for p, _ in nodes))
    extra = [
        f"{p} ({os.major(st.st_rdev)},{os.minor(st.st_rdev)})"
        for p, st in nodes
        if stat.S_ISBLK(st.st_mode)
        or (
            (os.major(st.st_rdev), os.minor(st.st_rdev)) not in DEFAULT_DEVICES
            and os.major(st.st_rdev) != 136  # 136: the container's own /dev/pts/N
        )
    ]
    return bool(extra), ", ".join(extra) or "only null, zero, full, random, urandom, tty, ptmx"


def mknod() -> tuple[bool, str]:
    path = "/tmp/syft-probe-null"
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError as exc:
        return False, exc.strerror or str(exc)
    os.unlink(path)
    return True, "made a character device"


def setuid_files(files: list[Walked]) -> tuple[bool, str]:
    root_dev = os.lstat("/").st_dev
    found = [
        p
        for p, st in files
        if st.st_dev == root_dev
        and stat.S_ISREG(st.st_mode)
        and st.st_mode & (stat.S_ISUID | stat.S_ISGID)
    ]
    return bool(found), ", ".join(found[:20]) or "none on the image"


def unshare_user() -> tuple[bool, str]:
    result: int = libc().unshare(0x10000000)
    return result == 0, "unshared" if result == 0 else errno_text()


def mount_tmpfs() -> tuple[bool, str]:
    os.makedirs("/tmp/syft-probe-mnt", exist_ok=True)
    result: int = libc().mount(b"none", b"/tmp/syft-probe-mnt", b"tmpfs", 0, None)
    return result == 0, "mounted" if result == 0 else errno_text()


def ptrace() -> tuple[bool, str]:
    child = subprocess.Popen(["sleep", "5"])
    try:
        allowed, detail = raw_syscall(101, 16, child.pid, 0, 0)  # PTRACE_ATTACH
        if allowed:
            libc().syscall(101, 17, child.pid, 0, 0)  # PTRACE_DETACH
        return allowed, detail
    finally:
        child.kill()
        child.wait()


def cgroup_value(*candidates: str) -> str:
    for path in candidates:
        try:
            return read(path)
        except OSError:
            continue
    return ""


def pids_limit() -> tuple[bool, str]:
    value = cgroup_value("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max")
    fact("pids.max", value)
    return value in ("", "max"), "pids.max={}".format(value or "unreadable")


UNLIMITED = 1 << 62


def memory_limit() -> tuple[bool, str]:
    value = cgroup_value("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")
    fact("memory.limit", value)
    unlimited = value in ("", "max") or int(value) >= UNLIMITED
    return unlimited, "memory limit={}".format(value or "unreadable")


def swap() -> tuple[bool, str]:
    memory = cgroup_value("/sys/fs/cgroup/memory/memory.limit_in_bytes")
    memsw = cgroup_value("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
    if memory and memsw:
        fact("memory.memsw.limit", memsw)
        return int(memsw) > int(memory), f"memory={memory} memory+swap={memsw}"
    value = cgroup_value("/sys/fs/cgroup/memory.swap.max")
    return value not in ("0",), "memory.swap.max={}".format(value or "unreadable")


def cgroup_write_target() -> str:
    v1 = "/sys/fs/cgroup/pids/pids.max"
    return v1 if os.path.exists(v1) else "/sys/fs/cgroup/pids.max"


def main() -> None:
    # Walked once, before any check writes anything: the checks below read this list.
    files = list(walk_files())

    fact("uid", os.getuid())
    fact("gid", os.getgid())
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
        fact(field, status_field(field))
    fact("hostname", socket.gethostname())
    fact("environment", sorted(os.environ))
    fact("cpu quota", cgroup_value("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu.max"))

    check("run as root", ids)
    check("hold effective capabilities", caps("CapEff"))
    check("capabilities in the bounding set", caps("CapBnd"))
    check("gain privileges through exec", no_new_privs)
    check("run without a seccomp filter", seccomp_mode)
    check("network interface besides lo", interfaces)
    check("socket AF_INET", sock(socket.AF_INET))
    check("socket AF_INET6", sock(socket.AF_INET6))
    check("raw socket AF_PACKET", sock(17, socket.SOCK_RAW))
    check("socket AF_NETLINK", sock(16, socket.SOCK_RAW))
    check("socket AF_VSOCK", sock(40))
    check("socket AF_ALG", sock(38, socket.SOCK_SEQPACKET))
    check("socket AF_UNIX", sock(socket.AF_UNIX))
    check("io_uring_setup", io_uring)
    check("resolve a DNS name", dns)
    check("connect to the cloud metadata address", metadata)
    for folder in (
        "/",
        "/etc",
        "/usr/bin",
        "/var",
        "/job",
        "/job/code",
        "/job/outputs",
        "/job/code/outputs",
        "/tmp",
        "/dev/shm",
    ):
        check("write " + folder, writable(folder))
    fact(
        "writable paths",
        [c["name"][6:] for c in CHECKS if c["name"].startswith("write /") and c["allowed"]],
    )
    check("execute a file from /tmp", with_dropped("/tmp", execute))
    check("execute a file from /dev/shm", with_dropped("/dev/shm", execute))
    check("execute a file from /job/outputs", with_dropped("/job/outputs", execute))
    check(
        "run a file from /job/outputs through the ELF loader",
        with_dropped("/job/outputs", through_loader),
    )
    check("map a file from /job/outputs executable", with_dropped("/job/outputs", map_executable))
    check("writable mount without noexec, nosuid or nodev", unhardened_writable_mounts)
    check("write /proc/sys", write_existing("/proc/sys/kernel/hostname", "syft-probe"))
    check("write /proc/sysrq-trigger", write_existing("/proc/sysrq-trigger", "h"))
    check("write /sys/fs/cgroup", write_existing(cgroup_write_target(), "max"))
    check("read /proc/kcore", kcore)
    check("see host block devices or filesystem counters", block_devices)
    check("read a loop device's backing file", backing_files)
    check("see host processes", processes)
    check("host paths visible in mountinfo", host_paths)
    check("host cgroup paths visible", cgroup_paths)
    check("find a Docker or containerd socket", lambda: docker_socket(files))
    check("devices beyond the defaults", lambda: devices(files))
    check("mknod a device", mknod)
    check("setuid or setgid files present", lambda: setuid_files(files))
    check("unshare a user namespace", unshare_user)
    check("mount a filesystem", mount_tmpfs)
    check("ptrace another process", ptrace)
    check("unlimited pids", pids_limit)
    check("unlimited memory", memory_limit)
    check("swap beyond the memory limit", swap)

    for line in CHECKS:
        print(json.dumps(line))
    for name, value in FACTS.items():
        print(json.dumps({"kind": "fact", "name": name, "value": value}))
    print()
    for line in CHECKS:
        verdict = "ALLOWED" if line["allowed"] else "BLOCKED"
        print(f"{verdict:<8} {line['name']:<40} {line['detail']}")


if __name__ == "__main__":
    main()
