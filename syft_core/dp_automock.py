"""A differentially private automock (`--privacy dp`, the default): every statistic the mock keeps
of the private table is released through OpenDP under one total budget, epsilon.

What a person in the table is protected by: whether or not their row is in the table changes the
probability of any mock (and of its metadata) by at most a factor e^epsilon (plus, when the table
has category columns, a tiny delta, DEFAULT_DELTA). One row is one person; a person whose row is
changed counts as removed and added, so e^(2·epsilon) for them. The budget is split evenly
over the statistics below, and each part is recorded in the public metadata with its mechanism
and what it buys in plain words:

- the row count: Laplace noise. The mock has that many rows (capped at max_rows), or a fixed
  number the owner sets.
- per column, the count of missing values: Laplace noise; the mock's missing share is that
  count over the noisy row count.
- per numeric or date column, the 5th and 95th percentiles, chosen by OpenDP's private quantile
  (an exponential-mechanism selection) among candidates fixed before looking at the data: an
  even grid within bounds the owner gives (`bounds`), else a coarse logarithmic grid (dates: a
  weekly grid over 1900-2100). Mock values are drawn within that range, so the extremes (single
  people) are never kept.
- per category column (and yes/no column), the count of each category: Laplace noise with a
  noisy threshold (OpenDP's laplace_threshold; this is where delta comes from): a category seen
  by few people never appears. The mock draws categories in the released proportions.

Not protected by the budget, and said so in the metadata: the schema, i.e. the column names and
order, each column's type and, for floats, the number of decimals. They are read from the data
(a type depends on every value, e.g. one "3.5" in a column of whole numbers). Free-text columns
keep nothing but their missing share: their values are random letters of a fixed length range.

Noise is drawn by OpenDP from the operating system's randomness: a `seed` fixes only how mock
rows are drawn from the released statistics, never the noise.
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from syft_core.atomic import atomic_write_text
from syft_core.automock import (
    MAX_DECIMALS,
    SYNTHETIC_STRING_LENGTH,
    AutomockError,
    BudgetPart,
    ColumnProfile,
    ColumnStats,
    CsvTable,
    DpInfo,
    _parse_date,
    _parse_float,
    _to_csv,
    profile_table,
)

DEFAULT_EPSILON = 1.0
DEFAULT_DELTA = 1e-6
QUANTILES = (0.05, 0.95)
CONFIDENCE = 0.95
_Z95 = math.log(1 / (1 - CONFIDENCE))  # Laplace: P(|noise| > scale·z) = e^-z
# A coarse grid: every candidate costs utility (the error bound grows with log(candidates)).
_MANTISSAS = [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
_DECADES = range(-3, 10)  # 0.001 .. 9e9
_DATE_RANGE = (date(1900, 1, 1), date(2100, 12, 31))
_MAX_GRID = 2001
_MAX_THRESHOLD = 1 << 30

KEPT_DP = [
    "column names and order, column types, decimals of float columns (the schema, not noisy)",
    "row count (noisy)",
    "share of missing values per column (noisy)",
    "5th-95th percentile range of numeric and date columns (private quantiles)",
    "categories and their proportions, only categories whose noisy count passes a noisy threshold",
]
NOT_KEPT_DP = [
    "any exact count, minimum or maximum",
    "rare categories (they never pass the noisy threshold)",
    "free-text values and lengths (replaced by random letters)",
    "distributions within numeric columns (values are drawn uniformly in the range)",
    "correlations between columns",
    "row order",
]


class Bounds(BaseModel):
    """Owner-given bounds of a numeric or date column: the range candidates are drawn from."""

    low: float | str
    high: float | str


def parse_bounds(specs: Sequence[str]) -> dict[str, Bounds]:
    """`COLUMN=LOW:HIGH` strings (numbers or ISO dates) into bounds per column."""
    found: dict[str, Bounds] = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        low, sep2, high = rest.partition(":")
        if not sep or not sep2 or not name.strip() or not low.strip() or not high.strip():
            raise ValueError(f"bounds {spec!r}: expected COLUMN=LOW:HIGH, e.g. age=0:120")
        found[name.strip()] = Bounds(low=_bound_value(low), high=_bound_value(high))
    return found


def _bound_value(text: str) -> float | str:
    text = text.strip()
    if _parse_date(text) is not None:
        return text
    number = _parse_float(text)
    if number is None:
        raise ValueError(f"bound {text!r} is neither a number nor an ISO date")
    return number


# -- OpenDP mechanisms -----------------------------------------------------------------------------
def _dp() -> Any:
    import opendp.prelude as dp  # imported here: a 50 MB native library, needed only for a DP mock

    dp.enable_features("contrib")
    return dp


def count_measurement(epsilon: float) -> tuple[Any, float]:
    """A noisy count of a list's items (each person adds at most one item), and its scale."""
    dp = _dp()
    scale = 1.0 / epsilon
    domain = dp.vector_domain(dp.atom_domain(T=int))
    meas = dp.t.make_count(domain, dp.symmetric_distance()) >> dp.m.then_laplace(scale=scale)
    return meas, scale


