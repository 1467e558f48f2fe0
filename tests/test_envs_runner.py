"""Job environments on the runner, with real containers: built once per (lock, image) from a
wheelhouse made in the test, with no data mounted; mounted read-only into a job that has no
network; checked against the approved lock; integrity and build failures end the job `error`
with the installer's message in stderr; LRU eviction never takes what a queued job needs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zipfile
from pathlib import Path

import docker
import pytest

from syft_core.datasets import create_dataset
from syft_core.datasite import Datasite
from syft_core.dependencies import PackageIndex
from syft_core.jobs import JobFolder, Outcome, Status
from syft_core.jobs.lock import LOCK_RELPATH, Pin, parse_lock, render_lock
from syft_core.submit import submit_python_job
from syft_runner.executor.job import Executor, RunResult
from syft_runner.local_run import run_local
from syft_runner.sandbox.container import ENV_DIR
from syft_runner.sandbox.envs import (
    ENV_SUBDIR,
    MANIFEST,
    EnvCache,
    EnvManifest,
    EnvSettings,
)
from syft_runner.workspace.staging import RUNNER_STATE_DIR
from tests.fixtures_envs import GREETING, Wheelhouse
from tests.fixtures_runner import OWNER, SCIENTIST, approve, done_of

pytestmark = pytest.mark.docker

# The job reports what it can see: its python, the package, its network, the image's packages.
MAIN = """\
import json, os, socket, sys
import syfttinypkg
facts = {"greeting": syfttinypkg.GREETING, "executable": sys.executable, "prefix": sys.prefix,
         "interfaces": sorted(os.listdir("/sys/class/net")),
         "package_file": syfttinypkg.__file__}
try:
    socket.create_connection(("127.0.0.1", 9), timeout=2)
    facts["inet"] = "connected"
except OSError as exc:
    facts["inet"] = type(exc).__name__ + ": " + str(exc)
try:
    import pandas  # Debian's, in the image: never mixed into an environment
    facts["pandas"] = pandas.__file__
except ImportError:
    facts["pandas"] = None
with open("/data/customers/customers.csv") as data:
    facts["rows"] = len(data.read().splitlines()) - 1
