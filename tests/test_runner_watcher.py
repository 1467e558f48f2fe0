"""Finding work: the rescan (finished jobs skipped once seen) and the watcher's latency."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from syft_core import filestamp
from syft_runner.watcher import (
    GatewayWatcher,
    PendingScanner,
    job_folder_of,
    pending_job_folders,
)
from tests.fixtures_runner import OTHER_SCIENTIST, OWNER, approve, write_job


def test_rescan_skips_done_jobs_and_stray_entries(syftbox: Path) -> None:
    open_job = write_job(syftbox, "open", "echo\n")
    finished = write_job(syftbox, "finished", "echo\n")
    finished.marker_path("done").write_text("by: x\n")
    other = write_job(syftbox, "other", "echo\n", submitter=OTHER_SCIENTIST)
    jobs = syftbox / OWNER / "jobs"
    (jobs / "stray-file").write_text("")
    (jobs / OTHER_SCIENTIST / ".hidden").mkdir()
    (jobs / "link").symlink_to(jobs / OTHER_SCIENTIST)
    found = sorted(pending_job_folders(jobs))
    assert found == sorted([open_job.path, other.path])


def test_job_folder_of() -> None:
    root = Path("/s/o/jobs")
    assert job_folder_of(root, root / "a@b.c" / "j" / "approved") == root / "a@b.c" / "j"
    assert job_folder_of(root, root / "a@b.c") is None
    assert job_folder_of(root, Path("/elsewhere")) is None


def test_watcher_reports_an_approval_quickly(syftbox: Path) -> None:
    jobs = syftbox / OWNER / "jobs"
    job = write_job(syftbox, "w", "echo\n")
    seen: list[tuple[float, set[Path]]] = []
    event = threading.Event()

    def notify(folders: set[Path]) -> None:
        seen.append((time.monotonic(), folders))
        event.set()

    watcher = GatewayWatcher(jobs, notify).start()
    try:
        time.sleep(0.3)  # let the inotify watches settle
        (job.path / "logs").mkdir()
        (job.path / "logs" / "stdout.txt").write_text("noise")  # not a marker: ignored
        written = time.monotonic()
        approve(job)
        assert event.wait(2.0)
    finally:
        watcher.stop()
    when, folders = seen[0]
    assert folders == {job.path}
    assert when - written < 0.25


def settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the folders settle: one changed in the last RACY_NS is always listed again (its mtime
    tick is coarse), so a test of the cache needs ones that settled. Dating them back with utime
    would not do: that moves their ctime, which no one can set."""
    monkeypatch.setattr(filestamp, "RACY_NS", 50_000_000)
    time.sleep(0.1)


def test_scanner_skips_finished_jobs_and_never_hides_a_new_one(
    syftbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = syftbox / OWNER / "jobs"
    finished = write_job(syftbox, "finished", "echo\n")
    finished.marker_path("done").write_text("by: x\n")
    open_job = write_job(syftbox, "open", "echo\n")
    settle(monkeypatch)
    scanner = PendingScanner(jobs)
    assert scanner.scan() == [open_job.path]
    # Seen finished: not looked at again while its folder (same name, same inode) is listed.
    finished.marker_path("done").unlink()
    assert scanner.scan() == [open_job.path]
    # A new scanner (a restarted runner) starts with no cache: it looks at every job.
    assert sorted(PendingScanner(jobs).scan()) == sorted([finished.path, open_job.path])
    finished.marker_path("done").write_text("by: x\n")
    # A folder replaced under the same name (sync, a resubmission) is a new job.
    shutil.rmtree(finished.path)
    replaced = write_job(syftbox, "finished", "echo\n")
    assert sorted(scanner.scan()) == sorted([replaced.path, open_job.path])
    # A job that finishes, then another job arriving in its submitter folder.
    open_job.marker_path("done").write_text("by: x\n")
    newer = write_job(syftbox, "newer", "echo\n", submitter=OTHER_SCIENTIST)
    assert sorted(scanner.scan()) == sorted([replaced.path, newer.path])


def test_scanner_looks_at_everything_again_every_verify_seconds(
    syftbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = syftbox / OWNER / "jobs"
    job = write_job(syftbox, "j", "echo\n")
    job.marker_path("done").write_text("by: x\n")
    settle(monkeypatch)
    scanner = PendingScanner(jobs, verify_seconds=0.2)
    assert scanner.scan() == []
    job.marker_path("done").unlink()
    time.sleep(0.25)
    assert scanner.scan() == [job.path]


def test_watcher_watches_new_submitters_and_live_jobs_only(syftbox: Path) -> None:
    jobs = syftbox / OWNER / "jobs"
    finished = write_job(syftbox, "finished", "echo\n")
    finished.marker_path("done").write_text("by: x\n")
    live = write_job(syftbox, "live", "echo\n")
    seen: list[set[Path]] = []
    event = threading.Event()

    def notify(folders: set[Path]) -> None:
        seen.append(folders)
        event.set()

    watcher = GatewayWatcher(jobs, notify).start()
    try:
        time.sleep(0.3)
        assert watcher.watches == 3  # jobs/, the submitter, the live job: not the finished one
        fresh = write_job(syftbox, "fresh", "echo\n", submitter=OTHER_SCIENTIST)
        deadline = time.monotonic() + 2
        while fresh.path not in set().union(*seen) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fresh.path in set().union(*seen)  # a new submitter folder and its job
        seen.clear()
        event.clear()
        approve(fresh)
        assert event.wait(2.0)
        assert fresh.path in set().union(*seen)
        live.marker_path("done").write_text("by: x\n")
        deadline = time.monotonic() + 2
        while watcher.watches > 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watcher.watches == 4  # jobs/, two submitters, fresh: the finished one let go
    finally:
        watcher.stop()
