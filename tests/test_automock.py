"""Automock: types and ranges kept, no real row copied, rare categories dropped, bad files."""

from __future__ import annotations

import csv
import random
from datetime import date
from pathlib import Path

import pytest

from syft_core.automock import AutomockError, CsvTable, generate_mock, table_columns

HEADER = ["id", "age", "score", "active", "visit", "region", "diagnosis", "name", "note"]
COMMON = ["north", "south", "east"]
RARE = ["atlantis", "lemuria"]


def _write(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        records = list(csv.reader(fh, delimiter="\t" if path.suffix == ".tsv" else ","))
    return records[0], records[1:]


@pytest.fixture
def patients(tmp_path: Path) -> Path:
    rng = random.Random(42)
    rows = []
    for i in range(400):
        region = RARE[i % 2] if i in (7, 8, 9) else rng.choice(COMMON)  # 2x atlantis, 1x lemuria
        rows.append(
            [
                str(1000 + i),
                str(rng.randint(18, 95)),
                f"{rng.uniform(-5, 250):.3f}",
                rng.choice(["True", "False"]),
                date(2021, rng.randint(1, 12), rng.randint(1, 28)).isoformat(),
                region,
                rng.choice(["flu", "cold", "asthma"]),
                "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(5, 12))),
                "" if i % 4 == 0 else rng.choice(["seen", "follow-up"]),
            ]
        )
    return _write(tmp_path / "patients.csv", HEADER, rows)


def test_mock_keeps_columns_types_and_ranges(patients: Path, tmp_path: Path) -> None:
    out = tmp_path / "mock.csv"
    info = generate_mock(patients, out, seed=1)
    header, rows = _read(out)
    assert header == HEADER
    assert len(rows) == 400 == info.rows
    types = {c.name: c.type for c in info.columns}
    assert types == {
        "id": "int",
        "age": "int",
        "score": "float",
        "active": "bool",
        "visit": "date",
        "region": "categorical",
        "diagnosis": "categorical",
        "name": "string",
        "note": "categorical",
    }
    _, real = _read(patients)
    col = {name: i for i, name in enumerate(HEADER)}
    for name, parse in (("id", int), ("age", int), ("score", float)):
        real_values = [parse(r[col[name]]) for r in real]
        mock_values = [parse(r[col[name]]) for r in rows]
        assert min(real_values) <= min(mock_values) and max(mock_values) <= max(real_values)
    assert all(len(r[col["score"]].split(".")[1]) == 3 for r in rows)
    visits = [date.fromisoformat(r[col["visit"]]) for r in rows]
    real_visits = [date.fromisoformat(r[col["visit"]]) for r in real]
    assert min(real_visits) <= min(visits) and max(visits) <= max(real_visits)
    assert {r[col["active"]] for r in rows} <= {"True", "False"}
    assert table_columns(out) == table_columns(patients)  # the mock re-reads as the same types


def test_no_real_row_in_mock(patients: Path, tmp_path: Path) -> None:
    out = tmp_path / "mock.csv"
    generate_mock(patients, out, seed=7)
    _, real = _read(patients)
    _, mock = _read(out)
    assert not {tuple(r) for r in real} & {tuple(r) for r in mock}


def test_no_real_row_even_when_collisions_are_likely(tmp_path: Path) -> None:
    # 3 x 2 x 2 = 12 possible rows, 10 of them real: a naive generator copies real rows often.
    combos = [[str(a), b, c] for a in (1, 2, 3) for b in ("x", "y") for c in ("true", "false")]
    real = [row for row in combos if row not in (["3", "y", "false"], ["1", "x", "true"])] * 5
    private = _write(tmp_path / "small.csv", ["a", "b", "c"], real)
    for seed in range(20):
        out = tmp_path / f"mock{seed}.csv"
        generate_mock(private, out, seed=seed)
        _, mock = _read(out)
        assert len(mock) == 50
        assert not {tuple(r) for r in mock} & {tuple(r) for r in real}


def test_mock_impossible_without_copying_is_refused(tmp_path: Path) -> None:
    private = _write(tmp_path / "flags.csv", ["flag"], [["yes"], ["no"]] * 10)
    with pytest.raises(AutomockError, match="differ from every real row"):
        generate_mock(private, tmp_path / "mock.csv", seed=0)
    assert not (tmp_path / "mock.csv").exists()


def test_rare_categories_are_replaced(patients: Path, tmp_path: Path) -> None:
    out = tmp_path / "mock.csv"
    info = generate_mock(patients, out, seed=3, min_category_count=5)
    region = next(c for c in info.columns if c.name == "region")
    assert sorted(region.categories or []) == sorted(COMMON)
    assert region.rare_categories_replaced == 2
    assert region.synthetic_categories == ["synthetic_1", "synthetic_2"]
    _, rows = _read(out)
    seen = {r[HEADER.index("region")] for r in rows}
    assert not seen & set(RARE)
    assert seen <= set(COMMON) | {"synthetic_1", "synthetic_2"}
    assert "atlantis" not in info.model_dump_json() and "lemuria" not in info.model_dump_json()


def test_free_strings_and_missing_values_are_synthetic(patients: Path, tmp_path: Path) -> None:
    out = tmp_path / "mock.csv"
    info = generate_mock(patients, out, seed=5)
    _, real = _read(patients)
    _, rows = _read(out)
    real_names = {r[HEADER.index("name")] for r in real}
    assert not real_names & {r[HEADER.index("name")] for r in rows}
    note = next(c for c in info.columns if c.name == "note")
    assert note.missing_fraction == 0.25
    blanks = sum(1 for r in rows if r[HEADER.index("note")] == "")
    assert 40 < blanks < 170  # drawn at about a quarter of 400


def test_seed_is_deterministic_and_rows_are_capped(patients: Path, tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in ("a.csv", "b.csv", "c.csv"))
    generate_mock(patients, a, seed=11, max_rows=50)
    generate_mock(patients, b, seed=11, max_rows=50)
    generate_mock(patients, c, seed=12, max_rows=50)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert len(_read(a)[1]) == 50


def test_records_what_is_kept_and_not(patients: Path, tmp_path: Path) -> None:
    info = generate_mock(patients, tmp_path / "m.csv", seed=1)
    assert any("correlations" in item for item in info.not_kept)
    assert any("real row" in item for item in info.not_kept)
    assert any("ranges" in item for item in info.kept)
    age = next(c for c in info.columns if c.name == "age")
    assert (age.minimum, age.maximum) == (
        min(int(r[1]) for r in _read(patients)[1]),
        max(int(r[1]) for r in _read(patients)[1]),
    )


def test_tsv_is_understood(tmp_path: Path) -> None:
    rows = [[str(i), f"{i * 1.5:.1f}"] for i in range(30)]
    private = _write(tmp_path / "t.tsv", ["n", "x"], rows, delimiter="\t")
    out = tmp_path / "m.tsv"
    generate_mock(private, out, seed=0)
    header, mock = _read(out)
    assert header == ["n", "x"] and len(mock) == 30


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("data.json", b'{"a": 1}', "only CSV/TSV"),
        ("data.parquet", b"PAR1\x00\x01", "only CSV/TSV"),
        ("data.csv", b"a,b\n\x00\x01\x02,3\n", "binary"),
        ("data.csv", b"", "empty"),
        ("data.csv", b"\n\n  \n", "empty"),
        ("data.csv", b"a,b\n", "no data rows"),
        ("data.csv", b"1,2,3\n4,5,6\n", "no header"),
        ("data.csv", b"a,,c\n1,2,3\n", "no header"),
        ("data.csv", b"a,a\n1,2\n", "duplicate column"),
        ("data.csv", b"a,b\n1,2\n3\n", "line 3 has 1 fields"),
        ("data.csv", b"a,b\n\xff\xfe,1\n", "not UTF-8"),
    ],
)
def test_files_automock_does_not_understand(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AutomockError, match=reason) as info:
        generate_mock(path, tmp_path / "mock.csv")
    assert str(path) in str(info.value)


def test_header_survives_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffcity,n\nparis,1\nrome,2\n".encode())
    assert CsvTable(path).header == ["city", "n"]
