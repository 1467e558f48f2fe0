"""Runtimes: the default `scientific` image runs real analysis code with no declared dependency, a
job may ask for another allowed runtime, the owner's runner refuses one it does not allow, `show`
says which image a job gets, and `images list` shows every Python package an image provides."""

from __future__ import annotations

import re
from pathlib import Path

import docker
import pytest
import typer
import yaml
from typer.testing import CliRunner

from syft_core import get_client
from syft_core.datasite import Datasite
from syft_core.errors import JobError
from syft_core.jobs import JobConfig, JobFolder, Outcome
from syft_core.jobs.config import parse_config
from syft_runner.cli import images as images_cli
from syft_runner.cli import jobs as jobs_cli
from syft_runner.cli.jobs import runtime_line
from syft_runner.config import RunnerConfig
from syft_runner.executor.job import Executor
from syft_runner.sandbox.images import (
    PACKAGES_FILE,
    PackageListing,
    PythonPackage,
    build_args,
    image_packages,
)
from tests.fixtures_runner import OWNER, SCIENTIST, approve, done_of, runner_config, write_job

SEED_SCRIPT = """
#!/bin/bash
set -e
python analysis.py
"""

# Reads like the scientists' code: pandas, scikit-learn, matplotlib (and joblib's process pool,
# which needs /dev/shm), writing a CSV and a PNG into outputs/.
ANALYSIS = """\
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.stats
import seaborn
import statsmodels.api as sm
from joblib import Parallel, delayed
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import cross_val_score

rng = np.random.default_rng(0)
df = pd.DataFrame({"x": rng.normal(size=200)})
df["y"] = 3 * df.x + rng.normal(scale=0.1, size=200)
model = LinearRegression().fit(df[["x"]], df.y)
scores = cross_val_score(LinearRegression(), df[["x"]], df.y, cv=3, n_jobs=2)
squares = Parallel(n_jobs=2)(delayed(pow)(i, 2) for i in range(4))
ols = sm.OLS(df.y, sm.add_constant(df.x)).fit()
pd.DataFrame({"slope": [round(model.coef_[0], 1)]}).to_csv("outputs/fit.csv", index=False)
seaborn.scatterplot(data=df, x="x", y="y")
plt.savefig("outputs/fit.png")
print("slope", round(model.coef_[0], 1), "cv", round(scores.mean(), 2), squares,
      round(ols.params.x, 1), round(scipy.stats.pearsonr(df.x, df.y)[0], 2))
"""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _run(
    docker_client: docker.DockerClient, syftbox: Path, job: JobFolder, **config: object
) -> None:
    Executor(docker_client, runner_config(**config), syftbox, OWNER).run(approve(job))


# -- unit ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["scientific", "minimal", "r2-gpu_x"])
def test_a_job_config_may_name_a_runtime(name: str) -> None:
    config = JobConfig(name="j", type="bash", runtime=name)
    assert config.runtime == name
    assert config.run_fields()["runtime"] == name  # a run field: policies compare it


@pytest.mark.parametrize("name", ["../x", "Scientific", "", "a b", "x" * 64, "python:3"])
def test_a_malformed_runtime_name_is_an_invalid_config(name: str) -> None:
    text = yaml.safe_dump({"name": "j", "type": "bash", "runtime": name}).encode()
    with pytest.raises(JobError, match="runtime"):
        parse_config(text, Path("config.yaml"))


def test_submission_records_the_runtime_only_when_asked(tmp_path: Path) -> None:
    root = tmp_path / "box"
    Datasite(root, OWNER).init()
    client = get_client(root, SCIENTIST)
    asked = client.submit_bash_job(OWNER, "echo hi", "asked", runtime="minimal")
    default = client.submit_bash_job(OWNER, "echo hi", "default")
    assert JobFolder(asked).config().runtime == "minimal"
    assert JobFolder(default).config().runtime is None
    with pytest.raises(JobError, match="runtime"):
        client.submit_bash_job(OWNER, "echo hi", "bad", runtime="../etc")


def test_show_says_which_runtime_a_job_gets() -> None:
    settings = RunnerConfig(default_runtime="minimal", allowed_runtimes=("minimal", "scientific"))
    assert runtime_line(None, settings) == (
        "minimal (this runner's default), image syft-runner/minimal:latest"
    )
    assert runtime_line("scientific", settings) == (
        "scientific (asked for by the job), image syft-runner/scientific:latest"
    )
    assert runtime_line("gpu", settings) == (
        "gpu: NOT ALLOWED on this runner (allowed: minimal, scientific); "
        "the job would end with an error"
    )
    assert runtime_line(None, "bad.yaml: not valid YAML").startswith(
        "the default (cannot tell what this runner allows: bad.yaml"
    )


