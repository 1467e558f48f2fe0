"""Writing a complete job folder: `<syftbox>/<owner>/jobs/<submitter>/<folder>/`.

A job folder holds `run.sh`, `config.yaml` (a JobConfig with submitted_by and submitted_at) and
`code/...`. It is built in a hidden temp folder beside the target (same parent, so the same
filesystem), checked with the same walk and parser the owner's side uses, and only then renamed
into place: a reader (runner, sync, owner) sees no job or the whole job, never half of one.

Folder names (`job_folder_name`): accented Latin letters become their base letters (`Nüñez Café`
-> `Nunez-Cafe`), then every character outside [A-Za-z0-9._-] becomes `-` (a run of
them one `-`), `-` and `.` are trimmed from both ends and the result is cut to 100 characters.
A name with no usable character becomes `job-<first 12 hex digits of its sha256>`. config.yaml
keeps the original name. Two names with the same folder name (compared case-insensitively, for
case-insensitive filesystems a datasite may be synced to) are duplicates.

Code copied from `code_path` (a file, or a folder copied recursively under code/) may hold only
regular files with a single link and folders: symlinks, hardlinks, devices, fifos and sockets
are refused, as the owner's side refuses them. Entries whose name starts with `.` (.git, .venv,
.env) and `__pycache__` folders are skipped: permission globs never match dot-segments so they
would never sync to the owner, and bytecode is not source to review.

Dependencies: what a job declares (`dependencies=[...]`, `code/requirements.txt`, the `[project]
dependencies` of `code/pyproject.toml`) is resolved with uv for the job image into
`code/requirements.lock` (syft_core.dependencies, syft_core.jobs.lock) before anything is written,
so the lock is part of the content the owner approves; an unresolvable list raises
DependencyError and writes nothing. A code folder may bring its own `requirements.lock` instead
(e.g. copied from an earlier submission), checked to be a valid lock, when it declares nothing.

Python jobs: a single file is copied to `code/<file name>` and is the entrypoint; for a folder the
entrypoint (relative to the folder) is required unless the folder has a top-level `main.py`. The
generated run.sh runs it with the image's python3 from the code folder, every job's cwd
(`/job/code`: a script runs as it did on the scientist's machine, `python analysis.py` beside
`data.csv`), where `outputs/` is the job's outputs folder (mounted there too), for bash and python
jobs alike. A code folder's own top-level `outputs/` (a local run's results) is not submitted. An
entrypoint may be a Jupyter notebook (`.ipynb`): run.sh then runs it top to bottom with the
runtime's notebook runner (nbclient, kernel cwd `/job/code` too), which saves the executed copy,
outputs and plots included, as `outputs/<notebook name>`; a failing cell fails the job with that
cell's traceback in stderr.

`runtime` names the job image (e.g. "scientific", "minimal"); None leaves it to the owner's
default. The owner's runner allows some runtimes and ends a job asking for another with an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import tempfile
import textwrap
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import ValidationError

from syft_core.atomic import atomic_write_text
from syft_core.dependencies import PackageIndex, resolve_lock
from syft_core.errors import JobError, UnsafePathError
from syft_core.events import utcnow
from syft_core.identity import validate_email
from syft_core.jobs.config import (
    ENTRYPOINT_SUFFIXES,
    JobConfig,
    JobResources,
    describe_problems,
    load_config,
)
from syft_core.jobs.lock import (
    LOCK_NAME,
    PYPROJECT_TOML,
    REQUIREMENTS_TXT,
    LockError,
    declared_requirements,
    parse_lock,
)
from syft_core.jobs.submission import (
    CODE_DIR,
    MAX_DEPTH,
    MAX_SUBMISSION_BYTES,
    MAX_SUBMISSION_FILES,
    UnsafeSubmissionError,
    walk_submission,
)
from syft_core.paths import normalize_relpath
from syft_core.safefile import open_regular

MAX_FOLDER_NAME = 100
DEFAULT_ENTRYPOINT = "main.py"
NOTEBOOK_SUFFIX = ".ipynb"
# The notebook runner every runtime with notebooks carries (images/scientific/run-notebook.py).
NOTEBOOK_RUNNER = "/usr/lib/syft-runtime/run-notebook.py"
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
# Latin letters NFKD leaves whole (they are letters of their own, not a letter plus a mark).
_SPELLED_OUT = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "Th",
        "ı": "i",
    }
)
_SKIPPED_FOLDERS = frozenset({"__pycache__"})
_CHUNK = 1024 * 1024

Resources = JobResources | Mapping[str, Any] | None
# "real" runs on the owner's private data; "mock" on the owner's published mocks, with results
# released at once (the same code, the same paths: see syft_runner.workspace.mounts).
RunMode = Literal["real", "mock"]


@dataclass(frozen=True)
class CodeFile:
    """A file to copy: its source and its path under code/ (POSIX)."""

    source: Path
    relpath: str


def _transliterated(text: str) -> str:
    """Latin letters with accents as their base letters (`Nüñez Café` -> `Nunez Cafe`): NFKD
    splits a letter from its combining marks, which are dropped; a few letters that do not
    decompose are spelled out. ASCII text is returned unchanged; other scripts are kept (and
    become `-` in a folder name)."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPELLED_OUT))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def job_folder_name(job_name: str) -> str:
    """The folder a job named `job_name` is written to (see the module docstring)."""
    slug = _UNSAFE_CHARS.sub("-", _transliterated(job_name)).strip("-.")
    slug = slug[:MAX_FOLDER_NAME].strip("-.")
    if slug:
        return slug
    return "job-" + hashlib.sha256(job_name.encode("utf-8")).hexdigest()[:12]


