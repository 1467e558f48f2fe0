"""The isolation probe: what a job can and cannot do from inside the sandbox, observed, not assumed.

`PROBE_PROGRAM` is a stdlib-only python3 program. Run inside a job container it tries each thing a
hostile job would try (write the image, open a network socket, find the Docker socket, make a
device, leave its namespaces, ...) and prints one JSON object per line: `check` lines say whether
an attempt was ALLOWED or BLOCKED, `fact` lines record what it saw (uid, capabilities, seccomp
mode, interfaces, mounts, limits). A table follows for people reading the raw output.

`run_probe(client)` runs it in a container made by `sandbox.container_kwargs` with the runner's
default limits and the same mount layout a job gets (a read-only /job, a writable /job/outputs),
then judges every check against `EXPECTED_ALLOWED`. `syft-runner doctor --probe` shows the result.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import uuid
from pathlib import Path

import docker
from pydantic import BaseModel, ValidationError

from syft_core.errors import SyftError
from syft_runner.config import RunnerConfig
from syft_runner.executor.backends.docker import DockerBackend
from syft_runner.executor.contract import Backend, TaskSpec, TaskState
from syft_runner.sandbox.container import (
    CODE_OUTPUTS_DIR,
    DEFAULT_ENVIRONMENT,
    JOB_DIR,
    OUTPUTS_DIR,
    WORKDIR,
    Limits,
    Mount,
    job_user,
)
from syft_runner.sandbox.images import DEFAULT_RUNTIME, resolve_image
from syft_runner.workspace.jobfs import mount_jobfs, unmount_jobfs
from syft_runner.workspace.logs import LogStreamer
from syft_runner.workspace.staging import make_outputs

PROBE_RUNTIME = DEFAULT_RUNTIME
PROBE_LABEL = "org.syft.probe"
PROBE_TIMEOUT_SECONDS = 60
PROBE_LOG_BYTES = 4 * 1024 * 1024  # the report is a few KB; a cap as for any task
PROBE_LOG_DRAIN_SECONDS = 10.0

# What a correctly hardened job container gives for each check: True means the attempt should
# succeed (the job needs it), False that it must be blocked.
EXPECTED_ALLOWED: dict[str, bool] = {
    "run as root": False,
    "hold effective capabilities": False,
    "capabilities in the bounding set": False,
    "gain privileges through exec": False,
    "run without a seccomp filter": False,
    "network interface besides lo": False,
    "socket AF_INET": False,
    "socket AF_INET6": False,
    "raw socket AF_PACKET": False,
    "socket AF_NETLINK": False,
    "socket AF_VSOCK": False,
    "socket AF_ALG": False,
    "socket AF_UNIX": True,
    "io_uring_setup": False,
    "resolve a DNS name": False,
    "connect to the cloud metadata address": False,
    "write /": False,
    "write /etc": False,
    "write /usr/bin": False,
    "write /var": False,
    "write /job": False,
    "write /job/code": False,
    "write /job/outputs": True,
    "write /job/code/outputs": True,
    "write /tmp": True,
    "write /dev/shm": True,
    "execute a file from /tmp": False,
    "execute a file from /dev/shm": False,
    "execute a file from /job/outputs": False,
    "run a file from /job/outputs through the ELF loader": False,
    "map a file from /job/outputs executable": False,
    "writable mount without noexec, nosuid or nodev": False,
    "write /proc/sys": False,
    "write /proc/sysrq-trigger": False,
    "write /sys/fs/cgroup": False,
    "read /proc/kcore": False,
    "see host block devices or filesystem counters": False,
    "read a loop device's backing file": False,
    "see host processes": False,
    "host paths visible in mountinfo": False,
    "host cgroup paths visible": False,
    "find a Docker or containerd socket": False,
    "devices beyond the defaults": False,
    "mknod a device": False,
    "setuid or setgid files present": False,
    "unshare a user namespace": False,
    "mount a filesystem": False,
    "ptrace another process": False,
    "unlimited pids": False,
    "unlimited memory": False,
    "swap beyond the memory limit": False,
}

PROBE_PROGRAM = r'''
import ctypes, glob, json, mmap, os, re, shutil, socket, stat, subprocess, sys

CHECKS = []
FACTS = {}

def check(name, attempt):
    try:
        allowed, detail = attempt()
    except Exception as exc:  # the probe itself must never stop half-way
        allowed, detail = False, "probe error: %s: %s" % (type(exc).__name__, exc)
    CHECKS.append({"kind": "check", "name": name, "allowed": bool(allowed), "detail": detail})

def fact(name, value):
    FACTS[name] = value

def status_field(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return ""

def read(path, limit=4096):
    with open(path, "rb") as fh:
        return fh.read(limit).decode("utf-8", "replace").strip()

libc = ctypes.CDLL(None, use_errno=True)

def errno_text():
    return os.strerror(ctypes.get_errno())

def raw_syscall(number, *args):
    result = libc.syscall(number, *args)
    return result >= 0, "returned %d" % result if result >= 0 else errno_text()

def sock(family, kind=socket.SOCK_STREAM, proto=0):
    def attempt():
        try:
            socket.socket(family, kind, proto).close()
            return True, "created"
        except OSError as exc:
            return False, exc.strerror or str(exc)
    return attempt

def writable(folder):
    def attempt():
        path = os.path.join(folder, ".syft-probe-%d" % os.getpid())
        try:
            with open(path, "w") as fh:
                fh.write("x")
        except OSError as exc:
            return False, exc.strerror or str(exc)
        os.unlink(path)
        return True, "created %s" % path
    return attempt

def write_existing(path, data):
    def attempt():
        try:
            with open(path, "w") as fh:
                fh.write(data)
            return True, "wrote %s" % path
        except OSError as exc:
            return False, exc.strerror or str(exc)
    return attempt

def ids():
    return os.getuid() == 0 or os.geteuid() == 0, "uid=%d gid=%d groups=%s" % (
        os.getuid(), os.getgid(), os.getgroups())

def caps(field):
    def attempt():
        value = status_field(field)
        return int(value or "0", 16) != 0, "%s=%s" % (field, value)
    return attempt

def no_new_privs():
    value = status_field("NoNewPrivs")
    return value != "1", "NoNewPrivs=%s" % value

def seccomp_mode():
    value = status_field("Seccomp")
    return value != "2", "Seccomp=%s (2 = filter)" % value

def interfaces():
    names = sorted(os.listdir("/sys/class/net"))
    fact("interfaces", names)
    return names != ["lo"], "interfaces: %s" % ", ".join(names)

def io_uring():
    params = ctypes.create_string_buffer(120)
    return raw_syscall(425, 1, params)

def dns():
    try:
        found = socket.getaddrinfo("example.com", 80)
        return True, "resolved to %s" % found[0][4][0]
    except OSError as exc:
        return False, str(exc)

def metadata():
    try:
        socket.create_connection(("169.254.169.254", 80), timeout=2).close()
        return True, "connected"
    except OSError as exc:
        return False, exc.strerror or str(exc)

TRUE = shutil.which("true") or "/bin/true"

def drop(folder):
    """A copy of an executable (`true`) written into `folder`, made executable."""
    path = os.path.join(folder, ".syft-probe-exec-%d" % os.getpid())
    shutil.copyfile(TRUE, path)
    os.chmod(path, 0o755)
    return path

def with_dropped(folder, use):
    def attempt():
        try:
            path = drop(folder)
        except OSError as exc:
            return False, "cannot write there: %s" % (exc.strerror or exc)
        try:
            return use(path)
        except OSError as exc:
            return False, exc.strerror or str(exc)
        finally:
            os.unlink(path)
    return attempt

def execute(path):
    code = subprocess.run([path], capture_output=True).returncode
    return code == 0, "exit code %d" % code

def through_loader(path):
    # The ELF loader maps the file itself instead of asking execve: only noexec on its mount
    # (which refuses executable mappings) stops this.
    loaders = sorted(glob.glob("/lib64/ld-linux*.so*") + glob.glob("/lib/ld-linux*.so*"))
    if not loaders:
        return False, "no ELF loader in the image"
    proc = subprocess.run([loaders[0], path], capture_output=True)
    detail = proc.stderr.decode("utf-8", "replace").strip()[-200:]
    return proc.returncode == 0, "%s: exit code %d %s" % (loaders[0], proc.returncode, detail)

def map_executable(path):
    with open(path, "rb") as fh:
        prot = mmap.PROT_READ | mmap.PROT_EXEC
        mmap.mmap(fh.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=prot).close()
    return True, "mapped with PROT_EXEC"

def unescape(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)

def unhardened_writable_mounts():
    # Every mount whose folder (or file) this job can write must be noexec, nosuid and nodev.
    found = []
    writable = []
    for line in open("/proc/self/mountinfo"):
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
        writable.append("%s %s" % (target, fields[5]))
        missing = [o for o in ("noexec", "nosuid", "nodev") if o not in options]
        if missing:
            found.append("%s (%s)" % (target, ", ".join("no " + o for o in missing)))
    fact("writable mounts", writable)
    return bool(found), "; ".join(found) or "every mount this job can write is noexec,nosuid,nodev"

def kcore():
    try:
        data = open("/proc/kcore", "rb").read(64)
    except OSError as exc:
        return False, exc.strerror or str(exc)
    return len(data) > 0, "read %d bytes" % len(data)

def processes():
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    names = []
    for pid in pids:
        try:
            names.append(read("/proc/%d/comm" % pid))
        except OSError:
            pass
    fact("processes", names)
    # A private pid namespace holds the init, this probe and at most a child or two.
    return len(pids) > 4, "%d processes: %s" % (len(pids), ", ".join(names))

# The host's block devices and filesystems: masked (empty) in a job container.
BLOCK_FOLDERS = ("/sys/block", "/sys/class/block", "/sys/dev/block", "/sys/devices/virtual/block",
                 "/sys/class/bdi", "/sys/devices/virtual/bdi", "/sys/fs/ext4", "/proc/fs/ext4")
BLOCK_FILES = ("/proc/diskstats", "/proc/partitions", "/proc/swaps")

def block_devices():
    seen = []
    for path in BLOCK_FOLDERS:
        try:
            entries = os.listdir(path)
        except OSError:
            continue
        if entries:
            seen.append("%s: %s" % (path, " ".join(sorted(entries)[:8])))
    for path in BLOCK_FILES:
        try:
            text = read(path)
        except OSError:
            continue
        if text:
            seen.append("%s: %d lines" % (path, len(text.splitlines())))
    return bool(seen), "; ".join(seen) or "empty: " + ", ".join(BLOCK_FOLDERS + BLOCK_FILES)

def backing_files():
    found = {}
    for index in ("/sys/block", "/sys/devices/virtual/block", "/sys/dev/block"):
        pattern = index + "/*/loop/backing_file"
        for path in glob.glob(pattern):
            try:
                found[os.path.realpath(path)] = read(path)
            except OSError:
                pass
    return bool(found), "; ".join("%s: %s" % item for item in sorted(found.items())) or "none"

JOB_MOUNT_ROOTS = ("/job", "/data", "/syftbox")

def mountinfo():
    mounts = []
    for line in open("/proc/self/mountinfo"):
        left, _, right = line.partition(" - ")
        fields = left.split()
        fstype = right.split()[0] if right else "?"
        opts = fields[5].split(",")
        mounts.append({"root": fields[3], "target": fields[4], "fstype": fstype,
                       "mode": "ro" if "ro" in opts else "rw"})
    return mounts

def mounts_fact():
    entries = mountinfo()
    fact("mounts", ["%s %s %s" % (m["target"], m["mode"], m["fstype"]) for m in entries])
    return entries

def host_paths():
    # A bind mount's root is its source path within its filesystem: "/" or a path the job sees
    # anyway (the runner's per-job filesystem: /job/code/outputs <- /job/outputs) tell nothing;
    # anything else is a host path.
    entries = mounts_fact()
    seen = {m["target"] for m in entries}
    leaks = [
        "%s <- %s" % (m["target"], m["root"]) for m in entries
        if m["root"] != "/" and m["root"] not in seen and any(
            m["target"] == r or m["target"].startswith(r + "/") for r in JOB_MOUNT_ROOTS)
    ]
    return bool(leaks), "; ".join(leaks) or "bind mount roots hidden"

def cgroup_paths():
    lines = read("/proc/self/cgroup").splitlines()
    visible = [l for l in lines if l.split(":", 2)[2] not in ("/", "")]
    return bool(visible), "; ".join(visible) or "every cgroup path is /"

SOCKET_PATHS = ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock",
                "/var/run/containerd/containerd.sock", "/run/podman/podman.sock")

def walk_files():
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

FILES = list(walk_files())

def docker_socket():
    found = [p for p in SOCKET_PATHS if os.path.lexists(p)]
    found += [p for p, st in FILES if stat.S_ISSOCK(st.st_mode) and p not in found]
    return bool(found), ", ".join(found) or "no socket files anywhere"

DEFAULT_DEVICES = {(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, 0)}

def devices():
    nodes = [(p, st) for p, st in FILES if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)]
    fact("devices", sorted(p for p, _ in nodes))
    extra = [
        "%s (%d,%d)" % (p, os.major(st.st_rdev), os.minor(st.st_rdev)) for p, st in nodes
        if stat.S_ISBLK(st.st_mode)
        or ((os.major(st.st_rdev), os.minor(st.st_rdev)) not in DEFAULT_DEVICES
            and os.major(st.st_rdev) != 136)  # 136: the container's own /dev/pts/N
    ]
    return bool(extra), ", ".join(extra) or "only null, zero, full, random, urandom, tty, ptmx"

def mknod():
    path = "/tmp/syft-probe-null"
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError as exc:
        return False, exc.strerror or str(exc)
    os.unlink(path)
    return True, "made a character device"

def setuid_files():
    root_dev = os.lstat("/").st_dev
    found = [p for p, st in FILES if st.st_dev == root_dev and stat.S_ISREG(st.st_mode)
             and st.st_mode & (stat.S_ISUID | stat.S_ISGID)]
    return bool(found), ", ".join(found[:20]) or "none on the image"

def unshare_user():
    result = libc.unshare(0x10000000)
    return result == 0, "unshared" if result == 0 else errno_text()

def mount_tmpfs():
    os.makedirs("/tmp/syft-probe-mnt", exist_ok=True)
    result = libc.mount(b"none", b"/tmp/syft-probe-mnt", b"tmpfs", 0, None)
    return result == 0, "mounted" if result == 0 else errno_text()

def ptrace():
    child = subprocess.Popen(["sleep", "5"])
    try:
        allowed, detail = raw_syscall(101, 16, child.pid, 0, 0)  # PTRACE_ATTACH
        if allowed:
            libc.syscall(101, 17, child.pid, 0, 0)  # PTRACE_DETACH
        return allowed, detail
    finally:
        child.kill()
        child.wait()

def cgroup_value(*candidates):
    for path in candidates:
        try:
            return read(path)
        except OSError:
            continue
    return ""

def pids_limit():
    value = cgroup_value("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max")
    fact("pids.max", value)
    return value in ("", "max"), "pids.max=%s" % (value or "unreadable")

UNLIMITED = 1 << 62

def memory_limit():
    value = cgroup_value("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                         "/sys/fs/cgroup/memory.max")
    fact("memory.limit", value)
    unlimited = value in ("", "max") or int(value) >= UNLIMITED
    return unlimited, "memory limit=%s" % (value or "unreadable")

def swap():
    memory = cgroup_value("/sys/fs/cgroup/memory/memory.limit_in_bytes")
    memsw = cgroup_value("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
    if memory and memsw:
        fact("memory.memsw.limit", memsw)
        return int(memsw) > int(memory), "memory=%s memory+swap=%s" % (memory, memsw)
    value = cgroup_value("/sys/fs/cgroup/memory.swap.max")
    return value not in ("0",), "memory.swap.max=%s" % (value or "unreadable")

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
for folder in ("/", "/etc", "/usr/bin", "/var", "/job", "/job/code", "/job/outputs",
               "/job/code/outputs", "/tmp", "/dev/shm"):
    check("write " + folder, writable(folder))
fact("writable paths", [c["name"][6:] for c in CHECKS if c["name"].startswith("write /")
                        and c["allowed"]])
check("execute a file from /tmp", with_dropped("/tmp", execute))
check("execute a file from /dev/shm", with_dropped("/dev/shm", execute))
check("execute a file from /job/outputs", with_dropped("/job/outputs", execute))
check("run a file from /job/outputs through the ELF loader",
      with_dropped("/job/outputs", through_loader))
check("map a file from /job/outputs executable", with_dropped("/job/outputs", map_executable))
check("writable mount without noexec, nosuid or nodev", unhardened_writable_mounts)
check("write /proc/sys", write_existing("/proc/sys/kernel/hostname", "syft-probe"))
check("write /proc/sysrq-trigger", write_existing("/proc/sysrq-trigger", "h"))
check("write /sys/fs/cgroup", write_existing(
    "/sys/fs/cgroup/pids/pids.max" if os.path.exists("/sys/fs/cgroup/pids/pids.max")
    else "/sys/fs/cgroup/pids.max", "max"))
check("read /proc/kcore", kcore)
check("see host block devices or filesystem counters", block_devices)
check("read a loop device's backing file", backing_files)
check("see host processes", processes)
check("host paths visible in mountinfo", host_paths)
check("host cgroup paths visible", cgroup_paths)
check("find a Docker or containerd socket", docker_socket)
check("devices beyond the defaults", devices)
check("mknod a device", mknod)
check("setuid or setgid files present", setuid_files)
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
    print("%-8s %-40s %s" % ("ALLOWED" if line["allowed"] else "BLOCKED", line["name"],
                              line["detail"]))
'''


class ProbeError(SyftError):
    """The probe could not run, or printed nothing usable; the message says why."""


class ProbeCheck(BaseModel):
    name: str
    allowed: bool
    detail: str
    expected: bool | None = None  # None: a check this runner has no expectation for

    @property
    def verdict(self) -> str:
        return "ALLOWED" if self.allowed else "BLOCKED"

    @property
    def ok(self) -> bool:
        return self.expected is None or self.allowed == self.expected


class ProbeReport(BaseModel):
    checks: list[ProbeCheck]
    facts: dict[str, object]

    def check(self, name: str) -> ProbeCheck:
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(f"the probe reported no check named {name!r}")

    def missing(self) -> list[str]:
        """Expected checks the probe did not report (an old or broken probe)."""
        reported = {c.name for c in self.checks}
        return [name for name in EXPECTED_ALLOWED if name not in reported]

    def failures(self) -> list[ProbeCheck]:
        """Checks whose outcome differs from what a hardened sandbox gives."""
        return [c for c in self.checks if not c.ok]

    def table(self) -> str:
        """One line per check: verdict, whether that is as expected, name and detail."""
        rows = [
            f"{c.verdict:<8} {'ok' if c.ok else 'UNEXPECTED':<10} {c.name:<40} "
            + _printable(c.detail)
            for c in self.checks
        ]
        rows += [f"{'MISSING':<8} {'UNEXPECTED':<10} {name}" for name in self.missing()]
        return "\n".join(rows)


def parse_report(stdout: str) -> ProbeReport:
    """The report in the probe's output: its JSON lines; the human table after them is skipped."""
    checks: list[ProbeCheck] = []
    facts: dict[str, object] = {}
    for number, line in enumerate(stdout.splitlines(), 1):
        if not line.startswith("{"):
            continue
        try:
            item = json.loads(line)
            if item.get("kind") == "fact":
                facts[str(item["name"])] = item["value"]
            else:
                check = ProbeCheck.model_validate(
                    {k: v for k, v in item.items() if k in ("name", "allowed", "detail")}
                )
                check.expected = EXPECTED_ALLOWED.get(check.name)
                checks.append(check)
        except (json.JSONDecodeError, KeyError, AttributeError, ValidationError) as exc:
            raise ProbeError(f"probe output line {number} is not a probe record: {exc}") from None
    if not checks:
        raise ProbeError(f"the probe printed no checks; its output began: {stdout[:300]!r}")
    return ProbeReport(checks=checks, facts=facts)


