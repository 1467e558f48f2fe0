"""OpenMined's Syft job gateway, served through ours: the folder layout is an adapter at the edge.

Scientists who use OpenMined's clients (syft-rds, syft-client) submit into
`<owner>/app_data/job/inbox/<ds>/[v1/]JOB/` and read state and results from
`.../review/<ds>/[v1/]JOB/` (syft_core.syftjob). The owner's runner mirrors each such job into
our own gateway as `jobs/<ds>/syftjob-p<N>-<slug>-<digest>/`, so one executor, scheduler, crash
recovery, review (`show`, `approve --dataset`, `release`) and event log serve both. Each pass
(`SyftJobGateway.sync`, from the serve loop) keeps the two sides in step from the folders alone:

    their state.yaml                       the mirror
    none                             ->    `pending` written (their runner's scan does the same)
    pending                          ->    written from the submission (rewritten while it waits)
    pending                          <-    approved / rejected with `syft-runner approve|reject`
    approved (their client, syft-bg) ->    rewritten from the submission and approved with the hash
                                           of exactly those bytes; refused if a submitted file is
                                           newer than `approved_at`
    rejected                         ->    rejected (if it has not started)
    running                          <-    running
    done / failed                    <-    done, once released (`syft-runner release`), or at once
                                           with `syft_job_share_on_completion`

What runs is the mirror, never the inbox. Its run.sh is generated for python jobs (their run.sh
installs packages from the network next to the data; here what the job declares is locked when
it arrives, built before it runs, and the job has no network) and, for bash jobs, is theirs after a
`cd` to the job folder, where their runner starts bash jobs. A mirror approved with their client is
approved with the hash of the bytes just rendered from the submission, so nothing anyone else
wrote into the mirror is ever what runs; one approved with ours is bound to what `show` printed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from syft_core.atomic import atomic_write_bytes, atomic_write_text
from syft_core.datasite import Datasite
from syft_core.dependencies import PackageIndex, resolve_lock
from syft_core.errors import JobError, SyftError
from syft_core.filestamp import Stamp, lstamp, stamp
from syft_core.jobs import ApprovedMarker, DoneMarker, JobFolder, Outcome, Status
from syft_core.jobs.config import SYFT_JOB_PROTOCOL, JobConfig
from syft_core.jobs.lock import (
    LOCK_RELPATH,
    PYPROJECT_TOML,
    REQUIREMENTS_TXT,
    Requested,
    declared_requirements,
)
from syft_core.jobs.markers import read_marker
from syft_core.jobs.snapshot import digest_entries
from syft_core.jobs.submission import CODE_DIR, UnsafeSubmissionError, open_submitted
from syft_core.release import read_release_report
from syft_core.submit import job_folder_name
from syft_core.syftjob import (
    Scanner,
    SyftJobConfig,
    SyftJobRef,
    SyftJobState,
    mark_running,
    now_stamp,
    read_config,
    submission_files,
    write_received,
    write_results,
    write_state,
)
from syft_core.syftjob.state import STATE_FILE
from syft_runner.sandbox.container import JOB_DIR
from syft_runner.watcher import VERIFY_SECONDS

log = logging.getLogger(__name__)

MIRROR_PREFIX = "syftjob"
# A file written by the scientist's sync just before the approval may carry a later mtime by up
# to the resolution of the two clocks' stamps; one machine's clock needs no more.
MTIME_SLACK = timedelta(seconds=1)
APPROVED_WITH = "syft-job"  # ApprovedMarker.method prefix for approvals made with their clients


def mirror_name(ref: SyftJobRef) -> str:
    """The mirror's folder: readable, protocol-tagged, unique per JOB name (which is free text)."""
    slug = re.sub("-{2,}", "-", job_folder_name(ref.name))[:60].strip("-.") or "job"
    digest = hashlib.sha256(ref.name.encode("utf-8")).hexdigest()[:8]
    return f"{MIRROR_PREFIX}-p{ref.protocol}-{slug}-{digest}"


