"""How a job and a list of jobs look in a notebook (`Job._repr_html_`, `JobList._repr_html_`).

A notebook renders this HTML with the user's privileges, so every value a submitter or a job wrote
(names, code, logs, output files) is text: escaped with `html.escape` after its hidden characters
are made visible (syft_core.names), and never trusted as markup. An output appears as a table of
its first CSV rows, or as an image only when its bytes carry the PNG signature, inlined as a
`data:image/png` URI; anything else is only named. Results appear once released, or to the
owner, who reviews them before releasing.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from syft_core.errors import JobError
from syft_core.jobs.config import JobConfig
from syft_core.jobs.folder import JobFolder, Status
from syft_core.jobs.snapshot import Snapshot
from syft_core.names import visible
from syft_core.preview import Preview, log_tail, png_bytes, preview

MAX_OUTPUTS_SHOWN = 10
TABLE_COLUMNS = ("name", "submitted_by", "owner", "status", "outcome", "released", "submitted_at")


class ShownJob(Protocol):
    """What the HTML shows of a job: syft_core.job.Job, whose `_repr_html_` is built here (so
    this module cannot import it back)."""

    @property
    def folder(self) -> JobFolder: ...
    @property
    def user(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def full_key(self) -> str: ...
    @property
    def location(self) -> Path: ...
    @property
    def config(self) -> JobConfig: ...
    @property
    def status(self) -> Status: ...
    @property
    def released(self) -> bool: ...
    @property
    def results_waiting(self) -> bool: ...
    @property
    def outputs(self) -> list[Path]: ...
    def summary(self) -> dict[str, str]: ...


def text(value: str) -> str:
    """`value` as HTML text: hidden characters escaped, then HTML-escaped."""
    return html.escape(visible(value, keep_newlines=True))


def _rows(pairs: Iterable[tuple[str, str]]) -> str:
    return "".join(
        f"<tr><th style='text-align:left'>{text(k)}</th><td style='text-align:left'>{text(v)}"
        "</td></tr>"
        for k, v in pairs
    )


def job_html(job: ShownJob) -> str:
    """The job's facts, its code (collapsed) and, when visible to this user, its results."""
    summary = job.summary()
    facts = [
        ("name", summary["name"]),
        ("job", job.full_key),
        ("status", summary["status"] + (f" ({summary['reason']})" if summary["reason"] else "")),
        ("outcome", _outcome(summary)),
        ("submitted by", summary["submitted_by"]),
        ("submitted at", summary["submitted_at"]),
        ("released", _release_state(job)),
    ]
    facts.extend(_config_facts(job))
    parts = [f"<table>{_rows(facts)}</table>", _code(job)]
    if _results_visible(job):
        parts.append(_results(job))
    return "<div>" + "".join(parts) + "</div>"


def _outcome(summary: dict[str, str]) -> str:
    if not summary["exit_code"]:
        return summary["outcome"]
    return f"{summary['outcome']}, exit code {summary['exit_code']}"


def jobs_table_html(jobs: Iterable[ShownJob]) -> str:
    head = "".join(f"<th>{text(c)}</th>" for c in TABLE_COLUMNS)
    body = "".join(_table_row(job) for job in jobs)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _table_row(job: ShownJob) -> str:
    row = {**job.summary(), "released": _release_state(job)}
    cells = "".join(f"<td style='text-align:left'>{text(row[c])}</td>" for c in TABLE_COLUMNS)
    return f"<tr>{cells}</tr>"


def _release_state(job: ShownJob) -> str:
    if job.status != "done":
        return ""
    if job.released:
        return "released"
    return "waiting for the owner's release" if job.results_waiting else "not released"


def _config_facts(job: ShownJob) -> list[tuple[str, str]]:
    try:
        config = job.config
    except JobError as exc:
        return [("config", f"unreadable: {exc}")]
    return [
        ("datasets", ", ".join(config.datasets) or "none"),
        ("mode", config.mode),
        ("runtime", config.runtime or "the runner's default"),
        ("dependencies", ", ".join(config.dependencies) or "none"),
    ]


def _code(job: ShownJob) -> str:
    try:
        snapshot = Snapshot.take(job.location)
    except (JobError, OSError) as exc:
        return f"<p>code: cannot be read: {text(str(exc))}</p>"
    files = "".join(
        f"<p><b>{text(f.relpath)}</b> ({f.size} bytes)</p>"
        + (
            f"<pre>{text(body)}</pre>"
            if (body := f.text()) is not None
            else "<p>binary or too large to show</p>"
        )
        for f in snapshot.files
    )
    return (
        f"<details><summary>code: {len(snapshot.files)} file(s), "
        f"{text(snapshot.content_hash)}</summary>{files}</details>"
    )


def _results_visible(job: ShownJob) -> bool:
    return job.status == "done" and (job.released or job.user == job.owner)


def _results(job: ShownJob) -> str:
    note = "" if job.released else "<p>not released yet: only you, the owner, see these</p>"
    logs = "".join(
        f"<p><b>{name}</b> (last lines)</p><pre>{text(log_tail(path))}</pre>"
        for name, path in (
            ("stdout", job.folder.stdout_path),
            ("stderr", job.folder.stderr_path),
        )
    )
    return note + logs + _outputs(job)


def _outputs(job: ShownJob) -> str:
    root = job.folder.outputs_dir
    paths = job.outputs
    shown: list[str] = []
    for path in paths[:MAX_OUTPUTS_SHOWN]:
        try:
            shown.append(_output(path, preview(root, path)))
        except OSError:
            continue  # replaced by a link or removed since listed
    more = len(paths) - MAX_OUTPUTS_SHOWN
    if more > 0:
        shown.append(f"<p>... and {more} more in outputs/</p>")
    return "".join(shown)


def _output(path: Path, found: Preview) -> str:
    title = f"<p><b>{text(found.relpath)}</b> ({found.size} bytes)</p>"
    if found.kind == "csv":
        rows = "".join(
            "<tr>" + "".join(f"<td>{text(cell)}</td>" for cell in row) + "</tr>"
            for row in found.rows
        )
        return f"{title}<table>{rows}</table>"
    png = png_bytes(path) if found.kind == "png" else None
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        return f"{title}<img alt='{text(found.relpath)}' src='data:image/png;base64,{data}'>"
    return title
