"""The job runtime images (`images/<name>/Dockerfile`): build them, cached, resolve them, and list
the Python packages each provides.

Images are only ever built locally and never pulled at run time. The base is
`debian:bookworm-slim` when the engine can pull it; without a registry it is bootstrapped offline
(`debootstrap --variant=minbase`) and imported as `syft-runner/base:bookworm-minbase`. Each
Dockerfile installs its own Debian packages from the mirror the base names (the build has the
host's network: whatever mirror or proxy the host reaches, the build reaches; a job never has a
network). A build is skipped when the tagged image already carries the hash of its Dockerfile
folder and base image.

Runtimes: `scientific` (the default: python3 and Debian's scientific stack, notebooks) and
`minimal` (bash and the essential tools, no Python). Every image holds the listing of its Python
packages, generated at build time, at PACKAGES_FILE (`name==version` lines, pip freeze format,
after a `# python X.Y.Z` header); `image_packages` reads it from the image without running it.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import docker
import requests
from docker.models.images import Image
from pydantic import BaseModel

from syft_core.errors import SyftError
from syft_core.jobs.config import RUNTIME_NAME_PATTERN
from syft_runner.shipped import shipped_dir

# Inside the installed package, else the repository's top-level images/ (syft_runner.shipped).
IMAGES_DIR = Path(os.environ.get("SYFT_RUNNER_IMAGES_DIR") or shipped_dir("images"))
IMAGE_REPOSITORY = "syft-runner"
PULLED_BASE = "debian:bookworm-slim"
# The images install their own packages: the base is Debian's minimal system only. (Named apart
# from the earlier `syft-runner/base:bookworm`, which carried python, so that base is never reused.)
OFFLINE_BASE = "syft-runner/base:bookworm-minbase"
BOOTSTRAP_PACKAGES: tuple[str, ...] = ()
# A Debian mirror for the offline base and, when set, for the packages the images install.
MIRROR_ENV = "SYFT_RUNNER_DEBIAN_MIRROR"
DEBIAN_MIRROR = os.environ.get(MIRROR_ENV) or "http://deb.debian.org/debian"
# The host's proxy settings reach the build (docker's predefined build args, kept out of history).
PROXY_BUILD_ARGS = (
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
)
# The runtimes shipped in images/: `scientific` (python3 and Debian's scientific stack; the
# default) and `minimal` (bash and Debian's essential tools, no Python).
DEFAULT_RUNTIME = "scientific"
MINIMAL_RUNTIME = "minimal"
PACKAGES_FILE = "/usr/share/syft-runtime/python-packages.txt"
MAX_PACKAGES_FILE_BYTES = 1024 * 1024
# Without a registry the pull fails in milliseconds (DNS); a blackholed network must not hang us.
PULL_TIMEOUT_SECONDS = 30
BUILD_LOCK = Path(tempfile.gettempdir()) / "syft-runner-images.lock"
LABEL_RUNTIME = "org.syft.runtime"
LABEL_BUILD_HASH = "org.syft.build-hash"
_RUNTIME_NAME = re.compile(RUNTIME_NAME_PATTERN)

Progress = Callable[[str], None]


class ImageMissingError(SyftError):
    """A job runtime image is not built (or not ours); the message names the fix."""


class ImageBuildError(SyftError):
    """Building the base or a runtime image failed; the message names the step and the cause."""


class PythonPackage(BaseModel):
    name: str
    version: str


class PackageListing(BaseModel):
    """The Python an image provides, from its PACKAGES_FILE: `python` is None when it has none."""

    python: str | None = None
    packages: list[PythonPackage] = []

    @classmethod
    def parse(cls, text: str) -> PackageListing:
        """`# python X.Y.Z` then `name==version` lines; other comments and blank lines ignored."""
        python: str | None = None
        packages: list[PythonPackage] = []
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("# python "):
                python = line.removeprefix("# python ").strip() or None
            elif line and not line.startswith("#"):
                name, sep, version = line.partition("==")
                if sep and name.strip() and version.strip():
                    packages.append(PythonPackage(name=name.strip(), version=version.strip()))
        return cls(python=python, packages=packages)

    def freeze(self) -> str:
        """The listing in its file format (pip freeze, after the python header)."""
        header = [f"# python {self.python}"] if self.python else ["# no Python in this runtime"]
        return "\n".join([*header, *(f"{p.name}=={p.version}" for p in self.packages)]) + "\n"


class ImageStatus(BaseModel):
    """One runtime image as `syft-runner images list` shows it."""

    name: str
    tag: str
    state: Literal["current", "stale", "missing"]
    image_id: str | None = None
    size_mb: float | None = None
    created: str | None = None
    provides: str | None = None
    # None: no image, or an image built before listings existed (rebuild it).
    packages: PackageListing | None = None


def image_tag(name: str) -> str:
    return f"{IMAGE_REPOSITORY}/{name}:latest"


def runtime_names(images_dir: Path = IMAGES_DIR) -> list[str]:
    """Every runtime: each folder of `images_dir` holding a Dockerfile."""
    if not images_dir.is_dir():
        raise ImageBuildError(f"{images_dir}: images folder not found (SYFT_RUNNER_IMAGES_DIR?)")
    return sorted(p.parent.name for p in images_dir.glob("*/Dockerfile"))


def context_hash(context: Path, base_id: str) -> str:
    """sha256 of every file under `context` (relative path and bytes) and the base image id."""
    digest = hashlib.sha256(base_id.encode())
    # Bytecode an installer compiled beside the packaged copy is not part of the definition.
    files = (p for p in context.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in sorted(files):
        digest.update(b"\0" + path.relative_to(context).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def resolve_image(client: docker.DockerClient, name: str) -> str:
    """The local image id of runtime `name`. Never pulls: a missing image is an error to fix."""
    if not _RUNTIME_NAME.fullmatch(name):
        raise ImageMissingError(
            f"{name!r} is not a valid runtime name (e.g. {DEFAULT_RUNTIME!r}, {MINIMAL_RUNTIME!r})"
        )
    tag = image_tag(name)
    image = _local_image(client, tag)
    if image is None:
        raise ImageMissingError(
            f"job image {tag} is not built; run `make images` (or `syft-runner images build`)"
        )
    if image.labels.get(LABEL_RUNTIME) != name:
        raise ImageMissingError(
            f"image {tag} lacks the label {LABEL_RUNTIME}={name}, so it is not a syft-runner "
            "job image; rebuild it with `syft-runner images build --force`"
        )
    return str(image.id)


def build_images(
    client: docker.DockerClient,
    *,
    force: bool = False,
    progress: Progress | None = None,
    images_dir: Path = IMAGES_DIR,
) -> dict[str, str]:
    """Build every runtime image that is missing or out of date; name → image id."""
    report = progress or _ignore
    names = runtime_names(images_dir)
    with _build_lock():
        base = ensure_base(client, report)
        base_id = _image_id(client, base)
        return {
            n: _build_one(client, images_dir / n, n, base, base_id, force, report) for n in names
        }


def image_packages(client: docker.DockerClient, image: str) -> PackageListing | None:
    """The Python packages image `image` (an id or tag) provides, read from its PACKAGES_FILE
    through a container that is created, never started, and removed; None if it has no listing."""
    container = client.containers.create(image, command=["true"], network_disabled=True)
    try:
        stream, _ = container.get_archive(PACKAGES_FILE)
        data = b"".join(stream)
    except docker.errors.NotFound:
        return None
    finally:
        container.remove(force=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.next()
        if member is None or not member.isfile() or member.size > MAX_PACKAGES_FILE_BYTES:
            return None
        handle = tar.extractfile(member)
        if handle is None:
            return None
        return PackageListing.parse(handle.read().decode("utf-8", errors="replace"))


def image_statuses(client: docker.DockerClient, images_dir: Path = IMAGES_DIR) -> list[ImageStatus]:
    """Every runtime and whether its image is current, stale (Dockerfile or base changed), or
    missing."""
    base = _local_base(client)
    base_id = _image_id(client, base) if base else None
    return [_status(client, images_dir / n, n, base_id) for n in runtime_names(images_dir)]


def ensure_base(client: docker.DockerClient, progress: Progress) -> str:
    """A base image reference that exists locally: an existing one, else pulled, else
    bootstrapped offline (once: the imported image is found next time)."""
    base = _local_base(client)
    if base is not None:
        return base
    if _try_pull(client, PULLED_BASE, progress):
        return PULLED_BASE
    bootstrap_offline_base(client, progress)
    return OFFLINE_BASE


def bootstrap_offline_base(client: docker.DockerClient, progress: Progress) -> None:
    """debootstrap a minimal bookworm (plus BOOTSTRAP_PACKAGES) and import it as OFFLINE_BASE."""
    debootstrap = _ensure_debootstrap(progress)
    with tempfile.TemporaryDirectory(prefix="syft-runner-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        progress(f"base: debootstrap bookworm into {rootfs} (about a minute)")
        include = [f"--include={','.join(BOOTSTRAP_PACKAGES)}"] if BOOTSTRAP_PACKAGES else []
        _run_streamed(
            [debootstrap, "--variant=minbase", *include, "bookworm", str(rootfs), DEBIAN_MIRROR],
            progress,
        )
        _drop_apt_caches(rootfs)
        progress(f"base: importing {rootfs} as {OFFLINE_BASE}")
        _import_rootfs(client, rootfs)


def _ignore(_message: str) -> None:
    return None


@contextmanager
def _build_lock() -> Iterator[None]:
    # `make images`, a runner and test sessions may build at once; one at a time, so that two
    # processes never bootstrap the base twice or replace each other's fresh builds.
    with BUILD_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _local_image(client: docker.DockerClient, ref: str) -> Image | None:
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def _image_id(client: docker.DockerClient, ref: str) -> str:
    image = _local_image(client, ref)
    if image is None:
        raise ImageBuildError(f"image {ref} vanished during the build (removed concurrently?)")
    return str(image.id)


def _local_base(client: docker.DockerClient) -> str | None:
    return next((r for r in (PULLED_BASE, OFFLINE_BASE) if _local_image(client, r)), None)


def _try_pull(client: docker.DockerClient, ref: str, progress: Progress) -> bool:
    repository, tag = ref.split(":")
    progress(f"base: trying to pull {ref}")
    # docker-py has no per-call timeout: bound this one call through the client's own setting.
    original_timeout = client.api.timeout
    client.api.timeout = PULL_TIMEOUT_SECONDS
    try:
        for event in client.api.pull(repository, tag=tag, stream=True, decode=True):
            if "error" in event:
                progress(f"base: cannot pull {ref}: {event['error']}")
                return False
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        progress(f"base: cannot pull {ref}: {exc}")
        return False
    finally:
        client.api.timeout = original_timeout
    return _local_image(client, ref) is not None


def _ensure_debootstrap(progress: Progress) -> str:
    found = shutil.which("debootstrap")
    if found:
        return found
    if os.geteuid() != 0:
        raise ImageBuildError(
            "debootstrap is needed to bootstrap the offline base image; install it "
            "(`sudo apt-get install -y debootstrap`) or run `make images` as root"
        )
    progress("base: installing debootstrap (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "debootstrap"]):
        _run_streamed(cmd, progress, env=env)
    found = shutil.which("debootstrap")
    if not found:
        raise ImageBuildError("apt-get installed debootstrap but it is not on PATH")
    return found


def _run_streamed(cmd: list[str], progress: Progress, env: dict[str, str] | None = None) -> None:
    tail: list[str] = []
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        assert proc.stdout is not None  # PIPE was requested
        for line in proc.stdout:
            progress(f"base: {line.rstrip()}")
            tail = [*tail[-19:], line.rstrip()]
    if proc.returncode != 0:
        last = "\n".join(tail)
        raise ImageBuildError(f"`{' '.join(cmd)}` exited {proc.returncode}; last output:\n{last}")


def _drop_apt_caches(rootfs: Path) -> None:
    # debootstrap leaves ~100 MB of .debs and package lists behind; the images never need them.
    for folder in (rootfs / "var/cache/apt/archives", rootfs / "var/lib/apt/lists"):
        for item in folder.glob("*"):
            if item.is_file() and item.name != "lock":
                item.unlink()


def _import_rootfs(client: docker.DockerClient, rootfs: Path) -> None:
    repository, tag = OFFLINE_BASE.split(":")
    tar = subprocess.Popen(
        ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE
    )
    assert tar.stdout is not None  # PIPE was requested
    try:
        client.api.import_image_from_stream(
            tar.stdout,
            repository=repository,
            tag=tag,
            changes=["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        )
    finally:
        tar.stdout.close()
        if tar.wait() != 0:
            raise ImageBuildError(f"tar of {rootfs} exited {tar.returncode}")
    if _local_image(client, OFFLINE_BASE) is None:
        raise ImageBuildError(f"docker import of {rootfs} did not produce {OFFLINE_BASE}")


def _build_one(
    client: docker.DockerClient,
    context: Path,
    name: str,
    base: str,
    base_id: str,
    force: bool,
    progress: Progress,
) -> str:
    tag = image_tag(name)
    build_hash = context_hash(context, base_id)
    existing = _local_image(client, tag)
    if existing is not None and not force and existing.labels.get(LABEL_BUILD_HASH) == build_hash:
        progress(f"{name}: {tag} is up to date ({existing.short_id})")
        return str(existing.id)
    progress(f"{name}: building {tag} from {base}")
    stream = client.api.build(
        path=str(context),
        tag=tag,
        buildargs=build_args(base),
        labels={LABEL_BUILD_HASH: build_hash},
        rm=True,
        forcerm=True,
        pull=False,
        nocache=force,
        # The host's network, so apt reaches the mirror (or proxy) the host reaches, localhost
        # included. The build runs only Debian's packages and our Dockerfile: no job, no data.
        network_mode="host",
        decode=True,
    )
    _follow_build(stream, context, name, progress)
    image_id = _image_id(client, tag)
    if existing is not None and existing.id != image_id:
        _remove_replaced(client, str(existing.id), name, progress)
    progress(f"{name}: built {tag} ({image_id[7:19]})")
    return image_id


def build_args(base: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The build arguments: the base, the Debian mirror when one is set, the host's proxies."""
    env = os.environ if environ is None else environ
    args = {"BASE": base}
    if env.get(MIRROR_ENV):
        args["DEBIAN_MIRROR"] = env[MIRROR_ENV]
    args.update({name: env[name] for name in PROXY_BUILD_ARGS if env.get(name)})
    return args


