"""Output collection from a hostile scratch folder: nothing followed, everything refused listed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from syft_core.jobs import ResultsReport
from syft_core.jobs.markers import MAX_MARKER_BYTES, read_results, write_marker
from syft_runner.workspace.outputs import MAX_DEPTH, PARTIAL_DIR, OutputCaps, collect_outputs

CAPS = OutputCaps(max_file_bytes=1000, max_total_bytes=1500, max_files=5)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    folder = tmp_path / "scratch"
    folder.mkdir()
    return folder


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "job"
    folder.mkdir()
    return folder


def _reasons(scratch: Path, job_dir: Path, caps: OutputCaps = CAPS) -> dict[str, str]:
    return {r.path: r.reason for r in collect_outputs(scratch, job_dir, caps).refused}


def test_regular_files_and_folders_are_copied(scratch: Path, job_dir: Path) -> None:
    (scratch / "a.txt").write_text("a")
    (scratch / "sub" / "deeper").mkdir(parents=True)
    (scratch / "sub" / "deeper" / "b.csv").write_text("b")
    result = collect_outputs(scratch, job_dir, CAPS)
    assert result.files == ["a.txt", "sub/deeper/b.csv"]
    assert result.refused == [] and result.total_bytes == 2
    assert (job_dir / "outputs" / "sub" / "deeper" / "b.csv").read_text() == "b"
    assert not (job_dir / PARTIAL_DIR).exists()


def test_links_fifos_and_linked_folders_are_refused(
    scratch: Path, job_dir: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("TOP SECRET")
    os.symlink("/etc/passwd", scratch / "passwd")
    os.symlink(secret, scratch / "linked-dir")
    os.mkfifo(scratch / "pipe")
    reasons = _reasons(scratch, job_dir)
    assert "symlink" in reasons["passwd"] and "symlink" in reasons["linked-dir"]
    assert "fifo" in reasons["pipe"]
    assert os.listdir(job_dir / "outputs") == []


def test_sizes_and_counts_are_capped(scratch: Path, job_dir: Path) -> None:
    (scratch / "big").write_bytes(b"x" * 1001)
    with (scratch / "sparse").open("wb") as fh:
        fh.truncate(10**12)  # a 1 TB sparse file: refused by its size, never read
    (scratch / "a").write_bytes(b"x" * 900)
    (scratch / "b").write_bytes(b"x" * 900)  # a + b exceed the 1500 byte total
    reasons = _reasons(scratch, job_dir)
    assert "per-file limit" in reasons["big"] and "per-file limit" in reasons["sparse"]
    assert sum("total limit" in r for r in reasons.values()) == 1


def test_too_many_files_stops_the_walk(scratch: Path, job_dir: Path) -> None:
    for i in range(50):
        (scratch / f"f{i:02d}").write_text("x")
    result = collect_outputs(scratch, job_dir, CAPS)
    assert len(result.files) == 5
    assert result.stopped is not None and "more than 5 files" in result.stopped
    assert "more than 5 files" in result.summary()
    assert len(os.listdir(job_dir / "outputs")) == 5


def test_bad_names_are_refused(scratch: Path, job_dir: Path) -> None:
    (scratch / "new\nline").write_text("x")
    (scratch / "esc\x1b[31m").write_text("x")
    (scratch / os.fsdecode(b"latin\xe9")).write_text("x")
    (scratch / "back\\slash").write_text("x")
    reasons = _reasons(scratch, job_dir)
    assert set(reasons) == {"new\\x0aline", "esc\\x1b[31m", "latin\\xe9", "back\\\\slash"}
    assert "control character" in reasons["new\\x0aline"]
    assert "control character" in reasons["esc\\x1b[31m"]
    assert "not valid UTF-8" in reasons["latin\\xe9"]
    assert "backslash" in reasons["back\\\\slash"]


def test_depth_is_capped(scratch: Path, job_dir: Path) -> None:
    deep = scratch
    for _ in range(MAX_DEPTH + 2):
        deep = deep / "d"
    deep.mkdir(parents=True)
    (deep / "f").write_text("x")
    reasons = _reasons(scratch, job_dir)
    assert any("nested deeper" in r for r in reasons.values())


def test_replaces_stale_outputs_and_partial(scratch: Path, job_dir: Path) -> None:
    (job_dir / "outputs").mkdir()
    (job_dir / "outputs" / "old").write_text("old")
    (job_dir / PARTIAL_DIR).mkdir()
    (scratch / "new").write_text("new")
    collect_outputs(scratch, job_dir, CAPS)
    assert os.listdir(job_dir / "outputs") == ["new"]
    assert not (job_dir / PARTIAL_DIR).exists()


def test_a_symlinked_outputs_folder_in_the_job_is_replaced_not_followed(
    scratch: Path, job_dir: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, job_dir / "outputs")
    (scratch / "r").write_text("r")
    collect_outputs(scratch, job_dir, CAPS)
    assert not (job_dir / "outputs").is_symlink()
    assert os.listdir(elsewhere) == []


def test_the_results_report_stays_readable_with_long_wide_names(
    scratch: Path, job_dir: Path
) -> None:
    wide = "\U0001f600" * 60  # 4 bytes in UTF-8, 10 when YAML escapes it
    for i in range(300):
        (scratch / f"{wide}{i:03d}").write_text("x")
    for i in range(150):
        os.symlink("/etc/passwd", scratch / f"{wide}link{i:03d}")
    caps = OutputCaps(max_file_bytes=10, max_total_bytes=10**6, max_files=1000)
    collected = collect_outputs(scratch, job_dir, caps)
    assert len(collected.files) == 300 and collected.refused_count == 150
    assert 0 < len(collected.listed) < 300 and 0 < len(collected.refused) < 150
    report = ResultsReport(
        outputs=collected.listed,
        output_count=len(collected.files),
        refused_outputs=collected.refused,
        refused_count=collected.refused_count,
    )
    write_marker(job_dir / "results.yaml", report)
    assert (job_dir / "results.yaml").stat().st_size < MAX_MARKER_BYTES
    assert read_results(job_dir / "results.yaml") == report
