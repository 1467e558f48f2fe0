"""The client API of the seed: get_client, submitting jobs, and the Job/JobList handles."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import yaml

import syft_core.local_runner
import syft_core.submit
from syft_core import get_client
from syft_core.client import Client
from syft_core.datasets import DatasetNotFoundError, create_dataset
from syft_core.datasite import Datasite
from syft_core.errors import (
    AccessDeniedError,
    InvalidEmailError,
    JobError,
    SyftError,
    UnsafePathError,
)
from syft_core.events import utcnow
from syft_core.job import Job, ResultsNotReleasedError
from syft_core.jobs import (
    DoneMarker,
    JobFolder,
    Outcome,
    Status,
    UnsafeSubmissionError,
    walk_submission,
)
from syft_core.local_runner import LocalRunner, LocalRunResult, find_local_runner
from syft_core.submit import job_folder_name
from syft_runner.local_run import run_local

DO = "alice@example.org"
DS = "bob@example.org"

SEED_SCRIPT = """
#!/bin/bash
set -e
python analysis.py
"""


@pytest.fixture
def box(tmp_path: Path) -> Path:
    root = tmp_path / "syftbox"
    Datasite(root, DO).init()
    Datasite(root, DS).init()
    return root


@pytest.fixture
def owner(box: Path) -> Client:
    return get_client(box, DO)


@pytest.fixture
def scientist(box: Path) -> Client:
    return get_client(box, DS)


def write_code(folder: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


def everything_under(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


def status_of(job: Job) -> Status:
    """`job.status`, which reads the folder each time (a call, so mypy keeps no narrowed type)."""
    return job.status


def finish(job: Job, outcome: Outcome = Outcome.SUCCEEDED, exit_code: int = 0) -> None:
    """What the runner does at the end of a job (the runner itself is tested elsewhere)."""
    job.folder.finish(DoneMarker(by=job.owner, outcome=outcome, message="ran", exit_code=exit_code))


# -- submitting ------------------------------------------------------------------------------------
def test_seed_bash_submission_writes_a_complete_job_folder(box: Path, scientist: Client) -> None:
    job_dir = scientist.submit_bash_job(user=DO, script=SEED_SCRIPT, job_name="My Analysis")

    assert job_dir == box / DO / "jobs" / DS / "My-Analysis"
    run_sh = job_dir / "run.sh"
    assert run_sh.read_text() == "#!/bin/bash\nset -e\npython analysis.py\n"
    assert run_sh.stat().st_mode & stat.S_IXUSR
    config = yaml.safe_load((job_dir / "config.yaml").read_text())
    assert config["name"] == "My Analysis"
    assert config["type"] == "bash"
    assert config["submitted_by"] == DS
    assert abs(utcnow() - Job(JobFolder(job_dir), DS).config.submitted_at) < timedelta(minutes=1)
    assert [f.relpath for f in walk_submission(job_dir)] == ["config.yaml", "run.sh"]
    assert everything_under(job_dir.parent) == ["My-Analysis", "My-Analysis/config.yaml",
                                                "My-Analysis/run.sh"]  # fmt: skip


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("echo hi", "#!/bin/bash\necho hi\n"),
        ("#!/usr/bin/env bash\necho hi\n", "#!/usr/bin/env bash\necho hi\n"),
        ("\n\n    #!/bin/sh\n    echo hi\n    ", "#!/bin/sh\necho hi\n"),
        ("\n    echo a\n      echo b\n", "#!/bin/bash\necho a\n  echo b\n"),
    ],
)
def test_bash_script_gets_a_shebang_and_nothing_else(
    scientist: Client, script: str, expected: str
) -> None:
    job_dir = scientist.submit_bash_job(user=DO, script=script, job_name="j")
    assert (job_dir / "run.sh").read_text() == expected


def test_bash_job_may_carry_code_and_options(tmp_path: Path, scientist: Client) -> None:
    code = write_code(tmp_path / "src", {"analysis.py": "print(1)\n", "lib/util.py": ""})
    job_dir = syft_core.submit.submit_bash_job(  # the dataset names are not checked here
        scientist.syftbox.root,
        DS,
        DO,
        script="python3 analysis.py",
        job_name="with code",
        code_path=code,
        datasets=["./private/data//"],
        timeout_seconds=60,
        resources={"memory_mb": 256},
        description="counts rows",
    )
    config = Job(JobFolder(job_dir), DS).config
    assert config.datasets == ["private/data"]
    assert config.timeout_seconds == 60
    assert config.resources is not None and config.resources.memory_mb == 256
    assert config.description == "counts rows"
    assert everything_under(job_dir / "code") == ["analysis.py", "lib", "lib/util.py"]


def test_python_single_file_runs_from_its_code_folder(tmp_path: Path, scientist: Client) -> None:
    source = tmp_path / "analysis.py"
    source.write_text(
        "import pathlib, sys\n"
        "pathlib.Path('outputs').mkdir(exist_ok=True)\n"
        "pathlib.Path('outputs/count.csv').write_text('count\\n3\\n')\n"
        "print('args', sys.argv[1:])\n"
    )
    job_dir = scientist.submit_python_job(user=DO, code_path=source, job_name="Regional Analysis")

    assert (job_dir / "code" / "analysis.py").read_bytes() == source.read_bytes()
    config = Job(JobFolder(job_dir), DS).config
    assert (config.type, config.entrypoint) == ("python", "analysis.py")
    assert 'exec python3 analysis.py "$@"' in (job_dir / "run.sh").read_text()
    # The runner's convention: cwd is the code folder; outputs/ is relative to it.
    code = job_dir / "code"
    ran = subprocess.run(
        ["bash", "../run.sh", "x"], cwd=code, capture_output=True, text=True, check=True
    )
    assert ran.stdout == "args ['x']\n"
    assert (code / "outputs" / "count.csv").read_text() == "count\n3\n"


def test_python_folder_defaults_to_main_py_and_skips_dot_files(
    tmp_path: Path, scientist: Client
) -> None:
    code = write_code(
        tmp_path / "project",
        {
            "main.py": "from pkg import util\nprint(util.X)\n",
            "pkg/__init__.py": "",
            "pkg/util.py": "X = 42\n",
            "pkg/__pycache__/util.cpython-311.pyc": "bytecode",
            ".git/config": "[core]",
            ".env": "TOKEN=secret",
        },
    )
    job_dir = scientist.submit_python_job(DO, code, "Folder Job", description="d")

    assert everything_under(job_dir / "code") == [
        "main.py",
        "pkg",
        "pkg/__init__.py",
        "pkg/util.py",
    ]
    config = Job(JobFolder(job_dir), DS).config
    assert config.entrypoint == "main.py"
    ran = subprocess.run(
        ["bash", "../run.sh"], cwd=job_dir / "code", capture_output=True, text=True
    )
    assert (ran.returncode, ran.stdout) == (0, "42\n")


def test_python_folder_with_an_explicit_entrypoint_is_quoted(
    tmp_path: Path, scientist: Client
) -> None:
    code = write_code(tmp_path / "p", {"my scripts/run it.py": "print('quoted ok')\n"})
    job_dir = scientist.submit_python_job(DO, code, "q", entrypoint="my scripts/run it.py")
    assert Job(JobFolder(job_dir), DS).config.entrypoint == "my scripts/run it.py"
    ran = subprocess.run(
        ["bash", "../run.sh"], cwd=job_dir / "code", capture_output=True, text=True
    )
    assert ran.stdout == "quoted ok\n"


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("My Analysis", "My-Analysis"),
        ("Count for carol@example.org", "Count-for-carol-example.org"),
        ("../../etc/passwd", "etc-passwd"),
        ("  .hidden job!  ", "hidden-job"),
        ("a/b\\c:d*e?f", "a-b-c-d-e-f"),
        ("v1.2_final-ok", "v1.2_final-ok"),
        ("x" * 150, "x" * 100),
        ("Nüñez Café", "Nunez-Cafe"),
        ("Straße Ærø Łódź", "Strasse-AEro-Lodz"),
        ("ｆｕｌｌ width №1", "full-width-No1"),
        ("Café 分析", "Cafe"),
    ],
)
def test_job_folder_names_are_safe_slugs(name: str, folder: str) -> None:
    assert job_folder_name(name) == folder


def test_a_name_without_usable_characters_gets_a_stable_hashed_folder() -> None:
    first = job_folder_name("分析")
    assert first.startswith("job-") and len(first) == len("job-") + 12
    assert job_folder_name("分析") == first
    assert job_folder_name("解析") != first


# -- submission errors: clear, and nothing half-written --------------------------------------------
def _submission_error_cases(tmp_path: Path) -> dict[str, tuple[dict[str, object], type, str]]:
    src = tmp_path / "src"
    write_code(src, {"analysis.py": "print(1)\n", "notes.R": "1\n", "pkg/a.py": ""})
    (tmp_path / "no_main").mkdir()
    (tmp_path / "no_main" / "helper.py").write_text("")
    linked = write_code(tmp_path / "linked", {"main.py": ""})
    (linked / "data").symlink_to(tmp_path)
    hard = write_code(tmp_path / "hard", {"main.py": ""})
    os.link(hard / "main.py", tmp_path / "hard_twin.py")
    fifo = write_code(tmp_path / "fifo", {"main.py": ""})
    os.mkfifo(fifo / "pipe")
    (tmp_path / "link.py").symlink_to(src / "analysis.py")
    py = {"code_path": src / "analysis.py"}
    return {
        "missing entrypoint": ({"code_path": tmp_path / "no_main"}, JobError, "no main.py"),
        "entrypoint not there": (
            {"code_path": src, "entrypoint": "gone.py"},
            JobError,
            "not a file submitted",
        ),
        "non-py entrypoint": ({"code_path": src / "notes.R"}, JobError, "not a .py file"),
        "non-py folder entrypoint": (
            {"code_path": src, "entrypoint": "notes.R"},
            JobError,
            "not a .py file",
        ),
        "entrypoint escapes": ({"code_path": src, "entrypoint": "../x.py"}, UnsafePathError, ".."),
        "mismatched entrypoint": (
            {"code_path": src / "analysis.py", "entrypoint": "other.py"},
            JobError,
            "does not match",
        ),
        "symlink inside": ({"code_path": linked}, UnsafeSubmissionError, "symlink"),
        "code_path is a symlink": (
            {"code_path": tmp_path / "link.py"},
            UnsafeSubmissionError,
            "symlink",
        ),
        "hardlink": ({"code_path": hard}, UnsafeSubmissionError, "hardlink"),
        "fifo": ({"code_path": fifo}, UnsafeSubmissionError, "fifo"),
        "missing code_path": ({"code_path": tmp_path / "nope"}, JobError, "does not exist"),
        "unknown owner": ({**py, "user": "carol@example.org"}, JobError, "no datasite for carol"),
        "invalid owner email": ({**py, "user": "carol"}, InvalidEmailError, "'carol'"),
        "bad timeout": ({**py, "timeout_seconds": 0}, JobError, "timeout_seconds"),
        "bad resources": ({**py, "resources": {"gpus": 2}}, JobError, "resources.gpus"),
        "dataset escapes": ({**py, "datasets": ["../bob/private"]}, UnsafePathError, ".."),
        "unknown dataset": ({**py, "datasets": ["census"]}, DatasetNotFoundError, "no datasets"),
        "datasets as a string": ({**py, "datasets": "private"}, JobError, "list of strings"),
        "control chars in name": ({**py, "job_name": "a\x1bb"}, JobError, "control characters"),
    }


CASE_NAMES = [
    "missing entrypoint", "entrypoint not there", "non-py entrypoint", "non-py folder entrypoint",
    "entrypoint escapes", "mismatched entrypoint", "symlink inside", "code_path is a symlink",
    "hardlink", "fifo", "missing code_path", "unknown owner", "invalid owner email", "bad timeout",
    "bad resources", "dataset escapes", "unknown dataset", "datasets as a string",
    "control chars in name",
]  # fmt: skip


@pytest.mark.parametrize("case", CASE_NAMES)
def test_python_submission_errors_write_nothing(
    tmp_path: Path, box: Path, scientist: Client, case: str
) -> None:
    kwargs, error, message = _submission_error_cases(tmp_path)[case]
    before = everything_under(box)
    call: dict[str, object] = {"user": DO, "job_name": "J", **kwargs}
    with pytest.raises(error) as err:
        scientist.submit_python_job(**call)  # type: ignore[arg-type]
    assert message in str(err.value)
    assert everything_under(box) == before


@pytest.mark.parametrize("script", ["", "   \n\t\n"])
def test_an_empty_bash_script_is_refused(box: Path, scientist: Client, script: str) -> None:
    before = everything_under(box)
    with pytest.raises(JobError, match="script is empty"):
        scientist.submit_bash_job(DO, script, "empty")
    assert everything_under(box) == before


@pytest.mark.parametrize("again", ["My Analysis", "my analysis", "My  Analysis!"])
def test_a_duplicate_job_name_is_refused(box: Path, scientist: Client, again: str) -> None:
    first = scientist.submit_bash_job(DO, "echo 1", "My Analysis")
    before = everything_under(box)
    with pytest.raises(JobError, match="already exists") as err:
        scientist.submit_bash_job(DO, "echo 2", again)
    assert str(first) in str(err.value)
    assert everything_under(box) == before
    assert (first / "run.sh").read_text() == "#!/bin/bash\necho 1\n"


def test_a_duplicate_config_name_with_another_folder_is_refused(
    box: Path, scientist: Client
) -> None:
    job_dir = scientist.submit_bash_job(DO, "echo 1", "first")
    job_dir.rename(job_dir.parent / "renamed")
    with pytest.raises(JobError, match="a job named 'first' already exists"):
        scientist.submit_bash_job(DO, "echo 2", "first")


def test_the_same_name_to_another_owner_or_from_another_submitter_is_fine(
    box: Path, owner: Client, scientist: Client
) -> None:
    a = scientist.submit_bash_job(DO, "echo", "Same")
    b = owner.submit_bash_job(DS, "echo", "Same")
    c = owner.submit_bash_job(DO, "echo", "Same")
    assert len({a, b, c}) == 3


def test_a_failure_while_copying_leaves_no_temp_folder(
    tmp_path: Path, box: Path, scientist: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = write_code(tmp_path / "src", {"main.py": "", "b.py": "", "c.py": ""})
    real_copy = syft_core.submit._copy_file
    copied: list[Path] = []

    def copy_then_fail(src: Path, dst: Path) -> None:
        if copied:
            raise OSError("disk full")
        real_copy(src, dst)
        copied.append(dst)

    monkeypatch.setattr(syft_core.submit, "_copy_file", copy_then_fail)
    before = everything_under(box)
    with pytest.raises(OSError, match="disk full"):
        scientist.submit_python_job(DO, code, "J")
    assert copied, "the first file was copied into the temp folder"
    assert everything_under(box) == sorted([*before, f"{DO}/jobs/{DS}"])


def test_the_owner_datasite_must_not_be_a_symlink(
    tmp_path: Path, box: Path, scientist: Client
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (box / "carol@example.org").symlink_to(elsewhere)
    with pytest.raises(JobError, match="no datasite for carol"):
        scientist.submit_bash_job("carol@example.org", "echo", "J")
    assert list(elsewhere.iterdir()) == []


def test_get_client_checks_its_inputs(tmp_path: Path, box: Path) -> None:
    with pytest.raises(SyftError, match="syftbox folder does not exist"):
        get_client(tmp_path / "missing", DS)
    with pytest.raises(InvalidEmailError):
        get_client(box, "bob")
    assert repr(get_client(str(box), DS)) == f"Client('{DS}' in {box})"


# -- seeing jobs -----------------------------------------------------------------------------------
def test_seed_owner_review_loop_approves_every_inbox_job(
    owner: Client, scientist: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    scientist.submit_bash_job(user=DO, script=SEED_SCRIPT, job_name="My Analysis")
    scientist.submit_bash_job(user=DO, script="echo two", job_name="Second")

    client = get_client(owner.syftbox.root, DO)
    for job in client.jobs:
        if job.status == "inbox":
            print(f"Job from {job.submitted_by}: {job.name}")
            print(open(job.location / "run.sh").read())  # noqa: SIM115 (the seed's own example)
            job.approve(expected_hash=job.content_hash)

    out = capsys.readouterr().out
    assert f"Job from {DS}: My Analysis" in out
    assert "python analysis.py" in out
    assert [j.status for j in client.jobs] == ["approved", "approved"]
    assert all(j.state.approved and j.state.approved.by == DO for j in client.jobs)


def test_seed_scientist_reads_stderr_of_a_failed_job(owner: Client, scientist: Client) -> None:
    scientist.submit_bash_job(user=DO, script=SEED_SCRIPT, job_name="My Analysis")
    owner.jobs["My Analysis"].approve(without_review=True)
    owner_job = owner.jobs["My Analysis"]
    owner_job.folder.logs_dir.mkdir()
    owner_job.folder.stderr_path.write_text("Traceback: KeyError: 'customer_id'\n")
    finish(owner_job, Outcome.FAILED, exit_code=1)

    job = scientist.jobs["My Analysis"]
    assert job.status == "done"
    assert (job.outcome, job.exit_code) == (Outcome.FAILED, 1)
    for read in (lambda: job.stderr.text, lambda: job.stdout.text, lambda: job.outputs):
        with pytest.raises(ResultsNotReleasedError, match=f"after {re.escape(DO)} releases them"):
            read()  # not '' : the results wait for the owner (issue 12)

    owner_job.release()
    assert "KeyError: 'customer_id'" in job.stderr.text
    assert job.stdout.text == ""
    assert job.outputs == []


def test_job_list_indexing(owner: Client, scientist: Client) -> None:
    for name in ("first job", "second job", "third job"):
        scientist.submit_bash_job(DO, "echo", name)
    jobs = owner.jobs

    assert len(jobs) == 3
    assert [j.name for j in jobs] == ["first job", "second job", "third job"]
    assert jobs[0].name == "first job" and jobs[-1].name == "third job"
    assert [j.name for j in jobs[1:]] == ["second job", "third job"]
    assert jobs["second job"].folder_name == "second-job"
    assert jobs["second-job"].name == "second job"
    assert jobs[f"{DS}/third-job"].name == "third job"
    assert jobs[f"{DO}/jobs/{DS}/third-job"].name == "third job"
    with pytest.raises(KeyError) as err:
        jobs["fourth job"]
    assert str(err.value) == (  # the keys to type, not the display names (issue 12)
        f"no job 'fourth job'; jobs: {DS}/first-job, {DS}/second-job, {DS}/third-job"
    )
    with pytest.raises(IndexError):
        jobs[3]


def test_lookups_ignore_letter_case_when_unambiguous(owner: Client, scientist: Client) -> None:
    scientist.submit_bash_job(DO, "echo", "Count customers")  # folder Count-customers
    jobs = owner.jobs
    for key in (
        f"{DS}/count-customers",  # the README's spelling
        f"{DS.upper()}/COUNT-CUSTOMERS",
        "count customers",
        "COUNT-customers",
        f"{DO}/jobs/{DS}/count-customers",
    ):
        assert jobs[key].folder_name == "Count-customers", key
    assert scientist.jobs[f"{DO}/count-customers"].owner == DO  # a submitter's key


def test_exact_beats_case_insensitive_and_ties_list_the_keys(box: Path, owner: Client) -> None:
    get_client(box, DS).submit_bash_job(DO, "echo", "Report")
    get_client(box, "carol@example.org").submit_bash_job(DO, "echo", "report")
    assert owner.jobs["Report"].submitted_by == DS  # exact first
    assert owner.jobs["report"].submitted_by == "carol@example.org"
    with pytest.raises(KeyError) as err:
        owner.jobs["REPORT"]
    assert str(err.value) == (
        f"'REPORT' names 2 jobs: {DS}/Report, carol@example.org/report; use one of these"
    )


def test_not_found_lists_at_most_ten_keys(owner: Client, scientist: Client) -> None:
    for i in range(13):
        scientist.submit_bash_job(DO, "echo", f"job {i:02d}")
    with pytest.raises(KeyError) as err:
        owner.jobs["nope"]
    message = str(err.value)
    assert message.count(f"{DS}/job-") == 10 and message.endswith(" and 3 more")


def test_an_ambiguous_name_lists_the_candidates(box: Path, owner: Client) -> None:
    carol = get_client(box, "carol@example.org")
    get_client(box, DS).submit_bash_job(DO, "echo", "Same")
    carol.submit_bash_job(DO, "echo", "Same")

    with pytest.raises(KeyError) as err:
        owner.jobs["Same"]
    assert str(err.value) == (
        f"'Same' names 2 jobs: {DS}/Same, carol@example.org/Same; use one of these"
    )
    assert owner.jobs["carol@example.org/Same"].submitted_by == "carol@example.org"


def test_a_user_who_is_both_sees_owner_jobs_first_then_submitted(
    owner: Client, scientist: Client
) -> None:
    scientist.submit_bash_job(DO, "echo", "from bob")
    owner.submit_bash_job(DO, "echo", "to myself")
    owner.submit_bash_job(DS, "echo", "to bob")

    assert [(j.owner, j.name) for j in owner.jobs] == [
        (DO, "to myself"),  # alice@ sorts before bob@ among submitters
        (DO, "from bob"),
        (DS, "to bob"),
    ]
    assert [j.name for j in owner.owner_jobs] == ["to myself", "from bob"]
    assert [j.name for j in owner.submitted_jobs] == ["to myself", "to bob"]
    assert [(j.owner, j.name) for j in scientist.jobs] == [(DS, "to bob"), (DO, "from bob")]


def test_job_properties_read_the_folder_each_time(owner: Client, scientist: Client) -> None:
    scientist.submit_bash_job(DO, "echo", "Props", description="about")
    job = owner.jobs["Props"]
    assert (job.name, job.folder_name, job.submitted_by, job.owner) == ("Props", "Props", DS, DO)
    assert job.location == owner.syftbox.root / DO / "jobs" / DS / "Props"
    assert job.config.description == "about"
    assert (job.status, job.status_reason, job.done, job.outcome, job.exit_code) == (
        "inbox",
        None,
        None,
        None,
        None,
    )
    assert job.outputs == []

    job.approve(expected_hash=job.content_hash, reason="fine")
    assert job.status == Status.APPROVED
    (job.location / "run.sh").write_text("#!/bin/bash\necho changed\n")
    assert status_of(job) == "inbox"  # read again from the folder
    assert job.status_reason is not None and "changed after approval" in job.status_reason

    job.approve(expected_hash=job.content_hash)
    outputs = job.location / "outputs"
    (outputs / "nested").mkdir(parents=True)
    (outputs / "count.csv").write_text("3\n")
    (outputs / "nested" / "b.txt").write_text("b")
    (outputs / "leak").symlink_to("/etc/hostname")
    (job.location / "logs").mkdir()
    job.folder.stdout_path.write_text("hello\n")
    finish(job)
    assert status_of(job) == "done"
    assert job.stdout.text == "hello\n"
    assert job.stdout.path == job.location / "logs" / "stdout.txt"
    assert job.outputs == [outputs / "count.csv", outputs / "nested" / "b.txt"]
    assert (job.outcome, job.exit_code) == (Outcome.SUCCEEDED, 0)


def test_a_log_that_is_a_symlink_is_not_followed(owner: Client, scientist: Client) -> None:
    scientist.submit_bash_job(DO, "echo", "J")
    job = owner.jobs["J"]
    (job.location / "logs").mkdir()
    job.folder.stdout_path.symlink_to("/etc/hostname")
    with pytest.raises(JobError, match="cannot read log"):
        _ = job.stdout.text


def test_only_the_owner_may_approve_reject_or_cancel(owner: Client, scientist: Client) -> None:
    scientist.submit_bash_job(DO, "echo", "Mine")
    job = scientist.jobs["Mine"]
    actions: list[Callable[[], object]] = [job.approve, lambda: job.reject("no"), job.cancel]
    for action in actions:
        with pytest.raises(AccessDeniedError) as err:
            action()
        assert DO in str(err.value) and DS in str(err.value)
    assert job.status == "inbox"


def test_reject_and_cancel(owner: Client, scientist: Client) -> None:
    scientist.submit_bash_job(DO, "echo", "A")
    scientist.submit_bash_job(DO, "echo", "B")
    owner.jobs["A"].reject("reads private/ without asking")
    owner.jobs["B"].cancel("duplicate")

    a, b = scientist.jobs["A"], scientist.jobs["B"]
    assert (a.status, a.status_reason) == ("rejected", "reads private/ without asking")
    assert (b.status, b.outcome) == ("done", Outcome.CANCELLED)


# -- wait ------------------------------------------------------------------------------------------
def test_wait_times_out_naming_the_job_and_its_status(owner: Client, scientist: Client) -> None:
    scientist.submit_bash_job(DO, "echo", "Slow one")
    owner.jobs["Slow one"].approve(without_review=True)
    job = scientist.jobs["Slow one"]

    started = time.monotonic()
    with pytest.raises(TimeoutError) as err:
        job.wait(timeout=0.3, poll=0.05)
    assert 0.3 <= time.monotonic() - started < 2
    assert "'Slow one'" in str(err.value) and "last status: approved" in str(err.value)


def test_wait_returns_once_the_job_is_done(owner: Client, scientist: Client) -> None:
    scientist.submit_bash_job(DO, "echo", "Quick")
    owner_job = owner.jobs["Quick"]
    owner_job.approve(expected_hash=owner_job.content_hash)
    finisher = threading.Timer(0.2, finish, args=(owner_job,))
    finisher.start()
    try:
        job = scientist.jobs["Quick"]
        assert job.wait(timeout=10, poll=0.02, until="done") is job
        assert job.outcome is Outcome.SUCCEEDED
    finally:
        finisher.cancel()


def test_wait_on_real_data_waits_for_the_release(owner: Client, scientist: Client) -> None:
    scientist.submit_bash_job(DO, "echo", "Real")
    owner_job = owner.jobs["Real"]
    owner_job.approve(without_review=True)
    finish(owner_job)
    job = scientist.jobs["Real"]
    with pytest.raises(TimeoutError, match=r"is done \(succeeded\) but alice@example\.org has not"):
        job.wait(timeout=0.2, poll=0.02)
    assert owner_job.wait(timeout=1, poll=0.02) is owner_job  # the owner's view: at done
    releaser = threading.Timer(0.2, owner_job.release)
    releaser.start()
    try:
        assert job.wait(timeout=10, poll=0.02) is job
        assert job.released and job.stdout.text == ""
    finally:
        releaser.cancel()


def test_wait_on_a_mock_run_returns_at_done(owner: Client, scientist: Client) -> None:
    scientist.submit_bash_job(DO, "echo", "Mocked", mode="mock")
    owner_job = owner.jobs["Mocked"]
    owner_job.approve(without_review=True)
    finish(owner_job)
    job = scientist.jobs["Mocked"]
    assert job.wait(timeout=1, poll=0.02) is job
    assert job.stdout.text == ""  # a mock run's results are not held


def test_wait_on_a_rejected_job_raises_at_once(owner: Client, scientist: Client) -> None:
    scientist.submit_bash_job(DO, "echo", "Nope")
    owner.jobs["Nope"].reject("no")
    with pytest.raises(JobError, match="was rejected: no"):
        scientist.jobs["Nope"].wait(timeout=10)


# -- display ---------------------------------------------------------------------------------------
def test_repr_and_html_escape_what_the_submitter_wrote(owner: Client, scientist: Client) -> None:
    name = "<script>alert('x')</script> & co"
    scientist.submit_bash_job(DO, "echo", name)
    job = owner.jobs[name]

    assert repr(job) == f"Job({name!r}, {DO}/jobs/{DS}/script-alert-x-script-co, status=inbox)"
    for rendered in (job._repr_html_(), owner.jobs._repr_html_()):
        assert "<script>" not in rendered
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in rendered
        assert "<table>" in rendered and "inbox" in rendered
    assert "inbox" in repr(owner.jobs) and repr(name) in repr(owner.jobs)
    assert repr(get_client(owner.syftbox.root, "dave@example.org").jobs) == "JobList([])"


def test_submission_refuses_a_dataset_the_owner_does_not_publish(
    box: Path, owner: Client, scientist: Client
) -> None:
    datasite = owner.datasite
    (datasite.private / "customers.csv").write_text("region,n\nnorth,3\n")
    create_dataset(
        datasite, "customers", private=Path("private/customers.csv"), mock=None, automock=True
    )
    with pytest.raises(DatasetNotFoundError) as err:
        scientist.submit_bash_job(DO, "echo", "census", datasets=["customers", "census"])
    assert str(err.value) == f"{DO} has no dataset 'census'; available: customers"
    assert err.value.available == ["customers"]
    assert not (box / DO / "jobs" / DS / "census").exists()
    scientist.submit_bash_job(DO, "echo", "ok", datasets=["customers"], mode="mock")


# -- the local-run hook (syft_core.local_runner) -------------------------------------------------
def test_run_local_hands_everything_to_the_clients_runner(tmp_path: Path, box: Path) -> None:
    calls: list[tuple[Path, dict[str, object]]] = []

    def runner(code_path: Path, **kwargs: object) -> LocalRunResult:
        calls.append((code_path, kwargs))
        return LocalRunResult(Outcome.SUCCEEDED, 0, "ran", "out", "", tmp_path, tmp_path, [])

    client = get_client(box, DS, local_runner=runner)
    result = client.run_local(
        "analysis.py", owner=DO, datasets=("regions",), output_dir=str(tmp_path / "out")
    )
    assert result.message == "ran"
    assert calls == [
        (
            Path("analysis.py"),
            {
                "syftbox": box,
                "owner": DO,
                "datasets": ["regions"],
                "entrypoint": None,
                "output_dir": tmp_path / "out",
                "email": DS,
                "runtime": None,
            },
        )
    ]


def test_without_a_runner_the_client_uses_the_installed_syft_runner() -> None:
    # The package declares it as an entry point (pyproject.toml), so syft_core needs no import
    # of syft_runner; mypy checks here that it fits the protocol.
    installed: LocalRunner = run_local
    assert find_local_runner() is installed


def test_a_missing_or_ambiguous_runner_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    found: list[EntryPoint] = []
    monkeypatch.setattr(syft_core.local_runner, "entry_points", lambda group: found)
    with pytest.raises(SyftError, match=r"no local runner is installed.*pip install syft-runner"):
        find_local_runner()
    found += [
        EntryPoint("a", "pkg_a:run", syft_core.local_runner.ENTRY_POINT_GROUP),
        EntryPoint("b", "pkg_b:run", syft_core.local_runner.ENTRY_POINT_GROUP),
    ]
    with pytest.raises(SyftError, match=r"several local runners .*a \(pkg_a:run\), b "):
        find_local_runner()
