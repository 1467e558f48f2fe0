"""What a runner writes back into `review/<ds>/[v1/]JOB/`, in the order their clients rely on.

stdout.txt, stderr.txt, returncode.txt (`str(rc)`, no newline), outputs/ (the top-level items of
the job's outputs), the outputs permission rule, and last state.yaml (`done` for rc 0, else
`failed`, with `completed_at` and `return_code`): a client that sees the final status finds the
rest. A timed-out job has rc -1 and `--- PROCESS TIMED OUT ---` at the end of both logs, as under
their runner. outputs/ is built beside the old one and swapped in by renames; its files are copied
without following links, and only plain files and folders with names an output may have
(syft_core.jobs.outputs: never a permission file, which would govern who reads them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from syft_core.atomic import atomic_write_bytes, atomic_write_text
from syft_core.errors import JobError
from syft_core.jobs.outputs import output_name_problem
from syft_core.jobs.submission import MAX_DEPTH
from syft_core.safefile import NotRegularFileError, open_regular
from syft_core.syftjob.layout import SyftJobRef, review_dir
from syft_core.syftjob.rules import set_outputs_rule
from syft_core.syftjob.state import SyftJobState, now_stamp, read_state, write_state

TIMEOUT_LINE = "\n--- PROCESS TIMED OUT ---\n"
TIMEOUT_RETURN_CODE = -1
OUTPUTS = "outputs"

__all__ = ["TIMEOUT_LINE", "set_outputs_rule", "write_results"]


def write_results(
    ref: SyftJobRef,
    *,
    stdout: bytes,
    stderr: bytes,
    return_code: int,
    outputs: Path | None,
    timed_out: bool,
    owner_only_outputs: bool,
) -> SyftJobState:
    """Write a finished job's logs, return code and outputs, the outputs rule (read by the owner,
    and the scientist unless `owner_only_outputs`), then its final state, which is returned."""
    if timed_out:
        stdout += TIMEOUT_LINE.encode()
        stderr += TIMEOUT_LINE.encode()
        return_code = TIMEOUT_RETURN_CODE
    folder = review_dir(ref, create=True)
    atomic_write_bytes(folder / "stdout.txt", stdout)
    atomic_write_bytes(folder / "stderr.txt", stderr)
    atomic_write_text(folder / "returncode.txt", str(return_code))
    _replace_outputs(folder, outputs)
    set_outputs_rule(ref, [ref.owner] if owner_only_outputs else [ref.owner, ref.submitter])
    final = (read_state(ref) or SyftJobState(status="pending")).model_copy(
        update={
            "status": "done" if return_code == 0 else "failed",
            "completed_at": now_stamp(),
            "return_code": return_code,
        }
    )
    write_state(ref, final)
    return final


def _replace_outputs(folder: Path, source: Path | None) -> None:
    """Build the new outputs/ in a hidden sibling, then swap it in by two renames."""
    if source is not None and not stat.S_ISDIR(source.lstat().st_mode):
        raise JobError(f"{source}: the job's outputs are not a folder (not followed)")
    staging = Path(tempfile.mkdtemp(prefix=f".{OUTPUTS}.", suffix=".new", dir=folder))
    try:
        staging.chmod(0o755)
        if source is not None:
            _copy_folder(source, staging, 0)
        _swap_in(staging, folder / OUTPUTS)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_in(staging: Path, final: Path) -> None:
    retired = Path(tempfile.mkdtemp(prefix=f".{OUTPUTS}.", suffix=".old", dir=final.parent))
    with contextlib.suppress(FileNotFoundError):
        final.rename(retired / OUTPUTS)
    staging.rename(final)
    shutil.rmtree(retired)


def _copy_folder(source: Path, dest: Path, depth: int) -> None:
    """Copy plain files and folders from `source` into `dest`, never following a link; other
    entries, hardlinks, names no output may have and folders past MAX_DEPTH are left out."""
    with os.scandir(source) as entries:
        listed = sorted((e.name, e.stat(follow_symlinks=False)) for e in entries)
    for name, st in listed:
        if output_name_problem(name):
            continue
        if stat.S_ISDIR(st.st_mode) and depth < MAX_DEPTH:
            (dest / name).mkdir(mode=0o755)
            _copy_folder(source / name, dest / name, depth + 1)
        elif stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            _copy_file(source / name, dest / name)


def _copy_file(source: Path, dest: Path) -> None:
    try:
        fd = open_regular(source)
    except NotRegularFileError:  # swapped for something else since it was listed
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(fd, "rb") as src, os.fdopen(os.open(dest, flags, 0o644), "wb") as dst:
        shutil.copyfileobj(src, dst)
