"""The seed's promise: code developed against the owner's MOCK data runs unchanged on the owner's
PRIVATE data. The same script and the same job folder run locally (`--mock`) read the mock rows,
and submitted + approved read the private rows on the owner's side. Also: which datasets the
runner mounts, and how a dataset that cannot be mounted fails softly."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

import docker
import pytest

from syft_core.client import get_client
from syft_core.datasets import DatasetNotFoundError, create_dataset
from syft_core.datasite import Datasite
from syft_core.errors import SyftError
from syft_core.jobs import JobConfig, JobFolder, Outcome
from syft_runner.local_run import run_local
from syft_runner.service import RunnerService
from syft_runner.workspace.staging import (
    RUNNER_STATE_DIR,
    DatasetUnavailableError,
    RunnerDirs,
    job_mounts,
    mounts_for,
    stage,
    unreadable_by_job,
)
from tests.fixtures_runner import OWNER, SCIENTIST, approve, runner_config, write_job

PRIVATE_SPEND = [12.5, 40.0, 7.25, 100.0, 3.0, 55.5, 21.0]  # 7 rows
MOCK_SPEND = [1.0, 2.0, 3.0]  # 3 rows
ENTRY = "customers.csv"
NAMESPACE_PATH = f"/syftbox/{OWNER}/public/datasets/customers/{ENTRY}"

# Written once, never edited: what the scientist runs locally is what the owner runs.
ANALYSIS = f"""\
import csv, json, os

with open("{NAMESPACE_PATH}", newline="") as fh:
    rows = list(csv.DictReader(fh))
spend = sum(float(r["spend"]) for r in rows)
print(f"mode={{os.environ['SYFT_RUN_MODE']}} rows={{len(rows)}} spend={{spend}}")
with open("outputs/summary.json", "w") as fh:
    json.dump({{"rows": len(rows), "spend": spend}}, fh)
"""
# The same analysis as a bash job folder, reading the short /data alias.
RUN_SH = """\
#!/bin/bash
set -euo pipefail
rows=$(( $(wc -l < /data/customers/customers.csv) - 1 ))
echo "mode=$SYFT_RUN_MODE datasite=$SYFT_DATASITE rows=$rows"
echo "$rows" > outputs/rows.txt
"""


def _csv(spend: list[float]) -> str:
    return "id,spend\n" + "".join(f"{i},{s}\n" for i, s in enumerate(spend, start=1))


def _publish(datasite: Datasite) -> None:
    (datasite.private / ENTRY).write_text(_csv(PRIVATE_SPEND))
    (datasite.public / ENTRY).write_text(_csv(MOCK_SPEND))
    create_dataset(
        datasite, "customers", private=Path(f"private/{ENTRY}"), mock=Path(f"public/{ENTRY}")
    )


@pytest.fixture
def owner_box(syftbox: Path) -> Path:
    _publish(Datasite(syftbox, OWNER))
    return syftbox


@pytest.fixture
def scientist_box(tmp_path: Path, owner_box: Path) -> Path:
    """The scientist's own syftbox, holding what the sync gives them of the owner: public/."""
    box = tmp_path / "scientist-box"
    Datasite(box, SCIENTIST).init()
    shutil.copytree(owner_box / OWNER / "public", box / OWNER / "public")
    return box


def _serve_once(syftbox: Path, client: docker.DockerClient) -> None:
    RunnerService(syftbox, OWNER, runner_config(), client).run(threading.Event(), once=True)


def _summary(outputs: list[Path]) -> dict[str, float]:
    [summary] = [p for p in outputs if p.name == "summary.json"]
    data: dict[str, float] = json.loads(summary.read_text())
    return data


# -- the promise, end to end ----------------------------------------------------------------------
@pytest.mark.docker
def test_the_same_script_reads_mock_rows_locally_and_private_rows_on_the_owner(
    tmp_path: Path,
    owner_box: Path,
    scientist_box: Path,
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
) -> None:
    code = tmp_path / "work" / "analysis.py"
    code.parent.mkdir()
    code.write_text(ANALYSIS)
    scientist = get_client(scientist_box, SCIENTIST)

    local = scientist.run_local(code, owner=OWNER, datasets=["customers"])
    assert local.outcome is Outcome.SUCCEEDED, local.message + local.stderr
    assert local.stdout.strip() == f"mode=mock rows=3 spend={sum(MOCK_SPEND)}"
    assert _summary(local.outputs) == {"rows": 3, "spend": sum(MOCK_SPEND)}
    assert local.result_dir.parent == code.parent / ".syft-local"

    # Submitted unchanged (to the owner's syftbox, where the sync would deliver it).
    folder = get_client(owner_box, SCIENTIST).submit_python_job(
        OWNER, code, "spend", datasets=["customers"]
    )
    assert (folder / "code" / "analysis.py").read_bytes() == code.read_bytes()
    job = get_client(owner_box, OWNER).jobs["spend"]
    job.approve(expected_hash=job.content_hash)
    _serve_once(owner_box, docker_client)
    assert job.outcome is Outcome.SUCCEEDED, job.state
    assert job.stdout.text.strip() == f"mode=real rows=7 spend={sum(PRIVATE_SPEND)}"
    assert _summary(job.outputs) == {"rows": 7, "spend": sum(PRIVATE_SPEND)}
    # Real results wait for the owner.
    assert job.results_waiting and not job.released
    job.release()
    assert job.released and not job.results_waiting


