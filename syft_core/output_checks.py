"""Output checking: what a job wrote on real data, checked against the owner's rules before release.

When a real-data job finishes, the runner checks every file the job wrote (outputs/** and the
job's stdout/stderr) and writes `logs/checks.yaml` (ChecksReport) and `logs/checks.txt` (the same
for a person). They sit beside `logs/results.yaml` and, like it, leave only with a full release.

The rules are the owner's (`output_rules` in the runner's runner.yaml), with ACRO's meanings
(SACRO's statistical disclosure control checker, used in UK trusted research environments):
- threshold: every cell of a frequency table (a count of people) is at least `threshold`; ACRO
  counts a zero as below it too, unless the owner says zeros are not disclosive.
- nk-dominance (the top `nk_n` contributors make up at most `nk_k` of a cell's total) and
  p-ratio (the rest of a cell's total, without its two largest contributors, is at least
  `p_ratio` of the largest) need each contributor's value: a summary table does not carry them,
  so a table of statistics (means, sums) is checked for its count column's threshold and marked
  for a person for dominance. A job can run these checks itself with ACRO's wrappers (they see
  the microdata): its ACRO results are read and shown, but never trusted for release, since the
  job chose ACRO's settings.
The threshold and zero checks are ACRO's own functions (acro.sdcchecks.SDCChecks), applied to
the table as read. What decides whether a table holds counts is ours: all-integer cells that are
not named after a column of the job's datasets, or a column named like a count (n, count, ...).

Every other file (images, notebooks, text, logs, tables too large to be aggregates) needs a
person. Statuses: `pass` (every rule holds: a policy may release it), `fail` (a rule fails: only
a release with an override reason lets it out), `review` (a person must look: the owner's release
lets it out, a policy's never).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from syft_core.atomic import atomic_write_text
from syft_core.errors import JobError
from syft_core.events import utcnow
from syft_core.safefile import open_regular, read_capped
from syft_core.yamlio import dump_yaml_json, read_untrusted_yaml

logger = logging.getLogger(__name__)

CHECKS_FILE = "checks.yaml"
CHECKS_SUMMARY = "checks.txt"
LOG_OUTPUTS = ("logs/stdout.txt", "logs/stderr.txt")  # the job's own streams, checked too
MAX_CHECKS_BYTES = 4 * 1024 * 1024
MAX_TABLE_BYTES = 1024 * 1024
MAX_ACRO_BYTES = 8 * 1024 * 1024
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
COUNT_NAMES = frozenset({"n", "count", "counts", "freq", "frequency", "size", "num", "number"})

Status = Literal["pass", "fail", "review"]


class OutputRules(BaseModel):
    """The owner's disclosure rules; ACRO's defaults (acro/default.yaml)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: int = Field(default=10, ge=1)  # ACRO safe_threshold
    nk_n: int = Field(default=2, ge=1)  # ACRO safe_nk_n
    nk_k: float = Field(default=0.9, gt=0, le=1)  # ACRO safe_nk_k
    p_ratio: float = Field(default=0.1, ge=0, le=1)  # ACRO safe_pratio_p
    zeros_are_disclosive: bool = True  # ACRO zeros_are_disclosive
    # Larger tables are not taken for aggregates (they may be row-level data): a person looks.
    max_table_rows: int = Field(default=500, ge=1)


class RuleResult(BaseModel):
    rule: str  # "threshold", "zeros", "dominance", "size", ...
    status: Status
    detail: str
    cells: list[str] = Field(default_factory=list)  # failing cells, as "row label / column"


class AcroRecord(BaseModel):
    """One output of the job's own ACRO session (its results.json), as ACRO reported it."""

    model_config = ConfigDict(extra="ignore")

    uid: str
    status: str
    type: str = ""
    command: str = ""
    summary: str = ""
    exception: str = ""
    files: list[str] = Field(default_factory=list)  # paths relative to the job folder


class OutputCheck(BaseModel):
    path: str  # relative to the job folder: "outputs/table.csv", "logs/stdout.txt"
    kind: Literal["frequency table", "statistics table", "table", "empty", "acro", "file"]
    status: Status
    summary: str
    rules: list[RuleResult] = Field(default_factory=list)
    acro: AcroRecord | None = None  # the job's own ACRO verdict on this file, when it has one


