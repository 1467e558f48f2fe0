"""`syft-runner doctor`: is this machine able to run jobs safely? A pass/fail list, exit 0 or 1.

Beyond "is the engine there", it runs the isolation probe (diagnostics.probe) in one real job
container and lists each of its checks (a profile that loads is not proof that it is enforced);
`--probe` also prints the probe's full report.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import docker
import typer
from pydantic import BaseModel
from rich.console import Console

from syft_core.errors import SyftError
from syft_runner.config import RunnerConfig, load_runner_config
from syft_runner.diagnostics.probe import ProbeReport, run_probe
from syft_runner.executor.backends import make_backend
from syft_runner.sandbox.engine import connect, engine_info
from syft_runner.sandbox.images import IMAGES_DIR, resolve_image, runtime_names
from syft_runner.sandbox.seccomp import PROFILE_PATH, load_profile
from syft_runner.workspace.jobfs import supported


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


def isolation_checks(report: ProbeReport) -> list[Check]:
    """One pass/fail line per isolation check of the probe (diagnostics.probe), judged against
    what a hardened job container gives; a check the probe did not report fails."""
    checks = [
        Check(
            name=f"{c.name}: {_expectation(c.expected)}",
            ok=c.ok,
            # The name says what a hardened container does; the detail says what happened only
            # when it differs ("blocked: BLOCKED: ..." said it twice).
            detail=c.detail if c.ok else f"{c.verdict} (UNEXPECTED): {c.detail}",
        )
        for c in report.checks
    ]
    checks += [
        Check(name=name, ok=False, detail="not reported by the probe") for name in report.missing()
    ]
    return checks


def _expectation(expected: bool | None) -> str:
    return "not judged" if expected is None else "allowed" if expected else "blocked"


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
    checks += _image_checks(client)
    checks.append(_profile_check())
    checks.append(jobfs_check())
    return checks


def jobfs_check() -> Check:
    """Whether this user can give each job its own filesystem: capped in size, and noexec so
    that nothing a job writes into its outputs can be executed."""
    if supported():
        return Check(
            name="per-job filesystems",
            ok=True,
            detail="root and mkfs.ext4: each job's folder is a capped ext4, noexec,nosuid,nodev",
        )
    return Check(
        name="per-job filesystems",
        ok=False,
        detail="unavailable (needs root and mkfs.ext4): job outputs are plain host folders, "
        "bounded on disk only by min_free_disk_mb and executable by the job unless state_dir is "
        "on a filesystem mounted noexec,nosuid,nodev",
    )


def _blocked(name: str, ok: bool, what: str) -> Check:
    return Check(name=name, ok=ok, detail=f"{what} fails" if ok else f"{what} SUCCEEDS")


def _image_checks(client: docker.DockerClient) -> list[Check]:
    """Where the image definitions are (inside the installed package, or the source tree), then
    one check per runtime image."""
    try:
        names = runtime_names(IMAGES_DIR)
    except SyftError as exc:
        return [Check(name="image definitions", ok=False, detail=str(exc))]
    found = Check(
        name="image definitions",
        ok=bool(names),
        detail=f"{IMAGES_DIR}: {', '.join(names) or 'no */Dockerfile'}",
    )
    return [found, *(_image_check(client, name) for name in names)]


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
        name="seccomp profile loads",
        ok=True,
        detail=f"{allowed} syscalls allowed, deny by default ({PROFILE_PATH})",
    )


def _probe(client: docker.DockerClient) -> ProbeReport | Check:
    try:
        return run_probe(client)
    except (SyftError, docker.errors.DockerException, OSError) as exc:
        return Check(name="isolation probe container", ok=False, detail=str(exc))


# What a task on a Swarm worker may show differently from a local job container, by design: not
# judged there, and the detail says why (docs/scale-out.md). Everything else must hold exactly as
# locally: a node whose daemon lacks the project's seccomp profile or no-new-privileges fails.
SWARM_NOT_JUDGED: dict[str, str] = {
    "network interface besides lo": "the job's own internal overlay network: no route out, "
    "and seccomp refuses AF_INET",
    "see host block devices or filesystem counters": "a service cannot mask paths (no "
    "MaskedPaths in the Swarm API): counters, not data",
    "read a loop device's backing file": "a service cannot mask paths: keep the runner (its "
    "per-job loop filesystems) off the workers",
    "host paths visible in mountinfo": "binds of the shared storage show the runner's staging "
    "paths (datasets appear under their public names only)",
    "swap beyond the memory limit": "a service cannot set memory-swap: run workers without swap",
}


def swarm_node_checks(config: RunnerConfig, client: docker.DockerClient) -> list[Check]:
    """The isolation probe as a task on every worker of `config`'s swarm, each check named
    `<node>: ...`; its folder is in the runner's state folder, which every node must mount."""
    assert config.swarm is not None
    backend = make_backend(config, client)
    scratch = Path(config.state_dir or tempfile.gettempdir()) / "probe"
    scratch.mkdir(parents=True, exist_ok=True)
    checks: list[Check] = []
    for node in sorted(config.swarm.workers):
        try:
            report = run_probe(client, backend=backend, node=node, scratch=scratch)
        except (SyftError, docker.errors.DockerException, OSError) as exc:
            checks.append(Check(name=f"{node}: isolation probe task", ok=False, detail=str(exc)))
            continue
        for check in report.checks:
            if check.name in SWARM_NOT_JUDGED:
                check.expected = None
                check.detail = (
                    f"{check.verdict}, not judged on Swarm: {SWARM_NOT_JUDGED[check.name]}"
                )
        checks += [
            check.model_copy(update={"name": f"{node}: {check.name}"})
            for check in isolation_checks(report)
        ]
    return checks


def _render(console: Console, checks: list[Check]) -> None:
    for check in checks:
        mark = "[green]PASS[/green]" if check.ok else "[red]FAIL[/red]"
        console.print(f"{mark} {check.name}: ", end="")
        console.print(check.detail, markup=False, highlight=False, emoji=False, soft_wrap=True)


def doctor(
    probe: Annotated[
        bool, typer.Option("--probe", help="Also print the isolation probe's full report.")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="The runner's runner.yaml: with `backend: swarm`, the probe also runs as a task "
            "on every worker.",
        ),
    ] = None,
) -> None:
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
        report = _probe(client)
        checks += [report] if isinstance(report, Check) else isolation_checks(report)
        settings = load_runner_config(config) if config else None
        if settings is not None and settings.backend == "swarm":
            checks += swarm_node_checks(settings, client)
    except SyftError as exc:
        checks.append(Check(name="runner config", ok=False, detail=str(exc)))
    finally:
        client.close()
    _render(console, checks)
    if probe and isinstance(report, ProbeReport):
        console.print(report.table(), markup=False, highlight=False, emoji=False)
    failed = [c for c in checks if not c.ok]
    summary = f"{len(checks) - len(failed)}/{len(checks)} checks passed"
    console.print(f"[red]{summary}[/red]" if failed else f"[green]{summary}[/green]")
    raise typer.Exit(1 if failed else 0)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