@pytest.mark.docker
def test_the_same_job_folder_reads_mock_rows_locally_and_private_rows_on_the_owner(
    tmp_path: Path,
    owner_box: Path,
    scientist_box: Path,
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
) -> None:
    folder = tmp_path / "my_job"
    (folder / "code").mkdir(parents=True)
    (folder / "run.sh").write_text(RUN_SH)
    config = JobConfig(name="rows", type="bash", datasets=["customers"], submitted_by=SCIENTIST)
    (folder / "config.yaml").write_text(config.to_yaml())

    local = run_local(folder, syftbox=scientist_box, owner=OWNER)  # datasets from config.yaml
    assert local.outcome is Outcome.SUCCEEDED, local.message + local.stderr
    assert local.stdout.strip() == f"mode=mock datasite={OWNER} rows=3"
    assert [p.read_text() for p in local.outputs] == ["3\n"]
    assert (folder / "config.yaml").read_text() == config.to_yaml()  # the original is untouched

    submitted = owner_box / OWNER / "jobs" / SCIENTIST / "rows"
    shutil.copytree(folder, submitted, ignore=shutil.ignore_patterns(".*"))
    approve(JobFolder(submitted))
    _serve_once(owner_box, docker_client)
    job = get_client(owner_box, OWNER).jobs["rows"]
    assert job.outcome is Outcome.SUCCEEDED, job.state
    assert job.stdout.text.strip() == f"mode=real datasite={OWNER} rows=7"
    assert [p.read_text() for p in job.outputs] == ["7\n"]