def mirror_of(ref: SyftJobRef, syftbox: Path) -> JobFolder:
    return JobFolder.at(syftbox, ref.owner, ref.submitter, mirror_name(ref))


@dataclass(frozen=True)
class Rendered:
    """A mirror's files, rendered in memory from one read of the Syft submission."""

    files: dict[str, bytes]  # relpath in the mirror -> bytes
    newest_mtime: datetime  # of the submission's files

    @property
    def content_hash(self) -> str:
        """The hash the mirror has once written: what its approval binds to."""
        entries = sorted(
            (rel, len(data), hashlib.sha256(data).hexdigest()) for rel, data in self.files.items()
        )
        return digest_entries(entries)

    def write(self, folder: Path) -> None:
        """Write the mirror: exactly these files (anything else under code/ is removed).
        UnsafeSubmissionError, and nothing written or removed, if a link is found in the mirror:
        writing or deleting through it would reach files outside the job."""
        _refuse_links(folder)
        code = folder / CODE_DIR
        if code.is_dir() and not code.is_symlink():
            for path in sorted(code.rglob("*"), reverse=True):
                rel = path.relative_to(folder).as_posix()
                if path.is_dir() and not path.is_symlink():
                    if not any(name.startswith(rel + "/") for name in self.files):
                        path.rmdir()
                elif rel not in self.files:
                    path.unlink()
        for rel, data in self.files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(folder / rel, data)