def run_probe(
    client: docker.DockerClient,
    *,
    runtime: str = PROBE_RUNTIME,
    limits: Limits | None = None,
    backend: Backend | None = None,
    node: str | None = None,
    scratch: Path | None = None,
) -> ProbeReport:
    """Run the probe in a task exactly as the runner would start a job: the runner's default
    limits, a read-only /job and a writable /job/outputs (on a per-job filesystem when the task
    runs on this host). `backend`: where (default: a container on `client`); `node`: on that
    cluster node only; `scratch`: a folder the task's node sees (a cluster's shared storage)."""
    chosen = limits or RunnerConfig().default_limits.model_copy(
        update={"timeout_seconds": PROBE_TIMEOUT_SECONDS}
    )
    runner = backend or DockerBackend(client, (PROBE_LABEL, "isolation"))
    folder = Path(tempfile.mkdtemp(prefix="syft-probe-", dir=scratch)).resolve()
    probe_id = uuid.uuid4().hex[:12]
    user = job_user(probe_id)  # a uid of its own, as every job gets
    spec = TaskSpec(
        name=f"syft-probe-{probe_id}",
        image=resolve_image(client, runtime),
        command=("python3", "-c", PROBE_PROGRAM),
        environment=dict(DEFAULT_ENVIRONMENT),
        mounts=tuple(_job_layout(folder, user, capped=runner.runs_on_this_host)),
        workdir=WORKDIR,
        limits=chosen,
        user=user,
        labels={PROBE_LABEL: "isolation"},
        placement=(f"node.hostname=={node}",) if node else (),
    )
    try:
        return parse_report(_run(runner, spec, folder / "logs"))
    finally:
        with contextlib.suppress(Exception):
            runner.cleanup(spec.name)
        unmount_jobfs(folder / "fs.img", folder / "fs")
        shutil.rmtree(folder, ignore_errors=True)


