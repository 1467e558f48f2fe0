"""End-to-end: approved job folders run by a real runner in real containers."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import docker
import pytest
import yaml

from syft_core.jobs import Outcome, Status
from syft_runner.sandbox.container import JOB_UID_COUNT, JOB_UID_FIRST, job_user
from syft_runner.service import RunnerService, RunnerServiceError
from syft_runner.workspace.staging import job_id
from tests.fixtures_runner import (
    OWNER,
    StartRunner,
    approve,
    done_of,
    job_containers,
    results_of,
    runner_config,
    wait_done,
    wait_for,
    wait_runner_clean,
    write_job,
)

pytestmark = pytest.mark.docker


def test_bash_job_end_to_end(syftbox: Path, start_runner: StartRunner) -> None:
    job = approve(
        write_job(
            syftbox,
            "hello",
            "echo hello from $SYFT_RUN_MODE\nid -u\necho oops >&2\n"
            "echo 42 > outputs/answer.txt\nmkdir outputs/sub && echo x > outputs/sub/y.txt\n",
        )
    )
    start_runner()
    done = wait_done(job)
    assert done.outcome is Outcome.SUCCEEDED, done.message
    assert done.exit_code == 0
    uid, _ = job_user(job_id(job, job.content_hash()))
    assert JOB_UID_FIRST <= uid < JOB_UID_FIRST + JOB_UID_COUNT
    assert job.stdout_path.read_text() == f"hello from real\n{uid}\n"
    assert job.stderr_path.read_text() == "oops\n"
    assert (job.outputs_dir / "answer.txt").read_text() == "42\n"
    assert sorted(results_of(job).outputs) == ["answer.txt", "sub/y.txt"]
    assert done.image_id is not None and done.image_id.startswith("sha256:")
    assert done.content_hash == job.state().done.content_hash  # type: ignore[union-attr]
    assert done.duration_seconds is not None and done.started_at is not None
    assert not (job.path / "outputs.partial").exists()
    events = [e.what for e in job.events if e.path == job.relpath]
    assert events[-3:] == ["job.approved", "job.running", "job.done"]


def test_python_job_and_its_traceback(syftbox: Path, start_runner: StartRunner) -> None:
    good = approve(
        write_job(
            syftbox,
            "py-good",
            "python3 main.py\n",
            job_type="python",
            code={
                "main.py": "import os, pandas\n"
                "df = pandas.DataFrame({'a': [1, 2, 3]})\n"
                "df.to_csv(os.environ['SYFT_OUTPUT_DIR'] + '/sum.csv')\n"
                "print('total', df.a.sum())\n"
            },
        )
    )
    bad = approve(
        write_job(
            syftbox,
            "py-bad",
            "python3 main.py\n",
            job_type="python",
            code={"main.py": "def f():\n    raise KeyError('customer_id')\nf()\n"},
        )
    )
    start_runner()
    done = wait_done(good)
    assert done.outcome is Outcome.SUCCEEDED, done.message
    assert good.stdout_path.read_text() == "total 6\n"
    assert "a" in (good.outputs_dir / "sum.csv").read_text()
    failed = wait_done(bad)
    assert failed.outcome is Outcome.FAILED
    assert failed.exit_code == 1
    assert "stderr" in failed.message
    stderr = bad.stderr_path.read_text()
    assert "Traceback" in stderr and "KeyError: 'customer_id'" in stderr


def test_container_is_hardened(
    syftbox: Path, start_runner: StartRunner, docker_client: docker.DockerClient
) -> None:
    job = approve(
        write_job(syftbox, "inspect-me", "sleep 30\n", config={"resources": {"memory_mb": 300}})
    )
    start_runner()

    def started() -> bool:
        found = job_containers(docker_client, syftbox, include_stopped=False)
        return bool(found) and found[0].status == "running"

    wait_for(started, what="the job container to run")
    container = job_containers(docker_client, syftbox, include_stopped=False)[0]
    info = docker_client.api.inspect_container(container.id)
    host = info["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert any(opt.startswith("seccomp=") for opt in host["SecurityOpt"])
    assert host["Privileged"] is False
    assert host["Memory"] == host["MemorySwap"] == 300 * 1024 * 1024
    assert host["PidsLimit"] == 256 and host["NanoCpus"] == 1_000_000_000
    assert host["IpcMode"] == "private" and host["Init"] is True
    assert not host["Devices"]
    assert {u["Name"] for u in host["Ulimits"]} == {"nofile", "fsize", "core"}
    uid, gid = job_user(job_id(job, job.content_hash()))
    assert info["Config"]["User"] == f"{uid}:{gid}" and gid == 65532
    assert info["Config"]["Cmd"] == ["/bin/bash", "/job/run.sh"]
    env = dict(item.split("=", 1) for item in info["Config"]["Env"])
    assert env["SYFT_IS_IN_JOB"] == "true" and env["HOME"] == "/tmp"
    assert env["SYFT_OUTPUT_DIR"] == "/job/outputs"
    assert not set(env) & {"LD_PRELOAD", "DOCKER_HOST", "PYTHONPATH"}
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert set(mounts) == {"/job", "/job/outputs", "/job/code/outputs"}
    assert mounts["/job"]["RW"] is False and mounts["/job/outputs"]["RW"] is True
    assert mounts["/job/code/outputs"]["Source"] == mounts["/job/outputs"]["Source"]
    assert mounts["/job/code/outputs"]["RW"] is True and info["Config"]["WorkingDir"] == "/job/code"
    # The submission itself is never mounted: /job is the runner's staged copy.
    assert not mounts["/job"]["Source"].startswith(str(job.path))
    assert ".syft-runner" in mounts["/job"]["Source"]
    labels = info["Config"]["Labels"]
    assert labels["org.syft.job"] == f"{OWNER}/{job.relpath}"
    assert info["Name"].startswith("/syft-job-")
    job.request_cancel(OWNER, "test over")
    assert wait_done(job).outcome is Outcome.CANCELLED


def test_network_and_readonly_job_dir(syftbox: Path, start_runner: StartRunner) -> None:
    job = approve(
        write_job(
            syftbox,
            "escape",
            "python3 main.py\n",
            job_type="python",
            code={
                "main.py": "import socket\n"
                "for target in [('127.0.0.1', 80), ('1.1.1.1', 53)]:\n"
                "    try:\n"
                "        socket.create_connection(target, timeout=2)\n"
                "        print('connected', target)\n"
                "    except OSError as e:\n"
                "        print('blocked', type(e).__name__)\n"
                "for path in ['/job/run.sh', '/job/new.txt', '/etc/x']:\n"
                "    try:\n"
                "        open(path, 'a').write('x')\n"
                "        print('wrote', path)\n"
                "    except OSError as e:\n"
                "        print('readonly', path, e.errno)\n"
            },
        )
    )
    start_runner()
    done = wait_done(job)
    assert done.outcome is Outcome.SUCCEEDED, done.message
    out = job.stdout_path.read_text()
    assert "connected" not in out and out.count("blocked") == 2
    assert "wrote" not in out and out.count("readonly") == 3
    assert job.run_sh.read_text() == "python3 main.py\n"


def test_symlinked_output_is_refused_and_listed(syftbox: Path, start_runner: StartRunner) -> None:
    job = approve(
        write_job(
            syftbox,
            "links",
            "ln -s /etc/shadow outputs/shadow\nln -s /job/run.sh outputs/run\n"
            "mkfifo outputs/pipe\necho ok > outputs/real.txt\n"
            "echo bad > \"outputs/$(printf 'new\\nline')\"\n",
        )
    )
    start_runner()
    done = wait_done(job)
    assert done.outcome is Outcome.SUCCEEDED, done.message
    assert results_of(job).outputs == ["real.txt"]
    refused = {r.path: r.reason for r in results_of(job).refused_outputs}
    assert "symlink" in refused["shadow"] and "symlink" in refused["run"]
    assert "fifo" in refused["pipe"]
    assert "control characters" in refused["new\\x0aline"]
    assert sorted(os.listdir(job.outputs_dir)) == ["real.txt"]
    assert "refused" in done.message


def test_symlink_in_submission_is_an_error_before_run(
    syftbox: Path, start_runner: StartRunner, docker_client: docker.DockerClient
) -> None:
    job = approve(write_job(syftbox, "sneaky", "cat secret\n"))
    os.symlink(syftbox / OWNER / "private", job.code_dir / "secret")
    start_runner()
    done = wait_done(job)
    assert done.outcome is Outcome.ERROR
    assert "symlink" in done.message and "code/secret" in done.message
    assert done.exit_code is None  # nothing ran
    assert not job.stdout_path.exists()


def test_changed_after_approval_is_not_run(syftbox: Path, start_runner: StartRunner) -> None:
    job = approve(write_job(syftbox, "changed", "echo approved\n"))
    job.run_sh.write_text("echo evil > outputs/x\n")
    later = approve(write_job(syftbox, "later", "echo later\n"))
    start_runner()
    assert wait_done(later).outcome is Outcome.SUCCEEDED
    state = job.state()
    assert state.status is Status.INBOX
    assert state.reason is not None and "changed after approval" in state.reason
    assert done_of(job) is None
    assert not job.marker_path("running").exists() and not job.outputs_dir.exists()


def test_malformed_config_errors_and_runner_keeps_serving(
    syftbox: Path, start_runner: StartRunner
) -> None:
    # Approval normally refuses a bad config; write the approval by hand as a buggy client might.
    job = approve(write_job(syftbox, "bad-config", "echo hi\n"))
    (job.config_path).write_text("name: bad-config\ntype: cobol\n")
    approved = yaml.safe_load(job.marker_path("approved").read_text())
    approved["content_hash"] = job.content_hash()
    job.marker_path("approved").write_text(yaml.safe_dump(approved))
    runner = start_runner()
    done = wait_done(job)
    assert done.outcome is Outcome.ERROR
    assert str(job.config_path.relative_to(syftbox)) in done.message and "type" in done.message
    assert (
        str(syftbox) not in done.message
    )  # the owner's disk layout is not the submitter's business
    nxt = approve(write_job(syftbox, "next", "echo next\n"))
    assert wait_done(nxt).outcome is Outcome.SUCCEEDED
    assert runner.thread.is_alive() and not runner.errors


def test_missing_image_and_datasets_are_errors(syftbox: Path, start_runner: StartRunner) -> None:
    python = approve(write_job(syftbox, "no-image", "echo hi\n", job_type="python"))
    data = approve(write_job(syftbox, "with-data", "echo hi\n", config={"datasets": ["census"]}))
    start_runner(
        default_runtime="no-such-runtime", allowed_runtimes=["no-such-runtime", "scientific"]
    )
    done = wait_done(python)
    assert done.outcome is Outcome.ERROR
    assert "syft-runner/no-such-runtime:latest" in done.message and "make images" in done.message
    data_done = wait_done(data)
    assert data_done.outcome is Outcome.ERROR
    assert "no dataset 'census'; available: none" in data_done.message


def test_runner_folders_and_containers_are_cleaned(
    syftbox: Path, start_runner: StartRunner, docker_client: docker.DockerClient
) -> None:
    jobs = [approve(write_job(syftbox, f"j{i}", f"echo {i} > outputs/n\n")) for i in range(3)]
    start_runner()
    for job in jobs:
        assert wait_done(job).outcome is Outcome.SUCCEEDED
    wait_runner_clean(docker_client, syftbox)


def test_one_runner_per_datasite(
    syftbox: Path, start_runner: StartRunner, docker_client: docker.DockerClient
) -> None:
    first = start_runner()
    assert first.service.ready.wait(10)
    second = RunnerService(syftbox, OWNER, runner_config(), docker_client)
    with pytest.raises(RunnerServiceError, match="another runner is already serving"):
        second.run(threading.Event())
    assert first.thread.is_alive()


def test_a_neutral_state_dir_hides_the_syftbox_path(
    syftbox: Path, start_runner: StartRunner, tmp_path: Path
) -> None:
    job = approve(write_job(syftbox, "where-am-i", "cat /proc/self/mountinfo\n"))
    start_runner(state_dir=str(tmp_path / "state"))
    assert wait_done(job).outcome is Outcome.SUCCEEDED
    mountinfo = job.stdout_path.read_text()
    # The job's own filesystem shows /job and /job/outputs, neither the state dir nor the box.
    assert " /job /job ro" in mountinfo and " /job/outputs /job/outputs rw" in mountinfo
    assert str(tmp_path / "state") not in mountinfo
    assert str(syftbox.resolve()) not in mountinfo
    assert not (syftbox / ".syft-runner").exists()
