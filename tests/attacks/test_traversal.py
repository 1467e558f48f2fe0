"""Attack 3: path traversal in requested datasets, in job names and in entrypoints — `../`,
absolute paths, `a/../../b`, unicode look-alikes and a symlinked data folder. Nothing outside the
owner's public datasets is ever mounted; nothing is written outside the submitter's jobs folder."""

from __future__ import annotations

import os
import time
import unicodedata
from pathlib import Path

import docker
import pytest
import yaml

from syft_core.client import get_client
from syft_core.datasets import DatasetError, create_dataset
from syft_core.datasite import Datasite
from syft_core.errors import JobError, SyftError, UnsafePathError
from syft_core.jobs import JobFolder, Outcome, iter_job_folders
from syft_runner.workspace.mounts import dataset_mounts
from tests.attacks.conftest import Secret, assert_not_leaked, container_actions, files_under
from tests.fixtures_runner import (
    OWNER,
    SCIENTIST,
    StartRunner,
    approve,
    done_of,
    wait_done,
    wait_for,
    write_job,
)

HOSTILE_DATASETS = [
    "../private/secret.csv",
    "/etc/passwd",
    "customers/../../private",
    "../../../../../../etc",
    "ｃｕｓｔｏｍｅｒｓ",  # fullwidth look-alike of "customers"
    "customers\u200b",  # zero-width space
    "cus" + "\u0074\u0307" + "omers",  # a combining dot: not NFC-equal to anything published
    "evil",  # published as a symlinked folder, see _publish_hostile
]


@pytest.fixture
def datasite(syftbox: Path, secret: Secret) -> Datasite:
    ds = Datasite(syftbox, OWNER)
    (ds.private / "customers.csv").write_text("id,spend\n1,10\n")
    (ds.public / "customers_mock.csv").write_text("id,spend\n9,99\n")
    create_dataset(
        ds,
        "customers",
        private=Path("private/customers.csv"),
        mock=Path("public/customers_mock.csv"),
    )
    _publish_hostile(ds)
    return ds


def _publish_hostile(ds: Datasite) -> None:
    """`evil`: a dataset folder that is a symlink to a copy of a real one kept in private/."""
    decoy = ds.private / "evil"
    decoy.mkdir()
    metadata = yaml.safe_load((ds.public / "datasets/customers/dataset.yaml").read_text())
    (decoy / "dataset.yaml").write_text(yaml.safe_dump({**metadata, "name": "evil"}))
    os.link(ds.private / "customers.csv", decoy / "customers_mock.csv")
    (ds.public / "datasets" / "evil").symlink_to(decoy, target_is_directory=True)


@pytest.mark.parametrize("mode", ["mock", "real"])
def test_dataset_mounts_refuse_traversal(datasite: Datasite, mode: str) -> None:
    for name in HOSTILE_DATASETS:
        with pytest.raises(DatasetError) as refused:
            dataset_mounts(datasite.syftbox_root, OWNER, [name], mode)  # type: ignore[arg-type]
        assert "customers" in str(refused.value)  # lists what does exist


def test_dataset_mounts_refuse_a_mock_swapped_for_a_link(
    datasite: Datasite, secret: Secret
) -> None:
    mock = datasite.public / "datasets/customers/customers_mock.csv"
    mock.unlink()
    mock.symlink_to(secret.path)
    with pytest.raises(UnsafePathError, match="outside"):
        dataset_mounts(datasite.syftbox_root, OWNER, ["customers"], "mock")


def test_dataset_mounts_refuse_private_data_linked_outside(datasite: Datasite) -> None:
    private = datasite.private / "customers.csv"
    private.unlink()
    private.symlink_to("/etc/passwd")
    with pytest.raises(UnsafePathError, match="outside"):
        dataset_mounts(datasite.syftbox_root, OWNER, ["customers"], "real")


