"""What a runner writes back into `review/<ds>/[v1/]JOB/`, in the order their clients rely on.

stdout.txt, stderr.txt, returncode.txt (`str(rc)`, no newline), outputs/ (the top-level items of
the job's outputs), the outputs permission rule, and last `state.yaml` (`done` for rc 0, else
`failed`, with `completed_at` and `return_code`): a client that sees `done` finds the rest. A
timed-out job has rc -1 and `--- PROCESS TIMED OUT ---` at the end of both logs, as under their
runner. Outputs are copied without following links: regular files and folders only.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import yaml

from syft_core.atomic import atomic_write_bytes, atomic_write_text
from syft_core.datasite import PERMISSION_FILE
from syft_core.errors import JobError
from syft_core.syftjob.layout import SyftJobRef
from syft_core.syftjob.state import SyftJobState, now_stamp, read_state, write_state
from syft_core.yamlio import read_untrusted_yaml

TIMEOUT_LINE = "\n--- PROCESS TIMED OUT ---\n"
MAX_PERMISSION_BYTES = 1024 * 1024


def write_results(
    ref: SyftJobRef,
    *,
    stdout: bytes,
    stderr: bytes,
    return_code: int,
    outputs: Path | None,
    timed_out: bool,
    readers: list[str],
) -> SyftJobState:
    """Write a finished job's results and then its final state; returns that state. `readers`:
    who the outputs rule lets read outputs/ (their runner: the owner and the scientist)."""
    if timed_out:
        stdout += TIMEOUT_LINE.encode()
        stderr += TIMEOUT_LINE.encode()
        return_code = -1
    ref.review.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(ref.review / "stdout.txt", stdout)
    atomic_write_bytes(ref.review / "stderr.txt", stderr)
    atomic_write_text(ref.review / "returncode.txt", str(return_code))
    _replace_outputs(ref.review / "outputs", outputs)
    set_outputs_rule(ref, readers)
    state = read_state(ref) or SyftJobState(status="pending")
    final = state.model_copy(
        update={
            "status": "done" if return_code == 0 else "failed",
            "completed_at": now_stamp(),
            "return_code": return_code,
        }
    )
    write_state(ref, final)
    return final


def _replace_outputs(final: Path, source: Path | None) -> None:
    staging = final.with_name(".outputs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    if source is not None:
        _copy_tree(source, staging)
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)
    elif final.is_symlink() or final.exists():
        final.unlink()
    staging.rename(final)


def _copy_tree(source: Path, dest: Path) -> None:
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            (dest / entry.name).mkdir()
            _copy_tree(Path(entry.path), dest / entry.name)
        elif stat.S_ISREG(st.st_mode) and entry.name.casefold() != PERMISSION_FILE:
            shutil.copyfile(entry.path, dest / entry.name, follow_symlinks=False)


def set_outputs_rule(ref: SyftJobRef, readers: list[str]) -> None:
    """The rule `[v1/]JOB/outputs/**` in `review/<ds>/syft.pub.yaml`, read by `readers`,
    replacing an earlier rule with that pattern and keeping every other rule."""
    path = ref.review_root / PERMISSION_FILE
    try:
        data = read_untrusted_yaml(path, max_bytes=MAX_PERMISSION_BYTES)
    except FileNotFoundError:
        data = {"rules": [], "terminal": False}
    except ValueError as exc:
        raise JobError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("rules", []), list):
        raise JobError(f"{path}: not a permission file (a mapping with a list of rules)")
    rules = [r for r in data.get("rules") or [] if _pattern(r) != ref.outputs_pattern]
    rules.append(
        {
            "access": {"admin": [], "read": list(dict.fromkeys(readers)), "write": []},
            "pattern": ref.outputs_pattern,
        }
    )
    data["rules"] = rules
    atomic_write_text(path, yaml.dump(data, sort_keys=True))


def _pattern(rule: object) -> object:
    return rule.get("pattern") if isinstance(rule, dict) else None
