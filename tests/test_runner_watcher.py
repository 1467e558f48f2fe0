"""Finding work: the rescan (one stat per finished job) and the watcher's latency."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from syft_runner.watcher import GatewayWatcher, job_folder_of, pending_job_folders
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
