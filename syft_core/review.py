"""What the owner was shown of a job, and what they decided on, kept to re-show what changed.

`syft-runner show` records the snapshot it printed in
`<datasite>/.syft/reviews/<submitter>/<job>.json`
(a dot-folder: never synced): the content hash, and each file's hash and, for text files, the text.
`approve` without `--hash` compares the submission now with that record and shows the difference
before asking, so a file swapped between review and approval cannot pass unseen.

Approving and rejecting record the content decided on beside it (`<job>.approved.json`,
`<job>.rejected.json`), so that when the same submitter's job of that name comes back (changed
after approval, or submitted again), `show` prints what differs from the last approved and the
last rejected version.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ValidationError

from syft_core.atomic import atomic_write_text
from syft_core.jobs.snapshot import Snapshot
from syft_core.names import visible

REVIEWS_DIR = ".syft/reviews"
MAX_RECORDED_TEXT = 8 * 1024 * 1024  # texts beyond this total are recorded by hash only
MAX_DIFF_LINES = 400


class ReviewedFile(BaseModel):
    sha256: str
    size: int
    text: str | None = None


class Review(BaseModel):
    content_hash: str
    files: dict[str, ReviewedFile]


Decision = Literal["approved", "rejected"]


class ReviewedJob(Protocol):
    """What a review record is filed under; syft_core.jobs.folder.JobFolder, which records its
    decisions here (so this module cannot import it back)."""

    @property
    def datasite_root(self) -> Path: ...
    @property
    def submitter(self) -> str: ...
    @property
    def name(self) -> str: ...


def review_path(job: ReviewedJob, decision: Decision | None = None) -> Path:
    suffix = f".{decision}.json" if decision else ".json"
    return job.datasite_root / REVIEWS_DIR / job.submitter / f"{job.name}{suffix}"


def record_review(job: ReviewedJob, snapshot: Snapshot, decision: Decision | None = None) -> None:
    """Remember `snapshot` as what the owner was shown of `job` (or, with `decision`, what they
    approved or rejected)."""
    budget = MAX_RECORDED_TEXT
    files: dict[str, ReviewedFile] = {}
    for f in snapshot.files:
        text = f.text()
        if text is not None and len(text) <= budget:
            budget -= len(text)
        else:
            text = None
        files[f.relpath] = ReviewedFile(sha256=f.sha256, size=f.size, text=text)
    review = Review(content_hash=snapshot.content_hash, files=files)
    path = review_path(job, decision)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, review.model_dump_json())


def last_review(job: ReviewedJob, decision: Decision | None = None) -> Review | None:
    """What `show` last printed of `job` (with `decision`: the content last approved or
    rejected); None if there is none (or the record is unreadable)."""
    try:
        return Review.model_validate(json.loads(review_path(job, decision).read_text()))
    except (OSError, ValueError, ValidationError):
        return None


def changes(review: Review, snapshot: Snapshot, label: str = "shown") -> list[str]:
    """Lines describing how `snapshot` differs from what was shown: each added, removed or
    changed file, with a unified diff of text files (hidden characters escaped)."""
    lines: list[str] = []
    now = {f.relpath: f for f in snapshot.files}
    for relpath in sorted(set(review.files) | set(now)):
        before, after = review.files.get(relpath), now.get(relpath)
        name = visible(relpath)
        if before is None:
            lines.append(f"added:   {name}")
        elif after is None:
            lines.append(f"removed: {name}")
        elif before.sha256 != after.sha256:
            lines.append(f"changed: {name}")
        else:
            continue
        old_text = before.text if before is not None else ""
        new_text = after.text() if after is not None else ""
        if old_text is None or new_text is None:
            lines.append("  (not text, or too large to compare line by line)")
            continue
        diff = difflib.unified_diff(
            old_text.splitlines(), new_text.splitlines(), label, "now", lineterm=""
        )
        lines.extend(f"  {visible(line)}" for line in list(diff)[:MAX_DIFF_LINES])
    return lines
