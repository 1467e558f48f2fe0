"""Hostile output trees (hypothesis): what a job leaves in its outputs folder goes through
`collect_outputs(scratch, job_dir, caps)` and nothing escapes.

The job wrote the scratch folder, so anything may be there: every hostile name (C0/C1 controls,
NEL, U+2028/9, bidi and tag characters, zero-width and non-NFC spellings, undecodable bytes,
names of markers and permission files), symlinks to files and folders outside, dangling and
looping links, fifos, sockets, hardlinks, sparse files far over the caps, deep chains and wide
folders; and the job folder may hold a stale `outputs` or `outputs.partial` (a folder, a file, or
a symlink to a folder outside). Invariants, whatever the policy on names is:

- no crash: a value, or a SyftError naming the file and the reason;
- nothing changes outside `<job_dir>/outputs` (the scratch folder, the job's other files and the
  folders outside are snapshotted: paths, modes, content hashes), and no `outputs.partial` stays;
- what is collected is exactly what is on disk: every collected relpath is a regular file under
  outputs/ with exactly that name and the content of the source (a regular file at the same
  relpath in scratch, no link on the way), every regular file under outputs/ was collected, and
  nothing but regular files and the folders holding them is created;
- the caps hold.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from syft_core.errors import SyftError
from syft_runner.workspace.outputs import PARTIAL_DIR, CollectedOutputs, OutputCaps, collect_outputs
from tests.fuzzing import (
    Tally,
    changes,
    describe,
    example_dir,
    file_sha256,
    fuzz_settings,
    make_outside,
    make_tree,
    names,
    snapshot,
    tree_entries,
    under,
)

caps = st.builds(
    OutputCaps,
    max_file_bytes=st.sampled_from([0, 1, 40, 10_000, 1 << 20]),  # under the sparse files
    max_total_bytes=st.sampled_from([0, 100, 50_000, 10**12]),
    max_files=st.sampled_from([0, 1, 3, 50, 10_000]),
)
STALE = ["none", "folder", "file", "symlink_out", "symlink_loop"]
output_specs = st.fixed_dictionaries(
    {
        "tree": tree_entries,
        # A few entries straight in the scratch folder too: the name cases at depth 0.
        "top": st.lists(st.tuples(names, st.binary(max_size=32)), max_size=4),
        "caps": caps,
        "stale_outputs": st.sampled_from(STALE),
        "stale_partial": st.sampled_from(STALE),
    }
)


def _stale(path: Path, kind: str, outside: Path) -> None:
    """What a crashed earlier collection or a confused owner could leave at `path`."""
    if kind == "folder":
        (path / "old").mkdir(parents=True)
        (path / "old" / "result.csv").write_bytes(b"stale\n")
    elif kind == "file":
        path.write_bytes(b"stale\n")
    elif kind == "symlink_out":
        path.symlink_to(outside / "dir", target_is_directory=True)
    elif kind == "symlink_loop":
        path.symlink_to(path.name)


def _job_dir(root: Path) -> Path:
    job = root / "job"
    (job / "code").mkdir(parents=True)
    (job / "run.sh").write_bytes(b"echo hi\n")
    (job / "config.yaml").write_bytes(b"name: j\ntype: bash\n")
    (job / "logs").mkdir()
    (job / "logs" / "stdout.txt").write_bytes(b"hi\n")
    return job


def test_output_trees_collect_exactly_what_is_on_disk_and_nothing_escapes(
    record_property: Callable[[str, object], None],
) -> None:
    tally = Tally("output_tree")

    @fuzz_settings("output_tree")
    @given(spec=output_specs)
    def check(spec: dict[str, Any]) -> None:
        tally.tried += 1
        with example_dir() as tmp:
            root = Path(tmp)
            outside = make_outside(root)
            scratch = root / "scratch"
            scratch.mkdir()
            make_tree(scratch, spec["tree"], outside)
            for name, data in spec["top"]:
                if not os.path.lexists(scratch / name):
                    (scratch / name).write_bytes(data)
            job = _job_dir(root)
            _stale(job / "outputs", spec["stale_outputs"], outside)
            _stale(job / "outputs.partial", spec["stale_partial"], outside)
            limits: OutputCaps = spec["caps"]
            rest = under(b"job/outputs", b"job/outputs.partial")
            before = snapshot(root, skip=rest)
            try:
                result = collect_outputs(scratch, job, limits)
            except Exception as exc:
                assert isinstance(exc, SyftError), f"{type(exc).__name__}: {exc}"
                assert str(job) in str(exc) or str(scratch) in str(exc), str(exc)
                result = None
            after = snapshot(root, skip=rest)
            assert after == before, "written outside outputs/:\n" + describe(changes(before, after))
            assert not os.path.lexists(job / "outputs.partial")
            assert not os.path.lexists(job / PARTIAL_DIR)
            if result is not None:
                _check_collected(scratch, job / "outputs", result, limits)

    check()
    tally.record(record_property)


def _check_collected(
    scratch: Path, outputs: Path, result: CollectedOutputs, limits: OutputCaps
) -> None:
    assert stat.S_ISDIR(outputs.lstat().st_mode), "outputs/ is not a plain folder"
    files, folders = _outputs_on_disk(outputs)
    collected = {os.fsencode(rel) for rel in result.files}
    assert len(collected) == len(result.files), "a relpath is collected twice"
    assert files == collected, (sorted(files ^ collected)[:10], "on disk vs collected")
    for rel in result.files:
        source = scratch / rel
        _no_link_on_the_way(scratch, rel)
        assert stat.S_ISREG(source.lstat().st_mode), rel
        assert file_sha256(outputs / rel) == file_sha256(source), rel
        assert (outputs / rel).lstat().st_size <= limits.max_file_bytes, rel
    # Folders exist only to hold collected files.
    holders = {os.fsencode(p) for rel in result.files for p in _parents(rel)}
    assert folders <= holders, sorted(folders - holders)[:10]
    assert len(result.files) <= limits.max_files
    assert result.total_bytes <= limits.max_total_bytes
    assert result.total_bytes == sum((outputs / rel).lstat().st_size for rel in result.files)
    assert result.refused_count >= len(result.refused)
    assert all(r.reason for r in result.refused)


def _outputs_on_disk(outputs: Path) -> tuple[set[bytes], set[bytes]]:
    """Relative paths (bytes) of the regular files and the folders under outputs/; anything
    else there fails the test."""
    files: set[bytes] = set()
    folders: set[bytes] = set()
    stack = [(os.fsencode(outputs), b"")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                rel = prefix + entry.name
                st_ = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st_.st_mode):
                    folders.add(rel)
                    stack.append((entry.path, rel + b"/"))
                else:
                    assert stat.S_ISREG(st_.st_mode), f"{rel!r}: mode {st_.st_mode:o} created"
                    assert st_.st_nlink == 1, f"{rel!r}: a hardlink was created"
                    files.add(rel)
    return files, folders


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _no_link_on_the_way(scratch: Path, rel: str) -> None:
    for parent in _parents(rel):
        assert stat.S_ISDIR((scratch / parent).lstat().st_mode), f"{rel}: {parent} is no folder"
