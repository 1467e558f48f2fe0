"""Bad input never crashes and never loses anything (hypothesis).

Random and malformed config.yaml, status markers, syft.pub.yaml and whole job folders (missing
files, huge and binary files, deep and wide trees, hostile names: C0/C1 controls, NEL, U+2028/9,
bidi controls, tag characters, zero-width characters, non-NFC and undecodable bytes; symlinks,
hardlinks, fifos, sockets) go through the core readers: every case ends in a value or in a
SyftError naming the file and the reason, never another exception, and reading changes nothing on
disk (the whole tree is snapshotted before and after: paths, modes, content hashes). At runner
level, many malformed approved jobs go through ONE `serve --once` pass followed by a good job:
each ends with its reason on it, the good job runs, no other job's files change.

Example counts depend on the fuzzing tier (tests/fuzzing.py): a few dozen per property under
`make test`, thousands in the slow tier. Sync messages and output trees are fuzzed in
test_bad_input_sync.py and test_bad_input_outputs.py. Each test records how many inputs it tried
(`bad_inputs_tried`) and its category for bench_security.py.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from hypothesis import given
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
from syft_core.jobs.submission import SubmittedFile
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
from tests.fuzzing import (
    Tally,
    changes,
    describe,
    example_dir,
    fuzz_settings,
    hostile_text,
    known_finding,
    make_outside,
    make_tree,
    names,
    snapshot,
    tree_entries,
    under,
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
    hostile_text,
    st.sampled_from(["bash", "python", "real", "mock", "main.py", "../x.py", "2024-01-01"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | hostile_text, inner, max_size=4)
    ),
    max_leaves=12,
)
documents = st.one_of(
    st.dictionaries(st.sampled_from(JOB_KEYS) | st.text(max_size=10), values, max_size=8),
    values,
)
# Hand-picked YAML that has broken parsers elsewhere: tags, deep nesting, anchors, odd encodings,
# and the line breaks YAML 1.1 knows beyond \n (NEL, U+2028, U+2029).
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
    "name: a\x85type: python\n".encode(),
    "name: a\u2028type: python\u2029entrypoint: x.py\n".encode(),
    b'name: "\\u202eexe.txt"\ntype: bash\n',
    b'name: x\ntype: python\nentrypoint: "main.py\\0"\n',
    "name: \U000e0041\u200b\ntype: bash\n".encode(),
    b"name: \x1b[2J\x1b]0;pwned\x07\ntype: bash\n",
]
config_bytes = st.one_of(
    documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode()),
    st.binary(max_size=2000),
    st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass")),
    hostile_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(TRICKY_YAML),
)
marker_bytes = st.one_of(
    st.binary(max_size=300),
    documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode()),
    st.sampled_from(
        [b"by: o@x.org\ncontent_hash: sha256:00\n", b"by: o@x.org\noutcome: exploded\n", b""]
    ),
)
# What the top-level files of a job are: usually a file, sometimes something hostile.
TOP_KINDS = ["file", "file", "file", "symlink", "fifo", "dir", "hardlink"]
# Submitter folders: the scientist, odd but valid-looking emails, and plain hostile names.
HOSTILE_EMAILS = [
    "ds\u202e@example.org",
    "DS@EXAMPLE.ORG",
    "ds@example.org\u200b",
    "ds@exa\u0301mple.org",
    "d\x85s@example.org",
    "ds@example.org.",
    "@example.org",
]
job_specs = st.fixed_dictionaries(
    {
        "run_sh": st.one_of(st.none(), st.binary(max_size=200)),
        "run_sh_kind": st.sampled_from(TOP_KINDS),
        "config": st.one_of(st.none(), config_bytes),
        "config_kind": st.sampled_from(TOP_KINDS),
        "code": st.sampled_from(["dir", "dir", "dir", "file", "symlink", "fifo", "missing"]),
        "tree": tree_entries,
        "markers": st.dictionaries(
            st.sampled_from(sorted(MARKER_TYPES)),
            st.tuples(st.sampled_from(TOP_KINDS), marker_bytes),
            max_size=3,
        ),
        "name": st.one_of(st.just("job"), names),
        "submitter": st.one_of(st.just(SCIENTIST), st.sampled_from(HOSTILE_EMAILS), names),
    }
)


# Jobs the runner gets further with: run.sh and config.yaml usually present, often valid.
runner_specs: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "run_sh": st.sampled_from(
            [b"echo ok > outputs/x\n", b"\x00\xff\x1b[2J junk", b"exit 3\n", None]
        ),
        "run_sh_kind": st.just("file"),
        "config": st.one_of(
            st.just(b"name: fine\ntype: bash\n"),
            st.dictionaries(st.sampled_from(JOB_KEYS), values, max_size=3).map(
                lambda d: yaml.safe_dump({"name": "x", "type": "bash", **d}).encode()
            ),
            config_bytes,
        ),
        "config_kind": st.just("file"),
        "code": st.sampled_from(["dir", "dir", "file", "symlink", "missing"]),
        "tree": tree_entries,
        "markers": st.just({}),
        "name": st.just("job"),
        "submitter": st.just(SCIENTIST),
    }
)


# -- helpers ---------------------------------------------------------------------------------
def assert_clear_error(exc: BaseException, *paths: Path) -> None:
    """A SyftError whose message names the file at fault (one of `paths`, as text or quoted)
    and says why."""
    assert isinstance(exc, SyftError), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    named = [n for p in paths for n in (p.name, repr(p.name), str(p)) if n in message]
    assert named, message
    assert len(message) > len(named[0]) + 5, message


def _build_job(root: Path, spec: dict[str, Any], name: str | None = None) -> Path:
    """A job folder from `spec`, under `root`; links and hardlinks lead to `root/outside`."""
    outside = make_outside(root)
    folder: Path = root / OWNER / "jobs" / spec["submitter"] / (name or spec["name"])
    folder.mkdir(parents=True)
    for rel, key in (("run.sh", "run_sh"), ("config.yaml", "config")):
        if spec[key] is not None:
            _make_top(folder / rel, spec[f"{key}_kind"], spec[key], outside)
    code = folder / "code"
    if spec["code"] == "file":
        code.write_bytes(b"not a folder")
    elif spec["code"] == "symlink":
        code.symlink_to("../../..")
    elif spec["code"] == "fifo":
        os.mkfifo(code)
    elif spec["code"] == "dir":
        code.mkdir()
        make_tree(code, spec["tree"], outside)
    for kind, (how, data) in spec["markers"].items():
        _make_top(folder / kind, how, data, outside)
    return folder


def _make_top(path: Path, kind: str, data: bytes, outside: Path) -> None:
    """A top-level file (run.sh, config.yaml, a marker, a syft.pub.yaml) that is `kind`, in place
    of any file already there; links lead to a new file in `outside`."""
    if path.is_file() and not path.is_symlink():
        path.unlink()
    stand_in = outside / f"{path.name}.{uuid.uuid4().hex[:8]}"
    if kind == "symlink":
        stand_in.write_bytes(data)
        path.symlink_to(stand_in)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "hardlink":
        stand_in.write_bytes(data)
        os.link(stand_in, path)
    else:
        path.write_bytes(data)


def _unchanged(root: Path, before: dict[bytes, tuple[int, str]]) -> None:
    after = snapshot(root)
    assert after == before, "reading changed the tree:\n" + describe(changes(before, after))


# -- core readers ----------------------------------------------------------------------------
def test_load_config_gives_a_config_or_a_clear_error(
    record_property: Callable[[str, object], None],
) -> None:
    tally = Tally("config")

    @fuzz_settings("config")
    @given(data=config_bytes, kind=st.sampled_from(TOP_KINDS))
    def check(data: bytes, kind: str) -> None:
        tally.tried += 1
        with example_dir() as tmp:
            path = Path(tmp) / "config.yaml"
            _make_top(path, kind, data, make_outside(Path(tmp)))
            before = snapshot(Path(tmp))
            try:
                config = load_config(path)
            except Exception as exc:
                if finding := known_finding(exc):
                    tally.finding(finding)
                else:
                    assert_clear_error(exc, path)
            else:
                # A hardlink is refused by the submission walk, not by the reader.
                assert kind in ("file", "hardlink"), f"a {kind} was read as a config"
                assert config.type in ("bash", "python") and config.name
            _unchanged(Path(tmp), before)

    check()
    tally.record(record_property)


def test_markers_give_a_marker_or_a_clear_error(
    record_property: Callable[[str, object], None],
) -> None:
    tally = Tally("marker")

    @fuzz_settings("marker")
    @given(kind=st.sampled_from(sorted(MARKER_TYPES)), data=marker_bytes)
    def check(kind: str, data: bytes) -> None:
        tally.tried += 1
        with example_dir() as tmp:
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
                        | st.text(max_size=12)
                        | hostile_text
                        | st.lists(names, min_size=1, max_size=3).map("/".join),
                        "access": st.dictionaries(
                            st.sampled_from(["read", "write", "admin"]),
                            st.lists(
                                st.sampled_from(
                                    ["*", "a@b.org", "*@b.org", "USER", "", *HOSTILE_EMAILS]
                                )
                                | hostile_text
                            )
                            | values,
                        ),
                    }
                ),
                max_size=4,
            ),
        }
    ).map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode()),
    # PyYAML's scanner is quadratic in the nesting depth (about 1 s to refuse 1,200 levels, see
    # test_deeply_nested_permission_file_grants_nothing): the random pool keeps to 100.
    st.sampled_from([b"rules: " + b"[" * 100 + b"]" * 100, b"&a [*a]", b"\xff\xfe\x00"]),
)
PERM_FOLDERS = ["", "public", "public/a", "api_data", "jobs", f"jobs/{SCIENTIST}"]
perm_folders = st.one_of(
    st.sampled_from(PERM_FOLDERS), names.map(lambda n: f"public/{n}"), names.map(lambda n: n)
)
FIXED_PATHS = ["public/a/x.csv", "private/x", "api_data/q", f"jobs/{SCIENTIST}/j/run.sh"]
# Paths a peer could ask about: odd names under each area, and crafted ones.
hostile_paths = st.one_of(
    st.tuples(
        st.sampled_from(["public/", "private/", "api_data/", f"jobs/{SCIENTIST}/j/", ""]),
        st.lists(names, min_size=1, max_size=3).map("/".join),
        st.sampled_from(["", "/"]),
    ).map("".join),
    st.sampled_from(["../x", "/etc/passwd", "public//a", "public/./a", "a\\b", "", ".", "./"]),
    hostile_text,
)


def test_permission_files_never_crash_the_engine(
    record_property: Callable[[str, object], None],
) -> None:
    tally = Tally("permissions")

    @fuzz_settings("permissions")
    @given(
        files=st.dictionaries(
            perm_folders,
            st.tuples(st.sampled_from(TOP_KINDS), perm_documents),
            min_size=1,
            max_size=3,
        ),
        paths=st.lists(hostile_paths, max_size=4),
    )
    def check(files: dict[str, tuple[str, bytes]], paths: list[str]) -> None:
        tally.tried += 1
        with example_dir() as tmp:
            ds = Datasite(Path(tmp), OWNER).init()
            (ds.public / "a").mkdir()
            outside = make_outside(Path(tmp))
            for folder, (kind, data) in files.items():
                try:
                    (ds.root / folder).mkdir(parents=True, exist_ok=True)
                    _make_top(ds.root / folder / "syft.pub.yaml", kind, data, outside)
                except OSError:
                    continue  # a long or odd name the file system refuses, or two of the
                    # drawn folders collide (a folder named syft.pub.yaml beside the root's file)
            before = snapshot(Path(tmp))
            ctx = SyftPermContext(ds.root)
            ctx.reload()
            for path in [*FIXED_PATHS, *paths]:
                for level in AccessLevel:
                    try:
                        owner_may = ctx.check(OWNER, path, level)
                        other_may = ctx.check(SCIENTIST, path, level)
                        explained = ctx.explain(SCIENTIST, path, level)
                    except Exception as exc:
                        assert isinstance(exc, SyftError), f"{type(exc).__name__}: {exc}"
                        assert path in str(exc) or repr(path) in str(exc), str(exc)
                        assert path not in FIXED_PATHS, str(exc)
                        continue
                    # The owner may do anything on a real path (an unsafe one is denied to all),
                    # and nobody may do more than the owner.
                    assert owner_may is True or (owner_may is False and path not in FIXED_PATHS)
                    assert other_may in (True, False) and (owner_may or not other_may)
                    assert explained.allowed is other_may
            for issue in ctx.errors:
                assert issue.file.name == "syft.pub.yaml" and issue.reason
            _unchanged(Path(tmp), before)

    check()
    tally.record(record_property)


def test_job_folders_give_a_state_and_a_clear_walk_error(
    record_property: Callable[[str, object], None],
) -> None:
    tally = Tally("job_tree")

    @fuzz_settings("job_tree")
    @given(spec=job_specs)
    def check(spec: dict[str, Any]) -> None:
        tally.tried += 1
        with example_dir() as tmp:
            root = Path(tmp)
            try:
                folder = _build_job(root, spec)
            except OSError:
                return  # a job folder name the file system refuses: nothing to read
            before = snapshot(root)
            try:
                job = JobFolder(folder)
            except Exception as exc:
                assert_clear_error(exc, folder, folder.parent)  # the job's or submitter's name
            else:
                _read_job(job, spec, tally)
            try:
                files = walk_submission(folder)
            except Exception as exc:
                assert isinstance(exc, JobError), f"{type(exc).__name__}: {exc}"
                # It names the entry at fault, or says what is wrong with the whole submission.
                assert any(w in str(exc) for w in ("run.sh", "config.yaml", "code", "submi")), exc
            else:
                _check_walk(folder, files)
            _unchanged(root, before)

    check()
    tally.record(record_property)


def _read_job(job: JobFolder, spec: dict[str, Any], tally: Tally) -> None:
    try:
        state = job.state()  # never raises: a broken job reads as a status with a reason
    except Exception as exc:
        finding = known_finding(exc)
        assert finding, f"state() raised {type(exc).__name__}: {exc}"
        tally.finding(finding)
        return
    assert state.status in Status
    if state.status is Status.INBOX and spec["markers"]:
        assert state.reason or not set(spec["markers"]) & {"approved", "running"}
    try:
        digest = job.content_hash()
    except Exception as exc:
        assert isinstance(exc, JobError), f"{type(exc).__name__}: {exc}"
    else:
        assert digest.startswith("sha256:") and len(digest) == 71


def _check_walk(folder: Path, files: list[SubmittedFile]) -> None:
    """What the walk accepted: plain files at exactly their names, nothing linked."""
    relpaths = [f.relpath for f in files]
    assert {"run.sh", "config.yaml"} <= set(relpaths)
    assert len(set(relpaths)) == len(relpaths)
    for f in files:
        f.relpath.encode("utf-8")  # a name that travels
        assert f.path == folder / f.relpath
        st_ = f.path.lstat()
        assert stat.S_ISREG(st_.st_mode) and st_.st_nlink == 1, f.relpath
        for parent in (folder / f.relpath).parents:
            if parent == folder:
                break
            assert stat.S_ISDIR(parent.lstat().st_mode), f"{f.relpath}: {parent} is no folder"


# -- findings of this suite, fixed: kept as regression tests ---------------------------------
@pytest.mark.parametrize("reader", ["config", "marker"])
def test_deeply_nested_yaml_is_a_clear_error(tmp_path: Path, reader: str) -> None:
    path = tmp_path / ("config.yaml" if reader == "config" else "approved")
    path.write_bytes(b"name: x\ntype: bash\nx: " + b"[" * 2000 + b"]" * 2000 + b"\n")
    with pytest.raises(SyftError) as refused:
        load_config(path) if reader == "config" else read_marker(path, ApprovedMarker)
    assert_clear_error(refused.value, path)


def test_deeply_nested_permission_file_grants_nothing(tmp_path: Path) -> None:
    ds = Datasite(tmp_path, OWNER).init()
    (ds.public / "syft.pub.yaml").write_bytes(b"rules: " + b"[" * 1200 + b"]" * 1200)
    ctx = SyftPermContext(ds.root)
    ctx.reload()
    assert ctx.check(SCIENTIST, "public/x.csv", AccessLevel.READ) is False
    [issue] = ctx.errors
    assert issue.file == ds.public / "syft.pub.yaml" and "recursion" in issue.reason


def test_non_utf8_file_name_is_a_clear_error(tmp_path: Path) -> None:
    Datasite(tmp_path, OWNER).init()
    job = approve(write_job(tmp_path, "bytes", "echo hi\n"))
    os.close(os.open(os.fsencode(job.code_dir) + b"/\xff\xfe.txt", os.O_CREAT | os.O_WRONLY))
    state = job.state()
    assert state.status is Status.INBOX and state.reason and "code/" in state.reason


@pytest.mark.parametrize("where", ["config.yaml", "approved", "done", "cancel"])
def test_a_folder_where_a_yaml_file_belongs(tmp_path: Path, where: str) -> None:
    job = approve(write_job(tmp_path, "folder", "echo hi\n"))
    if where == "config.yaml":
        job.config_path.unlink()
    else:
        job.marker_path(where).unlink(missing_ok=True)
    (job.path / where).mkdir()
    state = job.state()
    assert state.status in Status and state.reason and where in state.reason
    if where == "config.yaml":
        with pytest.raises(JobError, match="not a regular file"):
            load_config(job.path / "config.yaml")


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
    tally = Tally("runner_pass")

    @fuzz_settings("runner_pass")
    @given(specs=st.lists(runner_specs, min_size=6, max_size=10))
    def check(specs: list[dict[str, Any]]) -> None:
        with tempfile.TemporaryDirectory() as tmp:  # on disk: the runner mounts job filesystems
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
            # Everything but the jobs the runner works on, its own state and the event log.
            rest = under(
                f"{OWNER}/jobs/{SCIENTIST}".encode(), f"{OWNER}/.syft".encode(), b".syft-runner"
            )
            rest_before = snapshot(syftbox, skip=rest)
            serve = start_serve(syftbox, write_runner_config(syftbox), once=True)
            _finish(serve)
            rest_after = snapshot(syftbox, skip=rest)
            assert rest_after == rest_before, describe(changes(rest_before, rest_after))
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
            named = str(job.config_path.relative_to(syftbox))  # as the submitter knows it
            assert named in done.message and str(syftbox) not in done.message, done.message
            assert "resources" in done.message or "timeout" in done.message, (name, done.message)
        else:
            assert done.memory_limit_mb is not None and done.memory_limit_mb <= 8192, name
            assert done.timeout_seconds is not None and done.timeout_seconds <= 24 * 3600, name
