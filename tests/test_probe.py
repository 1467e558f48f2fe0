"""The isolation probe: parsing and judging its report (unit), every line of it inside a real job
container, and a control run in a weakened container proving the probe sees what it claims to."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from syft_runner.diagnostics import probe as probe_module
from syft_runner.diagnostics.probe import (
    EXPECTED_ALLOWED,
    PROBE_PROGRAM_FILE,
    ProbeError,
    ProbeReport,
    parse_report,
    probe_source,
    run_probe,
)
from syft_runner.executor.backends.fake import FakeBackend, FakeRun
from syft_runner.executor.contract import TaskSpec
from syft_runner.sandbox.container import (
    ALLOWED_ENV_NAMES,
    CODE_OUTPUTS_DIR,
    DOCKER_MASKED_PATHS,
    JOB_DIR,
    JOB_GID,
    JOB_UID_COUNT,
    JOB_UID_FIRST,
    OUTPUTS_DIR,
    Limits,
    Mount,
)
from syft_runner.workspace.jobfs import mount_jobfs, supported, unmount_jobfs
from tests.fixtures_docker import SANDBOX_USER, RunSandboxed

KNOWN_LEAK = "host paths visible in mountinfo"  # see tests/attacks/test_proc_sys.py


def _line(name: str, allowed: bool, detail: str = "d") -> str:
    return json.dumps({"kind": "check", "name": name, "allowed": allowed, "detail": detail})


def test_parse_judges_each_check_against_the_expectation() -> None:
    stdout = "\n".join(
        [
            _line("run as root", False, "uid=65532"),
            _line("write /tmp", True),
            _line("socket AF_INET", True, "created"),
            _line("something new", True),
            json.dumps({"kind": "fact", "name": "uid", "value": 65532}),
            "",
            "BLOCKED  run as root   uid=65532",
        ]
    )
    report = parse_report(stdout)
    assert [c.name for c in report.checks] == [
        "run as root",
        "write /tmp",
        "socket AF_INET",
        "something new",
    ]
    assert report.facts == {"uid": 65532}
    assert [c.name for c in report.failures()] == ["socket AF_INET"]
    assert report.check("something new").expected is None and report.check("something new").ok
    assert "run as root" not in report.missing() and "write /" in report.missing()
    table = report.table().splitlines()
    assert table[0].split()[:2] == ["BLOCKED", "ok"]
    assert table[2].split()[:2] == ["ALLOWED", "UNEXPECTED"]
    assert any(row.startswith("MISSING") and "write /" in row for row in table)


def test_parse_refuses_garbage_and_escapes_details() -> None:
    with pytest.raises(ProbeError, match="no checks"):
        parse_report("Traceback (most recent call last):\n  boom\n")
    with pytest.raises(ProbeError, match="line 2"):
        parse_report(_line("run as root", False) + "\n{not json\n")
    with pytest.raises(ProbeError, match="line 1"):
        parse_report(json.dumps({"kind": "check", "name": "x"}))
    report = parse_report(_line("run as root", False, "evil \x1b[2J\x07 detail"))
    assert "\x1b" not in report.table() and "\\x1b" in report.table()


PROGRAM_MODULE = "syft_runner.diagnostics.probe_program"


def _program_file() -> Path:
    """Where the probe program's module is, found without importing (running) it."""
    spec = importlib.util.find_spec(PROGRAM_MODULE)
    assert spec is not None and spec.origin is not None
    return Path(spec.origin)


def test_the_probe_program_top_level_only_defines() -> None:
    # Checked without running it: were the `__main__` guard lost, importing the module would run
    # every attack on the machine that imports it.
    tree = ast.parse(probe_source())
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.ClassDef):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.Assign | ast.AnnAssign) and not any(
            isinstance(n, ast.Call) for n in ast.walk(node)
        ):
            continue
        assert isinstance(node, ast.If), ast.unparse(node)
        assert ast.unparse(node.test) == "__name__ == '__main__'", ast.unparse(node)
        assert [ast.unparse(n) for n in node.body] == ["main()"], ast.unparse(node)
        assert not node.orelse, ast.unparse(node)


