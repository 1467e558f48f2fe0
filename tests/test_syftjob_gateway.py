"""OpenMined's Syft job gateway without Docker: the two-sided state machine (their state.yaml <->
the mirror in our jobs/ gateway), with the executor's markers written by hand. The protocol files
themselves are tests/test_syftjob.py's; the real clients' round trips are tests/interop/."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from syft_core.datasite import Datasite
from syft_core.jobs import DoneMarker, JobFolder, Outcome, Status
from syft_core.release import release_job
from syft_core.syftjob import (
    TIMEOUT_LINE,
    SyftJobRef,
    read_state,
    ref_for,
    write_state,
)
from syft_runner.cli import jobs as jobs_cli
from syft_runner.syftjob_gateway import SyftJobGateway, mirror_of

DO = "do@example.org"
DS = "ds@example.org"


# -- the gateway: their state.yaml <-> the mirror ----------------------------------------------
def test_a_new_job_gets_pending_and_a_mirror_that_follows_edits(tmp_path: Path) -> None:
    gateway, ref = _gateway(tmp_path), _submit(tmp_path, "Job - 1a2b", "echo one\n", {})
    gateway.sync()
    state, mirror = read_state(ref), mirror_of(ref, tmp_path)
    assert state is not None and state.status == "pending" and state.received_at
    assert mirror.state().status is Status.INBOX
    assert mirror.name.startswith("syftjob-p1-Job-1a2b-")
    run_sh = mirror.run_sh.read_text()
    assert run_sh.endswith("cd /job\necho one\n")  # their script, from the job folder
    assert mirror.config().protocol == "syft-job" and mirror.config().submitted_by == DS
    (ref.inbox / "run.sh").write_text("echo two\n")
    gateway.sync()
    assert mirror.run_sh.read_text().endswith("cd /job\necho two\n")


def test_mirror_tampering_their_approval_binds_the_submission_not_a_planted_mirror(
    tmp_path: Path,
) -> None:
    gateway, ref = _gateway(tmp_path, datasets=["census"]), _submit(tmp_path, "j", "echo ok\n", {})
    gateway.sync()
    mirror = mirror_of(ref, tmp_path)
    # Someone writes into the mirror (our gateway lets a scientist write run.sh there).
    mirror.run_sh.write_text("cat /syftbox/*/private/*\n")
    _their_approval(ref)
    gateway.sync()
    state = mirror.state()
    assert state.status is Status.APPROVED and state.approved is not None
    assert state.approved.method == "syft-job:manual" and state.approved.datasets == ["census"]
    assert mirror.run_sh.read_text().endswith("cd /job\necho ok\n")  # rewritten, then approved
    assert state.approved.content_hash == mirror.content_hash()


def test_swap_after_review_a_file_changed_after_their_approval_is_refused(tmp_path: Path) -> None:
    gateway, ref = _gateway(tmp_path), _submit(tmp_path, "j", "echo ok\n", {"a.txt": "a"})
    gateway.sync()
    _their_approval(ref, at="2020-01-01T00:00:00.000000Z")  # before every file was written
    gateway.sync()
    state = read_state(ref)
    assert state is not None and state.status == "failed" and state.return_code == -1
    stderr = (ref.review / "stderr.txt").read_text()
    assert "changed after it was approved" in stderr and str(tmp_path) not in stderr
    assert (ref.review / "returncode.txt").read_text() == "-1"
    refused = mirror_of(ref, tmp_path).state()  # never approved, and never to be run later
    assert refused.status is Status.REJECTED and refused.approved is None


def test_swap_after_review_a_file_deleted_after_their_approval_is_refused(tmp_path: Path) -> None:
    # A deletion moves no file's mtime: the submission must still match what was rendered for
    # review, or a check the owner read (a limits script) could be gone when it runs.
    code = {"limits.sh": "ulimit -v 1000\n", "main.sh": "echo ok\n"}
    gateway, ref = _gateway(tmp_path), _submit(tmp_path, "j", "echo ok\n", code)
    gateway.sync()
    _their_approval(ref)
    (ref.inbox / "code" / "limits.sh").unlink()
    gateway.sync()
    state = read_state(ref)
    assert state is not None and state.status == "failed" and state.return_code == -1
    assert "no longer what was shown for review" in (ref.review / "stderr.txt").read_text()
    assert mirror_of(ref, tmp_path).state().approved is None


@pytest.mark.parametrize("planted", ["code", "code/script.sh", "run.sh"])
def test_link_planted_in_the_mirror_is_never_written_through(tmp_path: Path, planted: str) -> None:
    # Attack class: write-through a link. The mirror sits in jobs/<ds>/, where the scientist may
    # write; a link there must not make the runner write or delete the owner's files.
    gateway, ref = _gateway(tmp_path), _submit(tmp_path, "j", "echo ok\n", {"script.sh": "x"})
    gateway.sync()
    mirror = mirror_of(ref, tmp_path)
    private = tmp_path / DO / "private"
    private.mkdir(parents=True, exist_ok=True)
    (private / "secret.csv").write_text("secret\n")
    (private / "script.sh").write_text("owner's\n")
    (private / "run.sh").write_text("owner's\n")
    target = mirror.path / planted
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    target.symlink_to(private if planted == "code" else private / Path(planted).name)
    (ref.inbox / "run.sh").write_text("echo changed\n")  # makes the gateway rewrite the mirror
    _their_approval(ref)
    gateway.sync()
    assert (private / "secret.csv").read_text() == "secret\n"
    assert (private / "script.sh").read_text() == "owner's\n"
    assert (private / "run.sh").read_text() == "owner's\n"
    assert mirror.state().approved is None  # refused, not approved


def test_our_approval_and_rejection_are_written_to_their_state(tmp_path: Path) -> None:
    gateway = _gateway(tmp_path)
    yes, no = _submit(tmp_path, "yes", "true\n", {}), _submit(tmp_path, "no", "true\n", {})
    gateway.sync()
    mirror_of(yes, tmp_path).approve(DO, without_review=True, reason="fine")
    mirror_of(no, tmp_path).reject(DO, "reads too much")
    gateway.sync()
    approved, rejected = read_state(yes), read_state(no)
    assert approved is not None and approved.status == "approved"
    assert (approved.approved_by, approved.review_reason) == (DO, "fine")
    assert rejected is not None and rejected.status == "rejected"
    assert rejected.review_reason == "reads too much"
    gateway.sync()  # their side now says approved: the mirror stays approved, unchanged
    assert mirror_of(yes, tmp_path).state().status is Status.APPROVED


def test_a_job_we_approved_that_finished_before_the_next_pass_reaches_their_side(
    tmp_path: Path,
) -> None:
    # The watcher starts a job approved with ours at once; a short one is done before the
    # rescan that would have written their `approved`.
    gateway, ref = _gateway(tmp_path, share=True), _submit(tmp_path, "j", "echo ok\n", {})
    gateway.sync()
    mirror = mirror_of(ref, tmp_path)
    mirror.approve(DO, without_review=True, reason="fine")
    _finish(mirror, Outcome.SUCCEEDED, 0, stdout="ok\n")
    gateway.sync()
    gateway.sync()
    state = read_state(ref)
    assert state is not None and (state.status, state.return_code) == ("done", 0)
    assert (state.approved_by, state.review_reason) == (DO, "fine")
    assert (ref.review / "stdout.txt").read_text() == "ok\n"


def test_their_rejection_rejects_the_mirror(tmp_path: Path) -> None:
    gateway, ref = _gateway(tmp_path), _submit(tmp_path, "j", "true\n", {})
    gateway.sync()
    state = read_state(ref)
    assert state is not None
    write_state(ref, state.model_copy(update={"status": "rejected", "review_reason": "no"}))
    gateway.sync()
    rejected = mirror_of(ref, tmp_path).state()
    assert rejected.status is Status.REJECTED and rejected.rejected is not None
    assert rejected.rejected.reason == "no"


@pytest.mark.parametrize("share", [False, True])
def test_results_wait_for_release_unless_shared_on_completion(tmp_path: Path, share: bool) -> None:
    gateway, ref = _gateway(tmp_path, share=share), _submit(tmp_path, "j", "exit 3\n", {})
    gateway.sync()
    _their_approval(ref)
    gateway.sync()
    mirror = mirror_of(ref, tmp_path)
    _finish(mirror, Outcome.FAILED, 3, stdout="partial\n", outputs={"half.csv": "a\n"})
    gateway.sync()
    state = read_state(ref)
    assert state is not None
    if not share:
        assert state.status == "running" and not (ref.review / "stdout.txt").exists()
        release_job(mirror, by=DO)
        gateway.sync()
        state = read_state(ref)
        assert state is not None
    assert (state.status, state.return_code) == ("failed", 3)
    assert (ref.review / "returncode.txt").read_bytes() == b"3"
    assert (ref.review / "stdout.txt").read_text() == "partial\n"
    assert (ref.review / "outputs" / "half.csv").read_text() == "a\n"


def test_a_partial_release_sends_only_the_released_files(tmp_path: Path) -> None:
    gateway, ref = _gateway(tmp_path), _submit(tmp_path, "j", "true\n", {})
    gateway.sync()
    _their_approval(ref)
    gateway.sync()
    mirror = mirror_of(ref, tmp_path)
    _finish(mirror, Outcome.SUCCEEDED, 0, stdout="secret\n", outputs={"a.txt": "a", "b.txt": "b"})
    release_job(mirror, by=DO, only=["outputs/a.txt"])
    gateway.sync()
    state = read_state(ref)
    assert state is not None and state.status == "done"
    assert sorted(p.name for p in (ref.review / "outputs").iterdir()) == ["a.txt"]
    assert "withheld by the owner" in (ref.review / "stdout.txt").read_text()


def test_a_timeout_reads_as_theirs_and_says_ours(tmp_path: Path) -> None:
    gateway = _gateway(tmp_path, share=True)
    ref = _submit(tmp_path, "j", "sleep 1000\n", {})
    gateway.sync()
    _their_approval(ref)
    gateway.sync()
    _finish(mirror_of(ref, tmp_path), Outcome.TIMED_OUT, None, stdout="started\n")
    gateway.sync()
    state = read_state(ref)
    assert state is not None and (state.status, state.return_code) == ("failed", -1)
    assert (ref.review / "stdout.txt").read_text() == "started\n" + TIMEOUT_LINE
    assert "syft-runner: timed_out" in (ref.review / "stderr.txt").read_text()


def test_the_owner_reviews_and_approves_a_syft_job_with_our_cli(tmp_path: Path) -> None:
    gateway, ref = _gateway(tmp_path, datasets=["ages"]), _submit(tmp_path, "j", "echo hi\n", {})
    gateway.sync()
    mirror = mirror_of(ref, tmp_path)
    app = typer.Typer()
    jobs_cli.register(app)
    common = ["--syftbox", str(tmp_path), "--email", DO]
    key = f"{DS}/{mirror.name}"
    listed = CliRunner().invoke(app, ["jobs", *common], terminal_width=200)
    assert listed.exit_code == 0 and "syft-job p1" in listed.output, listed.output
    shown = CliRunner().invoke(app, ["show", key, *common])
    assert shown.exit_code == 0, shown.output
    assert "gateway:      Syft job (OpenMined's clients)" in shown.output
    assert "  | echo hi" in shown.output
    content_hash = shown.output.split("content hash: ")[1].split()[0]
    args = ["approve", key, "--hash", content_hash, "--dataset", "ages", *common]
    approved = CliRunner().invoke(app, args)
    assert approved.exit_code == 0, approved.output
    state = mirror.state()
    assert state.approved is not None and state.approved.datasets == ["ages"]
    gateway.sync()
    theirs = read_state(ref)
    assert theirs is not None and (theirs.status, theirs.approved_by) == ("approved", DO)


# -- helpers ----------------------------------------------------------------------------------
def _gateway(
    root: Path, *, datasets: list[str] | None = None, share: bool = False
) -> SyftJobGateway:
    (root / DO / "jobs").mkdir(parents=True, exist_ok=True)
    return SyftJobGateway(
        Datasite(root, DO),
        lock_dir=root / ".locks",
        datasets=datasets or [],
        share_on_completion=share,
    )


def _submit(root: Path, name: str, script: str, code: dict[str, str]) -> SyftJobRef:
    """A bash job as syft-job 0.1.40 writes it (protocol 1)."""
    ref = ref_for(root / DO, DS, 1, name)
    (ref.inbox / "code").mkdir(parents=True)
    (ref.inbox / "run.sh").write_text(script)
    for rel, text in code.items():
        (ref.inbox / "code" / rel).write_text(text)
    config: dict[str, object] = {
        "name": name,
        "type": "bash",
        "dependencies": [],
        "entrypoint": None,
        "submitted_at": "2026-12-03T06:49:24.265491Z",
        "version": "1",
    }
    (ref.inbox / "config.yaml").write_text(yaml.dump(config))
    return ref


def _their_approval(ref: SyftJobRef, at: str | None = None) -> None:
    """What their owner client's `job.approve()` writes."""
    time.sleep(0.01)
    state = read_state(ref)
    assert state is not None
    stamp = at or time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() + 1))
    update = {
        "status": "approved",
        "approved_by": DO,
        "approved_at": stamp,
        "approval_method": "manual",
    }
    write_state(ref, state.model_copy(update=update))