@pytest.mark.docker
def test_jobs_asking_for_hostile_datasets_never_start(
    datasite: Datasite,
    start_runner: StartRunner,
    secret: Secret,
    docker_client: docker.DockerClient,
) -> None:
    since = time.time()
    jobs = [
        approve(
            write_job(
                datasite.syftbox_root,
                f"data-{i}",
                "cat /data/*/* /syftbox/*/public/datasets/*/* > outputs/leak.txt\n",
                config={"datasets": [name]},
            )
        )
        for i, name in enumerate(HOSTILE_DATASETS)
    ]
    start_runner()
    for job, name in zip(jobs, HOSTILE_DATASETS, strict=True):
        done = wait_done(job)
        assert done.outcome is Outcome.ERROR, (name, done.message)
        assert "dataset" in done.message, done.message
        assert container_actions(docker_client, job, since) == [], name
        assert not job.outputs_dir.exists()
        assert_not_leaked(job.path, secret.token)


HOSTILE_JOB_NAMES = [
    "../../escape",
    "/etc/cron.d/escape",
    "a/../../b",
    "..",
    ".",
    "../" * 20 + "tmp/escape",
    "ｅｓｃａｐｅ",
    unicodedata.normalize("NFD", "café"),
    "new\nline",
    "\x1b[31mred\x1b[0m",
    "x" * 500,
]


def test_hostile_job_names_stay_inside_the_submitters_folder(syftbox: Path) -> None:
    before = {p for p, _ in files_under(syftbox)}
    client = get_client(syftbox, SCIENTIST)
    gateway = syftbox / OWNER / "jobs" / SCIENTIST
    for name in HOSTILE_JOB_NAMES:
        try:
            folder = client.submit_bash_job(OWNER, "echo hi", name)
        except SyftError:
            continue  # refused with a clear error is fine too
        assert folder.parent == gateway, (name, folder)
        JobFolder(folder)  # the owner's side accepts the folder it was given
    created = {p for p, _ in files_under(syftbox)} - before
    stray = [p for p in created if gateway not in p.parents and p != gateway]
    assert [p for p in stray if p.name != "jobs" and p.name != SCIENTIST] == [], stray


BAD_FOLDER_NAMES = [unicodedata.normalize("NFD", "café"), "back\\slash", "new\nline", "\x1b[2J"]


def test_owner_listing_survives_badly_named_job_folders(syftbox: Path) -> None:
    good = write_job(syftbox, "fine", "echo fine\n")
    for name in BAD_FOLDER_NAMES:
        (good.path.parent / name).mkdir()
        (good.path.parent / name / "run.sh").write_text("echo hi\n")
    assert [j.name for j in iter_job_folders(syftbox / OWNER)] == ["fine"]


@pytest.mark.docker
def test_badly_named_job_folders_do_not_stop_the_runner(
    syftbox: Path, start_runner: StartRunner
) -> None:
    good = approve(write_job(syftbox, "cafe", "echo good\n"))
    # Peer-synced folders the submitter may create (the jobs/ rules let them write
    # <self>/*/run.sh): no approval needed, nothing else in them.
    for name in BAD_FOLDER_NAMES:
        (good.path.parent / name).mkdir()
        (good.path.parent / name / "run.sh").write_text("echo hi\n")
        with pytest.raises(UnsafePathError):
            JobFolder(good.path.parent / name)
    runner = start_runner()
    wait_for(lambda: done_of(good) is not None or bool(runner.errors), what="the job or a crash")
    assert not runner.errors, f"the runner died: {runner.errors[0]!r}"
    assert wait_done(good).outcome is Outcome.SUCCEEDED
    later = approve(write_job(syftbox, "later", "echo later\n"))
    assert wait_done(later).outcome is Outcome.SUCCEEDED
    assert runner.thread.is_alive()


@pytest.mark.docker
def test_entrypoint_traversal_is_refused(syftbox: Path, start_runner: StartRunner) -> None:
    job = write_job(
        syftbox,
        "entry",
        "python3 main.py\n",
        job_type="python",
        code={"main.py": "print('hi')\n"},
        config={"entrypoint": "../../../private/secret.py"},
    )
    with pytest.raises(JobError, match="entrypoint"):
        job.approve(OWNER, expected_hash=job.content_hash())
    # A buggy owner client that wrote the approval anyway: the runner still refuses it.
    marker = {"by": OWNER, "content_hash": job.content_hash(), "method": "manual"}
    job.marker_path("approved").write_text(yaml.safe_dump(marker))
    start_runner()
    done = wait_done(job)
    assert done.outcome is Outcome.ERROR
    assert "entrypoint" in done.message
    assert (
        str(job.config_path.relative_to(syftbox)) in done.message
        and str(syftbox) not in done.message
    )