print(json.dumps(facts))
open("outputs/greeting.txt", "w").write(syfttinypkg.GREETING)
"""


@pytest.fixture
def owner_box(syftbox: Path) -> Path:
    datasite = Datasite(syftbox, OWNER)
    (datasite.private / "customers.csv").write_text("id\n1\n2\n3\n")
    (datasite.public / "customers.csv").write_text("id\n1\n")
    create_dataset(
        datasite,
        "customers",
        private=Path("private/customers.csv"),
        mock=Path("public/customers.csv"),
    )
    return syftbox


def _submit(box: Path, tmp_path: Path, wheelhouse: Wheelhouse, name: str = "tiny") -> JobFolder:
    code = tmp_path / f"code-{name}"
    code.mkdir()
    (code / "main.py").write_text(MAIN)
    (code / "requirements.txt").write_text("syfttinypkg\n")
    folder = submit_python_job(
        box,
        SCIENTIST,
        OWNER,
        code_path=code,
        job_name=name,
        datasets=["customers"],
        package_index=wheelhouse.index,
    )
    return JobFolder(folder)


def _executor(
    client: docker.DockerClient, box: Path, wheelhouse: Wheelhouse, env_cache: Path
) -> Executor:
    return Executor(client, wheelhouse.runner_config(env_cache), box, OWNER)


def _facts(job: JobFolder) -> dict[str, object]:
    facts: dict[str, object] = json.loads(job.stdout_path.read_text())
    return facts


def _manifests(env_cache: Path) -> list[EnvManifest]:
    return [e.manifest for e in EnvCache(EnvSettings(env_cache, 1 << 40)).entries() if e.manifest]


def test_a_job_runs_with_its_environment_on_real_data_with_no_network(
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    owner_box: Path,
    tmp_path: Path,
    wheelhouse: Wheelhouse,
    env_cache: Path,
) -> None:
    job = approve(_submit(owner_box, tmp_path, wheelhouse))
    executor = _executor(docker_client, owner_box, wheelhouse, env_cache)
    approved = job.state().approved
    assert approved is not None
    task, streamer = executor.execute(executor.prepare(job, approved))
    # The job container, as the engine has it: no network, the environment read-only.
    container = docker_client.containers.get(task.name)
    assert container.attrs["HostConfig"]["NetworkMode"] == "none"
    [env_mount] = [m for m in container.attrs["Mounts"] if m["Destination"] == ENV_DIR]
    assert env_mount["RW"] is False
    variables = dict(v.split("=", 1) for v in container.attrs["Config"]["Env"])
    assert variables["VIRTUAL_ENV"] == ENV_DIR
    assert variables["PATH"].startswith(f"{ENV_DIR}/bin:")
    assert "PYTHONPATH" not in variables
    executor.finalize(job, task, executor.supervise(job, task, streamer))
    executor.cleanup([task])

    done = done_of(job)
    assert done is not None and done.outcome is Outcome.SUCCEEDED, (done, job.stderr_path)
    facts = _facts(job)
    assert facts["greeting"] == GREETING
    assert facts["executable"] == f"{ENV_DIR}/bin/python3" and facts["prefix"] == ENV_DIR
    assert str(facts["package_file"]).startswith(f"{ENV_DIR}/lib/python3.11/site-packages/")
    assert facts["interfaces"] == ["lo"]  # and no socket but AF_UNIX (seccomp)
    assert str(facts["inet"]).startswith("PermissionError"), facts["inet"]
    assert facts["pandas"] is None  # no system site packages, no PYTHONPATH
    assert facts["rows"] == 3  # the private data
    assert (job.outputs_dir / "greeting.txt").read_text() == GREETING

    # The build step, as the engine reported it (inspect): only the output folder, its inputs,
    # uv and the owner's wheelhouse; no network for a wheelhouse-only runner; no data, no code.
    [manifest] = _manifests(env_cache)
    build = manifest.build
    assert build.network_mode == "none"
    assert {(m.target, m.read_only) for m in build.mounts} == {
        (ENV_DIR, False),
        ("/opt/syft-build", True),
        ("/usr/local/bin/uv", True),
        ("/opt/syft-wheels/0", True),
    }
    sources = [m.source for m in build.mounts]
    forbidden = [owner_box.resolve(), job.path.resolve(), (owner_box / RUNNER_STATE_DIR).resolve()]
    for source in sources:
        assert not any(Path(source).is_relative_to(f) for f in forbidden), source
    assert not any("customers" in s for s in sources)
    assert build.user.split(":")[0] not in ("0", "root")
    lock = parse_lock((job.path / LOCK_RELPATH).read_text())
    assert manifest.lock_digest == lock.digest and manifest.image_id == job_images["scientific"]
    assert {(p.name, p.version) for p in manifest.packages} == {
        ("syfttinypkg", "1.0"),
        ("syfttinydep", "1.0"),
    }
    # Published read-only: no write bit on any file.
    env = env_cache / manifest.key / ENV_SUBDIR
    for dirpath, _, files in os.walk(env):
        for name in files:
            path = Path(dirpath, name)
            if not path.is_symlink():
                assert path.stat().st_mode & 0o222 == 0, path


def test_the_environment_is_built_once_per_lock_and_image_and_checked_before_use(
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    owner_box: Path,
    tmp_path: Path,
    wheelhouse: Wheelhouse,
    env_cache: Path,
) -> None:
    executor = _executor(docker_client, owner_box, wheelhouse, env_cache)
    first = approve(_submit(owner_box, tmp_path, wheelhouse, "first"))
    assert executor.run(first) is RunResult.FINISHED
    [built] = _manifests(env_cache)
    second = approve(_submit(owner_box, tmp_path, wheelhouse, "second"))
    assert executor.run(second) is RunResult.FINISHED
    assert _manifests(env_cache) == [built]  # reused, not rebuilt
    for job in (first, second):
        done = done_of(job)
        assert done is not None and done.outcome is Outcome.SUCCEEDED

    # A cache entry that no longer matches its lock is never mounted: it is rebuilt.
    manifest_path = env_cache / built.key / MANIFEST
    os.chmod(manifest_path, 0o644)
    tampered = built.model_copy(
        update={"packages": [p.model_copy(update={"version": "9.9"}) for p in built.packages]}
    )
    manifest_path.write_text(tampered.model_dump_json())
    third = approve(_submit(owner_box, tmp_path, wheelhouse, "third"))
    assert executor.run(third) is RunResult.FINISHED
    done = done_of(third)
    assert done is not None and done.outcome is Outcome.SUCCEEDED
    [rebuilt] = _manifests(env_cache)
    assert rebuilt.key == built.key and rebuilt.built_at > built.built_at


def test_a_tampered_wheel_is_an_integrity_failure_and_nothing_runs(
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    owner_box: Path,
    tmp_path: Path,
    wheelhouse: Wheelhouse,
    env_cache: Path,
) -> None:
    job = approve(_submit(owner_box, tmp_path, wheelhouse))
    wheelhouse.tamper()  # after approval: the mirror now serves other bytes
    executor = _executor(docker_client, owner_box, wheelhouse, env_cache)
    assert executor.run(job) is RunResult.FINISHED
    done = done_of(job)
    assert done is not None and done.outcome is Outcome.ERROR
    assert "integrity failure" in done.message and "Hash mismatch" in done.message
    assert "Hash mismatch" in job.stderr_path.read_text()
    assert not job.stdout_path.exists()  # the job never started
    assert _manifests(env_cache) == []  # nothing published
    assert not list((env_cache / ".building").iterdir())


def test_a_failed_build_ends_the_job_error_with_the_installers_message(
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    owner_box: Path,
    tmp_path: Path,
    wheelhouse: Wheelhouse,
    env_cache: Path,
) -> None:
    job = approve(_submit(owner_box, tmp_path, wheelhouse))
    wheelhouse.remove("syfttinydep")  # the owner's wheelhouse lacks a locked package
    assert _executor(docker_client, owner_box, wheelhouse, env_cache).run(job) is (
        RunResult.FINISHED
    )
    done = done_of(job)
    assert done is not None and done.outcome is Outcome.ERROR
    assert "environment could not be built" in done.message
    assert "logs/stderr.txt" in done.message
    stderr = " ".join(job.stderr_path.read_text().split())
    assert "syfttinydep" in stderr and "not found in the provided package locations" in stderr


def test_a_lock_changed_after_approval_is_not_built_or_run(
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    owner_box: Path,
    tmp_path: Path,
    wheelhouse: Wheelhouse,
    env_cache: Path,
) -> None:
    job = approve(_submit(owner_box, tmp_path, wheelhouse))
    lock = job.path / LOCK_RELPATH
    lock.write_text(lock.read_text().replace("syfttinydep==1.0", "syfttinydep==1.1"))
    assert job.state().status is Status.INBOX
    executor = _executor(docker_client, owner_box, wheelhouse, env_cache)
    assert executor.run(job) is RunResult.STALE
    assert done_of(job) is None and _manifests(env_cache) == []


def test_dependencies_without_a_lock_are_not_run(
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    owner_box: Path,
    tmp_path: Path,
    wheelhouse: Wheelhouse,
    env_cache: Path,
) -> None:
    job = _submit(owner_box, tmp_path, wheelhouse)
    (job.path / LOCK_RELPATH).unlink()  # a hand-made job folder: requirements.txt, no lock
    approve(job)
    _executor(docker_client, owner_box, wheelhouse, env_cache).run(job)
    done = done_of(job)
    assert done is not None and done.outcome is Outcome.ERROR
    assert "no code/requirements.lock" in done.message


def test_a_mock_run_uses_the_very_same_environment(
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    owner_box: Path,
    tmp_path: Path,
    wheelhouse: Wheelhouse,
    env_cache: Path,
) -> None:
    code = tmp_path / "local-code"
    code.mkdir()
    (code / "main.py").write_text(MAIN)
    (code / "requirements.txt").write_text("syfttinypkg\n")
    local_cache = tmp_path / "scientist-cache"
    result = run_local(
        code,
        syftbox=owner_box,
        owner=OWNER,
        datasets=["customers"],
        package_index=wheelhouse.index,
        env_cache_dir=local_cache,
    )
    assert result.outcome is Outcome.SUCCEEDED, result.stderr
    facts = json.loads(result.stdout)
    assert facts["greeting"] == GREETING and facts["rows"] == 1  # the mock
    assert facts["interfaces"] == ["lo"]
    # The owner's runner, given the same code, builds the environment with the same key and
    # the same packages: the very same environment.
    job = approve(_submit(owner_box, tmp_path, wheelhouse))
    _executor(docker_client, owner_box, wheelhouse, env_cache).run(job)
    [mine] = _manifests(local_cache)
    [theirs] = _manifests(env_cache)
    assert mine.key == theirs.key and mine.packages == theirs.packages
    assert mine.image_id == theirs.image_id == job_images["scientific"]


def _wheel_with_pth(folder: Path) -> Path:
    """A wheel of package `syftpthpkg` that also installs `syftpthpkg_hook.pth`: Python runs a
    .pth file's `import` lines at every start that processes the site."""
    name, version = "syftpthpkg", "1.0"
    info = f"{name}-{version}.dist-info"
    hook = f"import os; open('{ENV_DIR}/BUILD_RAN', 'w').write('code of the wheel ran')\n"
    files = {
        f"{name}/__init__.py": "VALUE = 1\n",
        f"{name}_hook.pth": hook,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }

    def entry(rel: str, data: bytes) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        return f"{rel},sha256={digest},{len(data)}"

    record = [entry(rel, text.encode()) for rel, text in files.items()] + [f"{info}/RECORD,,"]
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for rel, text in files.items():
            archive.writestr(rel, text)
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


def test_a_packages_pth_file_does_not_run_while_its_environment_is_built(
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    tmp_path: Path,
    env_cache: Path,
) -> None:
    # The build container reaches the package index: no code of a package may run there. A
    # .pth file runs whenever Python starts with its site, as a bytecode compiler run in the
    # new environment did; the environment still gets its bytecode, compiled without the site.
    wheel = _wheel_with_pth(tmp_path / "wheels")
    pin = Pin(
        "syftpthpkg",
        "1.0",
        (hashlib.sha256(wheel.read_bytes()).hexdigest(),),
        ("requested",),
        wheel.name,
        wheel.stat().st_size,
    )
    index = PackageIndex(find_links=(str(wheel.parent),), no_index=True)
    cache = EnvCache(EnvSettings(env_cache, 1 << 40, index=index))
    ready = cache.ensure(docker_client, parse_lock(render_lock([pin])), job_images["scientific"])
    assert not (ready.path / "BUILD_RAN").exists()
    assert list(ready.path.rglob("syftpthpkg/__pycache__/__init__.*.pyc"))
