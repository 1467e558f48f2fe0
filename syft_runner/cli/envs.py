"""`syft-runner envs list|prune|fetch`: the runner's cache of job environments (sandbox.envs).

`fetch JOB|LOCKFILE --dest DIR` downloads every wheel a lock pins (checked against its sha256)
into a folder: carried to an air-gapped runner, that folder is its `find_links` wheelhouse (with
`no_index: true`, builds then get no network at all).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from syft_core.dependencies import PackageIndex
from syft_core.errors import SyftError
from syft_core.jobs.lock import LOCK_RELPATH, EnvLock, parse_lock
from syft_runner.cli.datasite import EmailOption, SyftboxOption, fail, reported_failures, visible
from syft_runner.cli.jobs import find_job
from syft_runner.config import MiB, RunnerConfig, default_config_path, load_runner_config
from syft_runner.executor.job import queued_lock_digests
from syft_runner.sandbox.engine import EngineUnavailableError, connect
from syft_runner.sandbox.envs import LABEL_ENV, EnvCache, EnvSettings, Protected, fetch_wheels
from syft_runner.workspace.staging import RUNNER_STATE_DIR

envs_app = typer.Typer(
    help="Job environments: list the cache, prune it, fetch wheels for air-gapped runners.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Runner config (default <syftbox>/<email>/.syft/runner.yaml)."),
]


def _settings(syftbox: Path, email: str, config: Path | None) -> tuple[RunnerConfig, EnvCache]:
    with reported_failures():
        settings = load_runner_config(config or default_config_path(syftbox, email))
        state_dir = settings.state_dir or Path(syftbox) / RUNNER_STATE_DIR
        return settings, EnvCache(EnvSettings.from_config(settings, state_dir))


def _mb(size: int) -> str:
    return f"{size / MiB:.1f} MiB"


@envs_app.command("list")
def list_envs(syftbox: SyftboxOption, email: EmailOption, config: ConfigOption = None) -> None:
    """Every cached environment: packages, size on disk, image, when built and last used."""
    settings, cache = _settings(syftbox, email, config)
    table = Table("key", "packages", "size", "image", "built", "last used")
    entries = cache.entries()
    for entry in entries:
        m = entry.manifest
        used = datetime.fromtimestamp(entry.last_used, UTC).isoformat(timespec="seconds")
        if m is None:
            table.add_row(entry.key, "UNREADABLE manifest (pruned next)", "", "", "", used)
            continue
        packages = ", ".join(f"{p.name} {p.version}" for p in m.packages)
        table.add_row(
            entry.key,
            Text(visible(packages), overflow="fold"),
            _mb(m.bytes),
            m.image_id[7:19],
            m.built_at.isoformat(timespec="seconds"),
            used,
        )
    Console(highlight=False).print(table)
    total = sum(e.bytes for e in entries)
    typer.echo(
        f"{len(entries)} environment(s), {_mb(total)} of {_mb(settings.env_cache_max_mb * MiB)} "
        f"(env_cache_max_mb) in {cache.root}"
    )


@envs_app.command("prune")
def prune(
    syftbox: SyftboxOption,
    email: EmailOption,
    config: ConfigOption = None,
    all_unused: Annotated[
        bool, typer.Option("--all", help="Remove every environment no job needs now.")
    ] = False,
) -> None:
    """Evict least-recently-used environments down to env_cache_max_mb (or all unused ones with
    --all). Never one that an approved or running job needs, nor one a container mounts."""
    settings, cache = _settings(syftbox, email, config)
    keys: set[str] = set()
    try:
        client = connect()
        try:
            for c in client.containers.list(all=True, filters={"label": LABEL_ENV}):
                keys.add(str(c.labels.get(LABEL_ENV)))
        finally:
            client.close()
    except EngineUnavailableError as exc:
        fail(f"cannot tell which environments running jobs use: {exc}")
    protected = Protected(frozenset(keys), frozenset(queued_lock_digests(syftbox / email)))
    limit = 0 if all_unused else settings.env_cache_max_mb * MiB
    with reported_failures():
        removed = cache.evict(limit, protected, grace=60.0)
    for key in removed:
        typer.echo(f"removed {key}")
    typer.echo(f"{len(removed)} removed; {_mb(cache.total_bytes())} left in {cache.root}")


@envs_app.command("fetch")
def fetch(
    syftbox: SyftboxOption,
    email: EmailOption,
    source: Annotated[
        str, typer.Argument(metavar="JOB|LOCKFILE", help="A job of yours, or a lock file.")
    ],
    dest: Annotated[Path, typer.Option("--dest", help="The wheelhouse folder to fill.")],
    index_url: Annotated[
        str | None, typer.Option("--index-url", help="Download from this index (a mirror).")
    ] = None,
    find_links: Annotated[
        list[str] | None, typer.Option("--find-links", help="Also look here (repeat).")
    ] = None,
    no_index: Annotated[bool, typer.Option("--no-index", help="Only --find-links.")] = False,
) -> None:
    """Download the wheels a job's approved lock pins into DEST, each checked against its
    sha256: a wheelhouse to carry to an air-gapped runner (its find_links)."""
    lock = _lock_of(syftbox, email, source)
    index = PackageIndex(index_url, tuple(find_links or ()), no_index)
    with reported_failures():
        wheels = fetch_wheels(lock, dest, index)
    for wheel in wheels:
        typer.echo(f"  {wheel.name}")
    typer.echo(
        f"{len(wheels)} wheel(s) for {len(lock.pins)} locked package(s) in {dest}; on the "
        f"air-gapped runner: find_links: [{dest}] and no_index: true in its runner.yaml"
    )


def _lock_of(syftbox: Path, email: str, source: str) -> EnvLock:
    path = Path(source)
    try:
        if path.is_file():
            return parse_lock(path.read_text(encoding="utf-8"), str(path))
        job = find_job(syftbox, email, source)
        lock_file = job.location / LOCK_RELPATH
        if not lock_file.is_file():
            fail(f"{job.key} has no {LOCK_RELPATH}: it declares no dependencies")
        return parse_lock(lock_file.read_text(encoding="utf-8"), str(lock_file))
    except (SyftError, OSError, UnicodeDecodeError) as exc:
        fail(str(exc))


def register(app: typer.Typer) -> None:
    app.add_typer(envs_app, name="envs")
