"""`syft-runner doctor`: is this machine able to run jobs safely? A pass/fail list, exit 0 or 1.

Beyond "is the engine there", it starts one real job container under `container_kwargs` and
checks from inside that the isolation actually holds (a profile that loads is not proof that it
is enforced).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import docker
import typer
from pydantic import BaseModel
from rich.console import Console

from syft_core.errors import SyftError
from syft_runner.engine import connect, engine_info
from syft_runner.images import resolve_image, runtime_names
from syft_runner.sandbox import DEFAULT_ENVIRONMENT, WORKDIR, Limits, container_kwargs
from syft_runner.seccomp import load_profile

PROBE_RUNTIME = "python"
PROBE_TIMEOUT_SECONDS = 60
DOCTOR_LABEL = "org.syft.doctor"

# Runs inside the job container as the job would; prints one JSON object of observations.
PROBE_SCRIPT = r"""
import ctypes, json, os, socket, subprocess

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()

def socket_ok(family):
    try:
        socket.socket(family, socket.SOCK_STREAM).close()
        return True
    except OSError:
        return False

def root_writable():
    try:
        open("/doctor-probe", "w").close()
        return True
    except OSError:
        return False

libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
print(json.dumps({
    "uid": os.getuid(),
    "interfaces": sorted(os.listdir("/sys/class/net")),
    "root_writable": root_writable(),
    "cap_eff": status("CapEff"),
    "no_new_privs": status("NoNewPrivs"),
    "seccomp": status("Seccomp"),
    "unshare_rc": subprocess.run(["unshare", "-U", "true"], capture_output=True).returncode,
    "af_inet": socket_ok(socket.AF_INET),
    "af_unix": socket_ok(socket.AF_UNIX),
    "io_uring": libc.syscall(425, 1, params) >= 0,
}))
"""


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


def isolation_checks(probe: dict[str, Any]) -> list[Check]:
    """Judge the probe's observations from inside a job container."""
    caps = str(probe.get("cap_eff"))
    return [
        Check(name="runs as non-root", ok=probe.get("uid") != 0, detail=f"uid {probe.get('uid')}"),
        Check(
            name="no network but loopback",
            ok=probe.get("interfaces") == ["lo"],
            detail=f"interfaces: {', '.join(probe.get('interfaces') or []) or 'none'}",
        ),
        Check(
            name="read-only root filesystem",
            ok=probe.get("root_writable") is False,
            detail="writing / fails" if probe.get("root_writable") is False else "/ is writable",
        ),
        Check(name="no capabilities", ok=caps.strip("0") == "", detail=f"CapEff {caps}"),
        Check(
            name="no new privileges",
            ok=probe.get("no_new_privs") == "1",
            detail=f"NoNewPrivs {probe.get('no_new_privs')}",
        ),
        Check(
            name="seccomp filter active",
            ok=probe.get("seccomp") == "2",
            detail=f"Seccomp {probe.get('seccomp')} (2 = filter)",
        ),
        _blocked("unshare -U blocked", probe.get("unshare_rc") != 0, "`unshare -U true`"),
        _blocked("AF_INET socket blocked", probe.get("af_inet") is False, "socket(AF_INET)"),
        _blocked("io_uring blocked", probe.get("io_uring") is False, "io_uring_setup"),
        Check(
            name="AF_UNIX socket allowed",
            ok=probe.get("af_unix") is True,
            detail="socket(AF_UNIX) works" if probe.get("af_unix") else "socket(AF_UNIX) fails",
        ),
    ]


def run_probe(client: docker.DockerClient, image_id: str) -> dict[str, Any]:
    """Run PROBE_SCRIPT in a job container exactly as the executor would start one."""
    kwargs = container_kwargs(
        image=image_id,
        name=f"syft-doctor-{uuid.uuid4().hex[:12]}",
        labels={DOCTOR_LABEL: "probe"},
        command=["python3", "-c", PROBE_SCRIPT],
        environment=dict(DEFAULT_ENVIRONMENT),
        mounts=[],
        workdir=WORKDIR,
        limits=Limits(timeout_seconds=PROBE_TIMEOUT_SECONDS),
    )
    container = client.containers.create(**kwargs)
    try:
        container.start()
        result = container.wait(timeout=PROBE_TIMEOUT_SECONDS)
        stdout = container.logs(stdout=True, stderr=False).decode(errors="replace")
        if result.get("StatusCode") != 0:
            stderr = container.logs(stdout=False, stderr=True).decode(errors="replace")
            raise SyftError(f"probe container exited {result.get('StatusCode')}: {stderr[-500:]}")
        probe: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
        return probe
    finally:
        container.remove(force=True)


def collect_checks(client: docker.DockerClient) -> list[Check]:
    """Every check after the engine answered."""
    info = engine_info(client)
    checks = [
        Check(
            name="engine reachable",
            ok=True,
            detail=f"Docker {info.version} (API {info.api_version}), runtimes "
            f"{', '.join(info.runtimes)}, storage {info.storage_driver}",
        ),
        Check(
            name="cgroup version",
            ok=info.cgroup_version in {"1", "2"},
            detail=f"cgroup v{info.cgroup_version} ({info.cgroup_driver} driver)",
        ),
    ]
    checks += [_image_check(client, name) for name in runtime_names()]
    checks.append(_profile_check())
    return checks + _isolation(client)


def _blocked(name: str, ok: bool, what: str) -> Check:
    return Check(name=name, ok=ok, detail=f"{what} fails" if ok else f"{what} SUCCEEDS")


def _image_check(client: docker.DockerClient, name: str) -> Check:
    try:
        image_id = resolve_image(client, name)
    except SyftError as exc:
        return Check(name=f"image {name}", ok=False, detail=str(exc))
    return Check(name=f"image {name}", ok=True, detail=image_id[7:19])


def _profile_check() -> Check:
    try:
        profile = json.loads(load_profile())
    except SyftError as exc:
        return Check(name="seccomp profile loads", ok=False, detail=str(exc))
    allowed = sum(len(r["names"]) for r in profile["syscalls"] if r["action"] == "SCMP_ACT_ALLOW")
    return Check(
        name="seccomp profile loads", ok=True, detail=f"{allowed} syscalls allowed, deny by default"
    )


def _isolation(client: docker.DockerClient) -> list[Check]:
    try:
        probe = run_probe(client, resolve_image(client, PROBE_RUNTIME))
    except (SyftError, docker.errors.DockerException, ValueError) as exc:
        return [Check(name="isolation probe container", ok=False, detail=str(exc))]
    return isolation_checks(probe)


def _render(console: Console, checks: list[Check]) -> None:
    for check in checks:
        mark = "[green]PASS[/green]" if check.ok else "[red]FAIL[/red]"
        console.print(f"{mark} {check.name}: ", end="")
        console.print(check.detail, markup=False, highlight=False, emoji=False, soft_wrap=True)


def doctor() -> None:
    """Check the engine, the images, the seccomp profile and, inside a real job container, that
    the isolation holds. Exit code 0 only if everything passes."""
    console = Console()
    try:
        client = connect()
    except SyftError as exc:
        _render(console, [Check(name="engine reachable", ok=False, detail=str(exc))])
        raise typer.Exit(1) from exc
    try:
        checks = collect_checks(client)
    finally:
        client.close()
    _render(console, checks)
    failed = [c for c in checks if not c.ok]
    summary = f"{len(checks) - len(failed)}/{len(checks)} checks passed"
    console.print(f"[red]{summary}[/red]" if failed else f"[green]{summary}[/green]")
    raise typer.Exit(1 if failed else 0)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
