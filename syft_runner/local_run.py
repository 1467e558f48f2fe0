"""A scientist's local run: code on this machine against an owner's MOCK data, in the very sandbox
the owner's runner uses (the opensafely-cli `run` experience).

The code (a .py file, a .ipynb notebook, a folder with an entrypoint or main.py, a .sh script, or
a job folder with run.sh + config.yaml) becomes a `mode: mock` job folder in a private scratch
syftbox, is approved there (the scientist consents to running their own code) and is run by the
owner's own Executor: the same staging, image, container spec, limits, log capture and output
collection. Only where the datasets come from differs: the owner's published mocks as synced into
the scientist's syftbox, `<syftbox>/<owner>/public/datasets/<name>/<entry>`, mounted at the
container paths a real run uses (`/syftbox/<owner>/public/datasets/<name>/<entry>` and
`/data/<name>/<entry>`), so the code runs unchanged on the private data once submitted.

Dependencies (`dependencies=[...]`, or a requirements.txt / pyproject.toml in a folder of code)
are locked exactly as a submission locks them, and the environment is built by the same code the
owner's runner uses (syft_runner.sandbox.envs), from the same lock and image, so it is the very same
environment; it is cached in `~/.cache/syft-runner/envs` (XDG_CACHE_HOME) across local runs.

Results land in `<folder of the code>/.syft-local/<UTC timestamp>/`, or `output_dir`:
logs/stdout.txt, logs/stderr.txt, outputs/ and done.yaml (the runner's `done` marker). The
dot-folder is never part of a later submission of the same code (dot entries are not submitted).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path

from syft_core.dependencies import PackageIndex
from syft_core.errors import JobError, SyftError
from syft_core.identity import validate_email
from syft_core.jobs import DoneMarker, JobFolder, load_config, walk_submission
from syft_core.jobs.config import ENTRYPOINT_SUFFIXES
from syft_core.jobs.lock import LOCK_NAME
from syft_core.jobs.markers import read_marker, write_marker
from syft_core.local_runner import LocalRunResult
from syft_core.submit import collect_code, environment_lock, submit_bash_job, submit_python_job
from syft_runner.config import RunnerConfig
from syft_runner.executor.job import Executor
from syft_runner.sandbox.engine import connect
from syft_runner.sandbox.images import DEFAULT_RUNTIME, runtime_names
from syft_runner.workspace.staging import remove_tree

RESULTS_DIR = ".syft-local"
SCRATCH_DIR = ".run"  # inside the results folder while the job runs; removed afterwards
LOCAL_SCIENTIST = "scientist@local.invalid"  # the submitter when no email is given
LOCAL_RUNNER_ID = "syft-local-run"  # labels local containers: an owner's runner never adopts them
_LOG_READ_LIMIT = 64 * 1024 * 1024


class LocalRunError(SyftError):
    """The code could not be run locally (bad code path, engine unreachable, ...)."""


def run_local(
    code_path: Path,
    *,
    syftbox: Path,
    owner: str,
    datasets: list[str] | None = None,
    entrypoint: str | None = None,
    output_dir: Path | None = None,
    email: str | None = None,
    dependencies: list[str] | None = None,
    package_index: PackageIndex | None = None,
    env_cache_dir: Path | None = None,
    runtime: str | None = None,
) -> LocalRunResult:
    """Run `code_path` against `owner`'s mocks synced into `syftbox`, in the job sandbox.

    `dependencies` (python code; or the code folder's requirements.txt / pyproject.toml) are
    locked and built into the job's environment as on the owner's runner, from `package_index`
    (default PyPI), cached in `env_cache_dir` (default ~/.cache/syft-runner/envs).

    `datasets`: the datasets to mount (None: a job folder's own config.yaml list, else none).
    `entrypoint`: for a folder of python code without main.py. `email`: the submitter the job
    is written as (it shows nowhere in the container). `runtime`: the job image (None: a job
    folder's own config.yaml choice, else the default runtime); any built runtime may be used
    here, while an owner's runner runs only those it allows. A job that fails or cannot be set
    up (unknown dataset, missing image) is a result with its outcome and message, not an
    error."""
    code_path = Path(code_path).absolute()
    validate_email(owner)
    submitter = validate_email(email) if email else LOCAL_SCIENTIST
    kind = _code_kind(code_path, entrypoint)
    mocks = Path(syftbox) / owner
    if not mocks.is_dir():
        raise LocalRunError(
            f"no datasite for {owner} in {syftbox}: sync with {owner} first, so that their "
            "published mocks are here"
        )
    result_dir = _new_result_dir(output_dir, code_path)
    scratch = result_dir / SCRATCH_DIR
    try:
        job = _write_local_job(
            kind,
            code_path,
            scratch,
            submitter,
            owner,
            datasets,
            entrypoint,
            dependencies,
            package_index,
            runtime,
        )
        # The scientist's own code on public mocks, on their own machine: nobody else reviews it.
        job.approve(owner, without_review=True, reason=f"local mock run by {submitter}")
        _run(scratch, owner, Path(syftbox), job, package_index, env_cache_dir)
        return _collect(job, result_dir)
    except BaseException:
        if output_dir is None and not (result_dir / "done.yaml").exists():
            shutil.rmtree(result_dir, ignore_errors=True)  # nothing ran: leave nothing behind
        raise
    finally:
        remove_tree(scratch)


def _code_kind(code_path: Path, entrypoint: str | None) -> str:
    """'job' (run.sh + config.yaml), 'python' (a .py file, a notebook or a folder of code) or
    'bash'."""
    if code_path.is_symlink() or not code_path.exists():
        raise LocalRunError(f"{code_path}: no such file or folder (links are not followed)")
    is_job = code_path.is_dir() and all(
        (code_path / name).is_file() for name in ("run.sh", "config.yaml")
    )
    is_script = code_path.is_file() and code_path.suffix == ".sh"
    if is_job or is_script:
        if entrypoint is not None:
            raise LocalRunError(f"{code_path}: an entrypoint is only for python code")
        return "job" if is_job else "bash"
    if code_path.is_dir() or code_path.suffix in ENTRYPOINT_SUFFIXES:
        return "python"
    raise LocalRunError(
        f"{code_path}: give a .py, .ipynb or .sh file, a folder of python code (main.py or an "
        "entrypoint), or a job folder with run.sh and config.yaml"
    )


def _new_result_dir(output_dir: Path | None, code_path: Path) -> Path:
    """`output_dir` (absent or empty), or a fresh `<code folder>/.syft-local/<timestamp>/`."""
    if output_dir is not None:
        output_dir = Path(output_dir).absolute()
        if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
            raise LocalRunError(f"{output_dir}: the output folder must be new or empty")
        output_dir.mkdir(parents=True, exist_ok=True)
        return output_dir
    base = (code_path if code_path.is_dir() else code_path.parent) / RESULTS_DIR
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1000):
        candidate = base / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        with contextlib.suppress(FileExistsError):
            candidate.mkdir()
            return candidate
    raise LocalRunError(f"{base}: could not create a new results folder")


def _write_local_job(
    kind: str,
    code_path: Path,
    scratch: Path,
    submitter: str,
    owner: str,
    datasets: list[str] | None,
    entrypoint: str | None,
    dependencies: list[str] | None = None,
    package_index: PackageIndex | None = None,
    runtime: str | None = None,
) -> JobFolder:
    """The code as a `mode: mock` job folder in the scratch syftbox, written by the same code a
    submission uses. Its folder name gets a random suffix: it names the job's container, which
    must not clash with a concurrent run of the same code."""
    (scratch / owner).mkdir(parents=True)
    if dependencies and kind != "python":
        raise LocalRunError(
            f"{code_path}: --dependency is for python code; a job folder declares its own"
        )
    if kind == "job":
        folder = _copy_job_folder(
            code_path, scratch, submitter, owner, datasets, package_index, runtime
        )
    elif kind == "python":
        folder = submit_python_job(
            scratch,
            submitter,
            owner,
            code_path=code_path,
            job_name=code_path.stem,
            entrypoint=entrypoint,
            dependencies=dependencies,
            datasets=datasets or [],
            mode="mock",
            package_index=package_index,
            runtime=runtime,
        )
    else:
        folder = submit_bash_job(
            scratch,
            submitter,
            owner,
            script=code_path.read_text(),
            job_name=code_path.stem,
            datasets=datasets or [],
            mode="mock",
            package_index=package_index,
            runtime=runtime,
        )
    unique = folder.with_name(f"{folder.name}-local-{secrets.token_hex(4)}")
    folder.rename(unique)
    return JobFolder(unique)


def _copy_job_folder(
    source: Path,
    scratch: Path,
    submitter: str,
    owner: str,
    datasets: list[str] | None,
    package_index: PackageIndex | None = None,
    runtime: str | None = None,
) -> Path:
    """A copy of a job folder (run.sh, config.yaml, code/ as the owner's side walks them) whose
    config says `mode: mock`, and `datasets` and `runtime` when given. Declared dependencies
    without a lock are locked as a submission would lock them."""
    files = walk_submission(source)  # refuses links, devices and oversized submissions
    config = load_config(source / "config.yaml")
    update: dict[str, object] = {"mode": "mock"}
    if datasets is not None:
        update["datasets"] = list(datasets)
    if runtime is not None:
        update["runtime"] = runtime
    target = scratch / owner / "jobs" / submitter / source.name
    for f in files:
        dest = target / f.relpath
        dest.parent.mkdir(parents=True, exist_ok=True)
        if f.relpath == "config.yaml":
            dest.write_text(config.model_copy(update=update).to_yaml())
        else:
            shutil.copyfile(f.path, dest, follow_symlinks=False)
    code = source / "code"
    if code.is_dir() and not (code / LOCK_NAME).exists():
        lock = environment_lock(config, collect_code(code), package_index)
        if lock is not None:
            (target / "code" / LOCK_NAME).write_text(lock)
    elif not code.is_dir() and config.dependencies:
        lock = environment_lock(config, [], package_index)
        if lock is not None:
            (target / "code").mkdir(parents=True, exist_ok=True)
            (target / "code" / LOCK_NAME).write_text(lock)
    return target


def default_env_cache() -> Path:
    """Where local runs keep built environments: ~/.cache/syft-runner/envs (XDG_CACHE_HOME)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "syft-runner" / "envs"


def _run(
    scratch: Path,
    owner: str,
    syftbox: Path,
    job: JobFolder,
    package_index: PackageIndex | None = None,
    env_cache_dir: Path | None = None,
) -> None:
    index = package_index or PackageIndex()
    settings = RunnerConfig(
        runner_id=LOCAL_RUNNER_ID,
        concurrency=1,
        # Every built runtime: the scientist tries their code in whichever the owner may allow.
        allowed_runtimes=_local_runtimes(),
        env_cache_dir=env_cache_dir or default_env_cache(),
        index_url=index.index_url,
        find_links=[u if "://" in u else str(Path(u).absolute()) for u in index.find_links],
        no_index=index.no_index,
    )
    client = connect()
    executor = Executor(client, settings, scratch, owner, data_root=syftbox)
    try:
        result = executor.run(job)
    except BaseException:
        # Interrupted (Ctrl-C) mid-run: the container must not outlive the run.
        with contextlib.suppress(Exception):
            executor.cleanup(executor.tasks_of(job))
        raise
    finally:
        client.close()
    if not job.marker_path("done").exists():
        raise LocalRunError(f"the job did not finish ({result.value}); is the Docker engine up?")


def _local_runtimes() -> tuple[str, ...]:
    try:
        names = runtime_names()
    except SyftError:
        names = []
    return tuple(dict.fromkeys([DEFAULT_RUNTIME, *names]))


def _collect(job: JobFolder, result_dir: Path) -> LocalRunResult:
    """Move the job's logs and outputs into `result_dir` and describe the run."""
    done = read_marker(job.marker_path("done"), DoneMarker)
    if done is None:
        raise JobError(f"{job.path}: no done marker")
    logs = result_dir / "logs"
    outputs = result_dir / "outputs"
    if job.logs_dir.is_dir():
        job.logs_dir.rename(logs)
    else:
        logs.mkdir()
    if job.outputs_dir.is_dir():
        job.outputs_dir.rename(outputs)
    else:
        outputs.mkdir()
    write_marker(result_dir / "done.yaml", done)
    return LocalRunResult(
        outcome=done.outcome,
        exit_code=done.exit_code,
        message=done.message,
        stdout=_read(logs / "stdout.txt"),
        stderr=_read(logs / "stderr.txt"),
        result_dir=result_dir,
        outputs_dir=outputs,
        outputs=sorted(p for p in outputs.rglob("*") if p.is_file() and not p.is_symlink()),
    )


def _read(path: Path) -> str:
    if not path.is_file():
        return ""
    with path.open("rb") as fh:
        return fh.read(_LOG_READ_LIMIT).decode("utf-8", errors="replace")
