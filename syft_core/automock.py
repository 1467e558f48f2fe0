"""Automock (the seed's principle 16): a synthetic mock of a private CSV table, stdlib only.

This is `--privacy none`, the exact automock: it DISCLOSES the row count (up to the cap) and each
numeric and date column's exact minimum and maximum, which are single people. The default is the
differentially private automock (syft_core.dp_automock), which reuses this module's reading and
profiling.

What the mock keeps: column names and order, each column's type (int, float, bool, date,
categorical, string), numeric and date ranges, decimals, the categories seen at least k times, the
share of missing values (2 decimals), string length ranges, and the row count up to a cap. What it
does not keep: any real row (checked against every real row before the mock is written), categories
seen fewer than k times (they can identify people; synthetic tokens stand in for them), free-text
values, distributions within a column, correlations between columns, row order. The same facts are
recorded in the dataset's public metadata (`AutomockInfo`), so a scientist knows what to trust.

Only delimited text the `csv` module reads is understood: `.csv` (comma) and `.tsv` (tab), UTF-8,
with a header row. Anything else is refused with a message naming the file and the reason.
"""

from __future__ import annotations

import csv
import io
import math
import random
import re
import string
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from syft_core.atomic import atomic_write_text
from syft_core.errors import SyftError

TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t"}
DEFAULT_MAX_ROWS = 1_000
DEFAULT_MIN_CATEGORY_COUNT = 5
MAX_CATEGORIES = 50  # more distinct values than this and a text column is free text, not categories
MAX_DECIMALS = 6
SYNTHETIC_STRING_LENGTH = (6, 40)  # never shorter than 6: a short random word could be a real value
MAX_SYNTHETIC_RARE_TOKENS = 5
MAX_REGENERATION_ROUNDS = 10
_ROW_ATTEMPTS = 100  # tries per regenerated row to avoid the real rows known to clash
_SNIFF_BYTES = 64 * 1024
_COUNTER_LIMIT = 4 * MAX_CATEGORIES  # stop counting distinct values past this: memory stays bounded

