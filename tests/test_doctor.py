"""The engine connection and `syft-runner doctor` (plus `images list`) end to end."""

from __future__ import annotations

from typing import Any

import docker
import pytest
from typer.testing import CliRunner

from syft_runner.cli import _register_all, app
from syft_runner.cli.doctor import isolation_checks
from syft_runner.engine import EngineUnavailableError, connect, engine_info

GOOD_PROBE: dict[str, Any] = {
    "uid": 65532,
    "interfaces": ["lo"],
    "root_writable": False,
    "cap_eff": "0000000000000000",
    "no_new_privs": "1",
    "seccomp": "2",
    "unshare_rc": 1,
    "af_inet": False,
    "af_unix": True,
    "io_uring": False,
}


@pytest.fixture(scope="module")
def cli() -> CliRunner:
    _register_all()
    return CliRunner()


def test_a_hardened_probe_passes_every_check() -> None:
    checks = isolation_checks(GOOD_PROBE)
    assert len(checks) == 10
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


@pytest.mark.parametrize(
    ("field", "bad", "failing"),
    [
        ("uid", 0, "runs as non-root"),
        ("interfaces", ["eth0", "lo"], "no network but loopback"),
        ("root_writable", True, "read-only root filesystem"),
        ("cap_eff", "00000000a80425fb", "no capabilities"),
        ("no_new_privs", "0", "no new privileges"),
        ("seccomp", "0", "seccomp filter active"),
        ("unshare_rc", 0, "unshare -U blocked"),
        ("af_inet", True, "AF_INET socket blocked"),
        ("io_uring", True, "io_uring blocked"),
        ("af_unix", False, "AF_UNIX socket allowed"),
    ],
)
def test_each_weakness_fails_its_check(field: str, bad: Any, failing: str) -> None:
    checks = isolation_checks({**GOOD_PROBE, field: bad})
    assert [c.name for c in checks if not c.ok] == [failing]


def test_unreachable_engine_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(EngineUnavailableError, match=r"DOCKER_HOST=.*make setup"):
        connect()


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
    for name in ("seccomp filter active", "AF_INET socket blocked", "image python"):
        assert f"PASS {name}" in result.output


@pytest.mark.docker
def test_images_list_shows_current_images(cli: CliRunner, job_images: dict[str, str]) -> None:
    result = cli.invoke(app, ["images", "list"])
    assert result.exit_code == 0, result.output
    assert result.output.count("current") == 2
