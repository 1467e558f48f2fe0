"""Job environments: a venv built from a job's approved lock, once per (lock, image), cached.

A job that declares dependencies carries `code/requirements.lock` (syft_core.jobs.lock), which the
owner approved with the rest of the job. The runner turns it into a Python environment in a step
of its own, before and apart from the job:

- **Build** in a container of the job's own image (so `bin/python` is the image's
  `/usr/bin/python3`, same path, same ABI), as an unprivileged uid, every capability dropped,
  no-new-privileges, read-only root, the engine's default seccomp profile (the job profile forbids
  the network sockets a build needs; a build runs only uv and the image's python). It gets the
  package index over the network (or no network at all when the runner uses only local wheelhouses:
  `no_index` + folder `find_links`) and exactly these mounts: the empty output folder (read-write,
  at `/opt/syft-env`, where jobs will see it), the build inputs (read-only: the lock as plain pins
  and hashes, the CA bundle), the uv binary (read-only) and the owner's wheelhouse folders
  (read-only). No data, no job code, no secret. `uv venv --relocatable` then `uv pip install
  --require-hashes --no-build`: wheels only, so no package code runs at install time, and every
  file must match the sha256 the owner approved ("Hash mismatch" is an integrity failure: nothing
  runs). Bytecode is compiled after, by `python -I -S -m compileall`: without the site, so no
  package's `.pth` file runs either (uv's `--compile-bytecode` ran them, on the network).
- **Publish** atomically: the build folder is checked (the installed distributions are exactly
  the locked ones), given a manifest, made read-only and renamed into `<cache>/<key>/`.
- **Run**: the runner checks the manifest against the approved lock and the job's image, then
  mounts `<cache>/<key>/env` read-only at `/opt/syft-env` with `PATH`/`VIRTUAL_ENV` set. The job
  keeps network none. The venv has no system site packages and nothing is put on PYTHONPATH: it
  never mixes with Debian's dist-packages.

Cache layout (`env_cache_dir`, default `<state_dir>/envs`):

    <key>/env/            the venv (mounted at /opt/syft-env)
    <key>/manifest.json   EnvManifest: lock digest, image, packages, size, how it was built
    <key>/build.log       uv's output
    <key>/last-used       its mtime is the LRU clock
    .building/<key>.<random>/   builds in progress (removed if the build fails)
    .locks/<key>          flock: one build of a key at a time, across processes

The key is sha256 of the lock's digest (names, versions, wheel hashes, target) and the image id.
Eviction removes least-recently-used entries while the cache is above `env_cache_max_mb`, never
one that a queued or running job needs (passed in as `Protected`), nor one used in the last
EVICT_GRACE_SECONDS (a job between its cache lookup and its container's creation).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import requests
from docker.types import LogConfig
from docker.types import Mount as DockerMount
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, ValidationError

from syft_core.dependencies import PackageIndex, uv_binary
from syft_core.errors import SyftError
from syft_core.jobs.lock import TARGET, TARGET_PLATFORM, TARGET_PYTHON, EnvLock
from syft_runner.config import MiB, RunnerConfig
from syft_runner.executor.labels import LABEL_RUNNER
from syft_runner.sandbox.container import ENV_DIR, job_user
from syft_runner.workspace.staging import RUNNER_STATE_DIR

log = logging.getLogger(__name__)

ENV_FORMAT = "1"  # bump when the build recipe changes: every key changes with it
ENV_SUBDIR = "env"
MANIFEST = "manifest.json"
BUILD_LOG = "build.log"
LAST_USED = "last-used"
BUILDING = ".building"
LOCKS = ".locks"
TRASH = ".trash"
LABEL_ENV = "org.syft.env"  # on a job container: the key of the environment it mounts
LABEL_ENV_BUILD = "org.syft.env-build"  # on a build container: the key it builds
BUILD_INPUTS = "/opt/syft-build"  # in the build container: requirements.txt, ca.pem
BUILD_UV = "/usr/local/bin/uv"
BUILD_WHEELS = "/opt/syft-wheels"  # in the build container: the owner's wheelhouse folders
IMAGE_PYTHON = "/usr/bin/python3"
BUILD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EVICT_GRACE_SECONDS = 600
BUILD_LOG_TAIL = 64 * 1024  # of the installer's output copied to a failed job's stderr
DEFAULT_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
# `sh -c SCRIPT sh ARGS...`: the index arguments arrive as "$@", never spliced into the script.
_BUILD_SCRIPT = (
    "set -e; "
    f"if [ ! -x {IMAGE_PYTHON} ]; then "
    f"echo 'error: the job image has no {IMAGE_PYTHON}; environments need a Python image' >&2; "
    "exit 3; fi; "
    f"uv venv --no-config --quiet --relocatable --python {IMAGE_PYTHON} {ENV_DIR}; "
    f"uv pip install --no-config --python {ENV_DIR}/bin/python --require-hashes --no-build "
    f'--link-mode copy "$@" -r {BUILD_INPUTS}/requirements.txt; '
    # Bytecode by the stdlib's compiler, with `-I -S`: no site, so no `.pth` file of a package
    # runs. (uv's --compile-bytecode starts the new environment's Python with its site: a
    # wheel's .pth then ran the submitter's code here, on the network.) Compiling runs nothing;
    # a file that does not compile runs uncompiled, as it would fail the same way without this.
    f"{ENV_DIR}/bin/python -I -S -m compileall -q -j 0 {ENV_DIR}/lib >/dev/null 2>&1 || "
    "echo 'note: some files were left without bytecode (they do not compile)' >&2"
)


class EnvError(SyftError):
    """An environment could not be made ready; `log` is the installer's output, for the job's
    stderr (it names packages only: a build sees no data)."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


