"""Attack 2: links, hardlinks, fifos, devices and sockets in a submitted job. The runner copies the
submission on the host, so any of these could lead it to the owner's private data (or block it on
a fifo). Each is refused: approval fails, and one planted after approval ends the job in an error
naming the file, before any container exists."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from syft_core.errors import JobError
from syft_core.jobs import JobFolder, Outcome
from tests.attacks.conftest import Secret, container_actions
from tests.fixtures_runner import StartRunner, approve, wait_done, write_job

pytestmark = pytest.mark.docker

Plant = Callable[[JobFolder, Secret], None]


def _replace_with_link(rel: str, target: Callable[[JobFolder, Secret], Path]) -> Plant:
    def plant(job: JobFolder, secret: Secret) -> None:
        path = job.path / rel
        path.unlink()
        path.symlink_to(target(job, secret))

    return plant


def _code_dir_link(job: JobFolder, secret: Secret) -> None:
    for child in job.code_dir.iterdir():
        child.unlink()
    job.code_dir.rmdir()
    job.code_dir.symlink_to(Path("../../../private"))  # relative: jobs/<ds>/<job>/code → private


def _code_subdir_link(job: JobFolder, secret: Secret) -> None:
    (job.code_dir / "sub").symlink_to(secret.path.parent, target_is_directory=True)


def _hardlink(job: JobFolder, secret: Secret) -> None:
    (job.code_dir / "data.csv").unlink()
    os.link(secret.path, job.code_dir / "data.csv")


def _fifo(job: JobFolder, secret: Secret) -> None:
    os.mkfifo(job.code_dir / "pipe")


def _device(job: JobFolder, secret: Secret) -> None:
    os.mknod(job.code_dir / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))


def _socket(job: JobFolder, secret: Secret) -> None:
    # mknod makes the same inode bind() would, without bind's 108-byte path limit.
    os.mknod(job.code_dir / "sock", 0o666 | stat.S_IFSOCK)


CASES: dict[str, tuple[Plant, str, str]] = {
    "run.sh-link": (_replace_with_link("run.sh", lambda j, s: s.path), "run.sh", "symlink"),
    "config-link": (
        _replace_with_link("config.yaml", lambda j, s: s.path),
        "config.yaml",
        "symlink",
    ),
    "code-file-link": (
        _replace_with_link("code/data.csv", lambda j, s: s.path),
        "code/data.csv",
        "symlink",
    ),
    "code-dir-link": (_code_dir_link, "code", "symlink"),
    "code-subdir-link": (_code_subdir_link, "code/sub", "symlink"),
    "hardlink": (_hardlink, "code/data.csv", "hardlink"),
    "fifo": (_fifo, "code/pipe", "fifo"),
    "device": (_device, "code/null", "device"),
    "socket": (_socket, "code/sock", "socket"),
}


def _job(syftbox: Path, name: str) -> JobFolder:
    return write_job(
        syftbox,
        name,
        "cat * > outputs/copy.txt\n",
        code={"ok.txt": "fine\n", "data.csv": "decoy\n"},
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_unsafe_entry_refused_at_approval_and_after_it(
    case: str,
    syftbox: Path,
    start_runner: StartRunner,
    secret: Secret,
    docker_client: docker.DockerClient,
) -> None:
    plant, relpath, kind = CASES[case]
    # Before approval: the owner cannot approve it at all.
    early = _job(syftbox, f"{case}-early")
    plant(early, secret)
    with pytest.raises(JobError) as refused:
        early.approve(early.owner, expected_hash=early.content_hash())
    message = str(refused.value)
    assert relpath in message and (kind in message or "not a regular file" in message), message
    # After approval: planted by the submitter, who keeps write access to code/ and run.sh.
    since = time.time()
    late = approve(_job(syftbox, f"{case}-late"))
    plant(late, secret)
    start_runner()
    done = wait_done(late)
    assert done.outcome is Outcome.ERROR
    assert relpath in done.message and kind in done.message, done.message
    assert done.exit_code is None
    assert container_actions(docker_client, late, since) == [], "a container was created"
    assert not late.logs_dir.exists() and not late.outputs_dir.exists()
    assert secret.token in secret.path.read_bytes()  # the target itself is untouched
