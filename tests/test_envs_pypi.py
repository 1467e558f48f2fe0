"""Against the real package index (slow): a job declaring `tabulate`, which no job image has,
succeeds on mock data through `syft-runner run --mock` and on the owner's real data, each time
with network none in the job, from the same environment."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import docker
import pytest

from syft_core.datasets import create_dataset
from syft_core.datasite import Datasite
from syft_core.jobs import JobFolder, Outcome
from syft_core.submit import submit_python_job
from syft_runner.executor.job import Executor
from syft_runner.sandbox.envs import EnvCache, EnvSettings
from tests.fixtures_envs import CACHE
from tests.fixtures_runner import OWNER, SCIENTIST, SYFT_RUNNER, approve, done_of, runner_config

pytestmark = [pytest.mark.slow, pytest.mark.docker]

MAIN = """\
import json, os
from tabulate import tabulate
rows = [line.split(",") for line in open("/data/customers/customers.csv").read().splitlines()]
print(tabulate(rows[1:], headers=rows[0]))
print(json.dumps({"interfaces": sorted(os.listdir("/sys/class/net")), "rows": len(rows) - 1}))
open("outputs/table.txt", "w").write(tabulate(rows[1:], headers=rows[0]))
"""


@pytest.fixture
def owner_box(syftbox: Path) -> Path:
    datasite = Datasite(syftbox, OWNER)
    (datasite.private / "customers.csv").write_text("id,region\n1,north\n2,south\n3,east\n")
    (datasite.public / "customers.csv").write_text("id,region\n1,mock\n")
    create_dataset(
        datasite,
        "customers",
        private=Path("private/customers.csv"),
        mock=Path("public/customers.csv"),
    )
    return syftbox


@pytest.fixture
def code(tmp_path: Path) -> Path:
    folder = tmp_path / "analysis"
    folder.mkdir()
    (folder / "main.py").write_text(MAIN)
    (folder / "requirements.txt").write_text("tabulate>=0.9\n")
    return folder


def _last_json(text: str) -> dict[str, object]:
    facts: dict[str, object] = json.loads(text.strip().splitlines()[-1])
    return facts


def test_tabulate_from_the_index_runs_on_mock_and_on_real_data_without_network(
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    owner_box: Path,
    code: Path,
    tmp_path: Path,
) -> None:
    # The scientist, on mock data, through the CLI (environments cached outside the repo).
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(CACHE / "xdg"),
        "TESTCONTAINERS_RYUK_DISABLED": "true",
    }
    command = [str(SYFT_RUNNER), "run", str(code), "--mock", "--syftbox", str(owner_box)]
    command += [
        "--datasite",
        OWNER,
        "--dataset",
        "customers",
        "--output-dir",
        str(tmp_path / "mock"),
    ]
    mock = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert mock.returncode == 0, mock.stdout + mock.stderr
    mock_facts = _last_json((tmp_path / "mock" / "logs" / "stdout.txt").read_text())
    assert mock_facts == {"interfaces": ["lo"], "rows": 1}

    # The same code submitted, approved and run by the owner's runner on the private data.
    job = approve(
        JobFolder(
            submit_python_job(
                owner_box, SCIENTIST, OWNER, code_path=code, job_name="table",
                datasets=["customers"],
            )
        )
    )  # fmt: skip
    cache = tmp_path / "owner-env-cache"
    Executor(docker_client, runner_config(env_cache_dir=cache), owner_box, OWNER).run(job)
    done = done_of(job)
    assert done is not None and done.outcome is Outcome.SUCCEEDED, job.stderr_path.read_text()
    assert _last_json(job.stdout_path.read_text()) == {"interfaces": ["lo"], "rows": 3}
    assert "north" in (job.outputs_dir / "table.txt").read_text()

    # Both runs used the same environment: same key, same packages, built from the index.
    [owner_env] = EnvCache(EnvSettings(cache, 1 << 40)).entries()
    local = EnvCache(EnvSettings(CACHE / "xdg" / "syft-runner" / "envs", 1 << 40))
    mine = [e for e in local.entries() if e.key == owner_env.key]
    assert len(mine) == 1
    assert owner_env.manifest is not None and mine[0].manifest is not None
    assert owner_env.manifest.packages == mine[0].manifest.packages
    assert [p.name for p in owner_env.manifest.packages] == ["tabulate"]
    assert owner_env.manifest.build.network_mode == "bridge"  # the build, not the job