@dataclass
class SyftJobGateway:
    """Keeps one datasite's Syft job gateway and its mirrors in step (see the module doc)."""

    datasite: Datasite
    lock_dir: Path  # the runner's own: locks resolved per declared list, rebuildable
    index: PackageIndex = field(default_factory=PackageIndex)
    datasets: list[str] = field(default_factory=list)  # for approvals made with their clients
    share_on_completion: bool = False
    # Per job, the submission's signature when it was last rendered or verified: an unchanged
    # folder is not read again every pass. Memory only; losing it costs one read per job.
    _seen: dict[str, Signature] = field(default_factory=dict)
    _shown: dict[str, str] = field(default_factory=dict)  # ref key -> hash rendered for review
    # ref key -> (the submission's signature, the content hash of its render): _mirrors
    _renders: dict[str, tuple[Signature, str]] = field(default_factory=dict)
    # Per job, their state.yaml as last parsed, keyed by the file's identity (inode, mtime,
    # size: every write replaces the file): a finished job costs one lstat per pass, not a parse.
    _states: dict[str, tuple[Stamp | None, SyftJobState]] = field(default_factory=dict)
    _scanner: Scanner | None = None
    # Jobs whose state is done or failed: terminal (only this owner's tools write their state.yaml,
    # and never after that), so a pass skips them without even an lstat. Dropped every
    # VERIFY_SECONDS, when each is looked at again; memory only, empty at each start.
    _terminal: set[str] = field(default_factory=set)
    _verified: float = field(default_factory=time.monotonic)

    @property
    def owner(self) -> str:
        return self.datasite.email

    def sync(self) -> None:
        """One pass over every Syft job. One job's fault never stops the pass: it is logged, and
        written to that job's stderr.txt when it ends the job."""
        if self._scanner is None:
            self._scanner = Scanner(self.datasite.root)
        if time.monotonic() - self._verified >= VERIFY_SECONDS:
            self._terminal.clear()
            self._verified = time.monotonic()
        for ref in self._scanner.scan():
            if ref.key in self._terminal:
                continue
            try:
                self._sync_one(ref)
            except (SyftError, OSError) as exc:
                log.warning("syft job not served", extra={"job": ref.key, "error": str(exc)})

    def _sync_one(self, ref: SyftJobRef) -> None:
        state = self._state_of(ref)
        if state.status in ("done", "failed"):
            self._terminal.add(ref.key)  # not looked at again (see _terminal)
            return
        mirror = mirror_of(ref, self.datasite.root.parent)
        if state.status == "pending":
            self._pending(ref, state, mirror)
        elif state.status == "rejected":
            self._rejected(ref, state, mirror)
        else:
            self._approved(ref, state, mirror)

    def _state_of(self, ref: SyftJobRef) -> SyftJobState:
        """Their state, parsed again only when state.yaml was replaced; `pending` (and their
        review rule) written for a new job."""
        path = ref.review / STATE_FILE
        cached = self._states.get(ref.key)
        if cached is not None and cached[0] == lstamp(path):
            return cached[1]
        state = write_received(ref)
        self._states[ref.key] = (lstamp(path), state)
        return state

    # -- before approval ----------------------------------------------------------------------
    def _pending(self, ref: SyftJobRef, state: SyftJobState, mirror: JobFolder) -> None:
        ours = mirror.state() if mirror.path.is_dir() else None
        if ours is None or (ours.status is Status.INBOX and ours.approved is None):
            try:
                signature = _signature(ref)
                if ours is not None and self._seen.get(ref.key) == signature:
                    return  # nothing changed since the mirror was written
                rendered = self.render(ref)
            except JobError as exc:  # their runner's scan rejects a malformed job too
                reason = f"refused at arrival: {self._public(exc)}"
                write_state(ref, _rejected(state, self.owner, reason))
                return
            if _hash_or_none(mirror) != rendered.content_hash:
                rendered.write(mirror.path)
            self._shown[ref.key] = rendered.content_hash
            self._seen[ref.key] = signature
        elif ours.status in (Status.APPROVED, Status.RUNNING, Status.DONE):
            # A done mirror's state carries no approval (a short job approved with ours may be
            # done before this pass): its marker says who approved it.
            approved = ours.approved or _approval_of(mirror)
            if approved is not None and self._mirrors(ref, approved.content_hash):
                write_state(
                    ref, _approved(state, approved.by, approved.at, "manual", approved.reason)
                )
        elif ours.status is Status.REJECTED and ours.rejected is not None:
            write_state(ref, _rejected(state, ours.rejected.by, ours.rejected.reason))

    def _rejected(self, ref: SyftJobRef, state: SyftJobState, mirror: JobFolder) -> None:
        if not mirror.path.is_dir():
            return
        if mirror.state().status in (Status.INBOX, Status.APPROVED):
            why = state.review_reason or "rejected with OpenMined's client"
            mirror.reject(self.owner, why)

    # -- after approval -----------------------------------------------------------------------
    def _approved(self, ref: SyftJobRef, state: SyftJobState, mirror: JobFolder) -> None:
        ours = mirror.state() if mirror.path.is_dir() else None
        if ours is not None and ours.status is Status.DONE:
            self._finished(ref, state, mirror)
            return
        if ours is not None and ours.status is Status.RUNNING:
            if state.status != "running":
                mark_running(ref, state)
            return
        if ours is not None and ours.status is Status.REJECTED:
            if ours.rejected is not None:
                self._refuse(ref, state, ours.rejected.reason)
            return
        waiting = ours is not None and ours.status is Status.APPROVED
        try:
            signature = _signature(ref)
            if waiting and self._seen.get(ref.key) == signature:
                return  # verified unchanged since it was approved; the executor runs it
            rendered = self.render(ref)
            # Not approved with ours yet: what this gateway rendered for review before their
            # approval (memory only: after a restart the mtime check alone remains).
            shown = self._shown.get(ref.key) if ours is None or ours.approved is None else None
            self._check_unchanged(state, rendered, ours.approved if ours else None, shown)
        except JobError as exc:
            if ours is not None and ours.status in (Status.INBOX, Status.APPROVED):
                mirror.reject(self.owner, str(exc))  # their side is final: never run it later
            self._refuse(ref, state, str(exc))
            return
        self._seen[ref.key] = signature
        if waiting:
            return
        rendered.write(mirror.path)
        previous = ours.approved if ours else None
        mirror.approve(
            self.owner,
            expected_hash=rendered.content_hash,
            reason=state.review_reason,
            method=previous.method if previous else _their_method(state),
            datasets=previous.datasets if previous else list(self.datasets),
        )

    def _check_unchanged(
        self,
        state: SyftJobState,
        rendered: Rendered,
        previous: ApprovedMarker | None,
        shown: str | None = None,
    ) -> None:
        """JobError when the submission changed after it was approved: a file written since
        (its mtime), or anything else (a file deleted moves no mtime): then it is no longer
        what was approved with ours (`previous`) or shown for review in the mirror (`shown`)."""
        approved_at = state.approved_at_time()
        if approved_at is not None and rendered.newest_mtime > approved_at + MTIME_SLACK:
            raise JobError(
                f"not run: the submission changed after it was approved at {state.approved_at} "
                f"(a file was written at {rendered.newest_mtime.isoformat()}); submit it again"
            )
        if shown is not None and shown != rendered.content_hash:
            raise JobError(
                "not run: the submission is no longer what was shown for review "
                f"({shown[:19]}…); submit it again"
            )
        if previous is not None and previous.content_hash != rendered.content_hash:
            raise JobError(
                "not run: the submission is no longer what was approved "
                f"({previous.content_hash[:19]}…); submit it again"
            )

    def _refuse(self, ref: SyftJobRef, state: SyftJobState, reason: str) -> None:
        log.warning("syft job refused", extra={"job": ref.key, "reason": reason})
        write_results(
            ref,
            stdout=b"",
            stderr=f"syft-runner: {self._public(reason)}\n".encode(),
            return_code=-1,
            outputs=None,
            timed_out=False,
            owner_only_outputs=True,
        )

    def _finished(self, ref: SyftJobRef, state: SyftJobState, mirror: JobFolder) -> None:
        done = mirror.state()
        if done.done is None:
            return
        approval = _approval_of(mirror)
        ran = done.done.content_hash or (approval.content_hash if approval else None)
        shared = self.share_on_completion and self._mirrors(ref, ran)
        if done.released is None and not shared:
            if state.status != "running":  # results wait for the owner's release
                mark_running(ref, state)
            return
        # A partial release (`release --only`) sends only the files it names; the rest stays.
        partial = done.released is not None and done.released.scope == "partial"
        allowed = set(read_release_report(mirror).released) if partial else None
        with tempfile.TemporaryDirectory(prefix="syftjob-release-") as tmp:
            write_results(
                ref,
                stdout=_released_log(mirror.stdout_path, "logs/stdout.txt", allowed),
                stderr=_released_log(mirror.stderr_path, "logs/stderr.txt", allowed)
                + _runner_note(done.done),
                return_code=_return_code(done.done),
                outputs=_released_outputs(mirror, allowed, Path(tmp)),
                timed_out=done.done.outcome is Outcome.TIMED_OUT,
                owner_only_outputs=False,
            )

    def _mirrors(self, ref: SyftJobRef, content_hash: str | None) -> bool:
        """Whether the folder under the mirror's name holds their submission as this gateway
        renders it (`content_hash`: what was approved, or ran). Only then is its approval theirs
        and its results theirs on completion: a folder of our own protocol given that name by a
        submitter is not their job, whatever its approval says."""
        signature = _signature(ref)
        cached = self._renders.get(ref.key)
        if cached is None or cached[0] != signature:
            try:
                cached = self._renders[ref.key] = (signature, self.render(ref).content_hash)
            except JobError as exc:  # e.g. the index unreachable: asked again next pass
                log.warning("syft job not rendered", extra={"job": ref.key, "error": str(exc)})
                return False
        if content_hash is None or cached[1] != content_hash:
            log.warning("not the mirror of their job: left alone", extra={"job": ref.key})
            return False
        return True

    def _public(self, message: object) -> str:
        """A message for the scientist: the owner's folders named relative to the syftbox."""
        text = str(message)
        root = self.datasite.root.parent
        for prefix in sorted({str(root.resolve()), str(root)}, key=len, reverse=True):
            text = text.replace(prefix + "/", "").replace(prefix, "<syftbox>")
        return text

    # -- rendering ----------------------------------------------------------------------------
    def render(self, ref: SyftJobRef) -> Rendered:
        """The mirror of `ref` as files. JobError (naming the file) for a malformed submission or
        dependencies that cannot be resolved for the job image."""
        config = read_config(ref)
        origin, newest = _read_submission(ref)
        files = {rel: data for rel, data in origin.items() if rel.startswith(f"{CODE_DIR}/")}
        run_sh = origin["run.sh"].decode("utf-8", "replace")
        deps = config.dependencies if config.type == "python" else []
        requested = declared_requirements(
            deps, _text(origin, REQUIREMENTS_TXT), _text(origin, PYPROJECT_TOML)
        )
        if requested:
            files[LOCK_RELPATH] = self._lock([r.requirement for r in requested]).encode()
        files["run.sh"] = _run_script(ref, config, run_sh).encode()
        files["config.yaml"] = _config(ref, config, deps, newest).to_yaml().encode()
        return Rendered(files, newest)

    def _lock(self, requirements: list[str]) -> str:
        """The lock of `requirements` for the job image: resolved once per list (uv, the index
        the runner builds environments from) and kept in the runner's state folder, so a mirror
        rendered again has the same bytes, and so the same hash, as the one approved."""
        key = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:32]
        cached = self.lock_dir / f"{key}.lock"
        if cached.is_file() and not cached.is_symlink():
            return cached.read_text()
        text = resolve_lock([Requested(r, "config.yaml") for r in requirements], self.index)
        self.lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write_text(cached, text)
        return text


