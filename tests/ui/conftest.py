"""The review console served from a thread over a fresh syftbox, and Debian's chromium driven by
Playwright (its own browser download cannot be reached: `make setup` installs chromium)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from syft_core import get_client
from syft_core.datasite import Datasite
from syft_runner.ui.server import ReviewServer
from tests.fixtures_runner import OWNER

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def box(tmp_path: Path) -> Path:
    root = tmp_path / "syftbox"
    Datasite(root, OWNER).init()
    return root


@pytest.fixture
def console(box: Path) -> Iterator[ReviewServer]:
    server = ReviewServer(get_client(box, OWNER), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def base_url(server: ReviewServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
    launched = playwright.chromium.launch(executable_path=CHROMIUM)
    yield launched
    launched.close()
