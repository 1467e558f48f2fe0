"""The engine connection and `syft-runner doctor` (plus `images list`) end to end."""

from __future__ import annotations

import json

import docker
import pytest
from typer.testing import CliRunner

from syft_runner.cli import _register_all, app
from syft_runner.cli import doctor as doctor_cli
from syft_runner.cli.doctor import isolation_checks, jobfs_check
from syft_runner.diagnostics.probe import EXPECTED_ALLOWED, ProbeReport, parse_report
from syft_runner.sandbox.engine import EngineUnavailableError, connect, engine_info, pool_size


def _report(**allowed: bool) -> ProbeReport:
    """A probe report where every check is as a hardened container gives, except `allowed`."""
    verdicts = {**EXPECTED_ALLOWED, **allowed}
    lines = [
        json.dumps({"kind": "check", "name": name, "allowed": value, "detail": "d"})
        for name, value in verdicts.items()
    ]
    return parse_report("\n".join(lines))


@pytest.fixture(scope="module")
def cli() -> CliRunner:
    _register_all()
    return CliRunner()


def test_a_hardened_probe_passes_every_check() -> None:
    checks = isolation_checks(_report())
    assert len(checks) == len(EXPECTED_ALLOWED)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


@pytest.mark.parametrize("name", sorted(EXPECTED_ALLOWED))
def test_each_weakness_fails_its_check(name: str) -> None:
    checks = isolation_checks(_report(**{name: not EXPECTED_ALLOWED[name]}))
    assert [c.name.split(":")[0] for c in checks if not c.ok] == [name]


def test_a_check_the_probe_did_not_report_fails() -> None:
    report = _report()
    report.checks = [c for c in report.checks if c.name != "socket AF_INET"]
    failing = [c for c in isolation_checks(report) if not c.ok]
    assert [(c.name, c.detail) for c in failing] == [
        ("socket AF_INET", "not reported by the probe")
    ]


def test_doctor_says_when_jobs_get_no_filesystem_of_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(doctor_cli, "supported", lambda: False)
    check = jobfs_check()
    assert not check.ok
    assert "executable" in check.detail and "state_dir" in check.detail
    monkeypatch.setattr(doctor_cli, "supported", lambda: True)
    assert jobfs_check().ok and "noexec" in jobfs_check().detail


def test_unreachable_engine_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(EngineUnavailableError, match=r"DOCKER_HOST=.*make setup"):
        connect()


def test_the_connection_pool_grows_with_concurrency() -> None:
    assert pool_size(1) == 10
    assert pool_size(8) >= 8 * 3


def test_doctor_fails_without_an_engine(cli: CliRunner) -> None:
    result = cli.invoke(app, ["doctor"], env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.exit_code == 1
    assert "FAIL engine reachable" in result.output


@pytest.mark.docker
def test_engine_info_describes_this_engine(docker_client: docker.DockerClient) -> None:
    info = engine_info(docker_client)
    assert tuple(int(p) for p in info.api_version.split(".")) >= (1, 41)
    assert info.cgroup_version in {"1", "2"}
    assert "runc" in info.runtimes
    assert info.storage_driver


@pytest.mark.docker
def test_doctor_passes_on_this_machine(cli: CliRunner, job_images: dict[str, str]) -> None:
    result = cli.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output
    for name in (
        "run without a seccomp filter: blocked",
        "socket AF_INET: blocked",
        "image scientific",
        "image minimal",
        "per-job filesystems",
        "execute a file from /job/outputs: blocked",
        "see host block devices or filesystem counters: blocked",
    ):
        assert f"PASS {name}" in result.output


@pytest.mark.docker
def test_doctor_probe_prints_the_report(cli: CliRunner, job_images: dict[str, str]) -> None:
    result = cli.invoke(app, ["doctor", "--probe"])
    assert result.exit_code == 0, result.output
    assert "BLOCKED  ok         host paths visible in mountinfo" in result.output


@pytest.mark.docker
def test_images_list_shows_current_images(cli: CliRunner, job_images: dict[str, str]) -> None:
    result = cli.invoke(app, ["images", "list"])
    assert result.exit_code == 0, result.output
    assert result.output.count("current") == 2


def test_a_check_says_its_verdict_once() -> None:
    """`socket AF_INET: blocked` then the detail, not `blocked: BLOCKED: ...` (issue 12)."""
    passing = isolation_checks(_report())
    assert all("BLOCKED" not in c.detail and "ALLOWED" not in c.detail for c in passing)
    weak = isolation_checks(_report(**{"socket AF_INET": True}))
    (failed,) = [c for c in weak if not c.ok]
    assert failed.name == "socket AF_INET: blocked"
    assert failed.detail.startswith("ALLOWED (UNEXPECTED): ")
