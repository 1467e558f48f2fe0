"""Notebooks as jobs: a .ipynb entrypoint runs top to bottom in the sandbox (nbclient, a kernel on
unix sockets, no network), its executed copy with outputs and plots lands in outputs/, a failing
cell fails the job with that cell's traceback in stderr, and `syft-runner run --mock` runs
notebooks too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import docker
import pytest
import typer
from typer.testing import CliRunner

from syft_core import get_client
from syft_core.datasets import create_dataset
from syft_core.datasite import Datasite
from syft_core.errors import JobError
from syft_core.jobs import JobConfig, JobFolder, Outcome
from syft_core.submit import NOTEBOOK_RUNNER
from syft_runner.cli import run as run_cli
from syft_runner.executor.job import Executor
from tests.fixtures_envs import Wheelhouse
from tests.fixtures_runner import OWNER, SCIENTIST, approve, done_of, runner_config

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def notebook(*cells: str, nbformat: int = 4) -> dict[str, Any]:
    """A notebook as Jupyter saves it: code cells, not yet run."""
    return {
        "nbformat": nbformat,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "cells": [
            {
                "cell_type": "code",
                "id": f"cell-{i}",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": source,
            }
            for i, source in enumerate(cells)
        ],
    }


def write_notebook(path: Path, *cells: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook(*cells)))
    return path


def output_types(executed: Path) -> list[list[str]]:
    cells = json.loads(executed.read_text())["cells"]
    return [[o["output_type"] for o in cell["outputs"]] for cell in cells]


ANALYSIS_CELLS = (
    "import pandas as pd\nimport matplotlib.pyplot as plt\nprint('loaded')",
    "df = pd.DataFrame({'x': [1, 2, 3], 'y': [2, 4, 9]})\n"
    "df.to_csv('outputs/df.csv', index=False)\n"
    "df",
    "plt.plot(df.x, df.y)\nplt.show()",
    "import os\nprint(os.getcwd(), len(df))",
)
FAILING_CELLS = (
    "print('before the failure')",
    "def ratio(n):\n    return n / 0\nratio(3)",
    "print('never reached')",
)


@pytest.fixture
def box(tmp_path: Path) -> Path:
    root = tmp_path / "box"
    Datasite(root, OWNER).init()
    return root


def _submit_and_run(
    box: Path, docker_client: docker.DockerClient, code: Path, **kwargs: Any
) -> JobFolder:
    folder = get_client(box, SCIENTIST).submit_python_job(OWNER, code, code.stem, **kwargs)
    job = approve(JobFolder(folder))
    Executor(docker_client, runner_config(), box, OWNER).run(job)
    return job


# -- submission ------------------------------------------------------------------------------------
def test_a_notebook_file_is_its_own_entrypoint_and_run_sh_runs_it(
    tmp_path: Path, box: Path
) -> None:
    code = write_notebook(tmp_path / "analysis.ipynb", "print(1)")
    folder = get_client(box, SCIENTIST).submit_python_job(OWNER, code, "nb")
    job = JobFolder(folder)
    config = job.config()
    assert (config.type, config.entrypoint) == ("python", "analysis.ipynb")
    assert (folder / "code" / "analysis.ipynb").read_bytes() == code.read_bytes()
    run_sh = job.run_sh.read_text()
    runs = f"exec /usr/bin/python3 {NOTEBOOK_RUNNER} analysis.ipynb outputs/analysis.ipynb\n"
    assert runs in run_sh


def test_a_folder_may_name_a_notebook_entrypoint(tmp_path: Path, box: Path) -> None:
    write_notebook(tmp_path / "project" / "notebooks" / "my report.ipynb", "print(1)")
    (tmp_path / "project" / "helpers.py").write_text("X = 1\n")
    folder = get_client(box, SCIENTIST).submit_python_job(
        OWNER, tmp_path / "project", "nb", entrypoint="notebooks/my report.ipynb"
    )
    assert JobFolder(folder).config().entrypoint == "notebooks/my report.ipynb"
    run_sh = (folder / "run.sh").read_text()
    assert "'notebooks/my report.ipynb' 'outputs/my report.ipynb'" in run_sh


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not a readable notebook"),
        ('{"cells": "x", "nbformat": 4}', "no list of cells"),
        (json.dumps(notebook("print(1)", nbformat=3)), "nbformat 3"),
    ],
)
def test_a_broken_notebook_is_refused_at_submission(
    tmp_path: Path, box: Path, content: str, expected: str
) -> None:
    code = tmp_path / "broken.ipynb"
    code.write_text(content)
    with pytest.raises(JobError, match=expected):
        get_client(box, SCIENTIST).submit_python_job(OWNER, code, "broken")
    assert not (box / OWNER / "jobs" / SCIENTIST / "broken").exists()


def test_job_config_accepts_notebook_entrypoints_only_as_relative_paths() -> None:
    assert JobConfig(name="n", type="python", entrypoint="a/b.ipynb").entrypoint == "a/b.ipynb"
    for bad in ("/abs.ipynb", "../up.ipynb", "notes.txt"):
        with pytest.raises(ValueError, match=r"relative \.py or \.ipynb path"):
            JobConfig(name="n", type="python", entrypoint=bad)


# -- running ---------------------------------------------------------------------------------------
@pytest.mark.docker
def test_a_notebook_job_runs_top_to_bottom_and_its_executed_copy_lands_in_outputs(
    tmp_path: Path, box: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    job = _submit_and_run(
        box, docker_client, write_notebook(tmp_path / "analysis.ipynb", *ANALYSIS_CELLS)
    )
    done = done_of(job)
    assert done is not None and done.outcome is Outcome.SUCCEEDED, job.stderr_path.read_text()
    # What cells print streams to the job's stdout; the kernel's cwd is /job, as for .py jobs.
    assert job.stdout_path.read_text() == (
        "loaded\n/job/code 3\nexecuted notebook saved to outputs/analysis.ipynb\n"
    )
    assert job.stderr_path.read_text() == ""
    executed = job.outputs_dir / "analysis.ipynb"
    assert output_types(executed) == [
        ["stream"],
        ["execute_result"],
        ["display_data"],
        ["stream"],
    ]
    cells = json.loads(executed.read_text())["cells"]
    assert [c["execution_count"] for c in cells] == [1, 2, 3, 4]
    assert "text/html" in cells[1]["outputs"][0]["data"]  # the DataFrame, as Jupyter shows it
    plot = cells[2]["outputs"][0]["data"]["image/png"]  # drawn inline, not to Agg
    assert plot.startswith("iVBORw0KGgo")  # base64 of the PNG signature
    assert (job.outputs_dir / "df.csv").read_text() == "x,y\n1,2\n2,4\n3,9\n"


@pytest.mark.docker
def test_modules_beside_the_notebook_are_importable_and_paths_start_at_the_job_folder(
    tmp_path: Path, box: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    project = tmp_path / "project"
    write_notebook(
        project / "notebooks" / "report.ipynb",
        "from helpers import greet\nprint(greet())\nprint(open('data.txt').read())",
    )
    (project / "notebooks" / "helpers.py").write_text("def greet():\n    return 'hi'\n")
    (project / "data.txt").write_text("data beside the code")
    job = _submit_and_run(box, docker_client, project, entrypoint="notebooks/report.ipynb")
    done = done_of(job)
    assert done is not None and done.outcome is Outcome.SUCCEEDED, job.stderr_path.read_text()
    assert job.stdout_path.read_text().startswith("hi\ndata beside the code\n")
    assert (job.outputs_dir / "report.ipynb").is_file()


@pytest.mark.docker
def test_a_failing_cell_fails_the_job_with_its_traceback_and_keeps_the_executed_copy(
    tmp_path: Path, box: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    job = _submit_and_run(
        box, docker_client, write_notebook(tmp_path / "bad.ipynb", *FAILING_CELLS)
    )
    done = done_of(job)
    assert done is not None and done.outcome is Outcome.FAILED and done.exit_code == 1
    assert "stderr" in done.message
    assert job.stdout_path.read_text().startswith("before the failure\n")
    stderr = job.stderr_path.read_text()
    assert "bad.ipynb: cell 2 of 3 (ZeroDivisionError) failed:" in stderr
    assert "----> 3 ratio(3)" in stderr and "ZeroDivisionError: division by zero" in stderr
    assert "\x1b[" not in stderr  # no terminal colour codes in the log
    assert "never reached" not in job.stdout_path.read_text()
    assert output_types(job.outputs_dir / "bad.ipynb") == [["stream"], ["error"], []]


@pytest.mark.docker
def test_a_notebook_in_a_runtime_without_notebooks_says_so(
    tmp_path: Path, box: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    job = _submit_and_run(
        box, docker_client, write_notebook(tmp_path / "n.ipynb", "print(1)"), runtime="minimal"
    )
    done = done_of(job)
    assert done is not None and done.outcome is Outcome.FAILED and done.exit_code == 127
    assert job.stderr_path.read_text() == (
        "this runtime cannot run notebooks (runtime: scientific can)\n"
    )


@pytest.mark.docker
def test_a_notebook_with_declared_dependencies_needs_ipykernel_in_its_environment(
    tmp_path: Path,
    box: Path,
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    wheelhouse: Wheelhouse,
    env_cache: Path,
) -> None:
    # The environment is the job's Python (it never mixes with the image's packages), so the
    # kernel runs there, and says what is missing rather than failing to start.
    code = write_notebook(tmp_path / "deps.ipynb", "import syfttinypkg")
    folder = get_client(box, SCIENTIST).submit_python_job(
        OWNER, code, "deps", dependencies=["syfttinypkg"], package_index=wheelhouse.index
    )
    job = approve(JobFolder(folder))
    Executor(docker_client, wheelhouse.runner_config(env_cache), box, OWNER).run(job)
    done = done_of(job)
    assert done is not None and done.outcome is Outcome.FAILED and done.exit_code == 1
    assert job.stderr_path.read_text() == (
        "deps.ipynb: the job's environment (its declared dependencies) has no ipykernel, "
        "which a notebook's kernel needs there: add ipykernel to the dependencies\n"
    )


@pytest.mark.docker
def test_run_mock_runs_a_notebook_against_the_owners_mock(
    tmp_path: Path, job_images: dict[str, str]
) -> None:
    box = tmp_path / "box"
    owner = Datasite(box, OWNER).init()
    (owner.private / "regions.csv").write_text("region,count\nnorth,20\nsouth,50\n")
    (owner.public / "regions.csv").write_text("region,count\nnorth,2\nsouth,5\n")
    create_dataset(
        owner, "regions", private=Path("private/regions.csv"), mock=Path("public/regions.csv")
    )
    shutil.rmtree(owner.private)  # a synced copy never holds the owner's private folder
    code = write_notebook(
        tmp_path / "work" / "regions.ipynb",
        "import pandas as pd\n"
        "df = pd.read_csv('/data/regions/regions.csv')\n"
        "print(df['count'].sum())",
    )
    app = typer.Typer()
    app.callback()(lambda: None)  # a command group, so the command is invoked by its name
    run_cli.register(app)
    result = CliRunner().invoke(
        app,
        [
            *("run", str(code), "--mock", "--datasite", OWNER, "--syftbox", str(box)),
            *("--dataset", "regions", "--email", SCIENTIST),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "7\n" in result.output and "succeeded" in result.output
    executed = next((tmp_path / "work" / ".syft-local").glob("*/outputs/regions.ipynb"))
    assert output_types(executed) == [["stream"]]
