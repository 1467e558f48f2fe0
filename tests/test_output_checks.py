"""Output checking before release: a job's tables against the owner's rules (ACRO's meanings),
overrides, partial releases the permission engine enforces, policies releasing only what passes,
and the scientist seeing every file's decision."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from syft_core.datasite import Datasite
from syft_core.job import Job
from syft_core.jobs.folder import JobFolder
from syft_core.jobs.markers import DoneMarker, Outcome
from syft_core.output_checks import (
    OutputRules,
    check_outputs,
    check_table,
    read_checks,
    summarize,
    write_checks,
)
from syft_core.permissions import AccessLevel, SyftPermContext
from syft_core.policies import decide_release
from syft_core.release import (
    ReleaseRefusedError,
    read_release_report,
    release_job,
    results_waiting,
)
from syft_runner.cli import jobs as jobs_cli
from syft_runner.cli import release as release_cli
from tests.test_policies import write_policy
from tests.test_release import OWNER, SCIENTIST, make_job

RULES = OutputRules()
CROSSTAB_WITH_3 = "sex,A,B\nF,3,25\nM,40,31\n"
LARGE_COUNTS = "region,n\nnorth,120\nsouth,98\n"
LARGE_CROSSTAB = "sex,A,B\nF,30,25\nM,40,31\n"


@pytest.fixture
def datasite(tmp_path: Path) -> Datasite:
    return Datasite(tmp_path / "syftbox", OWNER).init()


def _finish(job: JobFolder, outputs: dict[str, str], stdout: str = "") -> JobFolder:
    """A real run ended by hand: outputs written, then `done`, as the runner does."""
    job.approve(OWNER, expected_hash=job.content_hash())
    job.start(OWNER, container="c", image="i", image_id="sha256:1", content_hash=job.content_hash())
    job.logs_dir.mkdir()
    job.stdout_path.write_text(stdout)
    job.stderr_path.write_text("")
    for rel, text in outputs.items():
        (job.outputs_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (job.outputs_dir / rel).write_text(text)
    write_checks(job.path, check_outputs(job.path, RULES))
    job.finish(DoneMarker(by=OWNER, outcome=Outcome.SUCCEEDED, message="ok", exit_code=0))
    return job


def _can_read(ds: Datasite, job: JobFolder, rel: str) -> bool:
    return SyftPermContext(datasite=ds.root).check(
        SCIENTIST, f"{job.relpath}/{rel}", AccessLevel.READ
    )


# -- the rules ------------------------------------------------------------------------------------
def test_a_crosstab_with_a_cell_of_3_fails_the_threshold() -> None:
    check = check_table("outputs/t.csv", CROSSTAB_WITH_3.encode(), RULES, set())
    assert (check.kind, check.status) == ("frequency table", "fail")
    assert check.rules[0].rule == "threshold" and check.rules[0].cells == ["F / A"]
    assert "1 cell(s) count fewer than 10" in check.summary


def test_large_counts_pass_and_zeros_follow_the_owner() -> None:
    assert check_table("outputs/t.csv", LARGE_COUNTS.encode(), RULES, set()).status == "pass"
    with_zero = b"g,A,B\nx,0,20\ny,30,40\n"
    assert check_table("outputs/z.csv", with_zero, RULES, set()).status == "fail"
    lenient = OutputRules(zeros_are_disclosive=False)
    assert check_table("outputs/z.csv", with_zero, lenient, set()).status == "pass"


def test_statistics_need_a_person_for_dominance() -> None:
    table = b"region,n,mean_income\nnorth,120,31000.5\nsouth,98,29000.25\n"
    check = check_table("outputs/s.tsv".replace("tsv", "csv"), table, RULES, set())
    assert (check.kind, check.status) == ("statistics table", "review")
    assert [r.rule for r in check.rules] == ["threshold", "dominance"]
    small = b"region,n,mean_income\nnorth,4,31000.5\nsouth,98,29000.25\n"
    assert check_table("outputs/s.csv", small, RULES, set()).status == "fail"


def test_row_level_looking_tables_need_a_person() -> None:
    ages = b"id,age\n1,34\n2,56\n"
    check = check_table("outputs/rows.csv", ages, RULES, {"age", "id"})
    assert check.status == "review" and "variables of the data" in check.summary
    many = ("g,n\n" + "".join(f"g{i},{20 + i}\n" for i in range(600))).encode()
    assert "row-level" in check_table("outputs/many.csv", many, RULES, set()).summary


def test_other_files_need_a_person_and_empty_ones_pass(tmp_path: Path) -> None:
    (tmp_path / "outputs").mkdir()
    (tmp_path / "logs").mkdir()
    (tmp_path / "outputs" / "plot.png").write_bytes(b"\x89PNG")
    (tmp_path / "outputs" / "nb.ipynb").write_text("{}")
    (tmp_path / "logs" / "stdout.txt").write_text("")
    (tmp_path / "logs" / "stderr.txt").write_text("warning\n")
    report = check_outputs(tmp_path, RULES)
    status = {c.path: (c.status, c.summary) for c in report.outputs}
    assert status["outputs/plot.png"] == ("review", "an image: a person must look")
    assert status["outputs/nb.ipynb"][0] == "review"
    assert status["logs/stdout.txt"][0] == "pass"
    assert status["logs/stderr.txt"] == ("review", "the job's output stream: a person must look")


def test_the_jobs_own_acro_results_are_read_and_shown(tmp_path: Path) -> None:
    acro = tmp_path / "outputs" / "acro"
    (acro / "checksums").mkdir(parents=True)
    (acro / "output_0_0.csv").write_text(LARGE_CROSSTAB)
    real = hashlib.sha256(LARGE_CROSSTAB.encode()).hexdigest()
    (acro / "checksums" / "output_0_0.csv.txt").write_text(real)
    results = {
        "version": "1.0.2",
        "tool": {"name": "ACRO"},
        "results": {
            "output_0": {
                "uid": "output_0",
                "status": "review",
                "type": "table",
                "command": "acro.crosstab(df.sex, df.group)",
                "summary": "review; threshold: 0 cells may need suppressing",
                "files": [{"name": "output_0_0.csv", "sdc": {}}],
                "exception": "",
            }
        },
    }
    (acro / "results.json").write_text(json.dumps(results))
    report = check_outputs(tmp_path, RULES)
    assert [r.uid for r in report.acro] == ["output_0"]
    table = report.check_of("outputs/acro/output_0_0.csv")
    assert table is not None and table.status == "pass" and table.acro is not None
    assert table.acro.status == "review"
    assert report.status_of("outputs/acro/checksums/output_0_0.csv.txt") == "pass"
    assert report.status_of("outputs/acro/results.json") == "review"


def test_acros_checksums_folder_passes_only_checksums_of_its_outputs(tmp_path: Path) -> None:
    # The job writes ACRO's folder too: a file there that is not the checksum of an output
    # beside it (row-level data, a digest of nothing, a second copy) needs a person.
    acro = tmp_path / "outputs" / "acro"
    (acro / "checksums").mkdir(parents=True)
    (acro / "results.json").write_text(json.dumps({"results": {"a": {}}}))
    (acro / "table.csv").write_text(LARGE_CROSSTAB)
    real = hashlib.sha256(LARGE_CROSSTAB.encode()).hexdigest()
    planted = {
        "patients.csv": "name,diagnosis\nAlice Smith,HIV+\n",
        "table.csv.txt": "ab" * 32,  # shaped like a checksum, of nothing
        "missing.csv.txt": real,  # the right digest, named for no output
        "table.csv": real,  # not named as ACRO names its checksums
    }
    for name, text in planted.items():
        (acro / "checksums" / name).write_text(text)
    report = check_outputs(tmp_path, RULES)
    for name in planted:
        assert report.status_of(f"outputs/acro/checksums/{name}") == "review", name
    (acro / "checksums" / "table.csv.txt").write_text(real + "\n")
    assert (
        check_outputs(tmp_path, RULES).status_of("outputs/acro/checksums/table.csv.txt") == "pass"
    )


def test_the_jobs_words_cannot_forge_a_line_of_the_owners_review(tmp_path: Path) -> None:
    # A table header or an ACRO record is the job's text: a line break in it must not print
    # as a line of the checks the owner reads before releasing.
    forged = "\n  PASS outputs/all_clear.csv  [table] every count is at least 10"
    (tmp_path / "outputs" / "acro").mkdir(parents=True)
    (tmp_path / "outputs" / "t.csv").write_text(f'sex,"A{forged}",B\nF,3,25\nM,40,31\n')
    record = {"uid": "u", "status": "pass", "type": "table", "summary": f"ok{forged}"}
    results = {"results": {"u": {**record, "command": "x", "files": []}}}
    (tmp_path / "outputs" / "acro" / "results.json").write_text(json.dumps(results))
    text = summarize(check_outputs(tmp_path, RULES))
    assert "A\u2424  PASS outputs/all_clear.csv" in text  # shown, on its own line
    assert not [line for line in text.splitlines() if line.lstrip().startswith("PASS outputs/all")]


# -- release --------------------------------------------------------------------------------------
def test_a_cell_of_3_is_not_released_without_an_override(datasite: Datasite) -> None:
    job = _finish(make_job(datasite), {"crosstab.csv": CROSSTAB_WITH_3})
    with pytest.raises(ReleaseRefusedError, match=r"outputs/crosstab.csv: 1 cell\(s\) count"):
        release_job(job, OWNER)
    assert job.state().released is None and not _can_read(datasite, job, "outputs/crosstab.csv")
    marker = release_job(job, OWNER, override="published aggregate, agreed with the board")
    assert marker.scope == "all" and _can_read(datasite, job, "outputs/crosstab.csv")
    overrides = [e for e in datasite.events if e.what == "job.release_override"]
    assert len(overrides) == 1
    assert overrides[0].details == {
        "outputs": ["outputs/crosstab.csv"],
        "reason": "published aggregate, agreed with the board",
    }
    decision = {d.path: d for d in read_release_report(job).outputs}["outputs/crosstab.csv"]
    assert decision.override == "published aggregate, agreed with the board"


def test_partial_release_grants_exactly_the_chosen_files(datasite: Datasite) -> None:
    outputs = {"crosstab.csv": CROSSTAB_WITH_3, "totals.csv": LARGE_COUNTS}
    job = _finish(make_job(datasite), outputs, stdout="done\n")
    marker = release_job(job, OWNER, only=["totals.csv"])
    assert (marker.scope, marker.released_count, marker.withheld_count) == ("partial", 1, 3)
    assert _can_read(datasite, job, "outputs/totals.csv")
    for withheld in ("outputs/crosstab.csv", "logs/stdout.txt", "logs/checks.yaml"):
        assert not _can_read(datasite, job, withheld), withheld
    for visible in ("logs/release.yaml", "done", "released", "run.sh", "code/main.py"):
        assert _can_read(datasite, job, visible), visible
    assert SyftPermContext(datasite=datasite.root).check(
        SCIENTIST, f"{job.relpath}/run.sh", AccessLevel.WRITE
    )
    decisions = read_release_report(job)
    assert {d.path: d.decision for d in decisions.outputs} == {"outputs/totals.csv": "released"}
    assert decisions.withheld["withheld: fails a disclosure rule"] == 1
    assert sum(decisions.withheld.values()) == 3
    # A later release widens it; the failing table still needs the override.
    release_job(job, OWNER, only=["logs/stdout.txt"])
    assert _can_read(datasite, job, "logs/stdout.txt")
    assert _can_read(datasite, job, "outputs/totals.csv")
    with pytest.raises(ReleaseRefusedError):
        release_job(job, OWNER)
    assert release_job(job, OWNER, override="ok").scope == "all"
    assert _can_read(datasite, job, "logs/checks.yaml")


def test_the_scientist_sees_per_output_decisions_through_the_client(datasite: Datasite) -> None:
    outputs = {"crosstab.csv": CROSSTAB_WITH_3, "totals.csv": LARGE_COUNTS}
    job = _finish(make_job(datasite), outputs)
    owner_view = Job(job, OWNER)
    assert owner_view.release_decisions is None
    owner_view.release(only=["totals.csv"])
    mine = Job(job, SCIENTIST)  # the submitter's handle on the same folder
    decisions = mine.release_decisions
    assert decisions is not None and decisions.scope == "partial"
    assert [(d.path, d.decision) for d in decisions.outputs] == [("outputs/totals.csv", "released")]
    assert decisions.withheld.get("withheld: fails a disclosure rule") == 1


def test_a_withheld_output_is_named_nowhere_the_submitter_reads(datasite: Datasite) -> None:
    # The job picks its outputs' names and headers: on a partial release, a withheld output's
    # name, and the check detail that quotes its header, are data that was not released.
    name, header = "Alice Smith 1961-04-02 HIV+", "Bob Jones owes 12000 USD"
    smuggled = f"sex,{header},B\nF,3,25\nM,40,31\n"  # a cell of 3: fails, withheld
    outputs = {f"{name}.csv": smuggled, "totals.csv": LARGE_COUNTS}
    job = _finish(make_job(datasite), outputs, stdout="done\n")
    checks = read_checks(job.path)
    assert checks is not None and header in checks.model_dump_json()  # the owner's, not theirs
    release_job(job, OWNER, only=["totals.csv"])
    perms = SyftPermContext(datasite=datasite.root)
    readable = [
        f
        for f in job.path.rglob("*")
        if f.is_file()
        and perms.check(SCIENTIST, str(f.relative_to(datasite.root)), AccessLevel.READ)
    ]
    assert job.path / "logs" / "release.yaml" in readable
    for path in readable:
        text = path.read_bytes().decode("utf-8", "replace")
        assert name not in text and header not in text, path


def _release_policy(datasite: Datasite) -> None:
    """A policy that releases the scientist's real results that pass every rule."""
    write_policy(
        datasite,
        "release",
        auto_approve=False,
        auto_release=True,
        datasets=["*"],
        submitters=[SCIENTIST],
    )


