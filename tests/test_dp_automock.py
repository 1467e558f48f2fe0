"""The differentially private automock: its guarantee's mechanics, not just its API.

A distinguishing test draws many releases of one mechanism on a table and on its neighbour (one
person removed, or changed) and compares the empirical probability of every event (an output
value, or a run of them, holding at least MIN_EVENT of the draws). Differential privacy says no
event is more than e^epsilon times likelier on one than on the other (e^(2·epsilon) for a changed
row); the test allows sampling tolerance on top, and a control run on a mechanism that leaks more
than it claims shows the test can tell.
"""

from __future__ import annotations

import csv
import math
import random
from collections import Counter
from collections.abc import Callable, Hashable
from pathlib import Path

import pytest

from syft_core.automock import CsvTable
from syft_core.dp_automock import (
    Bounds,
    count_measurement,
    generate_dp_mock,
    numeric_candidates,
    parse_bounds,
    quantile_measurement,
)

DRAWS = 2000
MIN_EVENT = 0.04  # events rarer than this are merged: their ratio is too noisy to measure
TOLERANCE = 1.45  # sampling slack on the ratio at DRAWS draws and MIN_EVENT


def _events(a: list[int], b: list[int]) -> list[tuple[float, float]]:
    """(P_a, P_b) of events: runs of consecutive output values, each holding at least MIN_EVENT
    of the draws on both sides, plus the tails beyond them."""
    ca, cb = Counter(a), Counter(b)
    values = sorted(set(ca) | set(cb))
    found: list[tuple[float, float]] = []
    run_a = run_b = 0
    for value in values:
        run_a += ca[value]
        run_b += cb[value]
        if run_a >= MIN_EVENT * len(a) and run_b >= MIN_EVENT * len(b):
            found.append((run_a / len(a), run_b / len(b)))
            run_a = run_b = 0
    return found


def _max_ratio(draw: Callable[[list[int]], Hashable], d1: list[int], d2: list[int]) -> float:
    a = [int(draw(d1)) for _ in range(DRAWS)]  # type: ignore[call-overload]
    b = [int(draw(d2)) for _ in range(DRAWS)]  # type: ignore[call-overload]
    events = _events(a, b)
    assert len(events) >= 4, "the events must cover the output's spread"
    return max(max(pa / pb, pb / pa) for pa, pb in events)


def test_noisy_count_does_not_tell_whether_a_person_is_in() -> None:
    epsilon = 0.5
    count, _ = count_measurement(epsilon)
    table, without_one = [0] * 30, [0] * 29
    assert _max_ratio(count, table, without_one) <= math.exp(epsilon) * TOLERANCE


def test_the_distinguisher_catches_a_mechanism_that_leaks_more_than_it_claims() -> None:
    claimed = 0.5
    rng = random.Random(0)

    def leaky(data: list[int]) -> int:  # Laplace at epsilon 1.5, claiming 0.5
        return round(len(data) + rng.expovariate(1.5) - rng.expovariate(1.5))

    assert _max_ratio(leaky, [0] * 30, [0] * 29) > math.exp(claimed) * TOLERANCE


def test_private_quantile_does_not_tell_a_person_removed_or_changed() -> None:
    epsilon = 0.5
    candidates = list(range(0, 101))
    quantile, _ = quantile_measurement(candidates, 0.95, epsilon)
    table = [*range(20, 60), 97]  # one person far above everyone: the maximum
    removed = table[:-1]
    changed = [*table[:-1], 21]
    bound = math.exp(epsilon) * TOLERANCE
    assert _max_ratio(quantile, table, removed) <= bound
    assert _max_ratio(quantile, table, changed) <= math.exp(2 * epsilon) * TOLERANCE


def _table(path: Path, rows: int, seed: int = 0) -> tuple[float, float]:
    """A table with unique extremes far from everyone else; returns (min, max) of `weight`."""
    rng = random.Random(seed)
    weights = [round(rng.uniform(50, 90), 2) for _ in range(rows - 2)] + [3.17, 211.93]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["age", "weight", "group", "note"])
        for index, weight in enumerate(weights):
            group = "rare" if index == 0 else rng.choice(["a", "b"])
            age = 104 if index == rows - 1 else rng.randint(30, 70)
            writer.writerow([age, f"{weight:.2f}", group, f"note {index}"])
    return min(weights), max(weights)


def test_hidden_size_and_extremes_never_appear(tmp_path: Path) -> None:
    private = tmp_path / "patients.csv"
    low, high = _table(private, 737)
    sizes: list[int] = []
    for run in range(12):
        out = tmp_path / f"mock{run}.csv"
        profiles, size, info, _ = generate_dp_mock(private, out, max_rows=5000, seed=run)
        sizes.append(size)
        text = out.read_text()
        dumped = str(info.model_dump()) + str([p.model_dump() for p in profiles])
        cells = text.replace("\n", ",").split(",")
        for secret in (f"{low:.2f}", f"{high:.2f}", "rare"):
            assert secret not in cells
            assert f"'{secret}'" not in dumped and f": {secret}," not in dumped
        weight = next(p for p in profiles if p.name == "weight")
        age = next(p for p in profiles if p.name == "age")
        assert weight.minimum != low and weight.maximum != high and age.maximum != 104
        assert len(list(CsvTable(out).rows())) == size
        assert info.spent_epsilon <= 1.0 + 1e-9
    # The size is a noisy count: spread around 737, and 737 itself no likelier than noise makes it.
    assert len(set(sizes)) >= 5
    assert sizes.count(737) <= 4


def test_metadata_records_what_each_part_of_the_budget_paid_for(tmp_path: Path) -> None:
    private = tmp_path / "p.csv"
    _table(private, 300)
    profiles, size, info, threshold = generate_dp_mock(
        private,
        tmp_path / "m.csv",
        epsilon=2.0,
        max_rows=1000,
        rows=50,
        bounds={"age": Bounds(low=0, high=120)},
    )
    assert size == 50
    statistics = [(p.statistic, p.column) for p in info.budget]
    assert ("row count", None) in statistics
    assert ("5th percentile", "age") in statistics and ("95th percentile", "weight") in statistics
    assert ("categories", "group") in statistics and ("missing values", "note") in statistics
    assert math.isclose(sum(p.epsilon for p in info.budget), 2.0)
    assert 0 < info.delta <= 1e-6 and threshold > 1
    assert all("95% confidence" in p.utility for p in info.budget)
    age = next(p for p in profiles if p.name == "age")
    assert isinstance(age.minimum, int) and 0 <= age.minimum <= age.maximum <= 120  # type: ignore[operator]
    note = next(p for p in profiles if p.name == "note")
    assert note.length_range == (6, 40)


def test_candidates_never_come_from_the_data() -> None:
    grid = numeric_candidates("float", None, 2)
    assert 0.0 in grid and 9e9 in grid and -0.01 in grid
    assert numeric_candidates("int", Bounds(low=0, high=10), None) == list(range(11))
    dates = numeric_candidates("date", Bounds(low="2020-01-01", high="2020-01-31"), None)
    assert len(dates) == 31


def test_bounds_are_parsed_or_refused() -> None:
    assert parse_bounds(["age=0:120", "day=2020-01-01:2021-01-01"])["age"].high == 120
    with pytest.raises(ValueError, match="COLUMN=LOW:HIGH"):
        parse_bounds(["age"])
    with pytest.raises(ValueError, match="neither a number"):
        parse_bounds(["age=a:b"])
