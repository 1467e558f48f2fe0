"""Datasite layout, default permission files and the event log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from syft_core.datasite import (
    EVENT_LOG,
    PERMISSION_FILE,
    Datasite,
    SyftBox,
    default_permission_files,
)
from syft_core.events import Event, EventLog, utcnow

OWNER = "alice@example.org"


def test_init_creates_the_layout_and_default_permission_files(tmp_path: Path) -> None:
    ds = Datasite(tmp_path / "syftbox", OWNER).init()

    assert ds.root == tmp_path / "syftbox" / OWNER
    for folder in ("public", "private", "jobs", "api_data"):
        assert (ds.root / folder).is_dir()
    defaults = default_permission_files(OWNER)
    assert set(defaults) == {"public", "private", "jobs", "api_data"}
    for folder, expected in defaults.items():
        assert yaml.safe_load((ds.root / folder / PERMISSION_FILE).read_text()) == expected
    assert (ds.root / EVENT_LOG).is_file()
    assert [e.what for e in ds.events] == ["datasite.init"]


def test_default_permissions_share_public_keep_private_and_gate_jobs() -> None:
    perms = default_permission_files(OWNER)
    assert perms["public"]["rules"] == [{"pattern": "**", "access": {"read": ["*"]}}]
    assert perms["private"] == {"terminal": True, "rules": []}
    job_rules = {r["pattern"]: r["access"] for r in perms["jobs"]["rules"]}
    # a submitter may write only the submission files in their own folders, never markers
    assert job_rules["{{.UserEmail}}/*/run.sh"] == {"write": ["USER"]}
    assert job_rules["{{.UserEmail}}/*/config.yaml"] == {"write": ["USER"]}
    assert job_rules["{{.UserEmail}}/*/code/**"] == {"write": ["USER"]}
    assert all("*" not in access.get("write", []) for access in job_rules.values())


def test_init_is_idempotent_and_never_overwrites(tmp_path: Path) -> None:
    ds = Datasite(tmp_path, OWNER).init()
    edited = "terminal: false\nrules:\n- pattern: 'x.csv'\n  access: {read: [bob@example.org]}\n"
    (ds.public / PERMISSION_FILE).write_text(edited)
    (ds.private / "data.csv").write_text("secret\n")

    ds.init()

    assert (ds.public / PERMISSION_FILE).read_text() == edited
    assert (ds.private / "data.csv").read_text() == "secret\n"
    assert [e.what for e in ds.events] == ["datasite.init", "datasite.init"]


def test_datasite_paths(tmp_path: Path) -> None:
    ds = Datasite(tmp_path, OWNER)
    assert not ds.exists()
    assert (ds.public, ds.private, ds.jobs, ds.api_data) == tuple(
        tmp_path / OWNER / f for f in ("public", "private", "jobs", "api_data")
    )
    assert ds.relpath(ds.jobs / "bob@example.org" / "x") == "jobs/bob@example.org/x"
    assert OWNER in repr(ds)


def test_syftbox_lists_only_real_datasite_folders(tmp_path: Path) -> None:
    box = SyftBox(tmp_path)
    for email in ("bob@example.org", OWNER):
        box.datasite(email).init()
    (tmp_path / "not-an-email").mkdir()
    (tmp_path / "stray@file.org").write_text("")
    (tmp_path / "link@example.org").symlink_to(tmp_path / OWNER)

    assert [d.email for d in box.datasites()] == [OWNER, "bob@example.org"]
    assert SyftBox(tmp_path / "missing").datasites() == []


def test_event_log_appends_one_json_line_per_event(tmp_path: Path) -> None:
    log = EventLog(tmp_path / ".syft" / "events.jsonl")
    log.append(OWNER, "job.approved", "jobs/bob@example.org/x", reason="ok")
    log.append(OWNER, "job.done", "jobs/bob@example.org/x", outcome="succeeded")

    lines = log.path.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["what"] == "job.approved"
    assert first["details"] == {"reason": "ok"}
    assert datetime.fromisoformat(first["when"]).tzinfo is not None
    assert [e.what for e in log.tail(1)] == ["job.done"]


def test_event_log_skips_corrupt_lines_and_a_torn_last_line(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl")
    log.append(OWNER, "one", "a")
    with log.path.open("ab") as fh:
        fh.write(b"\xff\xfe not json\n")
    log.append(OWNER, "two", "b")
    with log.path.open("ab") as fh:
        fh.write(b'{"when": "2024-01-01T00:00:00Z", "who": "x", "wh')  # a crash mid-write

    assert [e.what for e in log] == ["one", "two"]


def test_recorded_since_reads_back_only_as_far_as_it_must(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl")
    old = datetime(2020, 1, 1, tzinfo=UTC)
    with log.path.open("wb") as fh:  # 200 KiB of old history: several read blocks
        for i in range(1500):
            event = Event(when=old + timedelta(seconds=i), who=OWNER, what="job.done", path=f"p{i}")
            fh.write(event.model_dump_json().encode() + b"\n")
        fh.write(b"\xff torn \n")
    since = utcnow()
    log.append(OWNER, "job.running", "new")
    with log.path.open("ab") as fh:
        fh.write(b'{"when": "2024-01-01T00:00:00Z", "wh')  # a crash mid-write

    assert log.recorded_since("job.running", "new", since)
    assert not log.recorded_since("job.done", "new", since)
    assert not log.recorded_since("job.done", "p3", since)  # older than `since`
    assert log.recorded_since("job.done", "p3", old + timedelta(seconds=3))
    assert log.recorded_since("job.done", "p0", old)  # the very first line
    assert not EventLog(tmp_path / "none.jsonl").recorded_since("x", "y", old)


def test_event_log_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert list(EventLog(tmp_path / "none.jsonl")) == []
