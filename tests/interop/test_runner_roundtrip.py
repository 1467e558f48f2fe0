"""OUR runner behind OpenMined's real clients: their scientist submits, their owner's client
approves or rejects, RunnerService (syft_runner.syftjob_gateway) runs the mirror in the Docker
sandbox, and their scientist's client reads what it reports. Both protocols, over one shared
root (and one P1 round trip over the clients' mock Drive).

Python jobs need their declared packages locked against PyPI and built into an environment; the
environments are cached outside the repo (`~/.cache/syft-runner-tests/envs`), so only the first
run pays for the build.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from syft_core.datasite import Datasite
from syft_core.jobs import ApprovedMarker, JobFolder, Status
from syft_core.jobs.markers import read_marker
from syft_core.release import release_job
from syft_core.syftjob import TIMEOUT_LINE, Protocol, ref_for
from syft_runner.executor.labels import LABEL_SYFTBOX
from syft_runner.service import RunnerService
from syft_runner.syftjob_gateway import mirror_of
from tests.fixtures_envs import CACHE
from tests.fixtures_runner import (
    remove_test_containers,
    runner_config,
    unmount_test_filesystems,
)
from tests.interop.clients import MockDrivePair, SharedRootPair, SyftStack

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(1800)]

DO, DS = "do@example.org", "ds@example.org"
ENV_CACHE = CACHE / "envs"  # session-independent: reruns reuse the built environments
NOT_COMPLETED = "No stdout available - job not completed yet"
BASH_OK = "echo hello from bash\necho 42 > code/outputs/bash_result.txt\n"
BASH_FAIL = "echo partial > code/outputs/partial.txt\necho boom >&2\nexit 3\n"
MAIN_PY = """\
import os
import socket
from pathlib import Path

import tabulate

import {module} as sy

path = sy.resolve_dataset_file_path("ages")
ages = [int(line) for line in path.read_text().split()[1:]]
mean = sum(ages) / len(ages)
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3).close()
    net = "reachable"
except OSError as exc:
    net = "unreachable " + type(exc).__name__
print("mean", mean)
print("network", net, sorted(os.listdir("/sys/class/net")))
Path("outputs/table.txt").write_text(tabulate.tabulate([["mean", mean]], tablefmt="plain"))
"""

Pair = SharedRootPair | MockDrivePair


@dataclass
class Gateway:
    """One owner's syftbox served by our runner, with the real clients on both sides."""

    stack: SyftStack
    pair: Pair
    docker: docker.DockerClient
    tmp: Path
    # Our own: a runner starting up removes the environment builds its id left behind, and the
    # tests' default id ("pytest") is every other test's too.
    runner_id: str = field(default_factory=lambda: f"roundtrip-{uuid.uuid4().hex[:8]}")

    @property
    def root(self) -> Path:
        """The owner's syftbox: what our runner serves."""
        return self.pair.do_root

    def service(self, **overrides: Any) -> RunnerService:
        """Our runner for the owner's datasite, with test settings and `overrides`."""
        settings: dict[str, Any] = {"env_cache_dir": ENV_CACHE, "runner_id": self.runner_id}
        settings.update(overrides)
        return RunnerService(self.root, DO, runner_config(**settings), self.docker)

    def serve(self, **overrides: Any) -> float:
        """Our runner, until no approved job is left (`run(once=True)`); returns its seconds."""
        service = self.service(**overrides)
        start = time.monotonic()
        service.run(threading.Event(), once=True)
        self.pair.sync_do()
        self.pair.sync_ds()
        return time.monotonic() - start

    @contextlib.contextmanager
    def serving(self, **overrides: Any) -> Iterator[RunnerService]:
        """Our runner serving in a thread (watcher and rescans), as `syft-runner serve` does."""
        service = self.service(**overrides)
        stop = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                service.run(stop)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=serve, daemon=True, name="roundtrip-runner")
        thread.start()
        try:
            assert service.ready.wait(30), errors
            yield service
        finally:
            stop.set()
            thread.join(timeout=60)
        assert not errors, errors

    def wait_read(self, name: str, status: str, timeout: float = 60) -> dict[str, Any]:
        """The scientist's view once it shows `status`."""
        deadline = time.monotonic() + timeout
        while True:
            self.pair.sync_do()
            self.pair.sync_ds()
            view = self.read(name)
            if view["status"] == status or time.monotonic() > deadline:
                return view
            time.sleep(0.5)

    def submit_bash(self, name: str, script: str) -> None:
        self.pair.submit_bash(name, script)
        self._list()

    def submit_python(self, name: str, module: str) -> None:
        code = self.tmp / f"src-{name}"
        code.mkdir()
        (code / "main.py").write_text(MAIN_PY.format(module=module))
        self.pair.submit_python(name, code, "main.py", ["tabulate==0.9.0"])
        self._list()

    def _list(self) -> None:
        """The owner's client lists the job (it writes `pending`), as before any review."""
        self.pair.sync_do()
        assert {j["status"] for j in self.pair.list_jobs(as_owner=True)} <= {
            "pending",
            "approved",
            "rejected",
            "running",
            "done",
            "failed",
        }

    def approve(self, name: str) -> None:
        assert self.pair.approve(name, reason="looks fine") == "approved"
        self.pair.sync_do()

    def read(self, name: str) -> dict[str, Any]:
        view = self.pair.read(name)
        assert view is not None, f"the scientist's client lists no {name!r}"
        return view

    def mirror(self, name: str) -> JobFolder:
        protocol: Protocol = 1 if self.stack.protocol == 1 else 0
        return mirror_of(ref_for(self.root / DO, DS, protocol, name), self.root)

    def inbox(self, name: str) -> Path:
        return self.pair.job_dirs(name)[0]

    def dataset(self, name: str = "ages") -> None:
        """The owner's client creates the dataset: private mean 40, mock mean 2."""
        (self.tmp / "mock.csv").write_text("age\n1\n3\n")
        (self.tmp / "private.csv").write_text("age\n30\n50\n")
        self.pair.create_dataset(name, self.tmp / "mock.csv", self.tmp / "private.csv", users=[DS])

    def containers_created(self, since: float) -> list[str]:
        """Names of the containers the engine created for this syftbox since `since`."""
        label = f"{LABEL_SYFTBOX}={self.root.resolve()}"
        events = self.docker.events(
            since=int(since) - 1,
            until=int(time.time()) + 1,
            filters={"type": "container", "event": "create", "label": label},
            decode=True,
        )
        return [e["Actor"]["Attributes"].get("name", "") for e in events]