# -- helpers -----------------------------------------------------------------------------------
def _refuse_links(folder: Path) -> None:
    """The mirror lives in a folder the scientist may write to: refuse to use it if it, its
    parent or anything in it is a link (a sync never makes one; someone planted it)."""
    for path in (folder.parent, folder):
        if path.is_symlink():
            raise UnsafeSubmissionError(f"{path}: a link where a Syft job's mirror goes; refused")
    for root, dirs, files in os.walk(folder):  # links are listed, never followed
        for name in [*dirs, *files]:
            if (Path(root) / name).is_symlink():
                raise UnsafeSubmissionError(
                    f"{Path(root) / name}: a link in a Syft job's mirror; nothing written"
                )


Signature = tuple[tuple[str, Stamp], ...]


def _signature(ref: SyftJobRef) -> Signature:
    """What changes when any submitted file does: names, sizes, mtimes, inodes (no reading)."""
    found = []
    for rel, path in submission_files(ref):
        st = path.lstat()
        found.append((rel, stamp(st)))
    return tuple(found)


def _their_method(state: SyftJobState) -> str:
    # Their clients write "manual" or "auto"; anything else is not copied into our records.
    method = state.approval_method if state.approval_method in ("manual", "auto") else "unknown"
    return f"{APPROVED_WITH}:{method}"


