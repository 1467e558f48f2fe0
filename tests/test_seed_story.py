"""The seed's whole story between two parties, over each transport, with the real runner.

Scientist develops against the mock and submits → owner syncs, reviews, approves; the runner runs
the job in a real container on the private data → results are held until the owner releases
them → the scientist syncs down and reads the outputs, computed on data they never saw.
"""

from __future__ import annotations

import threading
from pathlib import Path

import docker
import pytest

from syft_core import get_client
from syft_core.datasets import create_dataset
from syft_core.job import ResultsNotReleasedError
from syft_core.jobs import Outcome
from syft_runner.service import RunnerService
from tests.fixtures_runner import runner_config
from tests.fixtures_s3 import OWNER
from tests.fixtures_sync import SCI, Parties

pytestmark = pytest.mark.docker

PRIVATE_ROWS = 7
COUNT = """\
import csv
import os

with open("/data/customers/customers.csv", newline="") as fh:
    rows = list(csv.DictReader(fh))
print(f"{os.environ['SYFT_RUN_MODE']}: {len(rows)} customers")
with open("outputs/count.txt", "w") as out:
    out.write(str(len(rows)))
"""


def _publish_customers(parties: Parties, tmp_path: Path) -> None:
    owner = parties.owner_datasite
    (owner.private / "customers.csv").write_text(
        "id,region\n" + "".join(f"{i},r{i % 2}\n" for i in range(PRIVATE_ROWS))
    )
    mock = tmp_path / "mock" / "customers.csv"
    mock.parent.mkdir()
    mock.write_text("id,region\n1,r0\n2,r1\n3,r0\n")
    (owner.public / "customers.csv").write_bytes(mock.read_bytes())
    create_dataset(
        owner, "customers", private=Path("private/customers.csv"), mock=Path("public/customers.csv")
    )


def test_the_seed_story_with_the_real_runner(
    parties: Parties,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
) -> None:
    _publish_customers(parties, tmp_path)
    parties.owner.sync_once()
    parties.sci.sync_once()
    sci_box, owner_box = parties.sci.box.root, parties.owner.box.root
    assert (sci_box / OWNER / "public/datasets/customers/customers.csv").exists()  # the mock
    assert not (sci_box / OWNER / "private").exists()

    code = tmp_path / "work" / "count.py"
    code.parent.mkdir()
    code.write_text(COUNT)
    get_client(sci_box, SCI).submit_python_job(
        user=OWNER, code_path=code, job_name="Count", datasets=["customers"]
    )
    parties.sci.sync_once()
    parties.owner.sync_once()

    job = get_client(owner_box, OWNER).jobs["Count"]
    assert job.status == "inbox" and job.submitted_by == SCI
    job.approve(expected_hash=job.content_hash, reason="aggregate only")
    RunnerService(owner_box, OWNER, runner_config(), docker_client).run(
        threading.Event(), once=True
    )
    assert job.outcome is Outcome.SUCCEEDED, job.done
    assert job.stdout.text == f"real: {PRIVATE_ROWS} customers\n"

    # Done, but on real data the results wait for the owner's release.
    parties.owner.sync_once()
    parties.sci.sync_once()
    mine = get_client(sci_box, SCI).jobs["Count"]
    assert mine.status == "done" and mine.results_waiting
    for read in (lambda: mine.outputs, lambda: mine.stdout.text):
        with pytest.raises(ResultsNotReleasedError, match=r"after alice@example\.org releases"):
            read()

    job.release()
    parties.owner.sync_once()
    parties.sci.sync_once()
    assert mine.outcome is Outcome.SUCCEEDED and not mine.results_waiting
    assert mine.stdout.text == f"real: {PRIVATE_ROWS} customers\n"
    assert [p.name for p in mine.outputs] == ["count.txt"]
    assert mine.outputs[0].read_text() == str(PRIVATE_ROWS)