class EnvBuildError(EnvError):
    """The build failed (no such wheel on this index, no network, timeout, ...)."""


class EnvIntegrityError(EnvError):
    """A package file did not match the sha256 the approved lock pins: nothing was installed."""


class ManifestPackage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    hashes: list[str]


class BuildMount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    target: str
    read_only: bool


class BuildRecord(BaseModel):
    """How the environment was built, read back from the engine (inspect), not assumed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    container: str
    image_id: str
    network_mode: str
    mounts: list[BuildMount]
    user: str
    index: list[str]
    seconds: float


class EnvManifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str = ENV_FORMAT
    key: str
    lock_digest: str
    target: str
    image_id: str
    python: str
    packages: list[ManifestPackage]
    bytes: int
    files: int
    built_at: datetime
    build: BuildRecord


@dataclass(frozen=True)
class Protected:
    """Environments eviction must keep: by key (containers that mount them) or by lock digest
    (queued or running jobs, whatever image they end up with)."""

    keys: frozenset[str] = frozenset()
    lock_digests: frozenset[str] = frozenset()

    def covers(self, key: str, manifest: EnvManifest | None) -> bool:
        return key in self.keys or (
            manifest is not None and manifest.lock_digest in self.lock_digests
        )


@dataclass(frozen=True)
class ReadyEnv:
    key: str
    path: Path  # the venv: mount it read-only at ENV_DIR
    manifest: EnvManifest
    built: bool  # False: it was in the cache


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path
    manifest: EnvManifest | None  # None: unreadable (removed by the next prune)
    last_used: float

    @property
    def bytes(self) -> int:
        return self.manifest.bytes if self.manifest is not None else 0


@dataclass(frozen=True)
class EnvSettings:
    cache_dir: Path
    max_bytes: int
    index: PackageIndex = field(default_factory=PackageIndex)
    ca_bundle: Path | None = None
    build_timeout_seconds: int = 1800
    build_memory_mb: int = 4096
    runner_id: str = "syft-runner"
    # More labels of the build containers: whose builds they are (the executor's syftbox and
    # owner), so a runner cleaning up its leftovers never removes another runner's build.
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_config(cls, config: RunnerConfig, state_dir: Path) -> EnvSettings:
        return cls(
            cache_dir=Path(config.env_cache_dir or Path(state_dir) / "envs"),
            max_bytes=config.env_cache_max_mb * MiB,
            index=PackageIndex(config.index_url, tuple(config.find_links), config.no_index),
            ca_bundle=config.ca_bundle or default_ca_bundle(),
            build_timeout_seconds=config.env_build_timeout_seconds,
            build_memory_mb=config.env_build_memory_mb,
            runner_id=config.runner_id,
        )

    @property
    def needs_network(self) -> bool:
        """Whether a build must reach anything: not when only local wheelhouses are used."""
        remote = [link for link in self.index.find_links if "://" in link]
        return not self.index.no_index or bool(remote)


def mounted_env_keys(client: docker.DockerClient) -> set[str]:
    """The environments mounted by any job container on this engine (any runner's)."""
    found = client.containers.list(all=True, ignore_removed=True, filters={"label": LABEL_ENV})
    return {str(c.labels.get(LABEL_ENV)) for c in found}


def remove_build_leftovers(client: docker.DockerClient, labels: list[str]) -> int:
    """Remove the build containers carrying every one of `labels` (`key=value`), left by a
    runner that died mid-build; returns how many."""
    leftovers = client.containers.list(all=True, ignore_removed=True, filters={"label": labels})
    for container in leftovers:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    return len(leftovers)


def cache_dir_of(config: RunnerConfig, syftbox: Path) -> Path:
    """The environment cache of a runner serving `syftbox` with `config`."""
    if config.env_cache_dir is not None:
        return Path(config.env_cache_dir)
    return Path(config.state_dir or Path(syftbox) / RUNNER_STATE_DIR) / "envs"


def default_ca_bundle() -> Path | None:
    for candidate in (os.environ.get("SSL_CERT_FILE"), *DEFAULT_CA_BUNDLES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def env_key(lock: EnvLock, image_id: str) -> str:
    digest = _sha256(f"syft-env {ENV_FORMAT}\0{lock.digest}\0{image_id}")
    return digest[:32]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class EnvCache:
    """The runner's cache of built environments (see the module doc). Thread- and
    process-safe: builds of one key are serialised by a file lock."""

    def __init__(self, settings: EnvSettings) -> None:
        self.settings = settings
        self.root = Path(settings.cache_dir).absolute()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root = self.root.resolve()  # mount sources must be resolved paths
        for sub in (BUILDING, LOCKS, TRASH):
            (self.root / sub).mkdir(mode=0o700, exist_ok=True)

    # -- lookup -------------------------------------------------------------------------------
    def lookup(self, lock: EnvLock, image_id: str, *, touch: bool = True) -> ReadyEnv | None:
        """The cached environment of (lock, image), checked against the lock: its manifest must
        name exactly the locked packages and hashes and this image, and its venv must hold
        exactly those distributions. None when absent; a mismatching entry is removed."""
        key = env_key(lock, image_id)
        entry = self.root / key
        manifest = _read_manifest(entry)
        if manifest is None:
            if entry.exists():
                log.warning("environment without a readable manifest; removing", extra={"env": key})
                self._discard(entry)
            return None
        problem = manifest_problem(manifest, key, lock, image_id) or installed_problem(
            entry / ENV_SUBDIR, lock
        )
        if problem is not None:
            log.warning(
                "cached environment does not match its lock; removing",
                extra={"env": key, "problem": problem},
            )
            self._discard(entry)
            return None
        if touch:
            _touch(entry / LAST_USED)
        return ReadyEnv(key, entry / ENV_SUBDIR, manifest, built=False)

    def ensure(
        self,
        client: docker.DockerClient,
        lock: EnvLock,
        image_id: str,
        protect: Callable[[], Protected] | None = None,
    ) -> ReadyEnv:
        """The environment of (lock, image): from the cache, or built and published now (then
        the cache is trimmed to its cap, keeping what `protect` names). EnvIntegrityError,
        EnvBuildError."""
        if lock.target != TARGET:
            raise EnvBuildError(
                f"the lock was resolved for {lock.target or 'no target'}, and this runner's "
                f"images are {TARGET}: resubmit the job with a current client"
            )
        ready = self.lookup(lock, image_id)
        if ready is not None:
            return ready
        key = env_key(lock, image_id)
        with self._key_lock(key):
            ready = self.lookup(lock, image_id)  # built by someone else while we waited
            if ready is not None:
                return ready
            self._remove_stale_builds(key)
            ready = self._build(client, lock, image_id, key)
        try:
            self.evict(self.settings.max_bytes, protect() if protect else Protected())
        except (OSError, SyftError, docker.errors.APIError) as exc:
            log.warning("environment cache eviction failed", extra={"error": str(exc)})
        return ready

    def find(self, lock_digest: str) -> list[CacheEntry]:
        """Cached environments of a lock, for any image."""
        return [
            e
            for e in self.entries()
            if e.manifest is not None and e.manifest.lock_digest == lock_digest
        ]

    def entries(self) -> list[CacheEntry]:
        found = []
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(".") or not path.is_dir():
                continue
            found.append(CacheEntry(path.name, path, _read_manifest(path), entry_last_used(path)))
        return found

    def total_bytes(self) -> int:
        return sum(e.bytes for e in self.entries())

    # -- eviction -----------------------------------------------------------------------------
    def evict(
        self, max_bytes: int, protected: Protected, *, grace: float = EVICT_GRACE_SECONDS
    ) -> list[str]:
        """Remove least-recently-used environments until the cache holds at most `max_bytes`,
        skipping protected ones and those used within `grace` seconds; unreadable entries go
        first. Returns the removed keys."""
        entries = sorted(self.entries(), key=lambda e: (e.manifest is not None, e.last_used))
        total = sum(e.bytes for e in entries)
        removed = []
        now = time.time()
        for entry in entries:
            if entry.manifest is not None and total <= max_bytes:
                break
            if protected.covers(entry.key, entry.manifest) or now - entry.last_used < grace:
                continue
            with self._key_lock(entry.key, blocking=False) as locked:
                if not locked:
                    continue  # being built or checked right now
                self._discard(entry.path)
            total -= entry.bytes
            removed.append(entry.key)
            log.info("evicted environment", extra={"env": entry.key, "bytes": entry.bytes})
        self._empty_trash()
        return removed

    def remove(self, key: str) -> None:
        with self._key_lock(key):
            self._discard(self.root / key)
        self._empty_trash()

    # -- build --------------------------------------------------------------------------------
    def _build(
        self, client: docker.DockerClient, lock: EnvLock, image_id: str, key: str
    ) -> ReadyEnv:
        token = secrets.token_hex(4)
        work = self.root / BUILDING / f"{key}.{token}"
        try:
            manifest = self._build_in(client, lock, image_id, key, work, token)
            _seal(work)
            os.rename(work, self.root / key)  # publish: all or nothing
        except BaseException:
            self._discard(work)
            raise
        _touch(self.root / key / LAST_USED)
        log.info(
            "environment built",
            extra={"env": key, "bytes": manifest.bytes, "seconds": manifest.build.seconds},
        )
        return ReadyEnv(key, self.root / key / ENV_SUBDIR, manifest, built=True)

    def _build_in(
        self,
        client: docker.DockerClient,
        lock: EnvLock,
        image_id: str,
        key: str,
        work: Path,
        token: str,
    ) -> EnvManifest:
        env_dir = work / ENV_SUBDIR
        inputs = work / "in"
        for folder in (work, env_dir, inputs):
            folder.mkdir(mode=0o755)
            folder.chmod(0o755)
        # A root runner builds as a uid of the job range that owns nothing; a non-root runner
        # (which cannot give files away, nor delete another uid's) as itself.
        uid, gid = job_user(key) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
        if os.geteuid() == 0:
            os.chown(env_dir, uid, gid)
        (inputs / "requirements.txt").write_text(lock.requirements_txt())
        mounts = [
            _bind(env_dir, ENV_DIR, read_only=False),
            _bind(inputs, BUILD_INPUTS, read_only=True),
            _bind(Path(uv_binary()).resolve(), BUILD_UV, read_only=True),
        ]
        environment = {
            "HOME": "/tmp",
            "PATH": BUILD_PATH,
            "LANG": "C.UTF-8",
            "UV_CACHE_DIR": "/tmp/uv-cache",
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_NO_PROGRESS": "1",
        }
        ca = self.settings.ca_bundle
        if ca is not None and self.settings.needs_network:
            shutil.copyfile(ca, inputs / "ca.pem")
            (inputs / "ca.pem").chmod(0o644)
            environment["SSL_CERT_FILE"] = f"{BUILD_INPUTS}/ca.pem"
        index_args, wheel_mounts = self._index_args()
        mounts += wheel_mounts
        for path in inputs.iterdir():
            path.chmod(0o644)
        name = f"syft-envbuild-{key[:16]}-{token}"
        network = "bridge" if self.settings.needs_network else "none"
        memory = self.settings.build_memory_mb * MiB
        started = time.monotonic()
        container = client.containers.create(
            image=image_id,
            name=name,
            command=["/bin/sh", "-c", _BUILD_SCRIPT, "sh", *index_args],
            labels={
                **dict(self.settings.labels),
                LABEL_ENV_BUILD: key,
                LABEL_RUNNER: self.settings.runner_id,
            },
            environment=environment,
            user=f"{uid}:{gid}",
            working_dir="/tmp",
            detach=True,
            network_mode=network,
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={self.settings.build_memory_mb}m"},
            cap_drop=["ALL"],
            # The engine's default seccomp profile: the job profile allows no AF_INET socket,
            # and a build must reach the index; it runs uv and the image's python only.
            security_opt=["no-new-privileges:true"],
            privileged=False,
            ipc_mode="private",
            init=True,
            pids_limit=512,
            mem_limit=memory,
            memswap_limit=memory,
            mounts=mounts,
            log_config=LogConfig(
                type=LogConfig.types.JSON, config={"max-size": "10m", "max-file": "1"}
            ),
        )
        try:
            record = _build_record(container, index_args)
            container.start()
            exit_code = self._wait(container)
            output = container.logs(stdout=True, stderr=True).decode("utf-8", errors="replace")
        finally:
            with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
                container.remove(force=True)
        seconds = round(time.monotonic() - started, 3)
        (work / BUILD_LOG).write_text(output)
        if exit_code is None:
            raise EnvBuildError(
                f"building the environment took longer than "
                f"{self.settings.build_timeout_seconds} s (env_build_timeout_seconds)",
                output,
            )
        if exit_code != 0:
            raise _build_failure(output, exit_code)
        problem = installed_problem(env_dir, lock)
        if problem is not None:
            raise EnvBuildError(f"the built environment is not the lock: {problem}", output)
        size, files = _disk_usage(env_dir)
        manifest = EnvManifest(
            key=key,
            lock_digest=lock.digest,
            target=lock.target,
            image_id=image_id,
            python=_venv_python(env_dir),
            packages=[
                ManifestPackage(name=p.name, version=p.version, hashes=list(p.hashes))
                for p in lock.pins
            ],
            bytes=size,
            files=files,
            built_at=datetime.now(UTC),
            build=record.model_copy(update={"seconds": seconds}),
        )
        (work / MANIFEST).write_text(manifest.model_dump_json(indent=2))
        shutil.rmtree(inputs)
        return manifest

    def _index_args(self) -> tuple[list[str], list[DockerMount]]:
        index = self.settings.index
        args: list[str] = []
        mounts: list[DockerMount] = []
        if index.index_url:
            args += ["--index-url", index.index_url]
        for i, link in enumerate(index.find_links):
            if "://" in link:
                args += ["--find-links", link]
                continue
            target = f"{BUILD_WHEELS}/{i}"
            mounts.append(_bind(Path(link).resolve(), target, read_only=True))
            args += ["--find-links", target]
        if index.no_index:
            args.append("--no-index")
        return args, mounts

    def _wait(self, container: Any) -> int | None:
        """The exit code, or None after killing a build that ran past the timeout."""
        try:
            result = container.wait(timeout=self.settings.build_timeout_seconds)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            with contextlib.suppress(docker.errors.APIError):
                container.kill()
            return None
        return int(result.get("StatusCode", -1))

    # -- housekeeping -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _key_lock(self, key: str, *, blocking: bool = True) -> Iterator[bool]:
        path = self.root / LOCKS / key
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _remove_stale_builds(self, key: str) -> None:
        """Build folders of `key` left by a runner that died mid-build (we hold the key lock)."""
        for path in (self.root / BUILDING).glob(f"{key}.*"):
            self._discard(path)

    def _discard(self, path: Path) -> None:
        """Make `path` vanish at once (a rename), then delete it."""
        if not path.exists():
            return
        trash = self.root / TRASH / f"{path.name}.{secrets.token_hex(4)}"
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def _empty_trash(self) -> None:
        for path in (self.root / TRASH).iterdir():
            shutil.rmtree(path, ignore_errors=True)


# -- checks ---------------------------------------------------------------------------------------
def manifest_problem(manifest: EnvManifest, key: str, lock: EnvLock, image_id: str) -> str | None:
    """Why a manifest does not describe the environment of (lock, image); None when it does."""
    if manifest.format != ENV_FORMAT or manifest.key != key:
        return f"manifest is for {manifest.key} (format {manifest.format})"
    if manifest.image_id != image_id:
        return f"built for image {manifest.image_id[:19]}, the job runs {image_id[:19]}"
    if manifest.lock_digest != lock.digest:
        return "built from another lock"
    listed = {(p.name, p.version, tuple(sorted(p.hashes))) for p in manifest.packages}
    locked = {(p.name, p.version, p.hashes) for p in lock.pins}
    if listed != locked:
        return "its packages differ from the lock's: " + _difference(listed, locked)
    return None


def installed_problem(env_dir: Path, lock: EnvLock) -> str | None:
    """Why the venv at `env_dir` does not hold exactly the locked distributions; None if it
    does. Reads the `.dist-info` folder names only (cheap)."""
    site = sorted(env_dir.glob("lib/python3*/site-packages"))
    if len(site) != 1:
        return f"{env_dir}: no single lib/python3*/site-packages"
    installed: dict[str, str] = {}
    for info in site[0].glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        installed[canonicalize_name(name)] = version
    locked = {p.name: p.version for p in lock.pins}
    if set(installed) != set(locked):
        extra = sorted(set(installed) - set(locked))
        missing = sorted(set(locked) - set(installed))
        return (
            f"installed but not locked: {extra or 'none'}; locked but missing: {missing or 'none'}"
        )
    for name, version in locked.items():
        if not _same_version(installed[name], version):
            return f"{name} is {installed[name]}, the lock pins {version}"
    return None


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _difference(listed: set[Any], locked: set[Any]) -> str:
    extra = sorted(f"{n}=={v}" for n, v, _ in listed - locked)
    missing = sorted(f"{n}=={v}" for n, v, _ in locked - listed)
    return f"manifest only: {extra or 'none'}; lock only: {missing or 'none'}"


def _build_failure(output: str, exit_code: int) -> EnvError:
    if "hash mismatch" in output.lower():
        return EnvIntegrityError(
            "integrity failure: a package file did not match the sha256 the approved lock pins "
            "(Hash mismatch); nothing was installed",
            output,
        )
    return EnvBuildError(f"the installer exited with code {exit_code}", output)


def _build_record(container: Any, index_args: list[str]) -> BuildRecord:
    container.reload()
    attrs = container.attrs
    mounts = [
        BuildMount(
            source=str(m.get("Source", "")),
            target=str(m.get("Destination", "")),
            read_only=not m.get("RW", True),
        )
        for m in attrs.get("Mounts", [])
    ]
    return BuildRecord(
        container=str(container.name),
        image_id=str(attrs.get("Image", "")),
        network_mode=str(attrs.get("HostConfig", {}).get("NetworkMode", "")),
        mounts=sorted(mounts, key=lambda m: m.target),
        user=str(attrs.get("Config", {}).get("User", "")),
        index=list(index_args),
        seconds=0.0,
    )


def _bind(source: Path, target: str, *, read_only: bool) -> DockerMount:
    return DockerMount(
        target=target, source=str(source), type="bind", read_only=read_only, propagation="rprivate"
    )


def _read_manifest(entry: Path) -> EnvManifest | None:
    try:
        return EnvManifest.model_validate_json((entry / MANIFEST).read_bytes())
    except (OSError, ValidationError, ValueError):
        return None


def entry_last_used(entry: Path) -> float:
    try:
        return (entry / LAST_USED).stat().st_mtime
    except OSError:
        return 0.0


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.touch()
        os.utime(path)


def _venv_python(env_dir: Path) -> str:
    with contextlib.suppress(OSError):
        for line in (env_dir / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("version_info", "version"):
                return value.strip()
    return "unknown"


def _disk_usage(folder: Path) -> tuple[int, int]:
    """Bytes on disk (allocated blocks) and the number of entries under `folder`."""
    total = 0
    count = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [*dirnames, *filenames]:
            st = os.lstat(os.path.join(dirpath, name))
            total += st.st_blocks * 512
            count += 1
    return total, count


def _seal(work: Path) -> None:
    """The finished environment becomes the runner's and read-only to everyone else: owned by
    root (when the runner is root), files without write bits, folders writable by their owner
    only (so the runner can evict it), no setuid/setgid bit anywhere."""
    as_root = os.geteuid() == 0
    for dirpath, dirnames, filenames in os.walk(work):
        paths = [(dirpath, True)]
        paths += [(os.path.join(dirpath, n), False) for n in [*dirnames, *filenames]]
        for path, is_walked_dir in paths:
            st = os.lstat(path)
            if as_root:
                os.lchown(path, 0, 0)
            if stat.S_ISLNK(st.st_mode) or (stat.S_ISDIR(st.st_mode) and not is_walked_dir):
                continue  # a folder is handled when walked; a link has no mode of its own
            mode = stat.S_IMODE(st.st_mode) & 0o1755 & ~0o022
            os.chmod(path, mode | 0o200 if stat.S_ISDIR(st.st_mode) else mode & ~0o200)


# -- air-gapped owners: a wheelhouse to carry over ------------------------------------------------
def fetch_wheels(lock: EnvLock, dest: Path, index: PackageIndex | None = None) -> list[Path]:
    """Download every locked wheel into `dest` (pip download, wheels only, no dependencies,
    every file checked against the lock's sha256): a wheelhouse for `find_links`."""
    dest.mkdir(parents=True, exist_ok=True)
    index = index or PackageIndex()
    abi = "cp" + TARGET_PYTHON.replace(".", "")
    arch = TARGET_PLATFORM.split("-", 1)[0]
    glibc_minor = int(TARGET_PLATFORM.rsplit("_", 1)[-1])
    # pip does not widen a manylinux platform to the older ones it is compatible with
    platforms = [f"manylinux_2_{m}_{arch}" for m in range(glibc_minor, 4, -1)]
    platforms += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}", "any"]
    args = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--only-binary",
        ":all:",
        "--no-deps",
        "--require-hashes",
        "--python-version",
        TARGET_PYTHON,
        "--implementation",
        "cp",
        "--abi",
        abi,
        "--abi",
        "abi3",
        "--abi",
        "none",
        *(a for p in platforms for a in ("--platform", p)),
        "--dest",
        str(dest),
    ]
    if index.index_url:
        args += ["--index-url", index.index_url]
    for link in index.find_links:
        args += ["--find-links", link]
    if index.no_index:
        args.append("--no-index")
    requirements = dest / ".syft-lock-requirements.txt"
    requirements.write_text(lock.requirements_txt())
    try:
        result = subprocess.run(
            [*args, "-r", str(requirements)], capture_output=True, text=True, check=False
        )
    finally:
        requirements.unlink(missing_ok=True)
    if result.returncode != 0:
        raise EnvBuildError(
            "pip download failed: " + (result.stderr.strip() or result.stdout.strip())[-4000:],
            result.stderr,
        )
    return sorted(p for p in dest.iterdir() if p.suffix == ".whl")