def _follow_build(
    stream: Iterator[dict[str, Any]], context: Path, name: str, progress: Progress
) -> None:
    # Progress shows the Dockerfile steps; a failure quotes the output that led to it.
    tail: list[str] = []
    for chunk in stream:
        if "error" in chunk:
            last = "\n".join(tail)
            raise ImageBuildError(
                f"{context / 'Dockerfile'}: build failed: {chunk['error']}\nlast output:\n{last}"
            )
        line = str(chunk.get("stream", "")).strip()
        if line:
            tail = [*tail[-19:], line]
        if line.startswith("Step "):
            progress(f"{name}: {line.splitlines()[0]}")


def _remove_replaced(
    client: docker.DockerClient, image_id: str, name: str, progress: Progress
) -> None:
    # The previous build lost its tag. Remove it only if nothing else names it (identical builds
    # share an id across tags) and, as Docker enforces, no container still uses it.
    previous = _local_image(client, image_id)
    if previous is None or previous.tags:
        return
    try:
        client.images.remove(image_id)
    except docker.errors.APIError as exc:
        progress(f"{name}: kept the previous image {image_id[7:19]}: {exc.explanation}")


def _status(
    client: docker.DockerClient, context: Path, name: str, base_id: str | None
) -> ImageStatus:
    tag = image_tag(name)
    image = _local_image(client, tag)
    if image is None:
        return ImageStatus(name=name, tag=tag, state="missing")
    current = base_id is not None and image.labels.get(LABEL_BUILD_HASH) == context_hash(
        context, base_id
    )
    return ImageStatus(
        name=name,
        tag=tag,
        state="current" if current else "stale",
        image_id=str(image.id),
        size_mb=round(float(image.attrs.get("Size", 0)) / 1e6, 1),
        created=str(image.attrs.get("Created", ""))[:19],
        provides=image.labels.get("org.syft.provides"),
        packages=image_packages(client, str(image.id)),
    )