def _gateway(stack: SyftStack, pair: Pair, client: docker.DockerClient, tmp: Path) -> Gateway:
    Datasite(pair.do_root, DO).init()
    pair.add_peer()
    return Gateway(stack, pair, client, tmp)


@pytest.fixture
def gw(
    syft_stack: SyftStack,
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    tmp_path: Path,
) -> Iterator[Gateway]:
    """Scientist and owner on one shared root; our runner serves the owner's datasite."""
    pair = syft_stack.shared_pair(DO, DS, tmp_path / "root")
    yield _gateway(syft_stack, pair, docker_client, tmp_path)
    remove_test_containers(docker_client, pair.do_root)
    unmount_test_filesystems(pair.do_root)


def _assert_hello(view: dict[str, Any]) -> None:
    assert (view["status"], view["return_code"]) == ("done", 0)
    assert view["stdout"] == "hello from bash\n"
    assert view["outputs"] == {"bash_result.txt": "42\n"}


# ---------------------------------------------------------------- bash


def test_bash_success_shared_on_completion(gw: Gateway) -> None:
    gw.submit_bash("bash-hello", BASH_OK)
    gw.approve("bash-hello")
    since = time.time()
    gw.serve(syft_job_share_on_completion=True)
    assert len(gw.containers_created(since)) == 1  # what the tests of "nothing ran" rely on
    view = gw.read("bash-hello")
    _assert_hello(view)
    assert view["approved_by"] == DO and view["review_reason"] == "looks fine"
    assert gw.mirror("bash-hello").state().status is Status.DONE


def test_bash_results_wait_for_the_owners_release(gw: Gateway) -> None:
    gw.submit_bash("bash-hello", BASH_OK)
    gw.approve("bash-hello")
    gw.serve()
    view = gw.read("bash-hello")
    assert (view["status"], view["outputs"], view["stdout"]) == ("running", {}, NOT_COMPLETED)
    mirror = gw.mirror("bash-hello")
    assert mirror.state().status is Status.DONE
    release_job(mirror, by=DO)
    gw.serve()
    _assert_hello(gw.read("bash-hello"))


def test_our_approval_of_the_mirror_reaches_their_client(gw: Gateway) -> None:
    """The owner approves the mirror with ours (`syft-runner approve`): the watcher starts it at
    once, and it is done before the rescan that tells their side it was approved."""
    gw.submit_bash("bash-hello", BASH_OK)
    gw.serve()  # mirrored
    mirror = gw.mirror("bash-hello")
    with gw.serving(syft_job_share_on_completion=True, rescan_seconds=3):
        mirror.approve(DO, expected_hash=mirror.content_hash(), reason="ok by us")
        view = gw.wait_read("bash-hello", "done")
    _assert_hello(view)
    assert (view["approved_by"], view["review_reason"]) == (DO, "ok by us")


def test_bash_failure_keeps_partial_outputs(gw: Gateway) -> None:
    gw.submit_bash("bash-fail", BASH_FAIL)
    gw.approve("bash-fail")
    gw.serve(syft_job_share_on_completion=True)
    view = gw.read("bash-fail")
    assert (view["status"], view["return_code"]) == ("failed", 3)
    assert view["stderr"] == "boom\n"
    assert view["stdout"] == NOT_COMPLETED
    assert view["outputs"] == {"partial.txt": "partial\n"}