def test_show_prints_the_runtime_from_the_owners_runner_config(syftbox: Path) -> None:
    write_job(syftbox, "asks", "echo hi\n", config={"runtime": "gpu"})
    runner_yaml = syftbox / OWNER / ".syft" / "runner.yaml"
    runner_yaml.write_text("default_runtime: minimal\nallowed_runtimes: [minimal]\n")
    app = typer.Typer()
    jobs_cli.register(app)
    args = ["show", f"{SCIENTIST}/asks", "--syftbox", str(syftbox), "--email", OWNER]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "runtime:      gpu: NOT ALLOWED on this runner (allowed: minimal)" in result.output


def test_package_listing_parses_and_freezes() -> None:
    text = "# python 3.11.2\n# a comment\nnumpy==1.24.2\n\nscikit-learn==1.2.1\nbroken\n"
    listing = PackageListing.parse(text)
    assert listing.python == "3.11.2"
    assert listing.packages == [
        PythonPackage(name="numpy", version="1.24.2"),
        PythonPackage(name="scikit-learn", version="1.2.1"),
    ]
    assert listing.freeze() == "# python 3.11.2\nnumpy==1.24.2\nscikit-learn==1.2.1\n"
    assert PackageListing.parse("# no Python in this runtime\n") == PackageListing()


def test_build_args_pass_the_mirror_and_the_hosts_proxies_only_when_set() -> None:
    assert build_args("base:1", {}) == {"BASE": "base:1"}
    env = {
        "SYFT_RUNNER_DEBIAN_MIRROR": "http://mirror.local/debian",
        "http_proxy": "http://127.0.0.1:3142",
        "HOME": "/root",
    }
    assert build_args("base:1", env) == {
        "BASE": "base:1",
        "DEBIAN_MIRROR": "http://mirror.local/debian",
        "http_proxy": "http://127.0.0.1:3142",
    }


