"""`run_local` and `syft-runner run`: every kind of code runs in the job sandbox against the synced
mocks, results land in a local folder, failures are results, bad input is refused up front."""

from __future__ import annotations

import shutil
from pathlib import Path

import docker
import pytest
import typer
import yaml
from typer.testing import CliRunner

from syft_core.datasets import create_dataset
from syft_core.datasite import Datasite
from syft_core.errors import JobError
from syft_core.jobs import JobConfig, Outcome
from syft_runner.cli import run as run_cli
from syft_runner.executor.labels import LABEL_RUNNER, LABEL_SYFTBOX
from syft_runner.local_run import LOCAL_RUNNER_ID, RESULTS_DIR, LocalRunError, run_local

OWNER = "alice@example.com"
ME = "bob@example.org"
MOCK = "region,count\nnorth,2\nsouth,5\n"


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """A scientist's syftbox with the owner's published mock synced in (built in place here)."""
    root = tmp_path / "box"
    owner = Datasite(root, OWNER).init()
    (owner.private / "regions.csv").write_text("region,count\nnorth,20\nsouth,50\neast,1\n")
    (owner.public / "regions.csv").write_text(MOCK)
    create_dataset(
        owner, "regions", private=Path("private/regions.csv"), mock=Path("public/regions.csv")
    )
    shutil.rmtree(owner.private)  # a synced copy never holds the owner's private folder
    return root


@pytest.fixture
def images(job_images: dict[str, str]) -> dict[str, str]:
    return job_images


def _no_local_containers_left(client: docker.DockerClient, under: Path) -> bool:
    found = client.containers.list(
        ignore_removed=True, all=True, filters={"label": f"{LABEL_RUNNER}={LOCAL_RUNNER_ID}"}
    )
    return not [c for c in found if c.labels.get(LABEL_SYFTBOX, "").startswith(str(under))]


# -- every kind of code ---------------------------------------------------------------------------
@pytest.mark.docker
def test_a_python_file_runs_against_the_mock_and_results_land_beside_it(
    tmp_path: Path, box: Path, images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    code = tmp_path / "work" / "total.py"
    code.parent.mkdir()
    code.write_text(
        "import csv, os\n"
        "rows = list(csv.DictReader(open('/data/regions/regions.csv')))\n"
        "env = os.environ\n"
        "print(env['SYFT_RUN_MODE'], env['SYFT_DATASITE'], sum(int(r['count']) for r in rows))\n"
        "os.makedirs('outputs/deep', exist_ok=True)\n"
        "open('outputs/deep/total.txt', 'w').write('7')\n"
    )
    result = run_local(code, syftbox=box, owner=OWNER, datasets=["regions"], email=ME)
    assert result.outcome is Outcome.SUCCEEDED and result.exit_code == 0, result.stderr
    assert result.stdout == f"mock {OWNER} 7\n"
    assert result.result_dir.parent == code.parent / RESULTS_DIR
    assert result.outputs == [result.outputs_dir / "deep" / "total.txt"]
    assert (result.result_dir / "logs" / "stdout.txt").read_text() == result.stdout
    done = yaml.safe_load((result.result_dir / "done.yaml").read_text())  # any YAML reader
    assert done["outcome"] == "succeeded"
    assert sorted(p.name for p in result.result_dir.iterdir()) == ["done.yaml", "logs", "outputs"]
    assert _no_local_containers_left(docker_client, tmp_path)


@pytest.mark.docker
def test_a_folder_with_an_entrypoint_and_a_bash_script_run_too(
    tmp_path: Path, box: Path, images: dict[str, str]
) -> None:
    folder = tmp_path / "pkg"
    (folder / "lib").mkdir(parents=True)
    (folder / "lib" / "helpers.py").write_text("def n():\n    return 42\n")
    (folder / "start.py").write_text(
        "import sys\nsys.path.insert(0, 'code')\nfrom lib.helpers import n\nprint(n())\n"
    )
    python = run_local(folder, syftbox=box, owner=OWNER, entrypoint="start.py")
    assert (python.outcome, python.stdout) == (Outcome.SUCCEEDED, "42\n"), python.stderr
    assert python.result_dir.parent == folder / RESULTS_DIR
    again = run_local(folder, syftbox=box, owner=OWNER, entrypoint="start.py")
    assert again.result_dir != python.result_dir  # every run gets its own folder

    script = tmp_path / "count.sh"
    script.write_text("wc -l < /syftbox/alice@example.com/public/datasets/regions/regions.csv\n")
    bash = run_local(script, syftbox=box, owner=OWNER, datasets=["regions"])
    assert (bash.outcome, bash.stdout) == (Outcome.SUCCEEDED, "3\n"), bash.stderr


@pytest.mark.docker
def test_a_job_folder_runs_as_mock_with_its_datasets_or_the_ones_given(
    tmp_path: Path, box: Path, images: dict[str, str]
) -> None:
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "run.sh").write_text("echo $SYFT_RUN_MODE; ls /data\n")
    config = JobConfig(name="ls", type="bash", datasets=["regions"], mode="real")
    (folder / "config.yaml").write_text(config.to_yaml())
    own = run_local(folder, syftbox=box, owner=OWNER, output_dir=tmp_path / "out")
    assert own.stdout == "mock\nregions\n", own.stderr
    assert own.result_dir == tmp_path / "out"
    none = run_local(folder, syftbox=box, owner=OWNER, datasets=[])
    assert (none.outcome, none.stdout) == (Outcome.SUCCEEDED, "mock\n")  # /data is empty