class ChecksReport(BaseModel):
    """`logs/checks.yaml`: every file the job wrote, checked; written by the runner."""

    model_config = ConfigDict(extra="ignore")

    checked_at: datetime = Field(default_factory=utcnow)
    rules: OutputRules
    outputs: list[OutputCheck] = Field(default_factory=list)
    acro: list[AcroRecord] = Field(default_factory=list)
    note: str | None = None

    def status_of(self, path: str) -> Status | None:
        return next((c.status for c in self.outputs if c.path == path), None)

    def check_of(self, path: str) -> OutputCheck | None:
        return next((c for c in self.outputs if c.path == path), None)

    @property
    def passed(self) -> list[str]:
        return [c.path for c in self.outputs if c.status == "pass"]


# -- the job's files -------------------------------------------------------------------------------
def job_files(job_path: Path) -> list[str]:
    """Every file the job wrote, relative to the job folder: outputs/** and its stdout/stderr."""
    found = [rel for rel in LOG_OUTPUTS if (job_path / rel).is_file()]
    outputs = job_path / "outputs"
    if outputs.is_dir() and not outputs.is_symlink():
        for path in sorted(outputs.rglob("*")):
            if path.is_file() and not path.is_symlink():
                found.append(path.relative_to(job_path).as_posix())
    return found


def _read_bytes(path: Path, limit: int) -> bytes | None:
    """The file's bytes, None when larger than `limit`; never through a symlink."""
    data = read_capped(path, limit + 1)
    return None if len(data) > limit else data


# -- ACRO's own results ----------------------------------------------------------------------------
def read_acro_results(job_path: Path, files: list[str]) -> list[AcroRecord]:
    """The records of every ACRO results.json among the job's outputs (ACRO's `finalise(path,
    "json")`: {"version", "tool", "results": {uid: {status, type, files: [{name}], ...}}})."""
    records: list[AcroRecord] = []
    for rel in files:
        if not rel.startswith("outputs/") or Path(rel).name != "results.json":
            continue
        try:
            data = _read_bytes(job_path / rel, MAX_ACRO_BYTES)
            parsed = json.loads(data) if data is not None else None
        except (OSError, ValueError):
            continue
        if not isinstance(parsed, dict) or not isinstance(parsed.get("results"), dict):
            continue
        folder = rel.rsplit("/", 1)[0]
        for uid, raw in parsed["results"].items():
            if not isinstance(raw, dict):
                continue
            names = [f.get("name") for f in raw.get("files") or [] if isinstance(f, dict)]
            try:
                records.append(
                    AcroRecord.model_validate(
                        {
                            **{k: str(v) for k, v in raw.items() if k in _ACRO_TEXT},
                            "uid": str(raw.get("uid", uid)),
                            "status": str(raw.get("status", "")),
                            "files": [f"{folder}/{n}" for n in names if isinstance(n, str)],
                        }
                    )
                )
            except ValueError:
                continue
    return records


_ACRO_TEXT = ("type", "command", "summary", "exception")


def _acro_files(files: list[str], records: list[AcroRecord]) -> set[str]:
    """ACRO's own bookkeeping: results.json and its checksums/ folder, next to each other."""
    folders = {
        rel.rsplit("/", 1)[0]
        for rel in files
        if rel.startswith("outputs/") and rel.endswith("/results.json")
    }
    if not records:
        return set()
    return {
        rel
        for rel in files
        if any(rel == f"{d}/results.json" or rel.startswith(f"{d}/checksums/") for d in folders)
    }