def quantile_measurement(
    candidates: list[float] | list[int], alpha: float, epsilon: float
) -> tuple[Any, float]:
    """OpenDP's private quantile among `candidates`, at `epsilon`, and its scale."""
    dp = _dp()
    is_int = isinstance(candidates[0], int)
    atom = dp.atom_domain(T=dp.i64) if is_int else dp.atom_domain(T=float, nan=False)

    def make(scale: float) -> Any:
        return dp.m.make_private_quantile(
            dp.vector_domain(atom),
            dp.symmetric_distance(),
            dp.max_divergence(),
            candidates=candidates,
            alpha=alpha,
            scale=scale,
        )

    scale = float(make(1.0).map(1)) / epsilon  # the privacy loss is proportional to 1/scale
    return make(scale), scale


def category_measurement(epsilon: float, delta: float) -> tuple[Any, float, int]:
    """Noisy counts of the categories seen, with a noisy threshold: (measurement, scale,
    threshold). The smallest threshold whose delta fits `delta`."""
    dp = _dp()
    scale = 1.0 / epsilon
    domain = dp.vector_domain(dp.atom_domain(T=str))
    counts = dp.t.make_count_by(domain, dp.symmetric_distance(), TV=int)

    def make(threshold: int) -> Any:
        return counts >> dp.m.then_laplace_threshold(scale=scale, threshold=threshold)

    low, high = 1, 2
    while make(high).map(1)[1] > delta:
        low, high = high, high * 2
        if high > _MAX_THRESHOLD:
            raise AutomockError(f"no category threshold reaches delta {delta} at this epsilon")
    while low < high:
        middle = (low + high) // 2
        if make(middle).map(1)[1] <= delta:
            high = middle
        else:
            low = middle + 1
    return make(high), scale, high