@pytest.mark.docker
def test_failures_are_results_with_what_to_do(
    tmp_path: Path, box: Path, images: dict[str, str]
) -> None:
    code = tmp_path / "fail.py"
    code.write_text("import sys\nprint('bad row', file=sys.stderr)\nsys.exit(3)\n")
    failed = run_local(code, syftbox=box, owner=OWNER)
    assert (failed.outcome, failed.exit_code) == (Outcome.FAILED, 3)
    assert failed.stderr == "bad row\n" and "exited with code 3" in failed.message
    unknown = run_local(code, syftbox=box, owner=OWNER, datasets=["region"])
    assert unknown.outcome is Outcome.ERROR and unknown.exit_code is None
    assert "no dataset 'region'" in unknown.message and "available: regions" in unknown.message


# -- refused before anything runs -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "entrypoint", "match"),
    [
        ("missing.py", None, "no such file"),
        ("notes.txt", None, r"give a \.py, \.ipynb or \.sh file"),
        ("script.sh", "main.py", "entrypoint is only for python"),
    ],
)
def test_unusable_code_is_refused(
    tmp_path: Path, box: Path, name: str, entrypoint: str | None, match: str
) -> None:
    path = tmp_path / name
    if name != "missing.py":
        path.write_text("echo hi\n")
    with pytest.raises(LocalRunError, match=match):
        run_local(path, syftbox=box, owner=OWNER, entrypoint=entrypoint)
    assert not (tmp_path / RESULTS_DIR).exists()


def test_an_owner_not_synced_and_a_used_output_folder_are_refused(
    tmp_path: Path, box: Path
) -> None:
    code = tmp_path / "a.py"
    code.write_text("print(1)\n")
    with pytest.raises(LocalRunError, match=r"no datasite for carol@example\.com"):
        run_local(code, syftbox=box, owner="carol@example.com")
    used = tmp_path / "used"
    used.mkdir()
    (used / "old.txt").write_text("x")
    with pytest.raises(LocalRunError, match="must be new or empty"):
        run_local(code, syftbox=box, owner=OWNER, output_dir=used)
    assert sorted(p.name for p in used.iterdir()) == ["old.txt"]


def test_a_folder_without_main_py_needs_an_entrypoint_and_leaves_nothing(
    tmp_path: Path, box: Path
) -> None:
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "start.py").write_text("print(1)\n")
    with pytest.raises(JobError, match="no entrypoint given"):
        run_local(folder, syftbox=box, owner=OWNER)
    assert list((folder / RESULTS_DIR).iterdir()) == []


# -- the command line -----------------------------------------------------------------------------
@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)  # a command group, so the command is invoked by its name
    run_cli.register(app)
    return app


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


@pytest.mark.docker
def test_the_run_command_prints_logs_outcome_and_outputs(
    app: typer.Typer, cli: CliRunner, tmp_path: Path, box: Path, images: dict[str, str]
) -> None:
    code = tmp_path / "hello.py"
    code.write_text("open('outputs/out.txt', 'w').write('x')\nprint('hello from the sandbox')\n")
    args = ["run", str(code), "--mock", "--datasite", OWNER, "--syftbox", str(box), "--email", ME]
    ok = cli.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "hello from the sandbox" in ok.output and "succeeded" in ok.output
    assert "out.txt" in ok.output and str(tmp_path / RESULTS_DIR) in ok.output.replace("\n", "")

    code.write_text("open('/data/regions/regions.csv')\n")
    failed = cli.invoke(app, args)
    assert failed.exit_code == 1
    assert "FileNotFoundError" in failed.output and "publishes: regions" in failed.output


def test_the_run_command_refuses_real_data(
    app: typer.Typer, cli: CliRunner, tmp_path: Path, box: Path
) -> None:
    code = tmp_path / "hello.py"
    code.write_text("print(1)\n")
    result = cli.invoke(
        app, ["run", str(code), "--real", "--datasite", OWNER, "--syftbox", str(box)]
    )
    assert result.exit_code == 1
    assert "real data never leaves the owner's datasite" in result.output
    assert not (tmp_path / RESULTS_DIR).exists()