def test_their_rejection_runs_nothing(gw: Gateway) -> None:
    gw.submit_bash("bash-reject", "echo never > code/outputs/never.txt\n")
    gw.serve()  # the runner saw it pending: its mirror waits in our gateway
    assert gw.mirror("bash-reject").state().status is Status.INBOX
    assert gw.pair.reject("bash-reject", reason="not today") == "rejected"
    since = time.time()
    gw.serve(syft_job_share_on_completion=True)
    view = gw.read("bash-reject")
    assert (view["status"], view["review_reason"]) == ("rejected", "not today")
    assert view["return_code"] is None and view["outputs"] == {}
    state = gw.mirror("bash-reject").state()
    assert state.status is Status.REJECTED and state.done is None
    assert state.rejected is not None and state.rejected.reason == "not today"
    assert gw.containers_created(since) == []


def test_timeout_reads_as_their_runners(gw: Gateway) -> None:
    gw.submit_bash("bash-sleep", "echo started\nsleep 600\n")
    gw.approve("bash-sleep")
    seconds = gw.serve(
        syft_job_share_on_completion=True,
        default_limits={"timeout_seconds": 3},
    )
    assert seconds < 120
    view = gw.read("bash-sleep")
    assert (view["status"], view["return_code"]) == ("failed", -1)
    assert view["stderr"].endswith(TIMEOUT_LINE)
    review = gw.pair.job_dirs("bash-sleep")[1]
    stdout = (review / "stdout.txt").read_text()
    assert stdout.startswith("started\n") and stdout.endswith(TIMEOUT_LINE)
    assert (review / "returncode.txt").read_text() == "-1"


@pytest.mark.parametrize("seen_pending", [False, True], ids=["unseen", "seen"])
def test_a_change_after_their_approval_is_not_run(gw: Gateway, seen_pending: bool) -> None:
    gw.submit_bash("bash-changed", BASH_OK)
    if seen_pending:  # the runner mirrored it before the approval (a runner serving all along)
        gw.serve()
    gw.approve("bash-changed")
    script = gw.inbox("bash-changed") / "code" / "script.sh"
    script.write_text("echo something else\n")
    later = time.time() + 10  # well after approved_at, beyond the runner's clock slack
    os.utime(script, (later, later))
    since = time.time()
    gw.serve(syft_job_share_on_completion=True)
    view = gw.read("bash-changed")
    assert (view["status"], view["return_code"]) == ("failed", -1)
    assert "changed after it was approved" in view["stderr"]
    assert view["outputs"] == {}
    state = gw.mirror("bash-changed").state()
    assert state.approved is None and state.done is None  # never approved on our side
    assert gw.containers_created(since) == []


def test_mock_drive_bash_round_trip(
    syft_p1: SyftStack,
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    tmp_path: Path,
) -> None:
    """P1 over the mock Drive: the runner serves the owner's root only; the scientist's client
    gets the results by sync."""
    pair = syft_p1.mock_pair(DO, DS, tmp_path / "do" / "root", tmp_path / "ds" / "root")
    try:
        gw = _gateway(syft_p1, pair, docker_client, tmp_path)
        gw.submit_bash("bash-hello", BASH_OK)
        gw.approve("bash-hello")
        gw.serve(syft_job_share_on_completion=True)
        _assert_hello(gw.read("bash-hello"))
    finally:
        pair.close()
        remove_test_containers(docker_client, pair.do_root)
        unmount_test_filesystems(pair.do_root)


# ---------------------------------------------------------------- python


def test_python_job_reads_private_data_without_network(gw: Gateway) -> None:
    gw.dataset("ages")
    gw.submit_python("py-ages", gw.stack.spec.resolve_module)
    gw.approve("py-ages")
    seconds = gw.serve(syft_job_share_on_completion=True, syft_job_datasets=["ages"])
    print(f"python job served in {seconds:.1f} s")
    view = gw.read("py-ages")
    assert (view["status"], view["return_code"]) == ("done", 0), view["stderr"]
    lines = view["stdout"].splitlines()
    assert lines[0] == "mean 40.0"  # the private data (the mock's mean is 2)
    assert lines[1].startswith("network unreachable ")
    assert lines[1].endswith("['lo']")
    assert view["outputs"] == {"table.txt": "mean  40"}
    approved = read_marker(gw.mirror("py-ages").marker_path("approved"), ApprovedMarker)
    assert approved is not None and approved.datasets == ["ages"]


def test_python_job_asking_for_a_dataset_not_approved_fails(gw: Gateway) -> None:
    gw.dataset("ages")
    gw.submit_python("py-ages", gw.stack.spec.resolve_module)
    gw.approve("py-ages")
    gw.serve(syft_job_share_on_completion=True, syft_job_datasets=[])
    view = gw.read("py-ages")
    assert view["status"] == "failed", view
    assert view["return_code"] == 1
    # Their client's own error, raised by resolve_dataset_file_path inside the job.
    missing = "FileNotFoundError: ❌ Dataset 'ages' not found in do@example.org's datasite."
    assert missing in view["stderr"]
    assert "mean" not in view["stdout"]
    assert view["outputs"] == {}