def _job_layout(folder: Path, user: tuple[int, int], *, capped: bool) -> list[Mount]:
    # The same shape the executor mounts (workspace.staging): the staged job read-only, its
    # outputs writable inside it, both on their own filesystem when the runner can make one.
    folder.chmod(0o755)
    if capped:
        defaults = RunnerConfig()
        mount_jobfs(folder / "fs.img", folder / "fs", defaults.output_max_total_bytes, 1000)
    job = folder / "fs" / "job"
    job.mkdir(parents=True, exist_ok=True)
    outputs = make_outputs(job / "outputs", user)
    (job / "run.sh").write_text("# the isolation probe runs instead\n")
    (job / "code" / "outputs").mkdir(parents=True)
    for path in (folder / "fs", job, job / "code"):
        path.chmod(0o755)
    return [
        Mount(source=job, target=JOB_DIR, read_only=True),
        Mount(source=outputs, target=OUTPUTS_DIR, read_only=False),
        Mount(source=outputs, target=CODE_OUTPUTS_DIR, read_only=False),
    ]


def _run(backend: Backend, spec: TaskSpec, logs_dir: Path) -> str:
    logs = LogStreamer(logs_dir / "stdout.txt", logs_dir / "stderr.txt", PROBE_LOG_BYTES)
    backend.prepare(spec)
    backend.execute(spec.name, logs)
    timeout = spec.limits.timeout_seconds
    if not backend.wait(spec.name, timeout):
        logs.close()
        raise ProbeError(f"the probe did not finish within {timeout} s")
    if backend.get_status(spec.name).state is TaskState.LOST:
        logs.close()
        raise ProbeError(f"the probe's node was lost: {backend.get_status(spec.name).detail}")
    result = backend.finalize(spec.name)
    logs.join(PROBE_LOG_DRAIN_SECONDS)
    stdout = (logs_dir / "stdout.txt").read_text(encoding="utf-8", errors="replace")
    if result.exit_code != 0:
        stderr = (logs_dir / "stderr.txt").read_text(encoding="utf-8", errors="replace")
        raise ProbeError(f"the probe exited {result.exit_code}: {stderr[-800:]}")
    return stdout


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
