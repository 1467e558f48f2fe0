"""The isolation probe: what a job can and cannot do from inside the sandbox, observed, not assumed.

The in-container program is `probe_program.py` in this package, a stdlib-only python3 program
linted and type-checked with the rest; `probe_source()` reads its text, which the job container
runs as `python3 -c <text>`. Run inside a job container it tries each thing a hostile job would
try (write the image, open a network socket, find the Docker socket, make a device, leave its
namespaces, ...) and prints one JSON object per line: `check` lines say whether an attempt was
ALLOWED or BLOCKED, `fact` lines record what it saw (uid, capabilities, seccomp mode, interfaces,
mounts, limits). A table follows for people reading the raw output.

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

PROBE_PROGRAM_FILE = Path(__file__).with_name("probe_program.py")


def probe_source() -> str:
    """The in-container program's source (probe_program.py), as sent to `python3 -c`."""
    return PROBE_PROGRAM_FILE.read_text(encoding="utf-8")


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
        command=("python3", "-c", probe_source()),
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
