"""What `show JOB` says about a job's environment: requested versus resolved packages (version,
download size, who pulled each in), totals, the packages this datasite never approved before,
and whether the runner has the environment cached. Everything comes from the one read of the
submission that `show` prints and hashes (syft_core.jobs.snapshot), except the history (other
approved jobs, each trusted only while its folder still holds what was approved) and the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from syft_core.errors import JobError, SyftError
from syft_core.jobs import JobFolder, Snapshot, iter_job_folders, submission_hash
from syft_core.jobs.lock import (
    LOCK_RELPATH,
    PYPROJECT_TOML,
    REQUIREMENTS_TXT,
    EnvLock,
    LockError,
    Pin,
    Requested,
    declared_requirements,
    parse_lock,
)
from syft_runner.sandbox.envs import MANIFEST, CacheEntry, EnvManifest, entry_last_used

MAX_LOCK_READ = 1024 * 1024


@dataclass(frozen=True)
class EnvReview:
    lock: EnvLock | None
    requested: list[Requested]
    problem: str | None = None  # why the lock or the declarations cannot be used


def review_of(snapshot: Snapshot) -> EnvReview:
    """The job's lock and declarations, from the bytes `show` read."""
    try:
        config = snapshot.config()
        requested = declared_requirements(
            config.dependencies,
            _text(snapshot, f"code/{REQUIREMENTS_TXT}"),
            _text(snapshot, f"code/{PYPROJECT_TOML}"),
        )
    except JobError as exc:
        return EnvReview(None, [], str(exc))
    text = _text(snapshot, LOCK_RELPATH)
    if text is None:
        problem = (
            f"dependencies are declared but there is no {LOCK_RELPATH}: the runner will not run it"
            if requested
            else None
        )
        return EnvReview(None, requested, problem)
    try:
        return EnvReview(parse_lock(text), requested)
    except LockError as exc:
        return EnvReview(None, requested, str(exc))


def _text(snapshot: Snapshot, relpath: str) -> str | None:
    found = snapshot.file(relpath)
    return None if found is None else found.text()


def approved_before(datasite_root: Path, exclude: Path) -> set[tuple[str, str, str]]:
    """(name, version, file hash) of every package file locked by another job of this datasite
    that the owner approved and whose folder still holds exactly what was approved (a submitter
    cannot add to this list by editing an old job). By file hash, not version alone: an index
    can serve a new file under a version approved before (PyPI lets a release gain files)."""
    seen: set[tuple[str, str, str]] = set()
    for job in iter_job_folders(datasite_root):
        if job.path == exclude or not (job.path / LOCK_RELPATH).is_file():
            continue
        try:
            approved = job.state().approved
            if approved is None or submission_hash(job.path) != approved.content_hash:
                continue
            lock = parse_lock((job.path / LOCK_RELPATH).read_text(encoding="utf-8"))
        except (SyftError, OSError, UnicodeDecodeError):
            continue
        seen.update((p.name, p.version, h) for p in lock.pins for h in p.hashes)
    return seen


def _via(pin: Pin, lock: EnvLock, requested: list[Requested]) -> str:
    """Why the lock says `pin` is there: the submitter's own comment, so a claim the lock and the
    job's requirements do not back (a package 'pulled in' by one that is not locked, 'requested'
    but never asked for) is marked as such."""
    locked = {p.name for p in lock.pins}
    asked = {r.name for r in requested}
    shown = [
        v
        if (v == "requested" and pin.name in asked) or (v != "requested" and v in locked)
        else f"{v} (UNBACKED)"
        for v in pin.via
    ]
    return ", ".join(shown) or "?"


def _approved(pin: Pin, history: set[tuple[str, str, str]]) -> str:
    """ "yes" when every file the pin allows was approved before; "NEW" for a package or version
    never approved; "NEW FILES" for an approved version that now allows other files."""
    if all((pin.name, pin.version, h) in history for h in pin.hashes):
        return "yes"
    if any((name, version) == (pin.name, pin.version) for name, version, _ in history):
        return "NEW FILES"
    return "NEW"


def cached_for(cache_dir: Path, lock: EnvLock) -> list[CacheEntry]:
    """The runner's cached environments of `lock` (any image), read without changing anything."""
    found: list[CacheEntry] = []
    if not cache_dir.is_dir():
        return found
    for entry in sorted(cache_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        try:
            manifest = EnvManifest.model_validate_json((entry / MANIFEST).read_bytes())
        except (OSError, ValueError):
            continue
        if manifest.lock_digest == lock.digest:
            found.append(CacheEntry(entry.name, entry, manifest, entry_last_used(entry)))
    return found


def review_lines(job: JobFolder, snapshot: Snapshot, cache_dir: Path | None) -> list[str]:
    """The environment section of `show`; empty for a job that declares nothing."""
    review = review_of(snapshot)
    if review.lock is None and not review.requested and review.problem is None:
        return ["environment:  none (the image's own packages)"]
    lines: list[str] = []
    if review.requested:
        lines.append("requested:")
        lines += [f"  {r.requirement}   ({r.source})" for r in review.requested]
    if review.lock is None:
        lines.append(f"environment:  UNUSABLE: {review.problem}")
        return lines
    lock = review.lock
    history = approved_before(job.datasite_root, job.path)
    lines.append(f"environment:  {LOCK_RELPATH}: {len(lock.pins)} packages for {lock.target}")
    rows = [("package", "version", "download", "pulled in by", "approved before")]
    for pin in lock.pins:
        rows.append(
            (
                pin.name,
                pin.version,
                _size(pin.size),
                _via(pin, lock, review.requested),
                _approved(pin, history),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append(
            ("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))).rstrip()
        )
    unknown = sum(1 for p in lock.pins if p.size is None)
    total = sum(p.size or 0 for p in lock.pins)
    note = f" ({unknown} sizes unknown)" if unknown else ""
    lines.append(f"  total: {len(lock.pins)} packages, {_size(total)} to download{note}")
    locked = {p.name for p in lock.pins}
    missing = sorted({r.name for r in review.requested} - locked)
    if missing:
        lines.append(f"  ! requested but NOT in the lock: {', '.join(missing)}")
    new = [f"{p.name} {p.version}" for p in lock.pins if _approved(p, history) != "yes"]
    lines.append(
        f"  not approved before in this datasite: {', '.join(new)}"
        if new
        else "  every package was approved before in this datasite"
    )
    lines += _cache_lines(cache_dir, lock)
    return lines


def _cache_lines(cache_dir: Path | None, lock: EnvLock) -> list[str]:
    entries = cached_for(cache_dir, lock) if cache_dir is not None else []
    if not entries:
        return ["  cache: not built yet; the runner builds it (wheels only, no data) first"]
    lines = []
    for entry in entries:
        assert entry.manifest is not None
        used = datetime.fromtimestamp(entry.last_used, UTC).isoformat(timespec="seconds")
        lines.append(
            f"  cache: built for image {entry.manifest.image_id[:19]}, "
            f"{_size(entry.manifest.bytes)} installed, last used {used}"
        )
    return lines


def _size(size: int | None) -> str:
    if size is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