def _read_submission(ref: SyftJobRef) -> tuple[dict[str, bytes], datetime]:
    """Every submitted file's bytes, each opened beneath the job folder without following a
    link, and the newest mtime among them."""
    files: dict[str, bytes] = {}
    newest = 0.0
    root = os.open(ref.inbox, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for rel, _ in submission_files(ref):
            fd = open_submitted(root, rel)
            try:
                st = os.fstat(fd)
                newest = max(newest, st.st_mtime)
                with os.fdopen(os.dup(fd), "rb") as fh:
                    files[rel] = fh.read()
            finally:
                os.close(fd)
    finally:
        os.close(root)
    if "run.sh" not in files or "config.yaml" not in files:
        raise JobError(f"{ref.inbox}: a Syft job needs run.sh and config.yaml")
    return files, datetime.fromtimestamp(newest, UTC)


def _text(files: dict[str, bytes], name: str) -> str | None:
    data = files.get(f"{CODE_DIR}/{name}")
    return None if data is None else data.decode("utf-8", "replace")


def _run_script(ref: SyftJobRef, config: SyftJobConfig, theirs: str) -> str:
    if config.type == "bash":
        return (
            "#!/bin/bash\n"
            f"# A Syft bash job (OpenMined, protocol {ref.protocol}): their runner starts it in\n"
            "# the job folder; its script follows, unchanged.\n"
            f"cd {JOB_DIR}\n{theirs}"
        )
    return (
        "#!/bin/bash\n"
        f"# Generated for a Syft python job (OpenMined, protocol {ref.protocol}) in place of its\n"
        "# run.sh, which installs its packages from the network: here they were locked when it\n"
        "# arrived and are built before it runs. It runs in code/, as under their runner.\n"
        "set -euo pipefail\n"
        'export PYTHONPATH=".:${PYTHONPATH:-}"\n'
        f"exec python {shlex.quote(config.entrypoint or 'main.py')}\n"
    )


def _config(ref: SyftJobRef, config: SyftJobConfig, deps: list[str], newest: datetime) -> JobConfig:
    try:
        submitted = datetime.fromisoformat(config.submitted_at or "")
    except ValueError:
        submitted = newest
    try:
        return JobConfig(
            name=config.name or ref.name,
            type=config.type,
            entrypoint=config.entrypoint if config.type == "python" else None,
            dependencies=deps,
            submitted_at=submitted,
            submitted_by=ref.submitter,
            description=f"Syft job {ref.name!r} (OpenMined, protocol {ref.protocol})",
            protocol=SYFT_JOB_PROTOCOL,
        )
    except ValidationError as exc:  # their fields, which ours limit further: refused, alone
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or 'config'}: {e['msg']}"
            for e in exc.errors()
        )
        raise JobError(f"{ref.key}: its config cannot run here: {problems}") from None