def _finish(
    mirror: JobFolder,
    outcome: Outcome,
    code: int | None,
    *,
    stdout: str,
    outputs: dict[str, str] | None = None,
) -> None:
    """What the executor leaves in a mirror it ran."""
    approved = mirror.state().approved
    assert approved is not None
    mirror.start(
        DO, container="c", image="i", image_id="sha256:0", content_hash=approved.content_hash
    )
    mirror.logs_dir.mkdir(exist_ok=True)
    mirror.stdout_path.write_text(stdout)
    mirror.stderr_path.write_text("")
    mirror.outputs_dir.mkdir(exist_ok=True)
    for name, text in (outputs or {}).items():
        (mirror.outputs_dir / name).write_text(text)
    mirror.finish(DoneMarker(by=DO, outcome=outcome, message=outcome.value, exit_code=code))


def test_a_folder_of_ours_named_like_a_mirror_is_not_their_job(tmp_path: Path) -> None:
    # A scientist names a job of our own protocol after the mirror of a Syft job they submit
    # later; the owner approves and runs it as ours, its results unreleased. The gateway must
    # not take that folder for the mirror: neither its approval nor, with sharing on
    # completion, its results go to their side.
    ref = ref_for(tmp_path / DO, DS, 1, "x")
    native = JobFolder.at(tmp_path, DO, DS, mirror_of(ref, tmp_path).name)
    (native.path / "code").mkdir(parents=True)
    native.run_sh.write_text("cat /data/*\n")
    native.config_path.write_text(yaml.safe_dump({"name": "mine", "type": "bash"}))
    native.approve(DO, without_review=True)
    _finish(native, Outcome.SUCCEEDED, 0, stdout="private rows\n", outputs={"rows.csv": "a,1\n"})
    gateway = _gateway(tmp_path, share=True)
    _submit(tmp_path, "x", "echo theirs\n", {})
    for _ in range(3):
        gateway.sync()
    state = read_state(ref)
    assert state is not None and state.status == "pending" and state.approved_by is None
    assert not (ref.review / "stdout.txt").exists() and not (ref.review / "outputs").exists()
    _their_approval(ref)  # even approved on their side, what runs there is not their job
    for _ in range(2):
        gateway.sync()
    assert not (ref.review / "stdout.txt").exists() and not (ref.review / "outputs").exists()


@pytest.mark.parametrize(
    "config",
    [{"name": "n" * 300}, {"type": "python", "entrypoint": "../x.sh"}, {"type": "python"}],
)
def test_one_config_ours_cannot_run_refuses_that_job_alone(
    tmp_path: Path, config: dict[str, object]
) -> None:
    gateway = _gateway(tmp_path)
    bad = _submit(tmp_path, "a-bad", "true\n", {})
    settings = yaml.safe_load((bad.inbox / "config.yaml").read_text())
    (bad.inbox / "config.yaml").write_text(yaml.dump({**settings, **config}))
    victim = _submit(tmp_path, "b-victim", "true\n", {})
    gateway.sync()
    refused, served = read_state(bad), read_state(victim)
    assert refused is not None and refused.status == "rejected"
    assert served is not None and served.status == "pending"
    assert mirror_of(victim, tmp_path).path.is_dir()