def submit_bash_job(
    syftbox_root: Path,
    submitter: str,
    owner: str,
    *,
    script: str,
    job_name: str,
    code_path: str | os.PathLike[str] | None = None,
    dependencies: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    mode: RunMode = "real",
    timeout_seconds: int | None = None,
    resources: Resources = None,
    description: str = "",
    package_index: PackageIndex | None = None,
    runtime: str | None = None,
) -> Path:
    """Write a bash job whose run.sh is `script`; optional `code_path` is copied under code/.
    `dependencies` (and the code's requirements.txt / pyproject.toml) are locked for the job
    image, resolved from `package_index` (default PyPI): see the module docstring."""
    run_sh = bash_run_script(script)
    code = collect_code(Path(code_path)) if code_path is not None else []
    config = _make_config(
        name=job_name,
        type="bash",
        submitted_by=submitter,
        dependencies=dependencies,
        datasets=datasets,
        mode=mode,
        timeout_seconds=timeout_seconds,
        resources=resources,
        description=description,
        runtime=runtime,
    )
    lock = environment_lock(config, code, package_index)
    return _write_job(syftbox_root, submitter, owner, config, run_sh, code, lock)


def submit_python_job(
    syftbox_root: Path,
    submitter: str,
    owner: str,
    *,
    code_path: str | os.PathLike[str],
    job_name: str,
    entrypoint: str | None = None,
    dependencies: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    mode: RunMode = "real",
    timeout_seconds: int | None = None,
    resources: Resources = None,
    description: str = "",
    package_index: PackageIndex | None = None,
    runtime: str | None = None,
) -> Path:
    """Write a python job running `entrypoint` from `code_path` (a .py file, a .ipynb notebook,
    or a folder holding the entrypoint). `dependencies` (and the code's requirements.txt /
    pyproject.toml) are locked for the job image, resolved from `package_index` (default PyPI):
    see the module docstring."""
    source = Path(code_path)
    code = collect_code(source)
    entry = _python_entrypoint(source, code, entrypoint)
    if entry.endswith(NOTEBOOK_SUFFIX):
        _check_notebook(next(f.source for f in code if f.relpath == entry), entry)
    config = _make_config(
        name=job_name,
        type="python",
        entrypoint=entry,
        submitted_by=submitter,
        dependencies=dependencies,
        datasets=datasets,
        mode=mode,
        timeout_seconds=timeout_seconds,
        resources=resources,
        description=description,
        runtime=runtime,
    )
    lock = environment_lock(config, code, package_index)
    return _write_job(syftbox_root, submitter, owner, config, python_run_script(entry), code, lock)