def test_importing_the_probe_program_runs_no_check() -> None:
    test_the_probe_program_top_level_only_defines()  # never import it if it would run
    # A fresh interpreter: importing the module (as mypy, the tests or a curious reader do)
    # walks no filesystem, tries no attack and prints nothing; only `python3 -c` runs it.
    code = (
        f"import {PROGRAM_MODULE} as p\n"
        "assert p.CHECKS == [] and p.FACTS == {}, (p.CHECKS, p.FACTS)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_the_probe_program_imports_only_the_standard_library() -> None:
    # It runs with the image's python3 alone: nothing from this project, nothing installed.
    tree = ast.parse(probe_source())
    imported = {
        alias.name for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names
    }
    imported |= {
        n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module is not None
    }
    assert all(n.level == 0 for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    outside = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    assert outside == set(), outside


def test_the_runner_sends_the_program_file_verbatim(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    program = _program_file().read_text(encoding="utf-8")
    assert _program_file() == PROBE_PROGRAM_FILE
    assert probe_source() == program
    sent: list[TaskSpec] = []

    def behaviour(spec: TaskSpec) -> FakeRun:
        sent.append(spec)
        return FakeRun(stdout=(_line("run as root", False, "uid=2000000001") + "\n").encode())

    backend = FakeBackend(behaviour)
    backend.runs_on_this_host = False  # no per-job filesystem (a loop mount needs root)
    monkeypatch.setattr(probe_module, "resolve_image", lambda client, runtime: "sha256:fake")
    report = run_probe(None, backend=backend, scratch=tmp_path)
    assert [spec.command for spec in sent] == [("python3", "-c", program)]
    assert report.check("run as root").allowed is False


@pytest.fixture(scope="module")
def probe(docker_client: docker.DockerClient, job_images: dict[str, str]) -> ProbeReport:
    return run_probe(docker_client)


@pytest.mark.docker
def test_every_probe_line_in_a_job_container(probe: ProbeReport) -> None:
    assert probe.missing() == []
    assert {c.name for c in probe.checks} == set(EXPECTED_ALLOWED)
    for check in probe.checks:
        if check.name == KNOWN_LEAK:
            continue
        assert check.allowed is EXPECTED_ALLOWED[check.name], (check.name, check.detail)
    facts = probe.facts
    uid = facts["uid"]
    assert isinstance(uid, int) and JOB_UID_FIRST <= uid < JOB_UID_FIRST + JOB_UID_COUNT
    assert facts["gid"] == JOB_GID
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert facts[field] == "0000000000000000", field
    assert facts["NoNewPrivs"] == "1" and facts["Seccomp"] == "2"
    assert facts["interfaces"] == ["lo"]
    assert facts["writable paths"] == ["/job/outputs", "/job/code/outputs", "/tmp", "/dev/shm"]
    writable = facts["writable mounts"]
    assert isinstance(writable, list)
    assert {m.split()[0] for m in writable} >= {"/job/outputs", "/tmp", "/dev/shm"}
    assert all({"noexec", "nosuid", "nodev"} <= set(m.split()[1].split(",")) for m in writable)
    defaults = Limits()
    assert facts["pids.max"] == str(defaults.pids)
    assert facts["memory.limit"] == str(defaults.memory_mb * 1024 * 1024)
    assert facts["memory.memsw.limit"] == facts["memory.limit"]
    assert facts["cpu quota"] == str(round(defaults.cpus * 100_000))
    assert facts["hostname"] == "job"
    environment = facts["environment"]
    assert isinstance(environment, list)
    assert set(environment) <= ALLOWED_ENV_NAMES | {"HOSTNAME"}
    mounts = facts["mounts"]
    assert isinstance(mounts, list)
    assert any(m.startswith("/ ro ") for m in mounts)
    assert any(m.startswith("/job ro ") for m in mounts)
    assert any(m.startswith("/job/outputs rw") for m in mounts)
    assert any(m.startswith("/tmp rw tmpfs") for m in mounts)
    assert facts["devices"] == sorted(
        [
            "/dev/full",
            "/dev/null",
            "/dev/pts/ptmx",
            "/dev/random",
            "/dev/tty",
            "/dev/urandom",
            "/dev/zero",
        ]
    )


@pytest.mark.docker
def test_probe_sees_no_host_paths(probe: ProbeReport) -> None:
    assert probe.check(KNOWN_LEAK).allowed is False, probe.check(KNOWN_LEAK).detail


@pytest.mark.docker
def test_probe_reflects_the_limits_it_ran_with(
    docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    report = run_probe(
        docker_client, limits=Limits(memory_mb=96, pids=40, cpus=0.5, timeout_seconds=60)
    )
    assert report.facts["pids.max"] == "40"
    assert report.facts["memory.limit"] == str(96 * 1024 * 1024)
    assert report.facts["cpu quota"] == "50000"


@pytest.mark.docker
def test_probe_detects_a_weakened_container(run_sandboxed: RunSandboxed) -> None:
    # Control: root, Docker's default capabilities, a writable image, no no-new-privileges.
    # (Still no network: nothing here may send traffic anywhere.)
    result = run_sandboxed(
        ["python3", "-c", probe_source()],
        overrides={"user": "0:0", "cap_drop": None, "security_opt": [], "read_only": False},
    )
    assert result.exit_code == 0, result.stderr
    report = parse_report(result.stdout)
    weakened = {c.name for c in report.failures()}
    expected = {
        "run as root",
        "hold effective capabilities",
        "capabilities in the bounding set",
        "gain privileges through exec",
        "write /",
        "write /etc",
        "write /usr/bin",
        "write /var",
        "mknod a device",
    }
    assert expected <= weakened, expected - weakened


@pytest.mark.docker
@pytest.mark.skipif(not supported(), reason="needs root, mkfs.ext4 and loop devices")
def test_probe_detects_executable_outputs_and_visible_block_devices(
    run_sandboxed: RunSandboxed, tmp_path: Path
) -> None:
    # Control: what a job got before issue #9 — outputs on a host folder mounted without noexec
    # (as without a job filesystem) and only Docker's own masked paths — while another job's
    # filesystem is mounted on the host.
    tmp_path.chmod(0o755)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    os.chown(outputs, *SANDBOX_USER)
    (tmp_path / "code" / "outputs").mkdir(parents=True)
    (tmp_path / "code").chmod(0o755)
    assert mount_jobfs(tmp_path / "other.img", tmp_path / "other", 1 << 20, 100)
    try:
        result = run_sandboxed(
            ["python3", "-c", probe_source()],
            mounts=[
                Mount(source=tmp_path, target=JOB_DIR),
                Mount(source=outputs, target=OUTPUTS_DIR, read_only=False),
                Mount(source=outputs, target=CODE_OUTPUTS_DIR, read_only=False),
            ],
            overrides={"masked_paths": list(DOCKER_MASKED_PATHS)},
        )
    finally:
        unmount_jobfs(tmp_path / "other.img", tmp_path / "other")
    assert result.exit_code == 0, result.stderr
    report = parse_report(result.stdout)
    weakened = {c.name for c in report.failures()}
    assert weakened == {
        "execute a file from /job/outputs",
        "run a file from /job/outputs through the ELF loader",
        "map a file from /job/outputs executable",
        "writable mount without noexec, nosuid or nodev",
        "see host block devices or filesystem counters",
        "read a loop device's backing file",
        "host paths visible in mountinfo",  # host folders, not a job filesystem
    }, report.table()
    assert str(tmp_path / "other.img") in report.check("read a loop device's backing file").detail
    assert (
        "/job/outputs (no noexec"
        in report.check("writable mount without noexec, nosuid or nodev").detail
    )
