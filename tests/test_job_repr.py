"""A job in a notebook (`Job._repr_html_`, `JobList._repr_html_`): the facts a scientist and an
owner look for, the code collapsed, results only once released (or to the owner), and nothing a
submitter or a job wrote interpreted as HTML."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pytest

from syft_core import get_client
from syft_core.datasite import Datasite
from syft_core.job import Job
from syft_core.jobs import JobFolder
from tests.fixtures_runner import OWNER, SCIENTIST, write_job
from tests.ui.helpers import finish, start, tiny_png

PAYLOAD = "<script>alert('x')</script>"


@pytest.fixture
def done_job(tmp_path: Path) -> JobFolder:
    box = tmp_path / "syftbox"
    Datasite(box, OWNER).init()
    job = write_job(
        box,
        "evil",
        f"echo '{PAYLOAD}'\n",
        config={"name": f"{PAYLOAD}\u202e", "datasets": ["ages"], "dependencies": ["numpy"]},
        code={"main.py": f"print('{PAYLOAD}')\n"},
    )
    job.approve(OWNER, expected_hash=job.content_hash())
    start(job, stdout=f"out {PAYLOAD}\n", stderr="err <b>bold</b>\n")
    finish(
        job,
        {
            "table.csv": f"a,b\n1,{PAYLOAD}\n".encode(),
            "plot.png": tiny_png(),
            "fake.png": b"<svg onload=alert(1)>",
        },
    )
    return job


def view(job: JobFolder, user: str) -> Job:
    client = get_client(job.datasite_root.parent, user)
    return client.jobs[f"{SCIENTIST}/{job.name}"]


def test_the_html_shows_the_facts_and_the_code_collapsed(done_job: JobFolder) -> None:
    rendered = view(done_job, SCIENTIST)._repr_html_()
    for expected in ("done", "succeeded", SCIENTIST, "ages", "numpy", "<details>"):
        assert expected in rendered
    assert "waiting for the owner&#x27;s release" in rendered
    assert html.escape(f"print('{PAYLOAD}')") in rendered  # the code, escaped
    assert "\\u202e" in rendered and "\u202e" not in rendered  # the bidi override made visible


def test_results_appear_once_released_with_inert_previews(done_job: JobFolder) -> None:
    scientist = view(done_job, SCIENTIST)
    assert "out " not in scientist._repr_html_()  # not released: no logs, no outputs
    view(done_job, OWNER).release(override="the CSV's small cell is the test's payload")

    rendered = scientist._repr_html_()
    assert html.escape(f"out {PAYLOAD}") in rendered
    assert html.escape("err <b>bold</b>") in rendered
    assert f"<td>{html.escape(PAYLOAD)}</td>" in rendered  # the CSV cell
    png = base64.b64encode(tiny_png()).decode()
    assert f"src='data:image/png;base64,{png}'" in rendered
    assert rendered.count("data:image/png") == 1  # fake.png is named, not inlined
    assert "<script" not in rendered and "<b>bold" not in rendered and "<svg" not in rendered


def test_the_owner_sees_the_results_before_releasing(done_job: JobFolder) -> None:
    rendered = view(done_job, OWNER)._repr_html_()
    assert "not released yet: only you, the owner, see these" in rendered
    assert html.escape(f"out {PAYLOAD}") in rendered


def test_the_job_list_is_a_table_with_every_name_escaped(done_job: JobFolder) -> None:
    jobs = get_client(done_job.datasite_root.parent, SCIENTIST).jobs
    rendered = jobs._repr_html_()
    assert rendered.startswith("<table>") and rendered.count("<tr>") == 2
    assert html.escape(f"{PAYLOAD}\\u202e") in rendered
    for column in ("name", "status", "released"):
        assert f"<th>{column}</th>" in rendered
    assert "<script" not in rendered
