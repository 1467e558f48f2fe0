"""Printing the output checks (logs/checks.yaml) and a release's per-output decisions
(logs/release.yaml) for `show` and `release`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from syft_core.errors import JobError
from syft_core.output_checks import read_checks, summarize
from syft_core.release import RELEASE_REPORT, ReleaseReport, read_release_report


def check_lines(job_path: Path) -> list[str]:
    """The output checks for a person, or why there are none."""
    try:
        report = read_checks(job_path)
    except JobError as exc:
        return [f"checks:       UNREADABLE: {exc}"]
    if report is None:
        return []
    return ["checks:       " + summarize(report).rstrip("\n").replace("\n", "\n  ")]


def release_lines(job_path: Path) -> list[str]:
    """Which files the submitter got, which were withheld, and why."""
    if not (job_path / RELEASE_REPORT).is_file():
        return []
    try:
        report = read_release_report(job_path)
    except JobError as exc:
        return [f"release:      UNREADABLE: {exc}"]
    released = report.released
    withheld = _withheld(job_path, report)
    lines = [
        f"release:      {report.scope} ({report.method}, by {report.by}): {len(released)} of "
        f"{len(released) + len(withheld)} file(s) released"
    ]
    for decision in report.outputs:
        mark = "released" if decision.decision == "released" else "WITHHELD"
        override = f" [override: {decision.override}]" if decision.override else ""
        lines.append(f"  {mark:<9} {decision.path}: {decision.reason}{override}")
    lines += [f"  {'WITHHELD':<9} {path}: {why}" for path, why in withheld]
    return lines


def _withheld(job_path: Path, report: ReleaseReport) -> list[tuple[str, str]]:
    """The withheld files, by name, for the owner: from checks.yaml, which only the owner reads
    (release.yaml, the submitter's, only counts them; one from before named them itself)."""
    listed = {d.path for d in report.outputs}
    try:
        checks = read_checks(job_path)
    except JobError:
        checks = None
    if checks is None:
        return [(f"({count} file(s))", why) for why, count in report.withheld.items()]
    return [(c.path, c.summary) for c in checks.outputs if c.path not in listed]


def print_lines(lines: list[str], echo: Callable[[str], None]) -> None:
    for line in lines:
        echo(line)