# -- the images ------------------------------------------------------------------------------------
@pytest.mark.docker
def test_scientific_image_provides_the_stack_both_python_names_and_no_compiler(
    docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    script = (
        "python --version; python3 --version; "
        "python -c 'import numpy, pandas, scipy, sklearn, matplotlib, statsmodels, seaborn, "
        "openpyxl, nbclient, nbformat, ipykernel; print(numpy.__version__, sklearn.__version__)'; "
        "for t in grep sed awk find sort; do command -v $t >/dev/null || echo no-$t; done; "
        "for c in gcc g++ cc gdb; do command -v $c || true; done; "
        "echo MPL=$MPLBACKEND:$MPLCONFIGDIR"
    )
    output: bytes = docker_client.containers.run(
        job_images["scientific"], ["bash", "-c", script], network_mode="none", remove=True
    )
    lines = output.decode().splitlines()
    assert lines[0] == lines[1] == "Python 3.11.2"
    numpy_version, sklearn_version = lines[2].split()
    assert lines[3:] == ["MPL=Agg:/tmp/matplotlib"]  # every tool there, no compiler or debugger

    listing = image_packages(docker_client, job_images["scientific"])
    assert listing is not None and listing.python == "3.11.2"
    versions = {p.name: p.version for p in listing.packages}
    assert versions["numpy"] == numpy_version and versions["scikit-learn"] == sklearn_version
    for name in ("pandas", "scipy", "matplotlib", "statsmodels", "seaborn", "openpyxl", "nbclient"):
        assert re.fullmatch(r"\d+\.\d+[\w.+]*", versions[name]), (name, versions[name])
    assert "pyarrow" not in versions  # Debian bookworm has no python3-pyarrow


@pytest.mark.docker
def test_images_list_shows_every_python_package_and_packages_prints_a_listing(
    job_images: dict[str, str],
) -> None:
    app = typer.Typer()
    images_cli.register(app)
    cli = CliRunner()
    listed = cli.invoke(app, ["images", "list"], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    assert "minimal: bash coreutils" in listed.output and "  no Python" in listed.output
    assert re.search(r"Python 3\.11\.2, \d+ packages: .*numpy 1\.24\.2", listed.output)
    assert "scikit-learn 1.2.1" in listed.output and "matplotlib 3.6.3" in listed.output

    frozen = cli.invoke(app, ["images", "packages", "scientific"])
    assert frozen.exit_code == 0, frozen.output
    lines = frozen.output.splitlines()
    assert lines[0] == "# python 3.11.2"
    assert "pandas==1.5.3" in lines and all("==" in line for line in lines[1:])
    assert cli.invoke(app, ["images", "packages", "minimal"]).output == (
        "# no Python in this runtime\n"
    )
    missing = cli.invoke(app, ["images", "packages", "absent-rt"])
    assert missing.exit_code == 1 and "make images" in missing.output
    assert PACKAGES_FILE == "/usr/share/syft-runtime/python-packages.txt"


# -- jobs in the runtimes -------------------------------------------------------------------------
@pytest.mark.docker
def test_analysis_with_pandas_sklearn_matplotlib_runs_with_no_declared_dependency(
    syftbox: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    job = write_job(
        syftbox, "fit", "exec python main.py\n", job_type="python", code={"main.py": ANALYSIS}
    )
    _run(docker_client, syftbox, job)
    done = done_of(job)
    assert done is not None and done.outcome is Outcome.SUCCEEDED, job.stderr_path.read_text()
    assert done.image_id == job_images["scientific"]
    assert job.stdout_path.read_text() == "slope 3.0 cv 1.0 [0, 1, 4, 9] 3.0 1.0\n"
    assert (job.outputs_dir / "fit.csv").read_text() == "slope\n3.0\n"
    assert (job.outputs_dir / "fit.png").read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.docker
def test_the_seed_bash_example_runs_python_in_the_default_runtime(
    tmp_path: Path, syftbox: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    # The seed's script, word for word: `python analysis.py`, run from the job's code folder as it
    # ran on the scientist's machine, with the file beside it and `outputs/` there an output.
    code = tmp_path / "work"
    code.mkdir()
    (code / "analysis.py").write_text(
        "import pandas\n"
        "print('pandas', pandas.__version__, open('notes.txt').read())\n"
        "pandas.DataFrame({'n': [1]}).to_csv('outputs/n.csv', index=False)\n"
    )
    (code / "notes.txt").write_text("beside it")
    (code / "outputs").mkdir()  # a local run's results: not submitted
    (code / "outputs" / "old.csv").write_text("stale")
    client = get_client(syftbox, SCIENTIST)
    seed = client.submit_bash_job(OWNER, SEED_SCRIPT, "My Analysis")
    folder = client.submit_bash_job(OWNER, SEED_SCRIPT, "With code", code_path=code)
    assert (seed / "run.sh").read_text() == "#!/bin/bash\nset -e\npython analysis.py\n"
    assert not (folder / "code" / "outputs").exists()
    job = JobFolder(folder)
    _run(docker_client, syftbox, job)
    done = done_of(job)
    assert done is not None and done.outcome is Outcome.SUCCEEDED, job.stderr_path.read_text()
    assert job.stdout_path.read_text() == "pandas 1.5.3 beside it\n"
    assert sorted(p.name for p in job.outputs_dir.iterdir()) == ["n.csv"]

    # Without its analysis.py the seed's own job still finds `python`: what fails is the file.
    bare = JobFolder(seed)
    _run(docker_client, syftbox, bare)
    failed = done_of(bare)
    assert failed is not None and failed.outcome is Outcome.FAILED
    stderr = bare.stderr_path.read_text()
    assert "can't open file '/job/code/analysis.py'" in stderr and "command not found" not in stderr


@pytest.mark.docker
def test_a_job_may_ask_for_the_minimal_runtime(
    syftbox: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    job = write_job(
        syftbox,
        "small",
        "command -v python3 || echo no-python\necho hi | sed s/hi/ho/\n",
        config={"runtime": "minimal"},
    )
    _run(docker_client, syftbox, job)
    done = done_of(job)
    assert done is not None
    assert done.outcome is Outcome.SUCCEEDED, done.message
    assert done.image_id == job_images["minimal"]
    assert job.stdout_path.read_text() == "no-python\nho\n"


@pytest.mark.docker
def test_a_runtime_the_owner_does_not_allow_ends_the_job_with_an_error_naming_them(
    syftbox: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    asks_gpu = write_job(syftbox, "gpu", "echo ran\n", config={"runtime": "gpu"})
    asks_scientific = write_job(syftbox, "sci", "echo ran\n", config={"runtime": "scientific"})
    owner_allows = {"default_runtime": "minimal", "allowed_runtimes": ["minimal"]}
    for job in (asks_gpu, asks_scientific):
        _run(docker_client, syftbox, job, **owner_allows)
        done = done_of(job)
        assert done is not None and done.outcome is Outcome.ERROR
        assert done.exit_code is None and not job.stdout_path.exists()  # nothing ran
    gpu_done = done_of(asks_gpu)
    assert gpu_done is not None
    assert gpu_done.message == (
        "not run: the job asks for runtime 'gpu', which this runner does not allow; "
        "allowed: minimal (default: minimal)"
    )
    default = write_job(syftbox, "plain", "echo ran\n")
    _run(docker_client, syftbox, default, **owner_allows)
    plain_done = done_of(default)
    assert plain_done is not None and plain_done.outcome is Outcome.SUCCEEDED
    assert plain_done.image_id == job_images["minimal"]