def test_a_policy_releases_only_large_count_tables(datasite: Datasite) -> None:
    _release_policy(datasite)
    clean = _finish(
        make_job(datasite, name="clean"), {"a.csv": LARGE_COUNTS, "b.csv": LARGE_CROSSTAB}
    )
    policy = decide_release(datasite, clean, clean.config())
    assert policy is not None
    marker = release_job(clean, OWNER, method=f"policy:{policy.name}")
    assert marker.scope == "all" and _can_read(datasite, clean, "outputs/a.csv")
    assert not results_waiting(clean)

    mixed = _finish(
        make_job(datasite, name="mixed"), {"a.csv": LARGE_COUNTS, "small.csv": CROSSTAB_WITH_3}
    )
    marker = release_job(mixed, OWNER, method="policy:release")
    assert marker.scope == "partial" and marker.withheld_count == 1
    assert _can_read(datasite, mixed, "outputs/a.csv")
    assert not _can_read(datasite, mixed, "outputs/small.csv")
    assert results_waiting(mixed)  # the rest waits for the owner

    only_small = _finish(make_job(datasite, name="small"), {"small.csv": CROSSTAB_WITH_3})
    with pytest.raises(ReleaseRefusedError, match="no output passes"):
        release_job(only_small, OWNER, method="policy:release")


