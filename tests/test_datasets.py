"""Datasets: create/list/show/remove, where each part lives, and every kind of bad input."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner, Result

from syft_core.datasets import (
    Dataset,
    DatasetError,
    DatasetNotFoundError,
    create_dataset,
    get_dataset,
    list_datasets,
    private_mapping_path,
    remove_dataset,
)
from syft_core.datasite import Datasite
from syft_core.errors import UnsafePathError
from syft_core.permissions import SyftPermContext
from syft_runner.cli import datasets as datasets_cli

OWNER = "do@example.org"
PEER = "ds@example.org"
PRIVATE_CSV = "patient_id,age,region\n" + "".join(
    f"{i},{20 + i % 50},{['north', 'south'][i % 2]}\n" for i in range(40)
)
MOCK_CSV = "patient_id,age,region\n1,30,north\n2,41,south\n"


@pytest.fixture
def datasite(tmp_path: Path) -> Datasite:
    ds = Datasite(tmp_path / "syftbox", OWNER).init()
    (ds.private / "hiv_cohort_2024.csv").write_text(PRIVATE_CSV)
    (ds.public / "patients_mock.csv").write_text(MOCK_CSV)
    return ds


def _create(ds: Datasite, name: str = "patients", **kwargs: object) -> Dataset:
    args: dict[str, object] = {
        "private": Path("private/hiv_cohort_2024.csv"),
        "mock": Path("public/patients_mock.csv"),
    }
    args.update(kwargs)
    return create_dataset(ds, name, **args)  # type: ignore[arg-type]


def test_create_publishes_mock_and_keeps_private_mapping_private(datasite: Datasite) -> None:
    dataset = _create(datasite, description="visits per patient")
    folder = datasite.public / "datasets" / "patients"
    assert (folder / "patients_mock.csv").read_text() == MOCK_CSV
    assert dataset.entry == "patients_mock.csv" and dataset.kind == "file"
    assert dataset.private == "private/hiv_cohort_2024.csv"
    assert dataset.warnings == []
    meta = yaml.safe_load((folder / "dataset.yaml").read_text())
    assert meta["name"] == "patients" and meta["description"] == "visits per patient"
    assert meta["files"] == [
        {
            "path": "patients_mock.csv",
            "size": len(MOCK_CSV),
            "columns": [
                {"name": "patient_id", "dtype": "int"},
                {"name": "age", "dtype": "int"},
                {"name": "region", "dtype": "string"},
            ],
        }
    ]
    assert "hiv_cohort" not in (folder / "dataset.yaml").read_text()
    mapping = yaml.safe_load(private_mapping_path(datasite, "patients").read_text())
    assert mapping == {
        "name": "patients",
        "entry": "patients_mock.csv",
        "private": "private/hiv_cohort_2024.csv",
    }
    assert (datasite.private / "hiv_cohort_2024.csv").read_text() == PRIVATE_CSV
    assert [e.what for e in datasite.events][-1] == "dataset.created"


def test_peers_can_read_the_metadata_and_mock_but_not_the_mapping(datasite: Datasite) -> None:
    _create(datasite)
    ctx = SyftPermContext(datasite=datasite.root)
    assert ctx.open("public/datasets/patients/dataset.yaml").has_read_access(PEER)
    assert ctx.open("public/datasets/patients/patients_mock.csv").has_read_access(PEER)
    assert not ctx.open("private/datasets/patients.yaml").has_read_access(PEER)
    assert not ctx.open("private/hiv_cohort_2024.csv").has_read_access(PEER)


def test_get_list_and_remove(datasite: Datasite) -> None:
    _create(datasite)
    (datasite.public / "other").mkdir()
    (datasite.public / "other" / "a.csv").write_text("x\n1\n")
    (datasite.private / "other").mkdir()
    (datasite.private / "other" / "a.csv").write_text("x\n2\n")
    _create(datasite, "other", private=Path("private/other"), mock=Path("public/other"))
    assert [d.name for d in list_datasets(datasite)] == ["other", "patients"]
    got = get_dataset(datasite, "patients")
    assert got.private == "private/hiv_cohort_2024.csv" and got.files[0].size == len(MOCK_CSV)
    remove_dataset(datasite, "patients")
    assert not (datasite.public / "datasets" / "patients").exists()
    assert not private_mapping_path(datasite, "patients").exists()
    assert (datasite.private / "hiv_cohort_2024.csv").exists()  # the private data stays
    assert [d.name for d in list_datasets(datasite)] == ["other"]
    with pytest.raises(DatasetNotFoundError, match="available: other"):
        remove_dataset(datasite, "patients")


def test_peer_copy_without_private_mapping_reads_metadata(datasite: Datasite) -> None:
    _create(datasite)
    private_mapping_path(datasite, "patients").unlink()  # as in a synced copy: no private/
    assert get_dataset(datasite, "patients").private is None


def test_folder_dataset_lists_every_mock_file(datasite: Datasite) -> None:
    for area, rows in ((datasite.public, "a,b\n1,2\n"), (datasite.private, "a,b\n5,6\n7,8\n")):
        (area / "scans" / "2024").mkdir(parents=True)
        (area / "scans" / "2024" / "index.csv").write_text(rows)
        (area / "scans" / "readme.txt").write_text("scans")
    dataset = _create(datasite, "scans", private=Path("private/scans"), mock=Path("public/scans"))
    assert dataset.kind == "folder" and dataset.entry == "scans"
    assert [f.path for f in dataset.files] == ["scans/2024/index.csv", "scans/readme.txt"]
    assert dataset.files[0].columns is not None and dataset.files[1].columns is None
    assert dataset.warnings == []


def test_column_mismatch_is_a_warning_not_an_error(
    datasite: Datasite, caplog: pytest.LogCaptureFixture
) -> None:
    (datasite.public / "partial.csv").write_text("patient_id,age,zip\n1,x,0001\n")
    with caplog.at_level(logging.WARNING, logger="syft_core.datasets"):
        dataset = _create(datasite, mock=Path("public/partial.csv"))
    assert any("lacks columns of the private data: ['region']" in w for w in dataset.warnings)
    assert any("columns the private data lacks: ['zip']" in w for w in dataset.warnings)
    assert any("'age' is string, private is int" in w for w in dataset.warnings)
    assert "lacks columns" in caplog.text
    public_meta = (datasite.public / "datasets" / "patients" / "dataset.yaml").read_text()
    assert "region" not in public_meta  # the private columns never reach the public metadata


def test_automock_dataset(datasite: Datasite) -> None:
    dataset = _create(datasite, mock=None, automock=True, seed=4, privacy="none")
    assert dataset.entry == "hiv_cohort_2024.csv"
    assert dataset.automock is not None and dataset.automock.rows == 40
    mock = datasite.public / "datasets" / "patients" / "hiv_cohort_2024.csv"
    real_rows = set(PRIVATE_CSV.splitlines()[1:])
    assert not real_rows & set(mock.read_text().splitlines()[1:])
    meta = yaml.safe_load((mock.parent / "dataset.yaml").read_text())
    assert meta["automock"]["min_category_count"] == 5
    assert [c["type"] for c in meta["automock"]["columns"]] == ["int", "int", "categorical"]


# -- bad input -------------------------------------------------------------------------------------
def test_private_outside_private_is_refused(datasite: Datasite) -> None:
    with pytest.raises(DatasetError, match=r"must be a file or folder inside .*private/"):
        _create(datasite, private=Path("public/patients_mock.csv"))


def test_private_outside_the_datasite_is_refused(datasite: Datasite, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.csv"
    outside.write_text(PRIVATE_CSV)
    with pytest.raises(DatasetError, match="outside the datasite"):
        _create(datasite, private=outside)
    with pytest.raises(UnsafePathError, match=r"'\.\.'"):
        _create(datasite, private=Path("private/../public/patients_mock.csv"))


def test_mock_outside_public_is_refused(datasite: Datasite) -> None:
    with pytest.raises(DatasetError, match=r"mock .*must be a file or folder inside .*public/"):
        _create(datasite, mock=Path("private/hiv_cohort_2024.csv"))


def test_duplicate_name_is_refused(datasite: Datasite) -> None:
    _create(datasite)
    with pytest.raises(DatasetError, match="'patients' already exists"):
        _create(datasite)


def test_missing_files_are_refused(datasite: Datasite) -> None:
    with pytest.raises(DatasetError, match=r"nope\.csv does not exist"):
        _create(datasite, private=Path("private/nope.csv"))
    with pytest.raises(DatasetError, match=r"gone\.csv does not exist"):
        _create(datasite, mock=Path("public/gone.csv"))
    assert not (datasite.public / "datasets" / "patients").exists()


def test_symlinks_are_refused(datasite: Datasite, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text(PRIVATE_CSV)
    os.symlink(secret, datasite.private / "link.csv")
    with pytest.raises(DatasetError, match=r"link\.csv is a symlink"):
        _create(datasite, private=Path("private/link.csv"))
    os.symlink(datasite.private / "hiv_cohort_2024.csv", datasite.public / "mock_link.csv")
    with pytest.raises(DatasetError, match=r"mock_link\.csv is a symlink"):
        _create(datasite, mock=Path("public/mock_link.csv"))


def test_symlink_inside_a_folder_is_refused(datasite: Datasite) -> None:
    for area in (datasite.public, datasite.private):
        (area / "scans").mkdir()
        (area / "scans" / "a.txt").write_text("a")
    os.symlink("/etc/passwd", datasite.public / "scans" / "passwd")
    with pytest.raises(DatasetError, match="passwd is a symlink"):
        _create(datasite, "scans", private=Path("private/scans"), mock=Path("public/scans"))
    assert not (datasite.public / "datasets" / "scans").exists()
    assert not private_mapping_path(datasite, "scans").exists()


@pytest.mark.parametrize("name", ["Patients", "-x", "a b", "a/b", "", "x" * 65, ".hidden"])
def test_invalid_names_are_refused(datasite: Datasite, name: str) -> None:
    with pytest.raises(DatasetError, match="invalid dataset name"):
        _create(datasite, name)


def test_mock_choice_must_be_exactly_one(datasite: Datasite) -> None:
    with pytest.raises(DatasetError, match="needs a mock"):
        _create(datasite, mock=None)
    with pytest.raises(DatasetError, match="not both"):
        _create(datasite, automock=True)


def test_file_and_folder_cannot_pair(datasite: Datasite) -> None:
    (datasite.public / "folder").mkdir()
    (datasite.public / "folder" / "a.csv").write_text(MOCK_CSV)
    with pytest.raises(DatasetError, match="both must be files or both folders"):
        _create(datasite, mock=Path("public/folder"))


def test_automock_of_non_csv_is_refused(datasite: Datasite) -> None:
    (datasite.private / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(DatasetError, match="must be one CSV/TSV file"):
        _create(datasite, private=Path("private/scan.png"), mock=None, automock=True)
    (datasite.private / "fake.csv").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(DatasetError, match="binary"):
        _create(datasite, private=Path("private/fake.csv"), mock=None, automock=True)
    assert list_datasets(datasite) == []
    assert not list((datasite.public / "datasets").iterdir())  # no staging folder left behind


def test_missing_dataset_lists_available_ones(datasite: Datasite) -> None:
    _create(datasite)
    with pytest.raises(DatasetNotFoundError, match="no dataset 'cars'; available: patients") as e:
        get_dataset(datasite, "cars")
    assert e.value.available == ["patients"]


# -- CLI -------------------------------------------------------------------------------------------
def _cli(datasite: Datasite, *args: str) -> Result:
    app = typer.Typer()
    datasets_cli.register(app)
    env = {
        "SYFTBOX_FOLDER": str(datasite.syftbox_root),
        "SYFTBOX_EMAIL": OWNER,
        "COLUMNS": "200",
    }
    return CliRunner().invoke(app, ["datasets", *args], env=env)


def test_cli_add_list_show_remove(datasite: Datasite) -> None:
    private = str(datasite.private / "hiv_cohort_2024.csv")
    added = _cli(datasite, "add", "patients", "--private", private, "--automock", "--seed", "1")
    assert added.exit_code == 0, added.output
    assert "/data/patients/hiv_cohort_2024.csv" in added.output
    listed = _cli(datasite, "list")
    assert listed.exit_code == 0 and "patients" in listed.output and "automock" in listed.output
    shown = _cli(datasite, "show", "patients")
    assert shown.exit_code == 0
    assert "private:      private/hiv_cohort_2024.csv" in shown.output
    # A differentially private mock by default: a 40-row table's categories may all be too rare.
    assert "region: " in shown.output and "not kept:" in shown.output
    assert "differentially private (OpenDP): epsilon 1" in shown.output
    assert "row count (epsilon" in shown.output and "with 95% confidence" in shown.output
    assert "with 95% confidence" in added.output
    assert _cli(datasite, "remove", "patients").exit_code == 0
    missing = _cli(datasite, "show", "patients")
    assert missing.exit_code == 1 and "no dataset 'patients'" in missing.output


def test_cli_refuses_bad_input_with_exit_1(datasite: Datasite) -> None:
    mock = str(datasite.public / "patients_mock.csv")
    result = _cli(datasite, "add", "patients", "--private", mock, "--mock", mock)
    assert result.exit_code == 1
    assert "must be a file or folder inside" in result.output
    assert list_datasets(datasite) == []


def test_a_private_location_in_the_public_metadata_is_ignored(tmp_path: Path) -> None:
    # dataset.yaml is public (and a peer's to write in its synced copy): where the private
    # data is comes from the owner's private mapping only.
    owner = Datasite(tmp_path, "owner@example.org").init()
    (owner.public / "c.csv").write_text("a\n1\n")
    (owner.private / "c.csv").write_text("a\n1\n")
    create_dataset(owner, "c", private=Path("private/c.csv"), mock=Path("public/c.csv"))
    metadata = owner.public / "datasets" / "c" / "dataset.yaml"
    metadata.write_text(metadata.read_text() + "private: /home/bob/private/secrets.csv\n")
    assert get_dataset(owner, "c").private == "private/c.csv"
    private_mapping_path(owner, "c").unlink()  # as in a peer's copy: no mapping there
    assert get_dataset(owner, "c").private is None
