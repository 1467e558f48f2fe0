"""Attack 1: links in outputs. A job may leave symlinks to /etc/shadow, to another job's outputs,
to the owner's private data (its host path) or a linked folder, hoping the runner follows them on
the host when it collects outputs. No target content may land in outputs; each link is listed as
refused."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from syft_core.jobs import Outcome
from syft_runner.workspace.outputs import OutputCaps, collect_outputs
from tests.attacks.conftest import Secret, assert_not_leaked, files_under, run_jobs
from tests.fixtures_runner import StartRunner, approve, results_of, wait_done, write_job


@pytest.mark.docker
def test_symlinks_in_outputs_are_refused_and_nothing_is_followed(
    syftbox: Path, start_runner: StartRunner, secret: Secret
) -> None:
    victim = approve(write_job(syftbox, "victim", "echo VICTIM-RESULT-4711 > outputs/result.txt\n"))
    start_runner()
    assert wait_done(victim).outcome is Outcome.SUCCEEDED
    other = victim.outputs_dir
    attack = approve(
        write_job(
            syftbox,
            "link-attack",
            "ln -s /etc/shadow outputs/shadow\n"
            "ln -s /job/run.sh outputs/runsh\n"
            f"ln -s {secret.path} outputs/private\n"
            f"ln -s {secret.path.parent} outputs/private-dir\n"
            f"ln -s {other} outputs/other-job\n"
            f"ln -s {other}/result.txt outputs/other-result\n"
            "ln -s / outputs/root\n"
            "mkdir outputs/sub && ln -s /etc outputs/sub/etc\n"
            "ln -s ../../../../../../ outputs/up\n"
            "echo fine > outputs/real.txt\n"
            "ln outputs/real.txt outputs/hard.txt\n",
        )
    )
    done = wait_done(attack)
    assert done.outcome is Outcome.SUCCEEDED, done.message
    assert sorted(results_of(attack).outputs) == ["hard.txt", "real.txt"]
    refused = {r.path: r.reason for r in results_of(attack).refused_outputs}
    links = ["shadow", "runsh", "private", "private-dir", "other-job", "other-result", "root"]
    for name in [*links, "sub/etc", "up"]:
        assert "symlink" in refused[name], (name, refused)
    assert "refused" in done.message
    assert_not_leaked(attack.path, secret.token)
    assert_not_leaked(attack.path, b"VICTIM-RESULT-4711")
    assert (attack.outputs_dir / "hard.txt").read_text() == "fine\n"
    # The victim's own outputs are untouched.
    assert (other / "result.txt").read_text() == "VICTIM-RESULT-4711\n"


@pytest.mark.docker
def test_link_swapped_in_by_a_process_left_running_after_exit(
    syftbox: Path, start_runner: StartRunner, secret: Secret
) -> None:
    # A detached swapper keeps replacing outputs/x with a link to the private data while the
    # main process exits: the container's init ends it before outputs are collected.
    swapper = (
        f"while :; do ln -sfn {secret.path} outputs/x.lnk; mv -fT outputs/x.lnk outputs/x; "
        "echo ok > outputs/x.tmp; mv -fT outputs/x.tmp outputs/x; done"
    )
    results = run_jobs(
        syftbox,
        start_runner,
        {"swap-after-exit": f"(setsid bash -c '{swapper}' &)\nsleep 1\necho main-exited\n"},
    )
    job, done = results["swap-after-exit"]
    assert done.outcome is Outcome.SUCCEEDED, done.message
    assert job.stdout_path.read_text() == "main-exited\n"
    assert_not_leaked(job.path, secret.token)
    if "x" in results_of(job).outputs:
        assert (job.outputs_dir / "x").read_text() == "ok\n"
    else:
        assert any(r.path == "x" and "symlink" in r.reason for r in results_of(job).refused_outputs)


def test_collector_never_follows_a_link_swapped_in_during_collection(tmp_path: Path) -> None:
    """The race itself, against the real collector: a thread swaps a file and a folder for links
    to a secret while outputs are collected again and again."""
    secret_dir = tmp_path / "private"
    secret_dir.mkdir()
    (secret_dir / "secret.txt").write_text("TOP-SECRET")
    scratch = tmp_path / "scratch"
    (scratch / "d").mkdir(parents=True)
    (scratch / "d" / "inner.txt").write_text("ok")
    (scratch / "x").write_text("ok")
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            _swap_file(scratch, secret_dir / "secret.txt")
            _swap_dir(scratch, secret_dir)

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    failures: list[int] = []
    try:
        for i in range(200):
            job_dir = tmp_path / "jobs" / str(i)
            job_dir.mkdir(parents=True)
            try:
                collected = collect_outputs(scratch, job_dir, OutputCaps(10**6, 10**7, 100))
            except OSError as exc:
                # An entry swapped mid-walk may fail one collection (gone, or a link where a
                # folder was: O_NOFOLLOW refuses it). Failing is fine; following is not.
                failures.append(exc.errno or 0)
                continue
            for path, _ in files_under(job_dir):
                if path.is_file():  # "ok", or empty if caught half-written: never the secret
                    assert path.read_text() in ("ok", ""), f"{path} holds {path.read_text()!r}"
            assert all("symlink" in r.reason for r in collected.refused), collected.refused
    finally:
        stop.set()
        swapper.join(5)
    assert set(failures) <= {errno.ENOENT, errno.ELOOP, errno.ENOTDIR}, set(failures)
    assert len(failures) < 200, "no collection completed while links were swapped"


def _swap_file(scratch: Path, target: Path) -> None:
    link = scratch / "x.lnk"
    link.symlink_to(target)
    os.rename(link, scratch / "x")
    # Written beside the scratch folder, then renamed in: the collector only ever sees `x` as a
    # complete file or as a link (the race under test), never a half-written stray.
    plain = scratch.parent / "x.tmp"
    plain.write_text("ok")
    os.rename(plain, scratch / "x")


def _swap_dir(scratch: Path, target: Path) -> None:
    real, parked = scratch / "d", scratch / "d.parked"
    os.rename(real, parked)
    real.symlink_to(target)
    real.unlink()
    os.rename(parked, real)
