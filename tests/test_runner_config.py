"""RunnerConfig: defaults, loading, and how a job's requests meet the owner's limits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from syft_core.datasite import Datasite
from syft_runner.config import (
    RunnerConfig,
    RunnerConfigError,
    RuntimeNotAllowedError,
    default_config_path,
    load_runner_config,
)
from syft_runner.sandbox.container import Limits, ResourceRequest


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    config = load_runner_config(tmp_path / "nope.yaml")
    assert config == RunnerConfig()
    assert config.concurrency >= 1
    assert config.log_max_bytes == 10 * 1024 * 1024
    assert config.default_runtime == "scientific"
    assert config.allowed_runtimes == ("scientific", "minimal")


def test_default_path_is_in_the_owners_dot_syft(tmp_path: Path) -> None:
    path = default_config_path(tmp_path, "a@b.org")
    assert path == tmp_path / "a@b.org" / ".syft" / "runner.yaml"


def test_loads_settings(tmp_path: Path) -> None:
    path = tmp_path / "runner.yaml"
    path.write_text(
        "concurrency: 3\ndefault_limits: {memory_mb: 512}\nmax_limits: {memory_mb: 2048}\n"
    )
    config = load_runner_config(path)
    assert config.concurrency == 3
    assert config.default_limits.memory_mb == 512
    assert config.max_limits.memory_mb == 2048


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("concurrency: [1", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("concurrency: 0\n", "concurrency"),
        ("surprise: 1\n", "surprise"),
        ("default_limits: {memory_mb: 9000}\nmax_limits: {memory_mb: 4000}\n", "exceed"),
        ("images: {bash: bash, python: python}\n", "replaced by `default_runtime`"),
        ("allowed_runtimes: [minimal]\n", "default_runtime 'scientific' is not in"),
        ("allowed_runtimes: []\n", "allowed_runtimes"),
        ("allowed_runtimes: [minimal, minimal]\ndefault_runtime: minimal\n", "names one twice"),
        ("default_runtime: ../etc\n", "not a runtime name"),
        ("allowed_runtimes: [scientific, Big]\n", "'Big' is not a runtime name"),
    ],
)
def test_malformed_config_names_the_file_and_reason(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "runner.yaml"
    path.write_text(text)
    with pytest.raises(RunnerConfigError) as info:
        load_runner_config(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_runtimes_load_and_a_job_gets_the_default_or_an_allowed_one(tmp_path: Path) -> None:
    path = tmp_path / "runner.yaml"
    path.write_text("default_runtime: minimal\nallowed_runtimes: [minimal, scientific]\n")
    config = load_runner_config(path)
    assert config.runtime_for(None) == "minimal"
    assert config.runtime_for("scientific") == "scientific"
    with pytest.raises(RuntimeNotAllowedError) as info:
        config.runtime_for("gpu")
    assert str(info.value) == (
        "the job asks for runtime 'gpu', which this runner does not allow; "
        "allowed: minimal, scientific (default: minimal)"
    )
    only_minimal = RunnerConfig(default_runtime="minimal", allowed_runtimes=("minimal",))
    with pytest.raises(RuntimeNotAllowedError, match="allowed: minimal \\(default: minimal\\)"):
        only_minimal.runtime_for("scientific")


def test_job_requests_are_capped_at_the_maximum_not_the_default() -> None:
    config = RunnerConfig(
        default_limits=Limits(memory_mb=512, timeout_seconds=600),
        max_limits=Limits(memory_mb=2048, timeout_seconds=3600, cpus=2.0),
    )
    asked = config.limits_for(ResourceRequest(memory_mb=1024, timeout_seconds=99999, cpus=0.5))
    assert asked.memory_mb == 1024  # above the default, below the maximum: granted
    assert asked.timeout_seconds == 3600  # above the maximum: capped
    assert asked.cpus == 0.5
    assert asked.pids == config.default_limits.pids  # not asked: the default
    assert config.limits_for(None) == config.default_limits


def test_serve_refuses_a_malformed_config_with_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "runner.yaml"
    bad.write_text("concurrency: many\n")
    Datasite(tmp_path, "owner@example.org").init()  # else that is what serve says first
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from syft_runner.cli import main; main()",
            "serve",
            "--syftbox",
            str(tmp_path),
            "--email",
            "owner@example.org",
            "--config",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    record = json.loads(result.stderr.strip().splitlines()[-1])
    assert record["level"] == "error" and record["msg"] == "cannot start the runner"
    assert str(bad) in record["error"] and "concurrency" in record["error"]