# -- dependencies ---------------------------------------------------------------------------------
def environment_lock(
    config: JobConfig, code: list[CodeFile], package_index: PackageIndex | None = None
) -> str | None:
    """The text of code/requirements.lock to write, resolved from what the job declares; None
    when it declares nothing (a lock the code brings itself is then only checked).
    DependencyError (uv's reason and a hint) or LockError; nothing is written either way."""
    files = {f.relpath: f.source for f in code}
    requested = declared_requirements(
        config.dependencies,
        _read_code_text(files.get(REQUIREMENTS_TXT)),
        _read_code_text(files.get(PYPROJECT_TOML)),
    )
    own_lock = files.get(LOCK_NAME)
    if not requested:
        if own_lock is not None:
            parse_lock(_read_code_text(own_lock) or "", f"{own_lock}")
        return None
    if own_lock is not None:
        raise LockError(
            f"{own_lock}: code/{LOCK_NAME} is written at submission from the declared "
            "dependencies; remove or rename this file"
        )
    return resolve_lock(requested, package_index)


def _read_code_text(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise LockError(f"{path}: not UTF-8 text") from None


# -- run.sh ---------------------------------------------------------------------------------------
def bash_run_script(script: str) -> str:
    """The script as run.sh: dedented, leading blank lines dropped, `#!/bin/bash` added if it has
    no shebang (a script written inside a triple-quoted string usually starts with a newline)."""
    if not isinstance(script, str) or not script.strip():
        raise JobError("the bash script is empty")
    lines = textwrap.dedent(script).split("\n")  # not splitlines(): \r is no line end to bash
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines[0].startswith("#!"):
        lines.insert(0, "#!/bin/bash")
    return "\n".join(lines).rstrip("\n") + "\n"


def python_run_script(entrypoint: str) -> str:
    """run.sh of a python job: exec the entrypoint, relative to the code folder (the cwd); a
    notebook through the runtime's notebook runner, its executed copy into outputs/."""
    target = shlex.quote(entrypoint)
    if entrypoint.endswith(NOTEBOOK_SUFFIX):
        executed = shlex.quote(f"outputs/{PurePosixPath(entrypoint).name}")
        return (
            "#!/bin/bash\n"
            "# Generated for a notebook job: runs every cell in order, its code folder as cwd,\n"
            "# and saves the executed notebook (outputs and plots) to outputs/. The runner is\n"
            "# the image's python3 (nbclient) even when an environment comes first on PATH.\n"
            f"if [ ! -f {NOTEBOOK_RUNNER} ]; then\n"
            '    echo "this runtime cannot run notebooks (runtime: scientific can)" >&2\n'
            "    exit 127\n"
            "fi\n"
            f"exec /usr/bin/python3 {NOTEBOOK_RUNNER} {target} {executed}\n"
        )
    return (
        "#!/bin/bash\n"
        "# Generated for a python job: the runner starts it with its code folder as cwd.\n"
        f'exec python3 {target} "$@"\n'
    )


def _check_notebook(path: Path, entry: str) -> None:
    """A notebook entrypoint must be a Jupyter notebook (JSON with a list of cells, nbformat 4):
    caught at submission rather than as a failed job."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise JobError(f"entrypoint {entry!r} is not a readable notebook (JSON): {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise JobError(f"entrypoint {entry!r} is not a Jupyter notebook: it has no list of cells")
    if data.get("nbformat") != 4:
        raise JobError(
            f"entrypoint {entry!r} is nbformat {data.get('nbformat')!r}; save it as nbformat 4 "
            "(any current Jupyter does)"
        )


def _python_entrypoint(source: Path, code: list[CodeFile], entrypoint: str | None) -> str:
    """The entrypoint relative to code/, checked to be a submitted .py file."""
    if not source.is_dir():
        if entrypoint is not None and entrypoint != source.name:
            raise JobError(
                f"entrypoint {entrypoint!r} does not match code_path {source}: a single file "
                "is its own entrypoint"
            )
        entry = source.name
    elif entrypoint is None:
        if not any(f.relpath == DEFAULT_ENTRYPOINT for f in code):
            raise JobError(
                f"{source}: no entrypoint given and the folder has no {DEFAULT_ENTRYPOINT}; "
                "pass entrypoint='<file>.py' (relative to the folder)"
            )
        entry = DEFAULT_ENTRYPOINT
    else:
        entry = normalize_relpath(entrypoint, what="entrypoint")
        if not any(f.relpath == entry for f in code):
            raise JobError(f"entrypoint {entrypoint!r} is not a file submitted from {source}")
    if PurePosixPath(entry).suffix not in ENTRYPOINT_SUFFIXES:
        raise JobError(f"entrypoint {entry!r} is not a .py file or a .ipynb notebook")
    return entry


# -- code -----------------------------------------------------------------------------------------
def _refuse_unless_plain(path: Path, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        kind = "a symlink"
    elif not stat.S_ISREG(st.st_mode):
        kind = "a device, fifo or socket"
    elif st.st_nlink > 1:
        kind = f"a hardlink ({st.st_nlink} links)"
    else:
        return
    raise UnsafeSubmissionError(
        f"{path}: refused, it is {kind}; code_path may hold only regular files and folders"
    )


def _skipped(name: str, top: bool) -> bool:
    # outputs/ at the top is what a local run wrote (the job's outputs are mounted there).
    return name.startswith(".") or name in _SKIPPED_FOLDERS or (top and name == "outputs")


def collect_code(code_path: Path) -> list[CodeFile]:
    """The files to copy from `code_path`, walked without following anything, within the
    submission limits. A single file maps to its own name under code/."""
    try:
        st = code_path.lstat()
    except FileNotFoundError:
        raise JobError(f"code_path {code_path} does not exist") from None
    if not stat.S_ISDIR(st.st_mode):
        _refuse_unless_plain(code_path, st)
        return [CodeFile(code_path, normalize_relpath(code_path.name, what="code file name"))]
    found: list[CodeFile] = []
    total = 0
    stack: list[tuple[Path, str, int]] = [(code_path, "", 0)]
    while stack:
        folder, prefix, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UnsafeSubmissionError(f"{folder}: nested deeper than {MAX_DEPTH} folders")
        with os.scandir(folder) as entries:
            for entry in entries:
                if _skipped(entry.name, top=not prefix):
                    continue
                relpath = normalize_relpath(f"{prefix}{entry.name}", what="code file name")
                entry_st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(entry_st.st_mode):
                    stack.append((Path(entry.path), relpath + "/", depth + 1))
                    continue
                _refuse_unless_plain(Path(entry.path), entry_st)
                found.append(CodeFile(Path(entry.path), relpath))
                total += entry_st.st_size
                if len(found) > MAX_SUBMISSION_FILES or total > MAX_SUBMISSION_BYTES:
                    raise UnsafeSubmissionError(
                        f"{code_path}: more than {MAX_SUBMISSION_FILES} files or "
                        f"{MAX_SUBMISSION_BYTES} bytes"
                    )
    return sorted(found, key=lambda f: f.relpath)


def _copy_file(src: Path, dst: Path) -> None:
    """Copy checking the opened file itself, so a file swapped for a link or fifo after the walk
    is refused rather than followed (O_NONBLOCK: opening a fifo must not hang)."""
    try:
        fd = open_regular(src)
    except OSError as exc:
        raise UnsafeSubmissionError(
            f"{src}: cannot be read safely: {exc.strerror or exc}"
        ) from None
    with os.fdopen(fd, "rb") as fin:
        _refuse_unless_plain(src, os.fstat(fin.fileno()))
        dst.parent.mkdir(parents=True, exist_ok=True)
        with dst.open("xb") as fout:
            shutil.copyfileobj(fin, fout, _CHUNK)
            fout.flush()
            os.fsync(fout.fileno())
    os.chmod(dst, 0o644)


# -- config and folder ----------------------------------------------------------------------------
def _make_config(*, name: str, **fields: Any) -> JobConfig:
    for key in ("datasets", "dependencies"):
        value = fields.pop(key, None)
        if isinstance(value, str):
            raise JobError(f"job {name!r}: {key} must be a list of strings, not one string")
        if value is not None:
            fields[key] = list(value)
    if "datasets" in fields:
        # non-strings are left for pydantic to name
        fields["datasets"] = [
            _dataset_path(d) if isinstance(d, str) else d for d in fields["datasets"]
        ]
    try:
        return JobConfig.model_validate({"name": name, "submitted_at": utcnow(), **fields})
    except ValidationError as exc:
        raise JobError(f"job {name!r}: invalid job config: {describe_problems(exc)}") from None


def _dataset_path(path: str) -> str:
    clean = normalize_relpath(path, what="dataset path")
    if not clean:
        raise UnsafePathError(f"dataset path {path!r} names the whole datasite; name a folder")
    return clean


def _jobs_parent(syftbox_root: Path, owner: str, submitter: str) -> Path:
    """`<owner>/jobs/<submitter>/`: the owner's datasite must exist; nothing on the way may be
    a symlink (it would lead the job folder outside the datasite)."""
    validate_email(owner)
    validate_email(submitter)
    owner_root = Path(syftbox_root) / owner
    if owner_root.is_symlink() or not owner_root.is_dir():
        raise JobError(
            f"no datasite for {owner} at {owner_root}: the owner's datasite must exist locally "
            "(e.g. a synced copy) before jobs can be submitted to it"
        )
    parent = owner_root / "jobs" / submitter
    for path in (parent.parent, parent):
        if path.is_symlink():
            raise UnsafePathError(f"{path} is a symlink; refusing to write a job through it")
    return parent


def _check_unique(parent: Path, folder: str, job_name: str) -> None:
    if not parent.is_dir():
        return
    for existing in sorted(parent.iterdir()):
        if existing.name.startswith("."):
            continue
        if existing.name.casefold() == folder.casefold():
            raise JobError(
                f"{existing}: a job with folder name {existing.name!r} already exists, so job "
                f"name {job_name!r} is taken; choose another job_name"
            )
        try:
            name = load_config(existing / "config.yaml").name
        except JobError:
            continue
        if name == job_name:
            raise JobError(
                f"{existing}: a job named {job_name!r} already exists; choose another job_name"
            )


def _write_job(
    syftbox_root: Path,
    submitter: str,
    owner: str,
    config: JobConfig,
    run_sh: str,
    code: list[CodeFile],
    lock: str | None = None,
) -> Path:
    parent = _jobs_parent(syftbox_root, owner, submitter)
    folder = job_folder_name(config.name)
    _check_unique(parent, folder, config.name)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder}.", suffix=".tmp", dir=parent))
    try:
        atomic_write_text(tmp / "run.sh", run_sh, mode=0o755)
        atomic_write_text(tmp / "config.yaml", config.to_yaml())
        for item in code:
            _copy_file(item.source, tmp / CODE_DIR / item.relpath)
        if lock is not None:
            atomic_write_text(tmp / CODE_DIR / LOCK_NAME, lock)
        walk_submission(tmp)  # the owner's side must accept what we wrote
        load_config(tmp / "config.yaml")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        _check_unique(parent, folder, config.name)  # another submission may have raced us
        target = parent / folder
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
