"""The job protocol: config.yaml parsing, content-bound approval and the validated transitions."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from syft_core.datasite import EVENT_LOG, Datasite
from syft_core.errors import AccessDeniedError, JobError
from syft_core.jobs import (
    DoneMarker,
    JobFolder,
    Outcome,
    Status,
    UnsafeSubmissionError,
    iter_job_folders,
    load_config,
    submission_hash,
)
from syft_core.jobs.config import MAX_CONFIG_BYTES, parse_config
from syft_core.jobs.markers import write_marker

OWNER = "alice@example.org"
DS = "bob@example.org"


def make_job(root: Path, name: str = "job1", config: dict[str, object] | None = None) -> JobFolder:
    """A job folder written by hand, as a synced submission would arrive."""
    Datasite(root, OWNER).init()
    folder = JobFolder.at(root, OWNER, DS, name)
    (folder.code_dir).mkdir(parents=True)
    folder.run_sh.write_text("#!/bin/bash\npython3 main.py\n")
    (folder.code_dir / "main.py").write_text("print('hi')\n")
    cfg = config or {"name": name, "type": "python", "entrypoint": "main.py"}
    folder.config_path.write_text(yaml.safe_dump(cfg))
    return folder


def start(folder: JobFolder) -> None:
    folder.start(
        OWNER, container="c", image="img", image_id="sha256:1", content_hash=folder.content_hash()
    )


def done(outcome: Outcome = Outcome.SUCCEEDED) -> DoneMarker:
    return DoneMarker(by=OWNER, outcome=outcome, message="finished", exit_code=0)


# -- config.yaml -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"name: [unclosed\n", "not valid YAML"),
        (b"- name: x\n- type: bash\n", "expected a mapping"),
        (b"just a string\n", "expected a mapping"),
        (b"name: x\ntype: bash\ntimeout_seconds: soon\n", "timeout_seconds"),
        (b"name: x\ntype: ruby\n", "type"),
        (b"name: x\ntype: python\n", "needs an entrypoint"),
        (b"name: x\ntype: python\nentrypoint: main.sh\n", "relative .py or .ipynb path"),
        (b"name: x\ntype: python\nentrypoint: ../main.py\n", "relative .py or .ipynb path"),
        (b"name: x\ntype: bash\nresources: {memory_mb: -1}\n", "resources.memory_mb"),
        (b"name: x\ntype: bash\nresources: {gpus: 1}\n", "resources.gpus"),
        (b'name: "a\\x1b[2Jb"\ntype: bash\n', "control characters"),
        (b"\xff\xfe\x00", "not valid YAML"),
        (b"name: x\ntype: bash\n#" + b"x" * MAX_CONFIG_BYTES, "over"),
    ],
)
def test_config_errors_name_the_file_and_reason(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    with pytest.raises(JobError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert why in str(err.value)


def test_config_must_be_a_regular_file(tmp_path: Path) -> None:
    """A symlink could make the owner's side read any file; a fifo would block it forever."""
    (tmp_path / "elsewhere.yaml").write_text("name: x\ntype: bash\n")
    link = tmp_path / "link" / "config.yaml"
    link.parent.mkdir()
    link.symlink_to(tmp_path / "elsewhere.yaml")
    fifo = tmp_path / "fifo" / "config.yaml"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    for path in (link, fifo):
        with pytest.raises(JobError, match="not a regular file"):
            load_config(path)
    with pytest.raises(JobError, match=r"missing config\.yaml"):
        load_config(tmp_path / "none" / "config.yaml")


def test_unknown_config_keys_survive_a_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "name: x\ntype: bash\nnotebook: {kernel: py3, cells: 3}\nlabels: [a, b]\n"
        "resources: {memory_mb: 512}\n"
    )
    config = load_config(path)
    assert config.model_extra == {"notebook": {"kernel": "py3", "cells": 3}, "labels": ["a", "b"]}

    path.write_text(config.to_yaml())
    again = load_config(path)
    assert again.model_extra == config.model_extra
    assert again == config
    assert again.resources is not None and again.resources.memory_mb == 512


# -- folders ---------------------------------------------------------------------------------------
def test_job_folder_shape_is_checked(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="not a job folder"):
        JobFolder(tmp_path / OWNER / "public" / DS / "x")
    with pytest.raises(JobError, match="submitter folder"):
        JobFolder(tmp_path / OWNER / "jobs" / "not-an-email" / "x")
    folder = JobFolder.at(tmp_path, OWNER, DS, "x")
    assert (folder.owner, folder.submitter, folder.name) == (OWNER, DS, "x")
    assert folder.relpath == f"jobs/{DS}/x"