# -- tables ----------------------------------------------------------------------------------------
def _number(cell: str) -> float | None:
    try:
        value = float(cell.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_count_name(name: str) -> bool:
    folded = name.strip().casefold()
    return (
        folded in COUNT_NAMES
        or folded.startswith(("n_", "count_"))
        or folded.endswith(("_n", "_count", "_counts"))
    )


def _acro_threshold(table: dict[str, dict[str, float]], rules: OutputRules) -> RuleResult:
    """ACRO's MinimumThresholdCheck and PresenceOfZeroCheck on a table of counts."""
    import pandas as pd  # ACRO's dependency; imported only when a table is checked
    from acro.sdcchecks import SDCChecks, SDCEvidence

    frame = pd.DataFrame(table).T
    checks = SDCChecks(
        {
            "safe_threshold": rules.threshold,
            "zeros_are_disclosive": rules.zeros_are_disclosive,
            "check_missing_values": False,
        }
    )
    evidence = SDCEvidence()
    evidence.interim_tables["count_table"] = frame
    model = _TableModel()
    _, _, mask = checks.check_min_threshold("table", evidence, model)
    if not rules.zeros_are_disclosive:
        mask = mask & (frame != 0)
    # Whole-array operations: a table may have 500 rows of a thousand columns, and a lookup
    # per cell took seconds of the runner's own time per file.
    flagged = mask.to_numpy(dtype=bool)
    if flagged.any():
        rows, columns = flagged.nonzero()  # row by row, as a person reads the table
        zeros = int((frame == 0).to_numpy().sum()) if rules.zeros_are_disclosive else 0
        note = f" ({zeros} of them zero)" if zeros else ""
        return RuleResult(
            rule="threshold",
            status="fail",
            detail=f"{int(flagged.sum())} cell(s) count fewer than {rules.threshold} people{note}",
            cells=[
                f"{mask.index[r]} / {mask.columns[c]}"
                for r, c in zip(rows[:50], columns[:50], strict=True)
            ],
        )
    return RuleResult(
        rule="threshold",
        status="pass",
        detail=f"every count is at least {rules.threshold}",
    )


class _TableModel:
    """What ACRO's table checks read of their model: that it is a table."""

    model_type = "table"
    command = "crosstab"


def check_table(
    rel: str, data: bytes, rules: OutputRules, dataset_columns: set[str]
) -> OutputCheck:
    delimiter = TABLE_SUFFIXES[Path(rel).suffix.lower()]
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=delimiter))
    except (UnicodeDecodeError, csv.Error) as exc:
        return _person(rel, "table", f"unreadable as a table ({exc}): a person must look")
    rows = [r for r in rows if any(c.strip() for c in r)]
    if len(rows) < 2:
        return _person(rel, "table", "no data rows: a person must look")
    header, body = rows[0], rows[1:]
    if len(body) > rules.max_table_rows:
        return _person(
            rel,
            "table",
            f"{len(body)} rows, more than an aggregate table has "
            f"(max_table_rows {rules.max_table_rows}): may be row-level data, a person must look",
        )
    width = len(header)
    if any(len(r) != width for r in body):
        return _person(rel, "table", "rows of different lengths: a person must look")
    numeric = [
        i
        for i in range(width)
        if all(_number(r[i]) is not None for r in body if r[i].strip())
        and any(r[i].strip() for r in body)
    ]
    labels = [i for i in range(width) if i not in numeric]
    if not numeric:
        return _person(rel, "table", "no numbers in the table: a person must look")
    named_counts = [i for i in numeric if _is_count_name(header[i])]
    as_variables = [i for i in numeric if header[i].strip() in dataset_columns]
    integral = all(
        (value := _number(r[i])) is not None and value >= 0 and value == int(value)
        for i in numeric
        for r in body
        if r[i].strip()
    )

    def label(r: list[str], index: int) -> str:
        return " / ".join(r[i] for i in labels) or f"row {index + 1}"

    if named_counts or (integral and not as_variables):
        count_columns = named_counts or numeric
        table = {
            f"{label(r, n)}": {header[i]: _number(r[i]) or 0.0 for i in count_columns}
            for n, r in enumerate(body)
        }
        if len(table) != len(body):  # duplicate labels: keep every row apart
            table = {
                f"{label(r, n)} (row {n + 1})": {
                    header[i]: _number(r[i]) or 0.0 for i in count_columns
                }
                for n, r in enumerate(body)
            }
        result = _acro_threshold(table, rules)
        results = [result]
        statistics = [i for i in numeric if i not in count_columns]
        kind: Literal["frequency table", "statistics table"] = "frequency table"
        if statistics:
            kind = "statistics table"
            names = ", ".join(header[i] for i in statistics)
            results.append(
                RuleResult(
                    rule="dominance",
                    status="review",
                    detail=f"nk-dominance (n={rules.nk_n}, k={rules.nk_k}) and p-ratio "
                    f"(p={rules.p_ratio}) of {names} need each contributor's value, which the "
                    "table does not carry: a person must judge (or the job's ACRO checks)",
                )
            )
        status = _worst(results)
        summary = "; ".join(r.detail for r in results)
        return OutputCheck(path=rel, kind=kind, status=status, summary=summary, rules=results)
    why = (
        f"columns {', '.join(header[i] for i in as_variables)} are variables of the data, not "
        "counts"
        if as_variables
        else "numbers that are not whole non-negative counts"
    )
    return _person(
        rel, "statistics table", f"{why}, and no count column (n, count, ...): a person must look"
    )


