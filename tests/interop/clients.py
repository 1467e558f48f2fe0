"""OpenMined's real Syft clients as a test harness: cached venvs plus a JSON driver.

Why: our runner serves the Syft job gateway (`<owner>/app_data/job/{inbox,review}/<ds>/`),
and only the real clients can tell whether what it writes is what a scientist sees. They
cannot live in our venv (syft-client 0.1.117 and syft 0.10.0 pin different syft-job,
syft-dataset and syft-permissions releases, and ours pins syft-permissions 0.1.15), so each
stack gets its own venv, built once with uv and cached outside the repo:

    ${XDG_CACHE_HOME:-~/.cache}/syft-runner-tests/interop/p<protocol>-<key>/

`<key>` hashes the pins and the Python version; a stamp file written last marks a venv
complete, and an flock keeps two pytest workers from building the same venv at once.

The clients run in a long-lived `driver.py` process per stack (imports cost seconds), which
answers one JSON line per request. `SyftStack` drives both parties over ONE shared root
(`ROOT/<email>/`, no sync); `SyftStack.mock_pair` gives a (DS, DO) pair over the clients' own
in-memory mock Drive, each party with its own root and the real sync engine.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

DRIVER = Path(__file__).with_name("driver.py")
# Bump when the driver needs something new in the venvs, to rebuild them.
HARNESS_VERSION = 1


@dataclass(frozen=True)
class StackSpec:
    """One Syft client stack: what to install and what its jobs look like."""

    protocol: int  # 0: flat `JOB/`; 1: `v1/JOB/`
    pins: tuple[str, ...]
    resolve_module: str  # a job calls `<module>.resolve_dataset_file_path(name)`
    install_source: str  # the first dependency the client writes into config.yaml/run.sh


P0 = StackSpec(0, ("syft-client==0.1.117",), "syft_client", "syft-client==0.1.117")
P1 = StackSpec(1, ("syft==0.10.0", "syft-rds==0.6.1"), "syft", "syft==0.10.0")


class DriverError(RuntimeError):
    """A client call failed inside the driver; carries its traceback and what it printed."""


# ---------------------------------------------------------------- venvs


def cache_dir() -> Path:
    """Outside the repo, so `git clean` and new worktrees keep the venvs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "syft-runner-tests" / "interop"


def uv_binary() -> str:
    """uv on PATH, else the one our venv ships (uv is a dependency of syft-runner)."""
    found = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("uv not found: `pip install uv` into this venv")
    return found


def venv_key(spec: StackSpec) -> str:
    """Changes whenever a rebuild is needed: pins, Python minor version, harness version."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    raw = json.dumps([spec.pins, python, HARNESS_VERSION])
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (pytest-xdist workers, parallel runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stamp_ok(stamp: Path, spec: StackSpec) -> bool:
    """A venv is complete only once its stamp names the same pins."""
    try:
        return bool(json.loads(stamp.read_text())["pins"] == list(spec.pins))
    except (OSError, ValueError, KeyError):
        return False


def _build(venv: Path, spec: StackSpec) -> float:
    """Creates the venv with uv from PyPI (no Python download); returns the seconds taken.
    The running interpreter is used: every pinned package declares `Requires-Python >=3.10`."""
    uv = uv_binary()
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    start = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
    python = str(venv / "bin" / "python")
    install = [uv, "pip", "install", "-q", "--compile-bytecode", "--python", python]
    subprocess.run([*install, *spec.pins], check=True, env=env)
    return time.monotonic() - start


def ensure_venv(spec: StackSpec) -> Path:
    """The stack's venv, built on first use and reused after (one stat when warm)."""
    venv = cache_dir() / f"p{spec.protocol}-{venv_key(spec)}"
    stamp = venv / "syft-runner-interop.json"
    if _stamp_ok(stamp, spec):
        return venv
    with _flock(cache_dir() / f"p{spec.protocol}.lock"):
        if not _stamp_ok(stamp, spec):  # another worker may have built it meanwhile
            seconds = _build(venv, spec)
            record = {"pins": list(spec.pins), "python": sys.version, "build_seconds": seconds}
            stamp.write_text(json.dumps(record, indent=2))
    return venv


# ---------------------------------------------------------------- driver process


