"""Security figures: attacks tried / contained, bad inputs tried / handled (per category), kills
survived / jobs lost / jobs run twice, jobs under load / completed with their fairness and the
runner's memory, and the isolation probe's verdicts.

Runs the adversarial suite (tests/attacks, test_probe, test_bad_input_*, test_crash_load) under
pytest with a junit report and reads the figures from it: test outcomes, plus the properties the
tests record (`bad_inputs_tried`, `bad_inputs_category`, `kills`, `jobs_lost`, ...). An attack or
bad input marked `xfail(strict=True)` with a FINDING reason is a known problem that is NOT
contained; each is listed with its reason. The full run uses the slow fuzzing tier (thousands
of inputs per property, tests/fuzzing.py); --fast the small one. Run:

    .venv/bin/python bench/bench_security.py            # everything (slow tests too, minutes)
    .venv/bin/python bench/bench_security.py --fast     # skip the slow tests
    .venv/bin/python bench/bench_security.py --from report.xml   # read an existing junit report
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = [
    "tests/attacks",
    "tests/test_probe.py",
    "tests/test_bad_input_properties.py",
    "tests/test_bad_input_outputs.py",
    "tests/test_bad_input_sync.py",
    "tests/test_crash_load.py",
]
BAD_INPUT_MODULES = "tests.test_bad_input_"


@dataclass
class Case:
    module: str
    name: str
    outcome: str  # passed, failed, finding (strict xfail), skipped
    reason: str = ""
    properties: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def run_suite(fast: bool, report: Path) -> None:
    marker = "not slow" if fast else ""
    env = {**os.environ, "TESTCONTAINERS_RYUK_DISABLED": "true"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marker]
    # xunit1: the junit flavour that keeps record_property values per test case.
    command += ["-o", "junit_family=xunit1", "--junitxml", str(report), *SUITE]
    subprocess.run(command, cwd=ROOT, env=env, check=False)


def read_cases(report: Path) -> list[Case]:
    cases = []
    for testcase in ET.parse(report).getroot().iter("testcase"):
        properties = {p.get("name", ""): p.get("value", "") for p in testcase.iter("property")}
        cases.append(
            Case(
                module=testcase.get("classname", ""),
                name=testcase.get("name", ""),
                outcome=_outcome(testcase),
                reason=_reason(testcase),
                properties=properties,
                seconds=float(testcase.get("time", "0") or 0),
            )
        )
    return cases


def _outcome(testcase: ET.Element) -> str:
    if testcase.find("failure") is not None or testcase.find("error") is not None:
        return "failed"
    skipped = testcase.find("skipped")
    if skipped is not None:
        return "finding" if skipped.get("type") == "pytest.xfail" else "skipped"
    return "passed"


def _reason(testcase: ET.Element) -> str:
    for tag in ("skipped", "failure", "error"):
        found = testcase.find(tag)
        if found is not None:
            return (found.get("message") or "").splitlines()[0] if found.get("message") else ""
    return ""


def _total(cases: list[Case], name: str) -> int:
    return sum(int(float(c.properties[name])) for c in cases if name in c.properties)


def _prop(cases: list[Case], name: str) -> str:
    return next((c.properties[name] for c in cases if name in c.properties), "n/a")


def _per_category(cases: list[Case]) -> str:
    tried: Counter[str] = Counter()
    for c in cases:
        if "bad_inputs_tried" in c.properties:
            category = c.properties.get("bad_inputs_category", c.name)
            tried[category] += int(float(c.properties["bad_inputs_tried"]))
    return ", ".join(f"{name} {n}" for name, n in sorted(tried.items())) or "n/a"


def _known_findings(cases: list[Case]) -> str:
    found = [
        f"{c.properties.get('bad_inputs_category', c.name)}: {c.properties[key]}"
        for c in cases
        for key in ("bad_inputs_known_findings",)
        if key in c.properties
    ]
    return "; ".join(found) or "none"


def figures(cases: list[Case]) -> list[tuple[str, str]]:
    attacks = [c for c in cases if c.module.startswith("tests.attacks") and c.outcome != "skipped"]
    counts = Counter(c.outcome for c in attacks)
    probe = [c for c in cases if c.module == "tests.test_probe" and c.outcome != "skipped"]
    bad = [c for c in cases if c.module.startswith(BAD_INPUT_MODULES)]
    bad_findings = sum(c.outcome in ("finding", "failed") for c in bad)
    crash = [c for c in cases if c.module == "tests.test_crash_load"]
    return [
        ("attacks tried / contained", f"{len(attacks)} / {counts['passed']}"),
        ("attacks NOT contained (findings + failures)", str(counts["finding"] + counts["failed"])),
        ("probe tests passed", f"{sum(c.outcome == 'passed' for c in probe)} / {len(probe)}"),
        (
            "bad inputs tried / handled",
            f"{_total(bad, 'bad_inputs_tried')} / {_total(bad, 'bad_inputs_handled')}",
        ),
        ("bad inputs per category (tried)", _per_category(bad)),
        (
            "bad-input fuzzing time (s)",
            f"{sum(c.seconds for c in bad if 'bad_inputs_tried' in c.properties):.0f}",
        ),
        ("bad inputs hitting a known finding", _known_findings(bad)),
        ("bad-input cases NOT handled (findings + failures)", str(bad_findings)),
        (
            "kills survived / jobs lost / jobs run twice",
            f"{_prop(crash, 'kills')} / {_prop(crash, 'jobs_lost')} / "
            f"{_prop(crash, 'jobs_run_twice')} (over {_prop(crash, 'kill_jobs')} jobs)",
        ),
        (
            "jobs under load / completed",
            f"{_prop(crash, 'load_jobs')} / {_prop(crash, 'load_completed')} in "
            f"{_prop(crash, 'load_seconds')} s ({_prop(crash, 'load_submitters')} submitters)",
        ),
        (
            "fairness: widest window to see all / max lead",
            f"{_prop(crash, 'load_fair_window')} starts / {_prop(crash, 'load_fair_spread')}",
        ),
        (
            "runner RSS under load, start / end (MiB)",
            f"{_prop(crash, 'runner_rss_start_mb')} / {_prop(crash, 'runner_rss_end_mb')}",
        ),
        ("runner RSS by jobs done (MiB)", _prop(crash, "runner_rss_samples_mb")),
        ("engine restart: running jobs ended", _prop(crash, "engine_restart_outcomes")),
        ("tests skipped", str(sum(c.outcome == "skipped" for c in cases))),
    ]


def print_report(cases: list[Case]) -> None:
    rows = figures(cases)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    open_items = [c for c in cases if c.outcome in ("finding", "failed")]
    if open_items:
        print("\nNOT contained / not handled:")
        for case in open_items:
            print(f"  [{case.outcome}] {case.module}::{case.name}\n      {case.reason[:300]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="skip tests marked slow")
    parser.add_argument("--from", dest="report", type=Path, help="read this junit report")
    args = parser.parse_args()
    if args.report is not None:
        try:
            cases = read_cases(args.report)
        except (OSError, ET.ParseError) as exc:
            print(f"{args.report}: cannot read the junit report: {exc}", file=sys.stderr)
            return 1
        print_report(cases)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-security-") as tmp:
        report = Path(tmp) / "report.xml"
        run_suite(args.fast, report)
        print_report(read_cases(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
