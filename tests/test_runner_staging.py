"""Staging: a verified, runner-owned copy of the approved submission; nothing followed."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest

from syft_core.jobs import JobConfig, UnsafeSubmissionError
from syft_runner.sandbox.container import job_user
from syft_runner.workspace import staging
from syft_runner.workspace.jobfs import noexec, supported
from syft_runner.workspace.outputs import OutputCaps
from syft_runner.workspace.staging import (
    RUNNER_STATE_DIR,
    DatasetUnavailableError,
    RunnerDirs,
    SubmissionChangedError,
    job_id,
    job_mounts,
    mounts_for,
    stage,
    verify_staged,
)
from tests.fixtures_runner import OWNER, write_job


def test_stage_copies_exactly_the_submission(syftbox: Path) -> None:
    job = write_job(syftbox, "s", "echo hi\n", code={"a.py": "1", "pkg/b.py": "2"})
    approved = job.content_hash()
    dirs = RunnerDirs.for_owner(syftbox / RUNNER_STATE_DIR, OWNER)
    staged = stage(job, approved, dirs)
    assert staged.job_id == job_id(job, approved)
    assert (staged.root / "run.sh").read_text() == "echo hi\n"
    assert (staged.root / "code" / "pkg" / "b.py").read_text() == "2"
    assert (staged.root / "outputs").is_dir()  # the mount point for the outputs folder
    assert verify_staged(staged.root, approved)
    assert not str(staged.root).startswith(str(job.path))
    st = staged.outputs.stat()
    assert (st.st_uid, st.st_gid) == job_user(staged.job_id)
    assert oct((staged.root / "code" / "a.py").stat().st_mode & 0o777) == "0o644"


def test_a_changed_submission_is_not_staged(syftbox: Path) -> None:
    job = write_job(syftbox, "c", "echo approved\n")
    approved = job.content_hash()
    job.run_sh.write_text("echo changed\n")
    dirs = RunnerDirs.for_owner(syftbox / RUNNER_STATE_DIR, OWNER)
    with pytest.raises(SubmissionChangedError, match="changed after approval"):
        stage(job, approved, dirs)
    assert not dirs.staging(job_id(job, approved)).exists()


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo"])
def test_unsafe_entries_are_refused(syftbox: Path, tmp_path: Path, kind: str) -> None:
    job = write_job(syftbox, f"u-{kind}", "echo hi\n")
    approved = job.content_hash()
    target = tmp_path / "outside"
    target.write_text("secret")
    entry = job.code_dir / "x"
    if kind == "symlink":
        os.symlink(target, entry)
    elif kind == "hardlink":
        os.link(target, entry)
    else:
        os.mkfifo(entry)
    with pytest.raises(UnsafeSubmissionError, match="code/x"):
        stage(job, approved, RunnerDirs.for_owner(syftbox / RUNNER_STATE_DIR, OWNER))


def test_a_symlinked_submitter_folder_is_not_followed(syftbox: Path, tmp_path: Path) -> None:
    job = write_job(syftbox, "real", "echo hi\n", submitter="ds@example.org")
    approved = job.content_hash()
    # Swap the submitter folder for a link to a look-alike elsewhere after approval.
    elsewhere = tmp_path / "elsewhere"
    job.path.parent.rename(elsewhere)
    os.symlink(elsewhere, job.path.parent)
    with pytest.raises(UnsafeSubmissionError):
        stage(job, approved, RunnerDirs.for_owner(syftbox / RUNNER_STATE_DIR, OWNER))


def test_missing_datasets_are_refused_in_one_place(syftbox: Path) -> None:
    job = write_job(syftbox, "d", "echo hi\n")
    config = JobConfig(name="d", type="bash", datasets=["census"])
    with pytest.raises(DatasetUnavailableError, match="no dataset 'census'; available: none"):
        mounts_for(job, config)
    assert mounts_for(job, JobConfig(name="d", type="bash")) == []


def test_job_mounts_are_the_staged_copy_and_outputs(syftbox: Path) -> None:
    job = write_job(syftbox, "m", "echo hi\n")
    staged = stage(job, job.content_hash(), RunnerDirs.for_owner(syftbox / RUNNER_STATE_DIR, OWNER))
    mounts = job_mounts(staged, job, JobConfig(name="m", type="bash"))
    assert [(m.target, m.read_only) for m in mounts] == [
        ("/job", True),
        ("/job/outputs", False),
        ("/job/code/outputs", False),
    ]
    assert mounts[0].source == staged.root
    assert mounts[1].source == mounts[2].source == staged.outputs
    assert (staged.root / "code" / "outputs").is_dir()  # the mount point, in the read-only /job


def test_runner_dirs_remove_and_list(syftbox: Path) -> None:
    dirs = RunnerDirs.for_owner(syftbox / RUNNER_STATE_DIR, OWNER)
    abc, def_ = "abc".ljust(20, "0"), "def".ljust(20, "0")  # ids as job_id makes them
    dirs.staging(abc).mkdir(parents=True)
    dirs.outputs(def_).mkdir(parents=True)
    assert dirs.job_ids() == {abc, def_}
    dirs.remove(abc)
    dirs.remove(def_)
    assert dirs.job_ids() == set()
    assert oct(dirs.root.parent.stat().st_mode & 0o777) == "0o700"


def test_executable_outputs_are_logged_once(
    syftbox: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Without a per-job filesystem (no caps here, as without root or mkfs.ext4) the outputs are a
    # plain host folder, executable unless the host filesystem is mounted noexec: say so.
    monkeypatch.setattr(staging, "_warned_executable", threading.Event())
    dirs = RunnerDirs.for_owner(syftbox / RUNNER_STATE_DIR, OWNER)
    assert not noexec(dirs.root)  # this test's host folder, as in the fallback
    for name in ("e1", "e2"):
        job = write_job(syftbox, name, "echo hi\n")
        with caplog.at_level(logging.WARNING, logger="syft_runner.workspace.staging"):
            stage(job, job.content_hash(), dirs)
    warnings = [m for m in caplog.messages if "outputs are executable" in m]
    assert len(warnings) == 1 and "state_dir" in warnings[0], warnings


@pytest.mark.skipif(not supported(), reason="needs root, mkfs.ext4 and loop devices")
def test_outputs_on_the_job_filesystem_are_noexec(
    syftbox: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(staging, "_warned_executable", threading.Event())
    dirs = RunnerDirs.for_owner(syftbox / RUNNER_STATE_DIR, OWNER)
    job = write_job(syftbox, "fs", "echo hi\n")
    caps = OutputCaps(max_file_bytes=1 << 20, max_total_bytes=1 << 20, max_files=100)
    with caplog.at_level(logging.WARNING, logger="syft_runner.workspace.staging"):
        staged = stage(job, job.content_hash(), dirs, caps)
    try:
        assert noexec(staged.outputs) and noexec(staged.root)
        assert not [m for m in caplog.messages if "outputs are executable" in m]
    finally:
        dirs.remove(staged.job_id)


def test_two_removers_of_one_job_folder_both_finish(tmp_path: Path) -> None:
    # A job's own clean-up and another (recovery, a cancel) may remove the same scratch folder
    # at once: an entry the other one took first is not an error, and the folder ends gone.
    for round_ in range(20):
        root = tmp_path / f"scratch-{round_}"
        for i in range(30):
            deep = root / f"d{i}" / "a" / "b"
            deep.mkdir(parents=True)
            for j in range(5):
                (deep / f"f{j}").write_text("x")
        errors: list[BaseException] = []

        def remove(path: Path = root, errors: list[BaseException] = errors) -> None:
            try:
                staging.remove_tree(path)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=remove) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [] and not root.exists()
