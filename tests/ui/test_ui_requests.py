"""The review console refuses what a browser of the owner's would not send: requests without the
session cookie, a spent login link, another Host, and state changes without the form's CSRF token
or from another origin; and serves a job's outputs only as inert downloads. Also `syft-runner ui`
itself: the printed link logs in."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from syft_core.jobs import JobFolder, Status
from syft_core.output_checks import OutputRules, check_outputs, write_checks
from syft_runner.ui.security import CSP
from syft_runner.ui.server import ReviewServer
from tests.fixtures_runner import OWNER, write_job
from tests.ui.conftest import base_url
from tests.ui.helpers import finish, start, tiny_png

Reply = tuple[int, http.client.HTTPMessage, bytes]


def request(
    server: ReviewServer,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def log_in(server: ReviewServer) -> str:
    """The Cookie header of a new session."""
    target = urlsplit(server.console.login_url)
    status, headers, _ = request(server, "GET", f"{target.path}?{target.query}")
    assert status == 200
    return headers["Set-Cookie"].split(";")[0]


def csrf_of(server: ReviewServer, cookie: str, job_path: str) -> str:
    _, _, page = request(server, "GET", job_path, {"Cookie": cookie})
    found = re.search(rb'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1).decode()


def post(server: ReviewServer, path: str, fields: dict[str, str], headers: dict[str, str]) -> int:
    body = urlencode(fields).encode()
    form = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    return request(server, "POST", path, form, body)[0]


@pytest.fixture
def job(box: Path) -> JobFolder:
    return write_job(box, "j", "echo hi\n")


JOB_PATH = "/jobs/ds%40example.org/j"


def test_every_request_without_a_session_is_refused(console: ReviewServer, job: JobFolder) -> None:
    for path in ("/", JOB_PATH, f"{JOB_PATH}/logs", "/static/style.css", "/login?token=guess"):
        status, headers, _ = request(console, "GET", path)
        assert status == 403, path
        assert headers["Content-Security-Policy"] == CSP
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
    stranger = {"Cookie": f"{console.console.sessions.cookie_name}=forged"}
    assert request(console, "GET", "/", stranger)[0] == 403


def test_the_login_link_works_once_and_sets_a_strict_http_only_cookie(
    console: ReviewServer,
) -> None:
    target = urlsplit(console.console.login_url)
    status, headers, _ = request(console, "GET", f"{target.path}?{target.query}")
    assert status == 200
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert request(console, "GET", f"{target.path}?{target.query}")[0] == 403
    assert request(console, "GET", "/", {"Cookie": cookie.split(";")[0]})[0] == 200


def test_another_host_name_is_refused(console: ReviewServer) -> None:
    """A site whose DNS name was rebound to 127.0.0.1 still sends its own name as Host."""
    cookie = log_in(console)
    rebound = {"Cookie": cookie, "Host": f"evil.example:{console.server_address[1]}"}
    assert request(console, "GET", "/", rebound)[0] == 403


def test_state_changes_need_the_csrf_token_and_our_origin(
    console: ReviewServer, job: JobFolder
) -> None:
    cookie = log_in(console)
    token = csrf_of(console, cookie, JOB_PATH)
    ours = base_url(console)
    fields = {"hash": job.content_hash(), "reason": ""}
    approve = f"{JOB_PATH}/approve"

    assert post(console, approve, fields, {"Cookie": cookie, "Origin": ours}) == 403
    wrong = {**fields, "csrf": "not-the-token"}
    assert post(console, approve, wrong, {"Cookie": cookie, "Origin": ours}) == 403
    signed = {**fields, "csrf": token}
    assert (
        post(console, approve, signed, {"Cookie": cookie, "Origin": "https://evil.example"}) == 403
    )
    assert post(console, approve, signed, {"Cookie": cookie, "Origin": "null"}) == 403
    cross_site = {"Cookie": cookie, "Sec-Fetch-Site": "cross-site"}
    assert post(console, approve, signed, cross_site) == 403
    assert post(console, approve, signed, {"Origin": ours}) == 403  # no session
    assert request(console, "GET", f"{approve}?csrf={token}", {"Cookie": cookie})[0] == 404
    assert job.state().status is Status.INBOX
    assert not [e for e in job.events if e.what.startswith("job.")]

    assert post(console, approve, signed, {"Cookie": cookie, "Origin": ours}) == 303
    assert job.state().status is Status.APPROVED


def test_outputs_are_inert_downloads_and_only_real_pngs_are_images(
    console: ReviewServer, job: JobFolder
) -> None:
    job.approve(OWNER, expected_hash=job.content_hash())
    start(job)
    outputs = {"page.html": b"<script>alert(1)</script>", "a.png": tiny_png(), "b.png": b"<svg/>"}
    finish(job, outputs)
    cookie = {"Cookie": log_in(console)}

    status, headers, body = request(console, "GET", f"{JOB_PATH}/outputs/page.html", cookie)
    assert (status, body) == (200, outputs["page.html"])
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"].startswith('attachment; filename="page.html"')
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in headers.get_all("Content-Security-Policy", [])

    status, headers, body = request(console, "GET", f"{JOB_PATH}/png/a.png", cookie)
    assert (status, headers["Content-Type"], body) == (200, "image/png", outputs["a.png"])
    assert request(console, "GET", f"{JOB_PATH}/png/b.png", cookie)[0] == 404
    for escape in ("%2e%2e/%2e%2e/run.sh", "..%2Frun.sh", "missing.csv"):
        assert request(console, "GET", f"{JOB_PATH}/outputs/{escape}", cookie)[0] == 404


def test_the_ui_command_prints_a_login_link_that_works(box: Path) -> None:
    env = {**os.environ, "SYFTBOX_FOLDER": str(box), "SYFTBOX_EMAIL": OWNER}
    command = [sys.executable, "-c", "from syft_runner.cli import main; main()", "ui"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        process.stdout.readline()
        link = process.stdout.readline().decode().strip()
        target = urlsplit(link)
        assert target.hostname == "127.0.0.1" and target.path == "/login", link
        connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)
        connection.request("GET", f"{target.path}?{target.query}")
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_ui_command_warns_when_told_to_listen_beyond_this_machine(box: Path) -> None:
    env = {**os.environ, "SYFTBOX_FOLDER": str(box), "SYFTBOX_EMAIL": OWNER}
    command = [sys.executable, "-c", "from syft_runner.cli import main; main()", "ui"]
    process = subprocess.Popen(
        [*command, "--host", "0.0.0.0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stderr is not None
        assert "warning: listening on 0.0.0.0" in process.stderr.readline().decode()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_job_changed_after_approval_shows_the_diff_against_the_approved_version(
    console: ReviewServer, job: JobFolder
) -> None:
    job.approve(OWNER, expected_hash=job.content_hash())
    job.run_sh.write_text("echo <b>changed</b>\n")
    cookie = log_in(console)
    status, _, page = request(console, "GET", JOB_PATH, {"Cookie": cookie})
    assert status == 200
    assert b"Changed since the last approved version" in page
    assert b"+echo &lt;b&gt;changed&lt;/b&gt;" in page and b"-echo hi" in page


def test_a_finished_job_shows_its_output_checks(console: ReviewServer, job: JobFolder) -> None:
    job.approve(OWNER, expected_hash=job.content_hash())
    start(job)
    finish(job, {"crosstab.csv": b"region,n\nnorth,3\nsouth,40\n"})
    write_checks(job.path, check_outputs(job.path, OutputRules()))
    cookie = log_in(console)
    status, _, page = request(console, "GET", JOB_PATH, {"Cookie": cookie})
    assert status == 200
    assert b"Output checks and release" in page and b"outputs/crosstab.csv" in page
    assert b"FAIL" in page


def test_unticking_every_dataset_mounts_none_not_all(console: ReviewServer, box: Path) -> None:
    # A browser sends nothing for an unticked box: the form must not read "no field" as "all".
    job = write_job(box, "ds", "echo hi\n", config={"datasets": ["alpha", "beta"]})
    path = "/jobs/ds%40example.org/ds"
    cookie = log_in(console)
    token = csrf_of(console, cookie, path)
    _, _, page = request(console, "GET", path, {"Cookie": cookie})
    assert b'name="datasets_shown"' in page
    fields = {"hash": job.content_hash(), "reason": "", "csrf": token, "datasets_shown": "1"}
    headers = {"Cookie": cookie, "Origin": base_url(console)}
    assert post(console, f"{path}/approve", fields, headers) == 303
    approved = job.state().approved
    assert approved is not None and approved.datasets == []