class Driver:
    """One `driver.py` process in a stack's venv; requests and replies are JSON lines."""

    def __init__(self, spec: StackSpec) -> None:
        self.spec = spec
        python = ensure_venv(spec) / "bin" / "python"
        self.log = Path(tempfile.mkstemp(prefix=f"syft-interop-p{spec.protocol}-")[1])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SYFTBOX_", "SYFT_"))}
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [str(python), str(DRIVER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**env, "PYTHONUNBUFFERED": "1"},
            )
        atexit.register(self.close)

    def call(self, op: str, **args: Any) -> Any:
        """Runs one op; raises DriverError with the client's own traceback on failure."""
        stdin, stdout = self._pipes()
        stdin.write(json.dumps({"op": op, "args": args}, default=str) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise DriverError(f"driver exited during {op!r}; its log:\n{self._log_tail()}")
        reply = json.loads(line)
        if not reply["ok"]:
            detail = f"{reply['traceback']}\nprinted:\n{reply['printed']}"
            raise DriverError(f"{op}: {reply['error']}\n{detail}")
        return reply["result"]

    def _pipes(self) -> tuple[IO[str], IO[str]]:
        if self.proc.stdin is None or self.proc.stdout is None or self.proc.poll() is not None:
            raise DriverError(f"driver is not running; its log:\n{self._log_tail()}")
        return self.proc.stdin, self.proc.stdout

    def _log_tail(self, chars: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def close(self) -> None:
        """Ends the process (closing stdin ends its loop) and removes its log."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.unlink(missing_ok=True)


# ---------------------------------------------------------------- paths


def job_dirs(root: Path, do: str, ds: str, name: str, protocol: int) -> tuple[Path, Path]:
    """(inbox, review) folders of a job: P0 `.../<ds>/JOB/`, P1 `.../<ds>/v1/JOB/`."""
    base = root / do / "app_data" / "job"
    sub = Path(name) if protocol == 0 else Path("v1") / name
    return base / "inbox" / ds / sub, base / "review" / ds / sub


# ---------------------------------------------------------------- shared root


class SyftStack:
    """Both parties' real clients over one shared root `ROOT/<email>/`, no sync."""

    def __init__(self, spec: StackSpec) -> None:
        self.spec = spec
        self._driver: Driver | None = None

    @classmethod
    def p0(cls) -> SyftStack:
        """syft-client 0.1.117 (syft-job 0.1.39): protocol 0, flat `JOB/`."""
        return cls(P0)

    @classmethod
    def p1(cls) -> SyftStack:
        """syft 0.10.0 + syft-rds 0.6.1 (syft-job 0.1.40): protocol 1, `v1/JOB/`."""
        return cls(P1)

    @property
    def protocol(self) -> int:
        return self.spec.protocol

    @property
    def driver(self) -> Driver:
        """Started on first use, so merely constructing a stack builds nothing."""
        if self._driver is None:
            self._driver = Driver(self.spec)
        return self._driver

    def close(self) -> None:
        if self._driver is not None:
            self._driver.close()
            self._driver = None

    def info(self) -> dict[str, Any]:
        """Installed versions, as the driver's venv reports them."""
        return dict(self.driver.call("info"))

    def job_dirs(self, root: Path, do: str, ds: str, name: str) -> tuple[Path, Path]:
        """(inbox, review) of a job in this stack's layout."""
        return job_dirs(root, do, ds, name, self.protocol)

    def add_peer(self, root: Path, do: str, ds: str) -> Path:
        """The owner's client creates inbox/review for `ds` with their syft.pub.yaml, as it
        does when it approves a peer; returns the DS inbox folder."""
        return Path(self.driver.call("add_peer", root=root, do=do, ds=ds)["inbox"])

    def submit_bash(self, root: Path, ds: str, do: str, name: str, script: str) -> Path:
        """The scientist's `submit_bash_job`; returns the inbox job folder."""
        args = {"root": root, "ds": ds, "do": do, "name": name, "script": script}
        return Path(self.driver.call("submit_bash", **args)["job_dir"])

    def submit_python(
        self,
        root: Path,
        ds: str,
        do: str,
        name: str,
        folder: Path,
        entrypoint: str | None = None,
        deps: list[str] | None = None,
    ) -> Path:
        """The scientist's `submit_python_job` (file or folder); the client prepends its install
        source (`spec.install_source`) to `deps`. Returns the inbox job folder."""
        args = {"root": root, "ds": ds, "do": do, "name": name, "code": folder}
        reply = self.driver.call("submit_python", entrypoint=entrypoint, deps=deps, **args)
        return Path(reply["job_dir"])

    def list_jobs(self, root: Path, email: str, as_owner: bool) -> list[dict[str, Any]]:
        """`client.jobs` as `email` sees it; the owner's listing writes `pending` states."""
        role = "do" if as_owner else "ds"
        return list(self.driver.call("list_jobs", root=root, email=email, **{"as": role}))

    def approve(self, root: Path, do: str, ds: str, name: str, reason: str | None = None) -> str:
        """The owner's `job.approve()` (the job must be pending: list it first)."""
        args = {"root": root, "do": do, "ds": ds, "name": name, "reason": reason}
        return str(self.driver.call("approve", **args)["status"])

    def reject(self, root: Path, do: str, ds: str, name: str, reason: str | None = None) -> str:
        """The owner's `job.reject(reason)` (the job must be pending: list it first)."""
        args = {"root": root, "do": do, "ds": ds, "name": name, "reason": reason}
        return str(self.driver.call("reject", **args)["status"])

    def read(self, root: Path, ds: str, do: str, name: str) -> dict[str, Any] | None:
        """The scientist's view: status, return_code, stdout, stderr, outputs {name: text, or
        {"dir": [...]}, or {"hex": ...}}, review_reason, printed hints; None if not listed."""
        args = {"root": root, "ds": ds, "do": do, "name": name}
        reply = self.driver.call("read", **args)
        return None if reply is None else dict(reply)

    def create_dataset(
        self,
        root: Path,
        do: str,
        name: str,
        mock: Path,
        private: Path,
        summary: str | None = None,
        users: list[str] | None = None,
    ) -> dict[str, str]:
        """The owner's dataset manager creates `public/syft_datasets/NAME/` (mock data and
        dataset.yaml) and `private/syft_datasets/NAME/` (private data)."""
        args = {"root": root, "do": do, "name": name, "mock_path": mock, "private_path": private}
        return dict(self.driver.call("create_dataset", summary=summary, users=users, **args))

    def resolve_dataset(
        self, root: Path, do: str, name: str, in_job: bool = True
    ) -> dict[str, Any]:
        """`<module>.resolve_dataset_file_path(name)` (`path`) and `..._files_path` (`paths`),
        with SYFTBOX_FOLDER=root, SYFTBOX_EMAIL=do and SYFT_IS_IN_JOB as a job gets them."""
        return dict(self.driver.call("resolve_dataset", root=root, do=do, name=name, in_job=in_job))

    def mock_pair(self, do: str, ds: str, do_root: Path, ds_root: Path) -> MockDrivePair:
        """A (DS, DO) pair over the in-memory mock Drive, in a process of its own."""
        return MockDrivePair(self.spec, do, ds, do_root, ds_root)

    def shared_pair(self, do: str, ds: str, root: Path) -> SharedRootPair:
        """The shared root behind MockDrivePair's interface, so one test body serves both."""
        return SharedRootPair(self, do, ds, root)


class SharedRootPair:
    """(DS, DO) on one shared root, with MockDrivePair's methods; syncs are no-ops."""

    def __init__(self, stack: SyftStack, do: str, ds: str, root: Path) -> None:
        self.stack, self.spec, self.do, self.ds = stack, stack.spec, do, ds
        self.do_root = self.ds_root = root
        root.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        """The stack's driver is shared: nothing to end here."""

    def job_dirs(self, name: str, owner_side: bool = True) -> tuple[Path, Path]:
        return self.stack.job_dirs(self.do_root, self.do, self.ds, name)

    def add_peer(self) -> Path:
        return self.stack.add_peer(self.do_root, self.do, self.ds)

    def submit_bash(self, name: str, script: str) -> None:
        self.stack.submit_bash(self.ds_root, self.ds, self.do, name, script)

    def submit_python(
        self, name: str, folder: Path, entrypoint: str | None = None, deps: list[str] | None = None
    ) -> None:
        self.stack.submit_python(self.ds_root, self.ds, self.do, name, folder, entrypoint, deps)

    def sync_do(self) -> None:
        """Nothing to move: both parties see the same folder."""

    def sync_ds(self) -> None:
        """Nothing to move: both parties see the same folder."""

    def list_jobs(self, as_owner: bool) -> list[dict[str, Any]]:
        email = self.do if as_owner else self.ds
        return self.stack.list_jobs(self.do_root, email, as_owner)

    def approve(self, name: str, reason: str | None = None) -> str:
        return self.stack.approve(self.do_root, self.do, self.ds, name, reason)

    def reject(self, name: str, reason: str | None = None) -> str:
        return self.stack.reject(self.do_root, self.do, self.ds, name, reason)

    def read(self, name: str) -> dict[str, Any] | None:
        return self.stack.read(self.ds_root, self.ds, self.do, name)

    def create_dataset(
        self,
        name: str,
        mock: Path,
        private: Path,
        summary: str | None = None,
        users: list[str] | None = None,
    ) -> dict[str, str]:
        return self.stack.create_dataset(self.do_root, self.do, name, mock, private, summary, users)


# ---------------------------------------------------------------- mock Drive


class MockDrivePair:
    """The clients' `pair_with_mock_drive_service_connection`: DS and DO each with their own
    root and the real sync engine over an in-memory Drive, so files move only on `sync_*`.

    Each pair has its own driver process: the Drive lives in that process's memory, and the
    sync caches keep state there too. The clients also write `<root>-event-messages/` (DS)
    and `<root>-events/` (DO) BESIDE each root; reusing them with a fresh root makes the DO's
    sync fail ("not in the cache but it does have an old hash"), so give fresh parent dirs.
    """

    def __init__(self, spec: StackSpec, do: str, ds: str, do_root: Path, ds_root: Path) -> None:
        self.spec, self.do, self.ds = spec, do, ds
        self.do_root, self.ds_root = do_root, ds_root
        for root in (do_root, ds_root):
            root.mkdir(parents=True, exist_ok=True)
        self.driver = Driver(spec)
        roots = {"do_root": do_root, "ds_root": ds_root}
        self.driver.call("mock_pair", pair="pair", do=do, ds=ds, **roots)

    def _call(self, op: str, **args: Any) -> Any:
        return self.driver.call(op, pair="pair", do=self.do, ds=self.ds, **args)

    def add_peer(self) -> Path:
        """Done by the pairing itself (the DO approved the DS as a peer): the DS inbox."""
        return self.do_root / self.do / "app_data" / "job" / "inbox" / self.ds

    def close(self) -> None:
        self.driver.close()

    def job_dirs(self, name: str, owner_side: bool = True) -> tuple[Path, Path]:
        """(inbox, review) of a job in the owner's root (or the scientist's copy)."""
        root = self.do_root if owner_side else self.ds_root
        return job_dirs(root, self.do, self.ds, name, self.spec.protocol)

    def submit_bash(self, name: str, script: str) -> None:
        """`ds.submit_bash_job`: writes the DS copy and pushes it to the Drive."""
        self._call("submit_bash", name=name, script=script)

    def submit_python(
        self, name: str, folder: Path, entrypoint: str | None = None, deps: list[str] | None = None
    ) -> None:
        """`ds.submit_python_job`, pre-submit scan included (its prompt reads EOF)."""
        self._call("submit_python", name=name, code=folder, entrypoint=entrypoint, deps=deps)

    def sync_do(self) -> None:
        """`do.sync()`: pulls submissions in, pushes the owner's review/ files out."""
        self._call("sync", **{"as": "do"})

    def sync_ds(self) -> None:
        """`ds.sync()`: pulls what the owner shared."""
        self._call("sync", **{"as": "ds"})

    def list_jobs(self, as_owner: bool) -> list[dict[str, Any]]:
        """`job_client.jobs` of one party (no implicit sync)."""
        return list(self._call("list_jobs", **{"as": "do" if as_owner else "ds"}))

    def approve(self, name: str, reason: str | None = None) -> str:
        return str(self._call("approve", name=name, reason=reason)["status"])

    def reject(self, name: str, reason: str | None = None) -> str:
        return str(self._call("reject", name=name, reason=reason)["status"])

    def read(self, name: str) -> dict[str, Any] | None:
        """The scientist's view of their own synced copy (see `SyftStack.read`)."""
        reply = self._call("read", name=name)
        return None if reply is None else dict(reply)

    def create_dataset(
        self,
        name: str,
        mock: Path,
        private: Path,
        summary: str | None = None,
        users: list[str] | None = None,
    ) -> dict[str, str]:
        """`do.create_dataset(...)`: local dataset plus its mock collection on the Drive."""
        args = {"name": name, "mock_path": mock, "private_path": private}
        return dict(self._call("create_dataset", summary=summary, users=users, **args))
