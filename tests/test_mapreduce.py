"""MapReduce: the seed's count-customers example across three owners on one machine (three datasites
in one syftbox, a runner per owner), each owner approving and releasing; and how `wait_all`
reports jobs that are late or gave no results."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import docker
import pytest

from syft_core.client import Client, get_client
from syft_core.datasite import Datasite
from syft_core.errors import JobError
from syft_core.jobs import DoneMarker, JobFolder, Outcome
from syft_core.mapreduce import MapError, wait_all
from syft_core.release import release_job
from syft_runner.service import RunnerService
from tests.fixtures_runner import runner_config

SCIENTIST = "bob@example.org"
PRIVATE_ROWS = {"alice@example.com": 11, "carol@example.com": 23, "dave@example.com": 5}
MOCK_ROWS = 2
COUNT_CUSTOMERS = """\
import csv, os

with open("/data/customers/customers.csv", newline="") as fh:
    count = sum(1 for _ in csv.DictReader(fh))
with open("outputs/count.csv", "w", newline="") as fh:
    csv.writer(fh).writerows([["count"], [count]])
"""


def _customers(rows: int) -> str:
    return "customer_id,region\n" + "".join(f"{i},north\n" for i in range(rows))


@pytest.fixture
def box(tmp_path: Path) -> Path:
    root = tmp_path / "syftbox"
    Datasite(root, SCIENTIST).init()
    for owner, rows in PRIVATE_ROWS.items():
        site = Datasite(root, owner).init()
        (site.private / "customers.csv").write_text(_customers(rows))
        (site.public / "customers.csv").write_text(_customers(MOCK_ROWS))
        site.create_dataset(
            "customers", private=Path("private/customers.csv"), mock=Path("public/customers.csv")
        )
    return root


@pytest.fixture
def code(tmp_path: Path) -> Path:
    path = tmp_path / "count_customers.py"
    path.write_text(COUNT_CUSTOMERS)
    return path


def _owner_approves_runs_and_releases(box: Path, owner: str, client: docker.DockerClient) -> None:
    job = get_client(box, owner).jobs["count"]
    job.approve(expected_hash=job.content_hash, reason="an aggregate count")
    RunnerService(box, owner, runner_config(), client).run(threading.Event(), once=True)
    job.release(override="per-owner customer counts, agreed for this study")


@pytest.mark.docker
def test_count_customers_across_three_owners_totals_their_private_rows(
    box: Path, code: Path, docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    bob = get_client(box, SCIENTIST)
    assert [bob.datasets_of(o)["customers"].entry for o in PRIVATE_ROWS] == ["customers.csv"] * 3
    jobs = bob.map(list(PRIVATE_ROWS), code, job_name="count", datasets=["customers"])
    assert [j.owner for j in jobs] == list(PRIVATE_ROWS)
    with pytest.raises(TimeoutError, match="inbox"):
        wait_all(jobs, timeout=0.3)
    owners = [
        threading.Thread(target=_owner_approves_runs_and_releases, args=(box, o, docker_client))
        for o in PRIVATE_ROWS
    ]
    for thread in owners:
        thread.start()
    results = wait_all(jobs, timeout=120)
    for thread in owners:
        thread.join()
    total = 0
    for owner, outputs in results.items():
        [count_csv] = outputs
        with count_csv.open(newline="") as fh:
            [row] = list(csv.DictReader(fh))
        assert int(row["count"]) == PRIVATE_ROWS[owner]
        total += int(row["count"])
    assert total == sum(PRIVATE_ROWS.values()) == 39


# -- map and wait_all without running anything ----------------------------------------------------
def _finish(client: Client, owner: str, outcome: Outcome, outputs: dict[str, str]) -> JobFolder:
    """The owner's side of a job, written through the job protocol: approve, run, finish."""
    job = get_client(client.syftbox.root, owner).jobs["count"]
    job.approve(expected_hash=job.content_hash)
    folder = job.folder
    content = folder.content_hash()
    folder.start(owner, container="c", image="i", image_id="sha256:1", content_hash=content)
    for rel, text in outputs.items():
        (folder.outputs_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder.outputs_dir / rel).write_text(text)
    folder.finish(
        DoneMarker(
            by=owner, outcome=outcome, message=f"it {outcome.value}", output_count=len(outputs)
        )
    )
    return folder


def test_wait_all_waits_for_release_and_for_every_listed_output(box: Path, code: Path) -> None:
    bob = get_client(box, SCIENTIST)
    [alice] = bob.map(["alice@example.com"], code, "count", datasets=["customers"])
    folder = _finish(bob, "alice@example.com", Outcome.SUCCEEDED, {"count.csv": "count\n11\n"})
    with pytest.raises(TimeoutError, match=r"wait for alice@example\.com to release them"):
        wait_all([alice], timeout=0.2)
    release_job(folder, by="alice@example.com")
    (folder.outputs_dir / "count.csv").unlink()  # not synced yet
    with pytest.raises(TimeoutError, match="0 of 1 outputs synced"):
        wait_all([alice], timeout=0.2)
    (folder.outputs_dir / "count.csv").write_text("count\n11\n")
    assert wait_all([alice], timeout=1) == {"alice@example.com": [folder.outputs_dir / "count.csv"]}


def test_jobs_without_results_raise_with_the_others_outputs(box: Path, code: Path) -> None:
    bob = get_client(box, SCIENTIST)
    jobs = bob.map(list(PRIVATE_ROWS), code, "count")
    ok = _finish(bob, "alice@example.com", Outcome.SUCCEEDED, {"count.csv": "count\n11\n"})
    release_job(ok, by="alice@example.com")
    _finish(bob, "carol@example.com", Outcome.FAILED, {})
    get_client(box, "dave@example.com").jobs["count"].reject("no row-level access")
    with pytest.raises(MapError) as failed:
        wait_all(jobs, timeout=5)
    message = str(failed.value)
    assert "2 of 3 jobs gave no results" in message
    assert "carol@example.com/jobs/bob@example.org/count: failed: it failed" in message
    assert "rejected: no row-level access" in message
    assert failed.value.outputs == {"alice@example.com": [ok.outputs_dir / "count.csv"]}
    assert [j.owner for j in failed.value.failed] == ["carol@example.com", "dave@example.com"]


def test_map_refuses_before_submitting_anything(box: Path, code: Path) -> None:
    bob = get_client(box, SCIENTIST)
    with pytest.raises(JobError, match=r"no local datasite for eve@example\.com"):
        bob.map(["alice@example.com", "eve@example.com"], code, "count")
    with pytest.raises(JobError, match=r"repeated: alice@example\.com"):
        bob.map(["alice@example.com", "alice@example.com"], code, "count")
    with pytest.raises(JobError, match="non-empty list"):
        bob.map("alice@example.com", code, "count")
    assert len(bob.submitted_jobs) == 0