# -- images on a cluster's nodes (the Swarm backend): no registry, so each node loads them -----
class NodePushReport(BaseModel):
    """What `push_to_nodes` did: node → the refs it now holds, or why it failed."""

    loaded: dict[str, list[str]] = {}
    failed: dict[str, str] = {}
    seconds: float = 0.0


def push_to_nodes(
    source: docker.DockerClient,
    nodes: Mapping[str, docker.DockerClient],
    refs: list[str],
) -> NodePushReport:
    """Load images `refs` (tags or ids) from `source` onto every node's daemon (`docker save |
    docker load`), the nodes in parallel. The archive is saved once to a temporary file: each
    node then reads it at its own pace. A node that fails is reported, the others still load."""
    started = time.monotonic()
    report = NodePushReport()
    with tempfile.TemporaryFile(prefix="syft-runner-images-") as archive:
        for chunk in source.api.get_image(refs if len(refs) > 1 else refs[0]):
            archive.write(chunk)

        def load(item: tuple[str, docker.DockerClient]) -> tuple[str, list[str] | str]:
            node, client = item
            try:
                # One handle per node (os.dup shares the offset, so reopen by descriptor path).
                with open(f"/proc/self/fd/{archive.fileno()}", "rb") as handle:
                    loaded = client.images.load(handle)
                return node, sorted(t for image in loaded for t in image.tags or [image.id])
            except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
                return node, f"{type(exc).__name__}: {exc}"

        archive.flush()
        with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
            for node, outcome in pool.map(load, nodes.items()):
                if isinstance(outcome, str):
                    report.failed[node] = outcome
                else:
                    report.loaded[node] = outcome
    report.seconds = round(time.monotonic() - started, 1)
    return report


def missing_on_nodes(nodes: Mapping[str, docker.DockerClient], image_id: str) -> list[str]:
    """The nodes (sorted) that do not hold image `image_id`, or cannot be asked: a job there
    would wait for it forever (workers never pull)."""

    def lacks(client: docker.DockerClient) -> bool:
        try:
            client.images.get(image_id)
        except (docker.errors.DockerException, requests.RequestException):
            return True
        return False

    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        lacking = pool.map(lacks, nodes.values())
        return sorted(node for node, missing in zip(nodes, lacking, strict=True) if missing)