def numeric_candidates(
    kind: str, bounds: Bounds | None, decimals: int | None
) -> list[float] | list[int]:
    """Candidates fixed before looking at the data (never a value read from it)."""
    if kind == "date":
        first, last = _DATE_RANGE
        if bounds is not None:
            first = date.fromisoformat(str(bounds.low))
            last = date.fromisoformat(str(bounds.high))
        days = (last - first).days
        step = max(1, days // (_MAX_GRID - 1)) if bounds is not None else 7
        return [first.toordinal() + d for d in range(0, days + 1, step)]
    if bounds is not None:
        low, high = float(bounds.low), float(bounds.high)
        if kind == "int" and high - low < _MAX_GRID:
            return list(range(math.ceil(low), math.floor(high) + 1))
        grid = [low + (high - low) * i / (_MAX_GRID - 1) for i in range(_MAX_GRID)]
    else:
        positive = [m * 10.0**k for k in _DECADES for m in _MANTISSAS]
        grid = [0.0, *positive, *(-v for v in positive)]
    if kind == "int":
        return sorted({round(v) for v in grid})
    digits = min(max(decimals or 1, 1), MAX_DECIMALS)
    return sorted({round(v, digits) for v in grid})


# -- the mock ------------------------------------------------------------------------------------
def _budget_parts(stats: list[ColumnStats], bounds: dict[str, Bounds]) -> int:
    parts = 1  # the row count
    for column in stats:
        parts += 1  # missing values
        kind = column.kind()
        if kind in ("int", "float", "date"):
            parts += len(QUANTILES)
        elif kind in ("categorical", "bool"):
            parts += 1
    return parts


def _column_values(table: CsvTable, stats: list[ColumnStats]) -> list[list[Any]]:
    """Present values of every column, typed: numbers, date ordinals, or text."""
    kinds = [s.kind() for s in stats]
    values: list[list[Any]] = [[] for _ in stats]
    for record in table.rows():
        for index, cell in enumerate(record):
            value = cell.strip()
            if not value:
                continue
            kind = kinds[index]
            if kind == "int":
                values[index].append(int(value))
            elif kind == "float":
                values[index].append(float(value))
            elif kind == "date":
                parsed = _parse_date(value)
                assert parsed is not None
                values[index].append(parsed.toordinal())
            elif kind in ("categorical", "bool"):
                values[index].append(value)
    return values


def _plain_count(scale: float) -> str:
    return f"within ±{math.ceil(scale * _Z95)} with {CONFIDENCE:.0%} confidence"


def _as_value(kind: str, number: float, decimals: int | None) -> int | float | str:
    if kind == "date":
        return date.fromordinal(int(number)).isoformat()
    if kind == "int":
        return int(number)
    return round(float(number), decimals or 1)


def generate_dp_mock(
    private: Path,
    out: Path,
    *,
    epsilon: float = DEFAULT_EPSILON,
    delta: float = DEFAULT_DELTA,
    max_rows: int,
    rows: int | None = None,
    bounds: dict[str, Bounds] | None = None,
    seed: int | None = None,
) -> tuple[list[ColumnProfile], int, DpInfo, int]:
    """Write a DP mock of the CSV/TSV table `private` to `out`: (profiles, mock rows, the
    privacy record, the category threshold)."""
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise ValueError("epsilon must be a positive number")
    if not 0 < delta < 1:
        raise ValueError("delta must be between 0 and 1")
    bounds = dict(bounds or {})
    table = CsvTable(private)
    stats, exact_rows = profile_table(table)
    if exact_rows == 0:
        raise AutomockError(f"{private}: the table has a header but no data rows to learn from")
    unknown = sorted(set(bounds) - set(table.header))
    if unknown:
        raise AutomockError(f"bounds name columns the table lacks: {unknown}")
    per_part = epsilon / _budget_parts(stats, bounds)
    histograms = sum(1 for s in stats if s.kind() in ("categorical", "bool"))
    delta_each = delta / histograms if histograms else 0.0
    values = _column_values(table, stats)
    budget: list[BudgetPart] = []

    count, scale = count_measurement(per_part)
    noisy_rows = max(0, round(count([0] * exact_rows)))
    budget.append(
        BudgetPart(
            statistic="row count",
            epsilon=per_part,
            mechanism=f"Laplace, scale {scale:.3g}",
            utility=f"{_plain_count(scale)} (released: {noisy_rows})",
        )
    )
    threshold = 0
    profiles: list[ColumnProfile] = []
    for column, present in zip(stats, values, strict=True):
        profile, parts, used = _dp_profile(
            column, present, noisy_rows, per_part, delta_each, bounds.get(column.name)
        )
        threshold = max(threshold, used)
        profiles.append(profile)
        budget.extend(parts)
    size = rows if rows is not None else max(1, min(noisy_rows, max_rows))
    rng = random.Random(seed)
    makers = [_dp_maker(p) for p in profiles]
    mock = [[make(rng) for make in makers] for _ in range(size)]
    atomic_write_text(out, _to_csv(table.header, mock, table.delimiter))
    info = DpInfo(
        epsilon=epsilon,
        delta=sum(p.delta for p in budget),
        spent_epsilon=sum(p.epsilon for p in budget),
        budget=budget,
    )
    return profiles, size, info, threshold


def _dp_profile(
    stats: ColumnStats,
    present: list[Any],
    noisy_rows: int,
    eps: float,
    delta: float,
    bounds: Bounds | None,
) -> tuple[ColumnProfile, list[BudgetPart], int]:
    kind = stats.kind()
    name = stats.name
    count, scale = count_measurement(eps)
    missing = max(0, round(count([0] * stats.missing)))
    fraction = round(min(1.0, missing / noisy_rows), 2) if noisy_rows else 0.0
    parts = [
        BudgetPart(
            statistic="missing values",
            column=name,
            epsilon=eps,
            mechanism=f"Laplace, scale {scale:.3g}",
            utility=f"missing count {_plain_count(scale)}",
        )
    ]
    profile = ColumnProfile(name=name, type=kind, missing_fraction=fraction)
    threshold = 0
    if kind in ("int", "float", "date"):
        decimals = min(max(stats.decimals, 1), MAX_DECIMALS) if kind == "float" else None
        profile.decimals = decimals
        candidates = numeric_candidates(kind, bounds, decimals)
        ends: list[float] = []
        for alpha in QUANTILES:
            quantile, q_scale = quantile_measurement(candidates, alpha, eps)
            ends.append(quantile(present) if present else candidates[len(candidates) // 2])
            rank = math.ceil(q_scale * (math.log(len(candidates)) + _Z95))
            parts.append(
                BudgetPart(
                    statistic=f"{round(alpha * 100)}th percentile",
                    column=name,
                    epsilon=eps,
                    mechanism=f"OpenDP private quantile over {len(candidates)} candidates "
                    f"({'owner bounds' if bounds else 'data-independent grid'}), "
                    f"scale {q_scale:.3g}",
                    utility=f"within about ±{rank} rows in rank of the true percentile with "
                    f"{CONFIDENCE:.0%} confidence",
                )
            )
        low, high = sorted(ends)
        profile.minimum = _as_value(kind, low, decimals)
        profile.maximum = _as_value(kind, high, decimals)
    elif kind in ("categorical", "bool"):
        measurement, c_scale, threshold = category_measurement(eps, delta)
        released: dict[str, int] = measurement(present) if present else {}
        kept = sorted(released)
        profile.categories = kept
        profile.category_counts = [max(1, round(released[k])) for k in kept]
        profile.synthetic_categories = []
        parts.append(
            BudgetPart(
                statistic="categories",
                column=name,
                epsilon=eps,
                delta=delta,
                mechanism=f"Laplace with noisy threshold {threshold}, scale {c_scale:.3g}",
                utility=f"category counts {_plain_count(c_scale)}; a category needs about "
                f"{threshold} people to appear at all",
            )
        )
    elif kind == "string":
        profile.length_range = SYNTHETIC_STRING_LENGTH
    return profile, parts, threshold


ValueMaker = Callable[[random.Random], str]


def _dp_maker(profile: ColumnProfile) -> ValueMaker:
    kind = profile.type
    make: ValueMaker
    if kind == "int":
        low, high = int(profile.minimum or 0), int(profile.maximum or 0)

        def make(rng: random.Random) -> str:
            return str(rng.randint(low, high))

    elif kind == "float":
        flow, fhigh = float(profile.minimum or 0.0), float(profile.maximum or 0.0)
        digits = profile.decimals or 1

        def make(rng: random.Random) -> str:
            return f"{min(max(round(rng.uniform(flow, fhigh), digits), flow), fhigh):.{digits}f}"

    elif kind == "date":
        first = date.fromisoformat(str(profile.minimum))
        span = (date.fromisoformat(str(profile.maximum)) - first).days

        def make(rng: random.Random) -> str:
            return (first + timedelta(days=rng.randint(0, span))).isoformat()

    elif kind in ("bool", "categorical"):
        pool = profile.categories or []
        weights = profile.category_counts or [1] * len(pool)

        def make(rng: random.Random) -> str:
            return rng.choices(pool, weights=weights)[0] if pool else ""

    elif kind == "string":
        slow, shigh = profile.length_range or SYNTHETIC_STRING_LENGTH
        letters = string.ascii_lowercase

        def make(rng: random.Random) -> str:
            return "".join(rng.choices(letters, k=rng.randint(slow, shigh)))

    else:

        def make(rng: random.Random) -> str:
            return ""

    fraction = profile.missing_fraction
    if fraction <= 0:
        return make
    return lambda rng: "" if rng.random() < fraction else make(rng)