def _acro_checksum(job_path: Path, rel: str) -> OutputCheck:
    """A file in ACRO's checksums/ passes only if it is what ACRO writes there: the SHA-256 of
    the output beside it that it is named for (`checksums/<name>.txt` for `<name>`). The job
    writes this folder too, so anything else in it could carry whatever the job put there."""
    folder, _, name = rel.partition("/checksums/")
    target = f"{folder}/{name.removesuffix('.txt')}"
    written = _read_bytes(job_path / rel, 2 * hashlib.sha256().digest_size + 2)
    if name.endswith(".txt") and "/" not in name and written is not None:
        real = _sha256_of(job_path / target)
        if real is not None and written.strip() == real.encode("ascii"):
            return OutputCheck(
                path=rel, kind="acro", status="pass", summary=f"ACRO's checksum of {target}"
            )
    return _person(
        rel, "acro", "in ACRO's checksums/ but not the checksum of an output: a person must look"
    )


def _sha256_of(path: Path) -> str | None:
    """The SHA-256 of the regular file at `path` (never through a link), None if there is none."""
    try:
        fd = open_regular(path)
    except OSError:
        return None
    with open(fd, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _person(rel: str, kind: Any, summary: str) -> OutputCheck:
    return OutputCheck(
        path=rel,
        kind=kind,
        status="review",
        summary=summary,
        rules=[RuleResult(rule="needs a person", status="review", detail=summary)],
    )


def _worst(results: list[RuleResult]) -> Status:
    statuses = {r.status for r in results}
    return "fail" if "fail" in statuses else "review" if "review" in statuses else "pass"


# -- the whole job ---------------------------------------------------------------------------------
def check_outputs(
    job_path: Path, rules: OutputRules, dataset_columns: set[str] | None = None
) -> ChecksReport:
    """Check every file the job wrote. Never raises for a file: what cannot be checked needs a
    person."""
    files = job_files(job_path)
    records = read_acro_results(job_path, files)
    bookkeeping = _acro_files(files, records)
    by_file = {f: r for r in records for f in r.files}
    checks: list[OutputCheck] = []
    for rel in files:
        try:
            check = _check_file(job_path, rel, rules, dataset_columns or set(), bookkeeping)
        except Exception as exc:  # a hostile file must not stop the report
            logger.warning("output check of %s failed: %s", rel, exc)
            check = _person(rel, "file", "could not be checked automatically: a person must look")
        check.acro = by_file.get(rel)
        checks.append(check)
    return ChecksReport(rules=rules, outputs=_checksums_follow_their_outputs(checks), acro=records)


def _checksums_follow_their_outputs(checks: list[OutputCheck]) -> list[OutputCheck]:
    """An ACRO checksum passes only with the output it hashes: the SHA-256 of a short withheld
    file (a date of birth) is that file, to anyone who tries the few values it can hold."""
    status = {c.path: c.status for c in checks}
    followed: list[OutputCheck] = []
    for check in checks:
        target = check.summary.removeprefix("ACRO's checksum of ")
        if check.kind == "acro" and check.status == "pass" and status.get(target) != "pass":
            check = _person(
                check.path,
                "acro",
                f"ACRO's checksum of {target}, which does not pass: a person must look",
            )
        followed.append(check)
    return followed


def _check_file(
    job_path: Path, rel: str, rules: OutputRules, columns: set[str], bookkeeping: set[str]
) -> OutputCheck:
    path = job_path / rel
    if path.stat().st_size == 0:
        if rel.startswith("outputs/"):  # only its name says anything, and the job chose it
            return _person(rel, "empty", "empty: only its name says anything, a person must look")
        return OutputCheck(path=rel, kind="empty", status="pass", summary="empty")
    if rel in bookkeeping:
        if rel.endswith("/results.json") and "/checksums/" not in rel:
            return _person(rel, "acro", "the job's ACRO results (shown below): a person must look")
        return _acro_checksum(job_path, rel)
    if rel.startswith("outputs/") and Path(rel).suffix.lower() in TABLE_SUFFIXES:
        data = _read_bytes(path, MAX_TABLE_BYTES)
        if data is None:
            return _person(rel, "table", "too large for an aggregate table: a person must look")
        return check_table(rel, data, rules, columns)
    what = {
        ".png": "an image",
        ".jpg": "an image",
        ".jpeg": "an image",
        ".svg": "an image",
        ".pdf": "a document",
        ".ipynb": "a notebook",
    }.get(Path(rel).suffix.lower(), "the job's output stream" if rel in LOG_OUTPUTS else "a file")
    return _person(rel, "file", f"{what}: a person must look")


def checks_path(job_path: Path) -> Path:
    return job_path / "logs" / CHECKS_FILE


def write_checks(job_path: Path, report: ChecksReport) -> None:
    data = report.model_dump(mode="json", exclude_none=True)
    atomic_write_text(checks_path(job_path), dump_yaml_json(data))
    atomic_write_text(job_path / "logs" / CHECKS_SUMMARY, summarize(report))


def read_checks(job_path: Path) -> ChecksReport | None:
    try:
        return ChecksReport.model_validate(
            read_untrusted_yaml(checks_path(job_path), max_bytes=MAX_CHECKS_BYTES)
        )
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise JobError(f"{checks_path(job_path)}: unreadable output checks: {exc}") from None


_MARK = {"pass": "PASS  ", "fail": "FAIL  ", "review": "PERSON"}


def _flat(text: str) -> str:
    """The job's own words (file names, table headers, its ACRO records) on one line: a line
    break in them could print as a line of ours (a forged PASS) in the owner's review."""
    return text.replace("\r\n", "\u2424").replace("\n", "\u2424").replace("\r", "\u2424")


def summarize(report: ChecksReport) -> str:
    """The report for a person: one line per file, the failing cells, the job's ACRO verdicts."""
    r = report.rules
    counts = {s: sum(1 for c in report.outputs if c.status == s) for s in _MARK}
    lines = [
        f"output checks ({report.checked_at.isoformat(timespec='seconds')}): "
        f"{counts['pass']} pass, {counts['fail']} fail, {counts['review']} need a person",
        f"rules: cells of at least {r.threshold} people"
        f"{', zeros disclosive' if r.zeros_are_disclosive else ''}; nk-dominance n={r.nk_n} "
        f"k={r.nk_k}; p-ratio p={r.p_ratio}",
    ]
    for check in report.outputs:
        lines.append(
            f"  {_MARK[check.status]} {_flat(check.path)}  [{check.kind}] {_flat(check.summary)}"
        )
        for rule in check.rules:
            if rule.cells:
                lines.append(f"           cells: {_flat('; '.join(rule.cells[:10]))}")
        if check.acro is not None:
            lines.append(
                f"           the job's ACRO says {_flat(check.acro.status)}: "
                f"{_flat(check.acro.summary)}"
            )
    if report.acro:
        lines.append("the job's own ACRO results (its settings, not the owner's rules):")
        for record in report.acro:
            exception = f"; exception asked: {record.exception}" if record.exception else ""
            lines.append(
                _flat(
                    f"  {record.uid} {record.status} {record.type} {record.command}: "
                    f"{record.summary.strip()}{exception}"
                )
            )
    if report.note:
        lines.append(report.note)
    return "\n".join(lines) + "\n"
