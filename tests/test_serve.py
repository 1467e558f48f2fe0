"""`syft-runner serve` as the owner's one process: start-up failures are one line, logs for
people or JSON lines, the env vars every command takes, and (with the engine) the sync with
peers running in the same process over the folder transport."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
import yaml

from syft_core import get_client
from syft_core.datasite import Datasite
from syft_core.job import Job
from syft_core.jobs import JobFolder, Outcome
from syft_core.sync import FolderTransport, SyncClient
from syft_runner.cli import serve as serve_cli
from tests.fixtures_runner import remove_test_containers

OWNER = "alice@example.org"
SCI = "bob@example.org"
CLI = [sys.executable, "-c", "from syft_runner.cli import main; main()"]


def serve(
    box: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`syft-runner serve ARGS` with the syftbox and email from the environment."""
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SYFTBOX_FOLDER": str(box),
        "SYFTBOX_EMAIL": OWNER,
        **(env or {}),
    }
    return subprocess.run(
        [*CLI, "serve", *args], capture_output=True, text=True, env=environment, timeout=timeout
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def box(tmp_path: Path) -> Path:
    root = tmp_path / "box"
    Datasite(root, OWNER).init()
    return root


# -- starting: one clear line, no traceback --------------------------------------------------------
def test_no_datasite_is_one_line_naming_the_env_vars_values(tmp_path: Path) -> None:
    line = one_line(serve(tmp_path, "--log-format", "human"))
    assert line == (
        f"syft-runner serve: cannot start: no datasite for {OWNER} in {tmp_path}; create it "
        f"with: syft-runner init --syftbox {tmp_path} --email {OWNER}"
    )


def test_a_bad_runner_config_is_one_line(box: Path) -> None:
    bad = box / OWNER / ".syft" / "runner.yaml"
    bad.write_text("concurrency: many\n")
    line = one_line(serve(box, "--log-format", "human"))
    assert line.startswith(f"syft-runner serve: cannot start: {bad}: invalid runner config")


def test_without_a_terminal_the_line_is_a_json_record(box: Path) -> None:
    (box / OWNER / ".syft" / "runner.yaml").write_text("concurrency: many\n")
    record = json.loads(one_line(serve(box)))
    assert record["level"] == "error" and record["msg"] == "cannot start the runner"
    assert "concurrency" in record["error"]


def test_sync_without_a_transport_is_one_line(box: Path) -> None:
    line = one_line(serve(box, "--sync", "--log-format", "human"))
    assert "--sync needs a transport: pass --transport folder:PATH" in line


def test_a_malformed_sync_config_is_one_line(box: Path) -> None:
    (box / ".syft-sync").mkdir()
    (box / ".syft-sync" / "config.yaml").write_text("- not a mapping\n")
    line = one_line(serve(box, "--log-format", "human"))
    assert "sync config" in line and "is malformed" in line


def test_an_unreachable_engine_is_one_line(box: Path) -> None:
    line = one_line(
        serve(box, "--log-format", "human", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    )
    assert line.startswith("syft-runner serve: cannot start: ")


@pytest.mark.docker
def test_a_second_runner_on_the_same_datasite_is_one_line(box: Path) -> None:
    lock = box / ".syft-runner" / OWNER / "serve.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running `serve` holds
        line = one_line(serve(box, "--log-format", "human"))
    finally:
        os.close(fd)
    assert line == (
        f"syft-runner serve: cannot start: {lock}: another runner is already serving {OWNER}"
    )


# -- log formats -----------------------------------------------------------------------------------
def test_human_lines_escape_what_peers_chose() -> None:
    record = logging.LogRecord("x", logging.WARNING, "", 0, "sync rejected: a\x1b[2Jb", None, None)
    record.folder = "jobs/\u202eevil"
    line = serve_cli.HumanFormatter().format(record)
    assert line.endswith("warning: sync rejected: a\\x1b[2Jb  folder=jobs/\\u202eevil")


def test_json_lines_when_asked_or_not_on_a_terminal() -> None:
    assert serve_cli.json_logs_wanted(serve_cli.LogFormat.JSON)
    assert not serve_cli.json_logs_wanted(serve_cli.LogFormat.HUMAN)
    assert serve_cli.json_logs_wanted(serve_cli.LogFormat.AUTO) == (not sys.stderr.isatty())


def test_a_record_after_stderr_closed_is_dropped_quietly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A thread logging while the process shuts down: no `I/O operation on closed file`."""
    stream = (tmp_path / "err").open("w")
    monkeypatch.setattr(sys, "stderr", stream)
    handler = serve_cli.StderrHandler()
    handler.setFormatter(serve_cli.HumanFormatter())
    stream.close()
    handler.emit(logging.LogRecord("x", logging.INFO, "", 0, "late", None, None))


# -- one process: jobs and sync --------------------------------------------------------------------
@pytest.fixture
def two_boxes(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[tuple[Path, Path]]:
    owner_box, sci_box = tmp_path / "owner-box", tmp_path / "sci-box"
    Datasite(owner_box, OWNER).init()
    yield owner_box, sci_box
    remove_test_containers(docker_client, owner_box)


def _until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.docker
def test_serve_syncs_with_peers_in_the_same_process(
    two_boxes: tuple[Path, Path], tmp_path: Path, job_images: dict[str, str]
) -> None:
    owner_box, sci_box = two_boxes
    (owner_box / OWNER / "public" / "README.md").write_text("alice's datasite\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    with (
        SyncClient(owner_box, OWNER, FolderTransport(shared)) as owner,
        SyncClient(sci_box, SCI, FolderTransport(shared)) as sci,
    ):
        sci.request_peer(OWNER)
        owner.accept_peer(SCI)
        owner.sync_once()
        sci.sync_once()  # the scientist now has the owner's public datasite
    config = tmp_path / "runner.yaml"
    config.write_text(yaml.safe_dump({"rescan_seconds": 0.3, "runner_id": "pytest-serve"}))
    log = tmp_path / "serve.log"
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SYFTBOX_FOLDER": str(owner_box),
        "SYFTBOX_EMAIL": OWNER,
    }
    command = [*CLI, "serve", "--config", str(config), "--transport", f"folder:{shared}"]
    command += ["--interval", "0.5"]
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=environment)
    try:
        get_client(sci_box, SCI).submit_bash_job(OWNER, "echo hello from serve", "Hi", mode="mock")
        with SyncClient(sci_box, SCI, FolderTransport(shared)) as sci:
            sci.sync_once()
            owner_job = Job(JobFolder(owner_box / OWNER / "jobs" / SCI / "Hi"), OWNER)
            _until(lambda: owner_job.location.joinpath("config.yaml").exists(), "the job")
            owner_job.approve(without_review=True)
            mine = get_client(sci_box, SCI).jobs[f"{OWNER}/Hi"]

            def results_arrived() -> bool:
                sci.sync_once()
                return mine.released

            _until(results_arrived, "the released results at the scientist")
        assert mine.outcome is Outcome.SUCCEEDED
        assert mine.stdout.text == "hello from serve\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(timeout=30)
    text = log.read_text()
    records = [json.loads(line) for line in text.splitlines()]  # not a terminal: JSON lines
    assert returncode == 0, text
    assert any(r["msg"].startswith("syncing over folder") for r in records)
    assert any(r["msg"].startswith("sync applied") for r in records)
    assert "Traceback" not in text and "closed file" not in text
    assert records[-1]["msg"] == "runner stopped"
    remembered = yaml.safe_load((owner_box / ".syft-sync" / "config.yaml").read_text())
    assert remembered == {"transport": f"folder:{shared}"}