@pytest.mark.docker
def test_a_mock_mode_job_on_the_owner_reads_the_mock_and_is_released_at_once(
    tmp_path: Path, owner_box: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    code = tmp_path / "analysis.py"
    code.write_text(ANALYSIS)
    get_client(owner_box, SCIENTIST).submit_python_job(
        OWNER, code, "mock-spend", datasets=["customers"], mode="mock"
    )
    job = get_client(owner_box, OWNER).jobs["mock-spend"]
    job.approve(expected_hash=job.content_hash)
    _serve_once(owner_box, docker_client)
    assert job.stdout.text.strip() == f"mode=mock rows=3 spend={sum(MOCK_SPEND)}"
    assert job.released and not job.results_waiting
    assert job.state.released is not None and job.state.released.method == "auto:mock"


# -- datasets that cannot be mounted: fail softly -------------------------------------------------
@pytest.mark.docker
def test_an_unknown_dataset_ends_the_job_listing_the_available_ones(
    owner_box: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    job = approve(write_job(owner_box, "typo", "echo hi\n", config={"datasets": ["custmers"]}))
    _serve_once(owner_box, docker_client)
    done = job.state().done
    assert done is not None and done.outcome is Outcome.ERROR
    assert "no dataset 'custmers'" in done.message and "available: customers" in done.message
    assert not job.stdout_path.exists()  # nothing ran


@pytest.mark.docker
def test_private_data_the_job_user_cannot_read_fails_softly_without_naming_it(
    owner_box: Path,
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    private = owner_box / OWNER / "private" / ENTRY
    private.chmod(0o600)
    job = approve(
        write_job(
            owner_box, "locked", "cat /data/customers/*\n", config={"datasets": ["customers"]}
        )
    )
    with caplog.at_level(logging.WARNING, logger="syft_runner.executor.job"):
        _serve_once(owner_box, docker_client)
    done = job.state().done
    assert done is not None and done.outcome is Outcome.ERROR
    assert "'customers'" in done.message and "the runner's log says how" in done.message
    # The submitter reads that message: no private path, no host path.
    assert ENTRY not in done.message and str(owner_box) not in done.message
    details = [getattr(r, "detail", "") for r in caplog.records]
    assert any(str(private.resolve()) in d and "chmod" in d and "65532" in d for d in details)


@pytest.mark.docker
def test_the_job_sees_private_data_under_public_names_only(
    owner_box: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    """/proc/self/mountinfo shows every bind mount's host path: private data is hardlinked under
    its dataset and entry names, so the private file and folder names stay out of it."""
    ds = Datasite(owner_box, OWNER)
    (ds.private / "hiv_2024_scans" / "ward_7").mkdir(parents=True)
    (ds.private / "hiv_2024_scans" / "ward_7" / "p1_positive.png").write_bytes(b"real")
    (ds.public / "scans" / "ward").mkdir(parents=True)
    (ds.public / "scans" / "ward" / "m1.png").write_bytes(b"mock")
    create_dataset(ds, "scans", private=Path("private/hiv_2024_scans"), mock=Path("public/scans"))
    (ds.private / ENTRY).rename(ds.private / "hiv_2024_customers.csv")
    mapping = ds.private / "datasets" / "customers.yaml"
    mapping.write_text(
        mapping.read_text().replace(f"private/{ENTRY}", "private/hiv_2024_customers.csv")
    )
    run_sh = "cat /proc/self/mountinfo; wc -l < /data/customers/*; cat /data/scans/scans/*/*\n"
    job = approve(write_job(owner_box, "peek", run_sh, config={"datasets": ["customers", "scans"]}))
    _serve_once(owner_box, docker_client)
    done = job.state().done
    assert done is not None and done.outcome is Outcome.SUCCEEDED, done
    stdout = job.stdout_path.read_text()
    assert stdout.endswith("8\nreal")  # the private rows and files, read through the links
    assert "hiv_2024" not in stdout and "ward_7" not in stdout and "p1_positive" not in stdout
    assert f"/data/customers/{ENTRY}" in stdout and "/data/scans/scans" in stdout
    assert (ds.private / "hiv_2024_customers.csv").stat().st_nlink == 1  # links removed after


@pytest.mark.docker
def test_private_data_that_cannot_be_hardlinked_is_not_run_and_not_named(
    owner_box: Path,
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With the runner's state folder on another filesystem the private file cannot be mounted
    under a neutral name; mounting it as-is would show its real name to the job, so the job ends
    `error` before it runs, and only the owner's log names the file and the fix."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == owner_box.stat().st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test's syftbox")
    state = Path(tempfile.mkdtemp(prefix="syft-h9-state-", dir=shm))
    try:
        job = approve(
            write_job(
                owner_box, "xdev", "wc -l < /data/customers/*\n", config={"datasets": ["customers"]}
            )
        )
        service = RunnerService(owner_box, OWNER, runner_config(state_dir=state), docker_client)
        with caplog.at_level(logging.WARNING, logger="syft_runner.executor.job"):
            service.run(threading.Event(), once=True)
        done = job.state().done
        assert done is not None and done.outcome is Outcome.ERROR
        assert "not run" in done.message and f"private/{ENTRY}" not in done.message
        assert not job.stdout_path.exists()
        logged = " ".join(str(getattr(r, "detail", "")) for r in caplog.records)
        assert "state_dir" in logged and "same filesystem" in logged
    finally:
        shutil.rmtree(state)


# -- which datasets are mounted (no Docker) -------------------------------------------------------
def test_only_the_configs_datasets_are_mounted_from_the_modes_source(owner_box: Path) -> None:
    ds = Datasite(owner_box, OWNER)
    (ds.private / "other.csv").write_text("x\n1\n")
    (ds.public / "other.csv").write_text("x\n2\n")
    create_dataset(ds, "other", private=Path("private/other.csv"), mock=Path("public/other.csv"))
    job = write_job(owner_box, "j", "true\n")
    real = mounts_for(job, JobConfig(name="j", type="bash", datasets=["customers"]))
    mock = mounts_for(job, JobConfig(name="j", type="bash", datasets=["customers"], mode="mock"))
    targets = {NAMESPACE_PATH, f"/data/customers/{ENTRY}"}
    assert {m.target for m in real} == {m.target for m in mock} == targets
    assert {m.source for m in real} == {(ds.private / ENTRY).resolve()}
    assert {m.source for m in mock} == {(ds.public / "datasets/customers" / ENTRY).resolve()}
    assert all(m.read_only for m in real + mock)
    assert mounts_for(job, JobConfig(name="j", type="bash")) == []


def test_approve_dataset_narrows_what_is_mounted_and_never_widens_it(owner_box: Path) -> None:
    ds = Datasite(owner_box, OWNER)
    (ds.private / "other.csv").write_text("x\n1\n")
    (ds.public / "other.csv").write_text("x\n2\n")
    create_dataset(ds, "other", private=Path("private/other.csv"), mock=Path("public/other.csv"))
    job = write_job(owner_box, "j", "true\n", config={"datasets": ["customers", "other"]})
    with pytest.raises(SyftError, match=r"may only narrow.*not asked for: census"):
        job.approve(OWNER, expected_hash=job.content_hash(), datasets=["other", "census"])
    marker = job.approve(OWNER, expected_hash=job.content_hash(), datasets=["other"])
    assert marker.datasets == ["other"]
    dirs = RunnerDirs.for_owner(owner_box / RUNNER_STATE_DIR, OWNER)
    staged = stage(job, marker.content_hash, dirs)
    mounted = {m.target for m in job_mounts(staged, job, job.config(), chosen=marker.datasets)}
    assert "/data/other/other.csv" in mounted
    assert not any("customers" in target for target in mounted)


def test_a_missing_dataset_is_refused_listing_the_available_ones(owner_box: Path) -> None:
    job = write_job(owner_box, "j", "true\n")
    with pytest.raises(DatasetUnavailableError, match="available: customers"):
        mounts_for(job, JobConfig(name="j", type="bash", datasets=["census"]))


def test_a_broken_private_mapping_is_refused_without_naming_private_paths(owner_box: Path) -> None:
    (owner_box / OWNER / "private" / ENTRY).unlink()
    job = write_job(owner_box, "j", "true\n")
    with pytest.raises(DatasetUnavailableError) as refused:
        mounts_for(job, JobConfig(name="j", type="bash", datasets=["customers"]))
    assert ENTRY not in str(refused.value) and str(owner_box) not in str(refused.value)
    assert refused.value.detail is not None and "does not exist" in refused.value.detail


def test_an_unreadable_mock_names_the_public_file_and_the_fix(owner_box: Path) -> None:
    mock = owner_box / OWNER / "public/datasets/customers" / ENTRY
    mock.chmod(0o600)
    job = write_job(owner_box, "j", "true\n")
    with pytest.raises(DatasetUnavailableError) as refused:
        mounts_for(job, JobConfig(name="j", type="bash", datasets=["customers"], mode="mock"))
    message = str(refused.value)
    assert f"<syftbox>/{OWNER}/public/datasets/customers/{ENTRY}" in message
    assert "chmod o+rX" in message and str(owner_box.resolve()) not in message


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_readability_is_judged_as_the_job_user(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.png").write_bytes(b"x")
    for path in (folder, folder / "sub", folder / "sub" / "a.png"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert unreadable_by_job(folder) is None
    (folder / "sub").chmod(0o750)  # root's group only: the job user cannot enter
    problem = unreadable_by_job(folder)
    assert problem is not None and str(folder / "sub") in problem and "chgrp -R 65532" in problem
    os.chown(folder / "sub", 0, 65532)  # the job's group may: readable again
    assert unreadable_by_job(folder) is None
    secret = tmp_path / "owned.csv"
    secret.write_text("x\n")
    secret.chmod(0o640)
    assert unreadable_by_job(secret) is not None
    os.chown(secret, 0, 65532)  # the job group may read it
    assert unreadable_by_job(secret) is None
    os.chown(secret, 65532, 0)  # uid 65532 is no job's uid: owning it grants a job nothing
    assert unreadable_by_job(secret) is not None


def test_clients_list_their_own_datasets_and_a_peers_synced_mocks(
    owner_box: Path, scientist_box: Path
) -> None:
    own = get_client(owner_box, OWNER).datasets
    assert own.names == ["customers"] and len(own) == 1
    assert own["customers"].private == f"private/{ENTRY}"  # the owner sees the mapping
    peer = get_client(scientist_box, SCIENTIST).datasets_of(OWNER)
    assert [d.name for d in peer] == ["customers"] and peer[0].private is None
    assert [f.path for f in peer["customers"].files] == [ENTRY]
    with pytest.raises(DatasetNotFoundError, match="available: customers"):
        peer["census"]
    with pytest.raises(SyftError, match=r"sync with carol@example\.org first"):
        get_client(scientist_box, SCIENTIST).datasets_of("carol@example.org")


def test_an_owner_creates_a_dataset_from_their_datasite(owner_box: Path) -> None:
    ds = Datasite(owner_box, OWNER)
    rows = "".join(f"{i},{i * 7 % 90 + 18},{'ab'[i % 2]}\n" for i in range(60))
    (ds.private / "visits.csv").write_text("id,age,ward\n" + rows)
    dataset = ds.create_dataset("visits", private=Path("private/visits.csv"), automock=True, seed=1)
    assert dataset.automock is not None and dataset.private == "private/visits.csv"
    assert (ds.public / "datasets" / "visits" / "visits.csv").is_file()