def test_iter_job_folders_skips_what_is_not_a_job(tmp_path: Path) -> None:
    make_job(tmp_path, "a")
    make_job(tmp_path, "b")
    jobs = tmp_path / OWNER / "jobs"
    (jobs / "not-an-email" / "x").mkdir(parents=True)
    (jobs / DS / ".b.tmp").mkdir()
    (jobs / DS / "stray.txt").write_text("")
    (jobs / DS / "link").symlink_to(jobs / DS / "a")

    assert [f.name for f in iter_job_folders(tmp_path / OWNER)] == ["a", "b"]


def test_a_fresh_job_is_in_the_inbox(tmp_path: Path) -> None:
    state = make_job(tmp_path).state()
    assert state.status is Status.INBOX
    assert state.reason is None


# -- approval binds to content ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "change",
    [
        lambda f: f.run_sh.write_text("#!/bin/bash\ncat private/*\n"),
        lambda f: f.config_path.write_text(f.config_path.read_text() + "datasets: [private]\n"),
        lambda f: (f.code_dir / "extra.py").write_text("import os\n"),
        lambda f: (f.code_dir / "main.py").write_text("print('other')\n"),
    ],
    ids=["run.sh", "config", "new code file", "changed code file"],
)
def test_a_change_after_approval_sends_the_job_back_to_the_inbox(
    tmp_path: Path, change: Callable[[JobFolder], object]
) -> None:
    folder = make_job(tmp_path)
    marker = folder.approve(OWNER, expected_hash=folder.content_hash(), reason="looks fine")
    assert folder.state().status is Status.APPROVED
    assert marker.content_hash == submission_hash(folder.path)

    change(folder)

    state = folder.state()
    assert state.status is Status.INBOX
    assert state.reason is not None and "changed after approval" in state.reason
    with pytest.raises(JobError, match="cannot start a job that is inbox"):
        start(folder)

    folder.approve(OWNER, expected_hash=folder.content_hash(), reason="reviewed again")
    assert folder.state().status is Status.APPROVED


def test_a_symlink_put_in_after_approval_voids_it(tmp_path: Path) -> None:
    folder = make_job(tmp_path)
    folder.approve(OWNER, expected_hash=folder.content_hash())
    (folder.code_dir / "data").symlink_to(tmp_path / OWNER / "private")

    state = folder.state()
    assert state.status is Status.INBOX
    assert state.reason is not None and "symlink" in state.reason
    with pytest.raises(UnsafeSubmissionError, match="code/data: refused, it is a symlink"):
        folder.approve(OWNER, expected_hash=folder.content_hash())


def test_a_hardlinked_code_file_is_refused(tmp_path: Path) -> None:
    folder = make_job(tmp_path)
    os.link(folder.code_dir / "main.py", tmp_path / "outside.py")
    with pytest.raises(UnsafeSubmissionError, match="hardlink"):
        folder.content_hash()


def test_code_outputs_may_only_be_an_empty_folder(tmp_path: Path) -> None:
    # The job's outputs are mounted at code/outputs: anything submitted there would be hidden from
    # the job it was reviewed for, so only the empty mount point itself is accepted.
    folder = make_job(tmp_path)
    refused = "code/outputs: refused, it must be an empty folder"
    before = folder.content_hash()
    (folder.code_dir / "outputs").mkdir()
    assert folder.content_hash() == before
    (folder.code_dir / "outputs" / "hidden.py").write_text("print(1)\n")
    with pytest.raises(UnsafeSubmissionError, match=refused):
        folder.content_hash()
    (folder.code_dir / "outputs" / "hidden.py").unlink()
    (folder.code_dir / "outputs").rmdir()
    (folder.code_dir / "outputs").write_text("a file")
    with pytest.raises(UnsafeSubmissionError, match=refused):
        folder.content_hash()


def test_a_corrupt_marker_reads_as_inbox_naming_the_file(tmp_path: Path) -> None:
    folder = make_job(tmp_path)
    folder.marker_path("approved").write_text("by: [not, a, string\n")
    state = folder.state()
    assert state.status is Status.INBOX
    assert state.reason is not None and str(folder.marker_path("approved")) in state.reason


# -- transitions -----------------------------------------------------------------------------------
def test_the_happy_path_and_one_event_per_transition(tmp_path: Path) -> None:
    folder = make_job(tmp_path)
    folder.approve(OWNER, expected_hash=folder.content_hash(), reason="ok")
    start(folder)
    assert folder.state().status is Status.RUNNING
    folder.finish(done())

    state = folder.state()
    assert state.status is Status.DONE
    assert state.done is not None and state.done.outcome is Outcome.SUCCEEDED
    lines = (tmp_path / OWNER / EVENT_LOG).read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["what"] for e in events] == [
        "datasite.init",
        "job.approved",
        "job.running",
        "job.done",
    ]
    assert all(e["path"] == f"jobs/{DS}/job1" for e in events[1:])
    assert events[1]["who"] == OWNER and events[1]["details"]["reason"] == "ok"