def _hash_or_none(job: JobFolder) -> str | None:
    try:
        return job.content_hash()
    except (JobError, OSError):
        return None


def _approval_of(job: JobFolder) -> ApprovedMarker | None:
    try:
        return read_marker(job.marker_path("approved"), ApprovedMarker)
    except JobError:
        return None


def _read_capped(path: Path, cap: int = 64 * 1024 * 1024) -> bytes:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return b""
    if not stat.S_ISREG(st.st_mode):
        return b""
    with path.open("rb") as fh:
        return fh.read(cap)


def _released_log(path: Path, relpath: str, allowed: set[str] | None) -> bytes:
    if allowed is None or relpath in allowed:
        return _read_capped(path)
    return b"syft-runner: withheld by the owner (see the release decisions)\n"


def _released_outputs(mirror: JobFolder, allowed: set[str] | None, scratch: Path) -> Path | None:
    """The outputs folder to send: all of it, or a copy of just the released files."""
    outputs = mirror.outputs_dir
    if not outputs.is_dir() or outputs.is_symlink():
        return None
    if allowed is None:
        return outputs
    for relpath in sorted(allowed):
        if not relpath.startswith("outputs/"):
            continue
        source = mirror.path / relpath
        if source.is_symlink() or not source.is_file():
            continue
        target = scratch / relpath.removeprefix("outputs/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target, follow_symlinks=False)
    return scratch


def _return_code(done: DoneMarker) -> int:
    # Their runner: the process's code, or -1 when it timed out or the runner failed.
    if done.outcome in (Outcome.SUCCEEDED, Outcome.FAILED) and done.exit_code is not None:
        return done.exit_code
    return -1


def _runner_note(done: DoneMarker) -> bytes:
    if done.outcome in (Outcome.SUCCEEDED, Outcome.FAILED):
        return b""
    return f"\nsyft-runner: {done.outcome.value}: {done.message}\n".encode()


def _approved(
    state: SyftJobState, by: str, at: datetime, method: str, reason: str | None
) -> SyftJobState:
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return state.model_copy(
        update={
            "status": "approved",
            "approved_by": by,
            "approved_at": stamp,
            "approval_method": method,
            "review_reason": reason,
        }
    )


def _rejected(state: SyftJobState, by: str, reason: str | None) -> SyftJobState:
    return state.model_copy(
        update={
            "status": "rejected",
            "rejected_by": by,
            "rejected_at": now_stamp(),
            "review_reason": reason,
        }
    )
