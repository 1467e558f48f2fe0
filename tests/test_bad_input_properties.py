"""Bad input never crashes and never loses anything (hypothesis).

Random and malformed config.yaml, status markers, syft.pub.yaml and whole job folders (missing
files, huge and binary files, deep trees, odd names, links, fifos) go through the core readers:
every case ends in a value or in a SyftError naming the file and the reason, never another
exception. At runner level, many malformed approved jobs go through ONE `serve --once` pass
followed by a good job: each ends with its reason on it, the good job runs, no other job's files
change. Each test records how many inputs it tried (`bad_inputs_tried`) for bench_security.py.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syft_core.datasite import Datasite
from syft_core.errors import JobError, SyftError
from syft_core.jobs import (
    ApprovedMarker,
    JobFolder,
    Status,
    load_config,
    walk_submission,
)
from syft_core.jobs.markers import MARKER_TYPES, read_marker
from syft_core.permissions import AccessLevel, SyftPermContext
from tests.fixtures_runner import (
    OWNER,
    SCIENTIST,
    ServeProcess,
    approve,
    done_of,
    start_serve,
    write_job,
    write_runner_config,
)

FAST = settings(
    max_examples=60,
    deadline=None,  # file system work; the whole test is bounded by max_examples instead
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies ------------------------------------------------------------------------------
JOB_KEYS = [
    "name",
    "type",
    "entrypoint",
    "datasets",
    "mode",
    "dependencies",
    "submitted_at",
    "submitted_by",
    "timeout_seconds",
    "resources",
    "description",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=40),
    st.sampled_from(["bash", "python", "real", "mock", "main.py", "../x.py", "2024-01-01"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
documents = st.one_of(
    st.dictionaries(st.sampled_from(JOB_KEYS) | st.text(max_size=10), values, max_size=8),
    values,
)
# Hand-picked YAML that has broken parsers elsewhere: tags, deep nesting, anchors, odd encodings.
TRICKY_YAML = [
    b"!!python/object/apply:os.system ['echo pwned']",
    b"name: !!binary aGVsbG8=\ntype: bash\n",
    b"name: x\ntype: bash\n" + b"x: " + b"[" * 50 + b"]" * 50 + b"\n",
    b"&a [*a]",
    b"name: x\ntype: bash\n<<: {type: python}\n",
    b"\xef\xbb\xbfname: bom\ntype: bash\n",
    b"\xff\xfe" + "name: x\n".encode("utf-16-le"),
    b"name: x\x00\ntype: bash\n",
    b"name: " + b"x" * 70_000 + b"\ntype: bash\n",
    b"---\nname: a\n---\nname: b\n",
    b"name: x\ntype: bash\ntimeout_seconds: 1e400\n",
    b"name: x\ntype: bash\nresources: {memory_mb: -1, cpus: .nan}\n",
]
config_bytes = st.one_of(
    documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode()),
    st.binary(max_size=2000),
    st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(TRICKY_YAML),
)
# Names as a peer could sync them: any valid UTF-8 (no '/', no NUL), odd but legal.
names = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/\x00"),
    min_size=1,
    max_size=30,
).filter(lambda n: n not in (".", "..") and len(n.encode()) <= 255)
KINDS = ["file", "dir", "symlink", "fifo", "big", "empty", "hardlink"]
tree_entries = st.lists(
    st.tuples(
        st.lists(names, min_size=1, max_size=4), st.sampled_from(KINDS), st.binary(max_size=64)
    ),
    max_size=10,
)
marker_bytes = st.one_of(
    st.binary(max_size=300),
    documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode()),
    st.sampled_from(
        [b"by: o@x.org\ncontent_hash: sha256:00\n", b"by: o@x.org\noutcome: exploded\n", b""]
    ),
)
job_specs = st.fixed_dictionaries(
    {
        "run_sh": st.one_of(st.none(), st.binary(max_size=200)),
        "config": st.one_of(st.none(), config_bytes),
        "code": st.sampled_from(["dir", "file", "symlink", "missing"]),
        "tree": tree_entries,
        "markers": st.dictionaries(st.sampled_from(sorted(MARKER_TYPES)), marker_bytes, max_size=3),
    }
)


# Jobs the runner gets further with: run.sh and config.yaml usually present, often valid.
runner_specs: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "run_sh": st.sampled_from(
            [b"echo ok > outputs/x\n", b"\x00\xff\x1b[2J junk", b"exit 3\n", None]
        ),
        "config": st.one_of(
            st.just(b"name: fine\ntype: bash\n"),
            st.dictionaries(st.sampled_from(JOB_KEYS), values, max_size=3).map(
                lambda d: yaml.safe_dump({"name": "x", "type": "bash", **d}).encode()
            ),
            config_bytes,
        ),
        "code": st.sampled_from(["dir", "dir", "file", "symlink", "missing"]),
        "tree": tree_entries,
        "markers": st.just({}),
    }
)


class Tally:
    """How many inputs a property tried; all of them were handled if the test passed."""

    def __init__(self) -> None:
        self.tried = 0

    def record(self, record_property: Callable[[str, object], None]) -> None:
        record_property("bad_inputs_tried", self.tried)
        record_property("bad_inputs_handled", self.tried)


# -- helpers ---------------------------------------------------------------------------------
def assert_clear_error(exc: BaseException, path: Path) -> None:
    """A SyftError whose message names the file at fault and says why."""
    assert isinstance(exc, SyftError), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert path.name in message or str(path) in message, message
    assert len(message) > len(str(path)) + 5, message


def _build_job(root: Path, spec: dict[str, Any], name: str = "job") -> Path:
    folder = root / OWNER / "jobs" / SCIENTIST / name
    folder.mkdir(parents=True)
    for rel, key in (("run.sh", "run_sh"), ("config.yaml", "config")):
        if spec[key] is not None:
            (folder / rel).write_bytes(spec[key])
    code = folder / "code"
    if spec["code"] == "file":
        code.write_bytes(b"not a folder")
    elif spec["code"] == "symlink":
        code.symlink_to("../../..")
    elif spec["code"] == "dir":
        code.mkdir()
        for parts, kind, data in spec["tree"]:
            _make_entry(code, parts, kind, data, root)
    for kind, data in spec["markers"].items():
        (folder / kind).write_bytes(data)
    return folder


def _make_entry(code: Path, parts: list[str], kind: str, data: bytes, root: Path) -> None:
    path = code.joinpath(*parts)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(path):
            return
        if kind == "file":
            path.write_bytes(data)
        elif kind == "dir":
            path.mkdir()
        elif kind == "symlink":
            path.symlink_to("/etc/passwd" if data[:1] < b"\x80" else "../" * 6)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "big":  # sparse: over the submission limit without using the disk
            with path.open("wb") as fh:
                fh.truncate(300 * 1024 * 1024)
        elif kind == "hardlink":
            outside = root / "outside.txt"
            outside.write_bytes(b"private")
            os.link(outside, path)
        else:
            path.touch()
    except (NotADirectoryError, FileExistsError, OSError):
        return  # a parent is a file or a link: the entry cannot exist, which is fine


# -- core readers ----------------------------------------------------------------------------
def test_load_config_gives_a_config_or_a_clear_error(
    record_property: Callable[[str, object], None],
) -> None:
    tally = Tally()

    @FAST
    @given(data=config_bytes)
    def check(data: bytes) -> None:
        tally.tried += 1
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "config.yaml"
            path.write_bytes(data)
            try:
                config = load_config(path)
            except Exception as exc:
                assert_clear_error(exc, path)
            else:
                assert config.type in ("bash", "python") and config.name

    check()
    tally.record(record_property)


def test_markers_give_a_marker_or_a_clear_error(
    record_property: Callable[[str, object], None],
) -> None:
    tally = Tally()

    @FAST
    @given(kind=st.sampled_from(sorted(MARKER_TYPES)), data=marker_bytes)
    def check(kind: str, data: bytes) -> None:
        tally.tried += 1
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / kind
            path.write_bytes(data)
            try:
                marker = read_marker(path, MARKER_TYPES[kind])
            except Exception as exc:
                assert_clear_error(exc, path)
            else:
                assert marker is not None and marker.by is not None

    check()
    tally.record(record_property)


perm_documents = st.one_of(
    st.binary(max_size=400),
    documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode()),
    st.fixed_dictionaries(
        {
            "terminal": st.booleans() | values,
            "rules": st.lists(
                st.fixed_dictionaries(
                    {
                        "pattern": st.sampled_from(
                            ["**", "*", "a/**", "{{.UserEmail}}/*", "[", "{{.X}}"]
                        )
                        | st.text(max_size=12),
                        "access": st.dictionaries(
                            st.sampled_from(["read", "write", "admin"]),
                            st.lists(st.sampled_from(["*", "a@b.org", "*@b.org", "USER", ""]))
                            | values,
                        ),
                    }
                ),
                max_size=4,
            ),
        }
    ).map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode()),
    st.sampled_from([b"rules: " + b"[" * 1200 + b"]" * 1200, b"&a [*a]", b"\xff\xfe\x00"]),
)


def test_permission_files_never_crash_the_engine(
    record_property: Callable[[str, object], None],
) -> None:
    tally = Tally()
    folders = ["", "public", "public/a", "api_data", "jobs"]

    # Fewer examples: a deeply nested file costs the YAML parser most of a second to refuse.
    @settings(FAST, max_examples=30)
    @given(files=st.dictionaries(st.sampled_from(folders), perm_documents, min_size=1, max_size=3))
    def check(files: dict[str, bytes]) -> None:
        tally.tried += 1
        with tempfile.TemporaryDirectory() as tmp:
            ds = Datasite(Path(tmp), OWNER).init()
            (ds.public / "a").mkdir()
            for folder, data in files.items():
                (ds.root / folder / "syft.pub.yaml").write_bytes(data)
            ctx = SyftPermContext(ds.root)
            ctx.reload()
            for path in ("public/a/x.csv", "private/x", "api_data/q", f"jobs/{SCIENTIST}/j/run.sh"):
                for level in AccessLevel:
                    assert ctx.check(OWNER, path, level) is True
                    assert ctx.check(SCIENTIST, path, level) in (True, False)
            for issue in ctx.errors:
                assert issue.file.name == "syft.pub.yaml" and issue.reason

    check()
    tally.record(record_property)


def test_job_folders_give_a_state_and_a_clear_walk_error(
    record_property: Callable[[str, object], None],
) -> None:
    tally = Tally()

    @FAST
    @given(spec=job_specs)
    def check(spec: dict[str, Any]) -> None:
        tally.tried += 1
        with tempfile.TemporaryDirectory() as tmp:
            folder = _build_job(Path(tmp), spec)
            job = JobFolder(folder)
            state = job.state()  # never raises: a broken job reads as a status with a reason
            assert state.status in Status
            if state.status is Status.INBOX and spec["markers"]:
                assert state.reason or not set(spec["markers"]) & {"approved", "running"}
            try:
                files = walk_submission(folder)
            except Exception as exc:
                assert isinstance(exc, JobError), f"{type(exc).__name__}: {exc}"
                # It names the entry at fault, or says what is wrong with the whole submission.
                assert len(str(exc)) > 15, str(exc)
            else:
                relpaths = [f.relpath for f in files]
                assert {"run.sh", "config.yaml"} <= set(relpaths)
                assert all(not stat.S_ISLNK(f.path.lstat().st_mode) for f in files)

    check()
    tally.record(record_property)


# -- findings of this suite, fixed: kept as regression tests ---------------------------------
@pytest.mark.parametrize("reader", ["config", "marker"])
def test_deeply_nested_yaml_is_a_clear_error(tmp_path: Path, reader: str) -> None:
    path = tmp_path / ("config.yaml" if reader == "config" else "approved")
    path.write_bytes(b"name: x\ntype: bash\nx: " + b"[" * 2000 + b"]" * 2000 + b"\n")
    with pytest.raises(SyftError) as refused:
        load_config(path) if reader == "config" else read_marker(path, ApprovedMarker)
    assert_clear_error(refused.value, path)


def test_non_utf8_file_name_is_a_clear_error(tmp_path: Path) -> None:
    Datasite(tmp_path, OWNER).init()
    job = approve(write_job(tmp_path, "bytes", "echo hi\n"))
    os.close(os.open(os.fsencode(job.code_dir) + b"/\xff\xfe.txt", os.O_CREAT | os.O_WRONLY))
    state = job.state()
    assert state.status is Status.INBOX and state.reason and "code/" in state.reason


def _expanded_size(value: object, memo: dict[int, int]) -> int:
    """Nodes a YAML value has once its aliases are expanded (what dumping it visits)."""
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, dict):
        size = 1 + sum(_expanded_size(v, memo) for v in value.values())
    elif isinstance(value, list):
        size = 1 + sum(_expanded_size(v, memo) for v in value)
    else:
        size = 1
    memo[id(value)] = size
    return size


def test_yaml_alias_bomb_in_a_config_is_bounded(tmp_path: Path) -> None:
    lines = [b"name: bomb", b"type: bash", b"l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(b"l%d: &l%d [" % (i, i) + b", ".join([b"*l%d" % (i - 1)] * 10) + b"]")
    path = tmp_path / "config.yaml"
    path.write_bytes(b"\n".join(lines) + b"\n")
    try:
        config = load_config(path)
    except JobError:
        return  # refusing aliases is a fine answer
    size = _expanded_size(config.model_extra, {})
    assert size <= 1000 * path.stat().st_size, f"{size} nodes from {path.stat().st_size} bytes"


# -- the runner: many malformed jobs, one pass, then a good job ------------------------------
def _submitter_files(folder: Path) -> dict[str, str]:
    """sha256 of what a submitter wrote in a job folder (run.sh, config.yaml, code/**)."""
    found: dict[str, str] = {}
    for rel in ("run.sh", "config.yaml"):
        path = folder / rel
        if path.is_file() and not path.is_symlink():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    code = folder / "code"
    if code.is_dir() and not code.is_symlink():
        for path in sorted(code.rglob("*")):
            st_ = path.lstat()
            if stat.S_ISREG(st_.st_mode) and st_.st_size < 1024 * 1024:
                found[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[str(path.relative_to(folder))] = stat.filemode(st_.st_mode)
    return found


def _forge_approval(folder: Path) -> None:
    """An approval as a buggy owner client could write it: the hash of what is there now."""
    try:
        content_hash = JobFolder(folder).content_hash()
    except JobError:
        content_hash = "sha256:" + "0" * 64
    marker = {"by": OWNER, "content_hash": content_hash, "method": "manual"}
    (folder / "approved").write_text(yaml.safe_dump(marker))


@pytest.mark.docker
def test_one_runner_pass_over_malformed_jobs(
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    record_property: Callable[[str, object], None],
) -> None:
    tally = Tally()

    @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
    @given(specs=st.lists(runner_specs, min_size=6, max_size=10))
    def check(specs: list[dict[str, Any]]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            syftbox = Path(tmp) / "syftbox"
            Datasite(syftbox, OWNER).init()
            folders = []
            for i, spec in enumerate(specs):
                folder = _build_job(syftbox, spec, f"bad-{i}")
                _forge_approval(folder)
                folders.append(folder)
            tally.tried += len(folders)
            bystander = write_job(syftbox, "bystander", "echo never-approved\n", submitter=OWNER)
            before = {f: _submitter_files(f) for f in [*folders, bystander.path]}
            good = approve(write_job(syftbox, "good-last", "echo good\n"))
            serve = start_serve(syftbox, write_runner_config(syftbox), once=True)
            _finish(serve)
            done = done_of(good)
            assert done is not None and done.outcome.value == "succeeded", serve.log.read_text()
            for folder in folders:
                state = JobFolder(folder).state()
                assert state.status in (Status.DONE, Status.INBOX), (folder, state)
                assert state.reason, (folder, state)  # the reason is on the job
            after = {f: _submitter_files(f) for f in before}
            assert after == before, "a job's submitted files changed"
            assert not (bystander.path / "done").exists()

    check()
    tally.record(record_property)


def _finish(serve: ServeProcess) -> None:
    try:
        serve.proc.wait(timeout=180)
    finally:
        serve.kill9()
    assert serve.proc.returncode == 0, serve.log.read_text()[-3000:]


EXTREME_RESOURCES: dict[str, dict[str, Any]] = {
    "memory-1": {"resources": {"memory_mb": 1}},
    "pids-1": {"resources": {"pids": 1}},
    "cpus-tiny": {"resources": {"cpus": 0.001}},
    "cpus-huge": {"resources": {"cpus": 10**6}},
    "timeout-huge": {"timeout_seconds": 10**12},
    "memory-huge": {"resources": {"memory_mb": 10**12}},
}


@pytest.mark.docker
def test_extreme_resource_requests_end_with_a_clear_outcome(
    docker_client: docker.DockerClient, job_images: dict[str, str], tmp_path: Path
) -> None:
    syftbox = tmp_path / "syftbox"
    Datasite(syftbox, OWNER).init()
    jobs = {
        name: approve(write_job(syftbox, name, "echo ran\n", config=extra))
        for name, extra in EXTREME_RESOURCES.items()
    }
    good = approve(write_job(syftbox, "good-after", "echo good\n"))
    serve = start_serve(syftbox, write_runner_config(syftbox), once=True)
    _finish(serve)
    good_done = done_of(good)
    assert good_done is not None and good_done.outcome.value == "succeeded"
    for name, job in jobs.items():
        done = done_of(job)
        assert done is not None, name
        if done.outcome.value == "error":
            # Refused before running: the message must name the job's config and the field.
            assert str(job.config_path) in done.message, (name, done.message)
            assert "resources" in done.message or "timeout" in done.message, (name, done.message)
        else:
            assert done.memory_limit_mb is not None and done.memory_limit_mb <= 8192, name
            assert done.timeout_seconds is not None and done.timeout_seconds <= 24 * 3600, name