def test_restore_events_logs_a_marker_whose_event_a_crash_lost(tmp_path: Path) -> None:
    folder = make_job(tmp_path)
    folder.approve(OWNER, expected_hash=folder.content_hash())
    start(folder)
    write_marker(folder.marker_path("done"), done())  # the process died before logging it

    assert folder.restore_events(OWNER) == ["done"]
    assert folder.restore_events(OWNER) == []
    events = [e for e in folder.events if e.path == folder.relpath]
    assert [e.what for e in events] == ["job.approved", "job.running", "job.done"]
    assert events[-1].details == {
        "restored": True,
        "outcome": "succeeded",
        "exit_code": 0,
        "message": "finished",
    }


def test_restore_events_ignores_an_event_from_an_earlier_run(tmp_path: Path) -> None:
    """An old `job.done` for the same path (a resubmitted job) does not stand in for a new one."""
    folder = make_job(tmp_path)
    folder.events.append(OWNER, "job.done", folder.relpath)
    time.sleep(0.01)
    write_marker(folder.marker_path("done"), done())
    assert folder.restore_events(OWNER) == ["done"]


def test_only_the_owner_may_change_a_job(tmp_path: Path) -> None:
    folder = make_job(tmp_path)
    for action in (
        lambda: folder.approve(DS, expected_hash=folder.content_hash()),
        lambda: folder.reject(DS, "no"),
        lambda: folder.request_cancel(DS),
    ):
        with pytest.raises(AccessDeniedError) as err:
            action()
        assert OWNER in str(err.value) and DS in str(err.value)
    assert folder.state().status is Status.INBOX
    assert not any(folder.marker_path(k).exists() for k in ("approved", "rejected", "done"))


def test_a_job_that_is_not_in_the_inbox_cannot_be_approved(tmp_path: Path) -> None:
    rejected = make_job(tmp_path, "rejected")
    rejected.reject(OWNER, "reads private data")
    running = make_job(tmp_path, "running")
    running.approve(OWNER, expected_hash=running.content_hash())
    start(running)
    finished = make_job(tmp_path, "done")
    finished.approve(OWNER, expected_hash=finished.content_hash())
    finished.finish(done())

    for folder, status in ((rejected, "rejected"), (running, "running"), (finished, "done")):
        with pytest.raises(JobError, match=f"cannot approve a job that is {status}"):
            folder.approve(OWNER, expected_hash=folder.content_hash())
    assert rejected.state().reason == "reads private data"


def test_unapproved_or_rejected_jobs_cannot_start(tmp_path: Path) -> None:
    inbox = make_job(tmp_path, "inbox")
    with pytest.raises(JobError, match="cannot start a job that is inbox"):
        start(inbox)
    rejected = make_job(tmp_path, "rejected")
    rejected.approve(OWNER, expected_hash=rejected.content_hash())
    rejected.reject(OWNER, "changed my mind")
    with pytest.raises(JobError, match="cannot start a job that is rejected"):
        start(rejected)
    assert not inbox.marker_path("running").exists()


def test_done_is_final(tmp_path: Path) -> None:
    folder = make_job(tmp_path)
    folder.approve(OWNER, expected_hash=folder.content_hash())
    folder.finish(done(Outcome.FAILED))
    with pytest.raises(JobError, match="cannot reject a job that is done"):
        folder.reject(OWNER, "late")
    with pytest.raises(JobError, match="cannot finish a job that is done"):
        folder.finish(done())
    with pytest.raises(JobError, match="cannot cancel a job that is done"):
        folder.request_cancel(OWNER)


def test_cancelling_an_inbox_job_ends_it_as_cancelled(tmp_path: Path) -> None:
    folder = make_job(tmp_path)
    state = folder.request_cancel(OWNER, reason="not needed")
    assert state.status is Status.DONE
    assert state.done is not None and state.done.outcome is Outcome.CANCELLED
    assert state.done.message == f"cancelled by {OWNER}: not needed"


def test_cancelling_a_running_job_asks_the_runner(tmp_path: Path) -> None:
    folder = make_job(tmp_path)
    folder.approve(OWNER, expected_hash=folder.content_hash())
    start(folder)
    state = folder.request_cancel(OWNER, reason="too slow")
    assert state.status is Status.RUNNING
    assert state.cancel is not None and state.cancel.reason == "too slow"
    assert not folder.marker_path("done").exists()


def test_a_syft_job_config_runs_on_real_data_only(tmp_path: Path) -> None:
    # A syft-job is approved with the private datasets the owner picks; "mock" would skip the
    # output checks and release its results at once.
    text = b"name: x\ntype: bash\nprotocol: syft-job\nmode: mock\n"
    with pytest.raises(JobError, match="mode must be real"):
        parse_config(text, tmp_path / "config.yaml")
    assert parse_config(text.replace(b"mock", b"real"), tmp_path / "config.yaml").mode == "real"