def test_checks_are_made_at_release_when_the_runner_made_none(datasite: Datasite) -> None:
    job = _finish(make_job(datasite), {"t.csv": CROSSTAB_WITH_3})
    (job.logs_dir / "checks.yaml").unlink()
    with pytest.raises(ReleaseRefusedError):
        release_job(job, OWNER, rules=OutputRules(threshold=5))
    report = read_checks(job.path)
    assert report is not None and report.rules.threshold == 5


def test_show_and_release_print_the_checks_and_decisions(datasite: Datasite) -> None:
    outputs = {"crosstab.csv": CROSSTAB_WITH_3, "totals.csv": LARGE_COUNTS}
    _finish(make_job(datasite), outputs)
    app = typer.Typer()
    jobs_cli.register(app)
    release_cli.register(app)
    env = {"SYFTBOX_FOLDER": str(datasite.syftbox_root), "SYFTBOX_EMAIL": OWNER}
    key = f"{SCIENTIST}/analysis"
    refused = CliRunner().invoke(app, ["release", key], env=env)
    assert refused.exit_code == 1 and "fail the disclosure rules" in refused.output
    shown = CliRunner().invoke(app, ["show", key], env=env, terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "FAIL   outputs/crosstab.csv" in shown.output and "cells: F / A" in shown.output
    assert "PASS   outputs/totals.csv" in shown.output
    partial = CliRunner().invoke(app, ["release", key, "--only", "totals.csv"], env=env)
    assert partial.exit_code == 0, partial.output
    assert "release:      partial (manual" in partial.output
    assert "WITHHELD  outputs/crosstab.csv: " in partial.output  # the owner sees which, and why
    assert "released  outputs/totals.csv: passes every disclosure rule" in partial.output


def test_a_policy_releases_no_checksum_of_a_withheld_output_nor_an_empty_file(
    datasite: Datasite,
) -> None:
    # The SHA-256 of a short withheld file is that file to anyone who tries its few values; an
    # empty file's name is the job's free text. Neither may leave without a person.
    _release_policy(datasite)
    dob = "1961-04-02\n"
    outputs = {
        "a.csv": LARGE_COUNTS,
        "acro/results.json": json.dumps({"results": {"x": {}}}),
        "acro/dob.txt": dob,
        "acro/checksums/dob.txt.txt": hashlib.sha256(dob.encode()).hexdigest(),
        "Alice Smith 1961-04-02 HIV+.txt": "",
    }
    job = _finish(make_job(datasite), outputs)
    policy = decide_release(datasite, job, job.config())
    assert policy is not None
    release_job(job, OWNER, method=f"policy:{policy.name}")
    assert _can_read(datasite, job, "outputs/a.csv")
    for withheld in (
        "acro/dob.txt",
        "acro/checksums/dob.txt.txt",
        "Alice Smith 1961-04-02 HIV+.txt",
    ):
        assert not _can_read(datasite, job, f"outputs/{withheld}"), withheld


def test_only_releases_exactly_the_file_named(datasite: Datasite) -> None:
    outputs = {
        ".notes.txt": "benign\n",
        "notes.txt": "secret\n",
        "summary.txt": "secret\n",
        "outputs/summary.txt": "benign\n",
        "totals{2024}.csv": LARGE_COUNTS,
        "wow!.csv": LARGE_COUNTS,
        "a]b.csv": LARGE_COUNTS,
    }
    job = _finish(make_job(datasite), outputs)
    chosen = [".notes.txt", "outputs/summary.txt", "totals{2024}.csv", "wow!.csv", "a]b.csv"]
    release_job(job, OWNER, only=chosen)
    for name in (".notes.txt", "summary.txt", "totals{2024}.csv", "wow!.csv", "a]b.csv"):
        assert _can_read(datasite, job, f"outputs/{name}"), name  # as the name reads
    assert not _can_read(datasite, job, "outputs/notes.txt")
    assert not _can_read(datasite, job, "outputs/outputs/summary.txt")