ColumnType = Literal["int", "float", "bool", "date", "categorical", "string", "empty"]
_INT_RE = re.compile(r"[+-]?(0|[1-9][0-9]*)")
# Plain decimals and exponents; a leading zero before more digits ("007") marks an identifier.
_FLOAT_RE = re.compile(r"[+-]?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False}
_PARSED_TYPES: tuple[ColumnType, ...] = ("bool", "int", "float", "date")  # most specific first

KEPT = [
    "column names and order",
    "column types",
    "numeric and date ranges (minimum, maximum)",
    "number of decimals of float columns",
    "categories seen at least min_category_count times",
    "share of missing values per column (2 decimals)",
    "length range of free-text values",
    "row count, up to max_rows",
]
NOT_KEPT = [
    "any real row (every mock row is checked against every real row)",
    "categories seen fewer than min_category_count times (replaced by synthetic tokens)",
    "free-text values (replaced by random letters)",
    "distributions within a column (values are drawn uniformly)",
    "correlations between columns",
    "row order",
]


class AutomockError(SyftError, ValueError):
    """A file automock cannot make a mock of (not a CSV/TSV table, binary, empty, no header)."""


class ColumnProfile(BaseModel):
    """What the mock keeps of one column; published in the dataset's metadata."""

    name: str
    type: ColumnType
    missing_fraction: float = 0.0
    minimum: int | float | str | None = None  # str for dates (ISO)
    maximum: int | float | str | None = None
    decimals: int | None = None
    categories: list[str] | None = None  # kept real categories (bool: the spellings seen)
    synthetic_categories: list[str] | None = None  # tokens standing in for rare categories
    rare_categories_replaced: int | None = None
    length_range: tuple[int, int] | None = None
    category_counts: list[int] | None = None  # DP mocks: the noisy count of each kept category


class BudgetPart(BaseModel):
    """One statistic the budget paid for."""

    statistic: str  # "row count", "missing values", "5th percentile", "categories"
    column: str | None = None
    epsilon: float
    delta: float = 0.0
    mechanism: str
    utility: str  # in plain words


class DpInfo(BaseModel):
    epsilon: float  # the total the owner set
    delta: float  # the total spent (0 without category columns)
    spent_epsilon: float
    neighbours: str = (
        "tables differing in one person's row (added or removed; a changed row counts as both, "
        "so e^(2·epsilon))"
    )
    budget: list[BudgetPart]
    schema_not_private: str = (
        "column names, order, types and float decimals are read from the data, not noised"
    )
    library: str = "OpenDP"


class AutomockInfo(BaseModel):
    generator: str = "syft-automock/1"
    # "none": exact statistics (counts and extremes are disclosed); "dp": syft_core.dp_automock.
    privacy: Literal["none", "dp"] = "none"
    dp: DpInfo | None = None
    rows: int
    max_rows: int
    min_category_count: int
    deterministic: bool
    columns: list[ColumnProfile]
    kept: list[str] = Field(default_factory=lambda: list(KEPT))
    not_kept: list[str] = Field(default_factory=lambda: list(NOT_KEPT))


# -- reading ---------------------------------------------------------------------------------------
def is_table(path: Path) -> bool:
    return path.suffix.lower() in TABLE_DELIMITERS


class CsvTable:
    """A delimited text file with a header row; `rows()` streams the data rows (many passes ok)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        delimiter = TABLE_DELIMITERS.get(path.suffix.lower())
        if delimiter is None:
            raise AutomockError(
                f"{path}: automock understands only CSV/TSV tables (.csv, .tsv), "
                f"not {path.suffix or 'a file without a suffix'}"
            )
        self.delimiter = delimiter
        self._check_text()
        self.header = self._read_header()

    def _check_text(self) -> None:
        with self.path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
        if not head.strip():
            raise AutomockError(f"{self.path}: the file is empty")
        if b"\x00" in head:
            raise AutomockError(f"{self.path}: binary content (NUL bytes), not a CSV table")
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not just a multi-byte character cut at the sniff limit
                raise AutomockError(f"{self.path}: not UTF-8 text ({exc.reason})") from None

    def _records(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, fields) of every non-blank record, header included."""
        try:
            with self.path.open(encoding="utf-8-sig", newline="") as fh:
                reader = csv.reader(fh, delimiter=self.delimiter, strict=True)
                for record in reader:
                    if record and any(cell.strip() for cell in record):
                        yield reader.line_num, record
        except UnicodeDecodeError as exc:
            raise AutomockError(f"{self.path}: not UTF-8 text ({exc.reason})") from None
        except csv.Error as exc:
            raise AutomockError(f"{self.path}: not a readable CSV table: {exc}") from None

    def _read_header(self) -> list[str]:
        first = next(self._records(), None)
        if first is None:
            raise AutomockError(f"{self.path}: the file is empty")
        header = [cell.strip() for cell in first[1]]
        if "" in header:
            column = header.index("") + 1
            raise AutomockError(f"{self.path}: no header row (column {column} has no name)")
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise AutomockError(f"{self.path}: duplicate column names in the header: {duplicates}")
        if all(_looks_like_value(name) for name in header):
            raise AutomockError(
                f"{self.path}: no header row (the first row {header[:5]} looks like data)"
            )
        return header

    def rows(self, limit: int | None = None) -> Iterator[list[str]]:
        records = self._records()
        next(records)  # the header
        for count, (line, record) in enumerate(records):
            if limit is not None and count >= limit:
                return
            if len(record) != len(self.header):
                raise AutomockError(
                    f"{self.path}: line {line} has {len(record)} fields, "
                    f"the header has {len(self.header)}"
                )
            yield record


def _looks_like_value(cell: str) -> bool:
    return _FLOAT_RE.fullmatch(cell) is not None or _parse_date(cell) is not None


def _parse_date(value: str) -> date | None:
    if not _DATE_RE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _parse_float(value: str) -> float | None:
    if not _FLOAT_RE.fullmatch(value):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _decimals(value: str) -> int:
    mantissa = value.lower().split("e")[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


# -- profiling -------------------------------------------------------------------------------------
@dataclass
class ColumnStats:
    """One streaming pass over a column: which types every value fits, ranges, distinct counts."""

    name: str
    present: int = 0
    missing: int = 0
    candidates: set[str] = field(default_factory=lambda: set(_PARSED_TYPES))
    low: float | None = None
    high: float | None = None
    int_low: int | None = None
    int_high: int | None = None
    date_low: date | None = None
    date_high: date | None = None
    decimals: int = 0
    counts: Counter[str] | None = field(default_factory=Counter)
    shortest: int | None = None
    longest: int = 0

    def add(self, raw: str) -> None:
        value = raw.strip()
        if not value:
            self.missing += 1
            return
        self.present += 1
        self._fit_types(value)
        if self.counts is not None:
            self.counts[value] += 1
            if len(self.counts) > _COUNTER_LIMIT:
                self.counts = None
        self.shortest = len(value) if self.shortest is None else min(self.shortest, len(value))
        self.longest = max(self.longest, len(value))

    def _fit_types(self, value: str) -> None:
        cands = self.candidates
        if "bool" in cands and value.lower() not in _BOOL_WORDS:
            cands.discard("bool")
        if "int" in cands:
            if _INT_RE.fullmatch(value):
                number = int(value)
                self.int_low = number if self.int_low is None else min(self.int_low, number)
                self.int_high = number if self.int_high is None else max(self.int_high, number)
            else:
                cands.discard("int")
        if "float" in cands:
            self._fit_float(value)
        if "date" in cands:
            day = _parse_date(value)
            if day is None:
                cands.discard("date")
            else:
                self.date_low = day if self.date_low is None else min(self.date_low, day)
                self.date_high = day if self.date_high is None else max(self.date_high, day)

    def _fit_float(self, value: str) -> None:
        number = _parse_float(value)
        if number is None:
            self.candidates.discard("float")
            return
        self.low = number if self.low is None else min(self.low, number)
        self.high = number if self.high is None else max(self.high, number)
        self.decimals = max(self.decimals, _decimals(value))

    def kind(self) -> ColumnType:
        if self.present == 0:
            return "empty"
        for candidate in _PARSED_TYPES:
            if candidate in self.candidates:
                return candidate
        distinct = len(self.counts) if self.counts is not None else None
        if distinct is not None and distinct <= MAX_CATEGORIES and 2 * distinct <= self.present:
            return "categorical"
        return "string"


def profile_table(table: CsvTable, limit: int | None = None) -> tuple[list[ColumnStats], int]:
    """Stats of every column over the first `limit` data rows (all when None), and the row count."""
    stats = [ColumnStats(name) for name in table.header]
    rows = 0
    for record in table.rows(limit):
        rows += 1
        for column, cell in zip(stats, record, strict=True):
            column.add(cell)
    return stats, rows


def table_columns(path: Path, limit: int = 10_000) -> list[tuple[str, str]]:
    """(name, dtype) per column from the first `limit` rows; dtype is int, float, bool, date,
    string or empty (categorical counts as string: it depends on how many rows are seen)."""
    stats, _ = profile_table(CsvTable(path), limit)
    return [(s.name, "string" if s.kind() == "categorical" else s.kind()) for s in stats]


# -- generation ------------------------------------------------------------------------------------
def _profile(stats: ColumnStats, rows: int, min_count: int) -> ColumnProfile:
    kind = stats.kind()
    profile = ColumnProfile(
        name=stats.name, type=kind, missing_fraction=round(stats.missing / max(rows, 1), 2)
    )
    if kind == "int":
        profile.minimum, profile.maximum = stats.int_low, stats.int_high
    elif kind == "float":
        profile.minimum, profile.maximum = stats.low, stats.high
        profile.decimals = min(max(stats.decimals, 1), MAX_DECIMALS)
    elif kind == "date":
        assert stats.date_low is not None and stats.date_high is not None
        profile.minimum, profile.maximum = stats.date_low.isoformat(), stats.date_high.isoformat()
    elif kind == "bool":
        assert stats.counts is not None
        profile.categories = sorted(stats.counts)
    elif kind == "categorical":
        _categories(profile, stats, min_count)
    elif kind == "string":
        low, high = SYNTHETIC_STRING_LENGTH
        profile.length_range = (
            min(max(stats.shortest or low, low), high),
            min(max(stats.longest, low), high),
        )
    return profile


def _categories(profile: ColumnProfile, stats: ColumnStats, min_count: int) -> None:
    assert stats.counts is not None
    kept = sorted(value for value, n in stats.counts.items() if n >= min_count)
    rare = len(stats.counts) - len(kept)
    tokens: list[str] = []
    index = 1
    while len(tokens) < min(rare, MAX_SYNTHETIC_RARE_TOKENS):
        token = f"synthetic_{index}"
        if token not in stats.counts:  # a token must never equal a real (rare) value
            tokens.append(token)
        index += 1
    profile.categories = kept
    profile.synthetic_categories = tokens
    profile.rare_categories_replaced = rare


ValueMaker = Callable[[random.Random], str]


def _maker(profile: ColumnProfile) -> ValueMaker:
    kind = profile.type
    if kind == "int":
        low, high = int(profile.minimum or 0), int(profile.maximum or 0)
        return lambda rng: str(rng.randint(low, high))
    if kind == "float":
        return _float_maker(profile)
    if kind == "date":
        first = date.fromisoformat(str(profile.minimum))
        span = (date.fromisoformat(str(profile.maximum)) - first).days
        return lambda rng: (first + timedelta(days=rng.randint(0, span))).isoformat()
    if kind in ("bool", "categorical"):
        pool = [*(profile.categories or []), *(profile.synthetic_categories or [])]
        return lambda rng: rng.choice(pool)
    if kind == "string":
        low, high = profile.length_range or SYNTHETIC_STRING_LENGTH
        letters = string.ascii_lowercase
        return lambda rng: "".join(rng.choices(letters, k=rng.randint(low, high)))
    return lambda rng: ""


def _float_maker(profile: ColumnProfile) -> ValueMaker:
    low, high = float(profile.minimum or 0.0), float(profile.maximum or 0.0)
    decimals = profile.decimals or 1

    def make(rng: random.Random) -> str:
        value = min(max(round(rng.uniform(low, high), decimals), low), high)
        return f"{value:.{decimals}f}"

    return make


def _with_missing(make: ValueMaker, fraction: float) -> ValueMaker:
    if fraction <= 0:
        return make
    return lambda rng: "" if rng.random() < fraction else make(rng)


def _normalizer(kind: ColumnType) -> Callable[[str], object]:
    """Compares cells by meaning, so "3.10" and "3.1" or "True" and "true" count as equal."""

    def norm(raw: str) -> object:
        value = raw.strip()
        if not value:
            return None
        try:
            if kind == "int":
                return int(value)
            if kind == "float":
                return float(value)
        except ValueError:
            return value
        if kind == "bool":
            return _BOOL_WORDS.get(value.lower(), value)
        return value

    return norm


def generate_mock(
    private: Path,
    out: Path,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    min_category_count: int = DEFAULT_MIN_CATEGORY_COUNT,
    seed: int | None = None,
) -> AutomockInfo:
    """Write a synthetic mock of the CSV/TSV table `private` to `out`; same seed, same mock."""
    if max_rows < 1 or min_category_count < 1:
        raise ValueError("max_rows and min_category_count must be at least 1")
    table = CsvTable(private)
    stats, rows = profile_table(table)
    if rows == 0:
        raise AutomockError(f"{private}: the table has a header but no data rows to learn from")
    profiles = [_profile(s, rows, min_category_count) for s in stats]
    makers = [_with_missing(_maker(p), p.missing_fraction) for p in profiles]
    rng = random.Random(seed)
    mock = [[make(rng) for make in makers] for _ in range(min(rows, max_rows))]
    _replace_real_rows(table, mock, profiles, makers, rng)
    atomic_write_text(out, _to_csv(table.header, mock, table.delimiter))
    return AutomockInfo(
        rows=len(mock),
        max_rows=max_rows,
        min_category_count=min_category_count,
        deterministic=seed is not None,
        columns=profiles,
    )


def _replace_real_rows(
    table: CsvTable,
    mock: list[list[str]],
    profiles: list[ColumnProfile],
    makers: list[ValueMaker],
    rng: random.Random,
) -> None:
    """Regenerate every mock row equal to a real row. One streaming pass over the real data per
    round; the real rows found clashing are remembered (at most the mock's size per round, so
    memory never grows with the private table) and regenerated rows steer clear of them."""
    norms = [_normalizer(p.type) for p in profiles]

    def key(row: list[str]) -> tuple[object, ...]:
        return tuple(norm(cell) for norm, cell in zip(norms, row, strict=True))

    known_real: set[tuple[object, ...]] = set()
    for _ in range(MAX_REGENERATION_ROUNDS):
        by_key: dict[tuple[object, ...], list[int]] = {}
        for index, row in enumerate(mock):
            by_key.setdefault(key(row), []).append(index)
        clashes: list[int] = []
        for real in table.rows():
            real_key = key(real)
            if real_key in by_key:
                known_real.add(real_key)
                clashes.extend(by_key.pop(real_key))
        if not clashes:
            return
        for index in clashes:
            mock[index] = _fresh_row(makers, rng, lambda row: key(row) not in known_real)
    raise AutomockError(
        f"{table.path}: could not make mock rows that differ from every real row in "
        f"{MAX_REGENERATION_ROUNDS} rounds; the columns have too few distinct values "
        "for a synthetic mock: provide a mock by hand"
    )


def _fresh_row(
    makers: list[ValueMaker], rng: random.Random, acceptable: Callable[[list[str]], bool]
) -> list[str]:
    row = [make(rng) for make in makers]
    for _ in range(_ROW_ATTEMPTS):
        if acceptable(row):
            break
        row = [make(rng) for make in makers]
    return row  # possibly still a clash: the next round's pass finds it


def _to_csv(header: list[str], rows: list[list[str]], delimiter: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
