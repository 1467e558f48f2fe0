"""Dataset mounts: mock and real runs see the same paths; escapes and missing datasets refused."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from syft_core.datasets import DatasetError, DatasetNotFoundError, create_dataset
from syft_core.datasite import Datasite
from syft_core.errors import InvalidEmailError, UnsafePathError
from syft_runner.sandbox.container import Mount
from syft_runner.workspace.mounts import dataset_mounts, job_environment

OWNER = "do@example.org"


@pytest.fixture
def datasite(tmp_path: Path) -> Datasite:
    ds = Datasite(tmp_path / "syftbox", OWNER).init()
    (ds.private / "customers.csv").write_text("id,spend\n1,10\n2,20\n")
    (ds.public / "customers_mock.csv").write_text("id,spend\n9,99\n")
    create_dataset(
        ds,
        "customers",
        private=Path("private/customers.csv"),
        mock=Path("public/customers_mock.csv"),
    )
    for area, name in ((ds.private, "x.png"), (ds.public, "y.png")):
        (area / "images").mkdir()
        (area / "images" / name).write_bytes(b"img")
    create_dataset(ds, "images", private=Path("private/images"), mock=Path("public/images"))
    return ds


def _by_target(mounts: list[Mount]) -> dict[str, Mount]:
    return {m.target: m for m in mounts}


def test_mock_and_real_map_the_same_targets(datasite: Datasite) -> None:
    root = datasite.syftbox_root
    mock = _by_target(dataset_mounts(root, OWNER, ["customers", "images"], "mock"))
    real = _by_target(dataset_mounts(root, OWNER, ["customers", "images"], "real"))
    expected = {
        f"/syftbox/{OWNER}/public/datasets/customers/customers_mock.csv",
        "/data/customers/customers_mock.csv",
        f"/syftbox/{OWNER}/public/datasets/images/images",
        "/data/images/images",
    }
    assert set(mock) == set(real) == expected
    public = datasite.public.resolve() / "datasets"
    for target, mount in mock.items():
        assert mount.read_only and mount.source.is_relative_to(public), target
    assert real["/data/customers/customers_mock.csv"].source == (
        datasite.private.resolve() / "customers.csv"
    )
    assert real["/data/images/images"].source == datasite.private.resolve() / "images"
    assert all(m.read_only for m in real.values())
    # The code reads the mock path; in a real run, the bytes there are the private data.
    path = "/data/customers/customers_mock.csv"
    assert mock[path].source.read_text() == "id,spend\n9,99\n"
    assert real[path].source.read_text() == "id,spend\n1,10\n2,20\n"


def test_no_datasets_no_mounts_and_repeats_mount_once(datasite: Datasite) -> None:
    assert dataset_mounts(datasite.syftbox_root, OWNER, [], "real") == []
    assert len(dataset_mounts(datasite.syftbox_root, OWNER, ["images", "images"], "real")) == 2


def test_missing_dataset_lists_available_ones(datasite: Datasite) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        dataset_mounts(datasite.syftbox_root, OWNER, ["customers", "cars", "../x"], "real")
    message = str(info.value)
    assert "'cars'" in message and "'../x'" in message
    assert "available: customers, images" in message
    assert info.value.available == ["customers", "images"]


def test_private_file_swapped_for_an_escaping_symlink_is_refused(
    datasite: Datasite, tmp_path: Path
) -> None:
    outside = tmp_path / "host_secret.csv"
    outside.write_text("id\n1\n")
    (datasite.private / "customers.csv").unlink()
    os.symlink(outside, datasite.private / "customers.csv")
    with pytest.raises(UnsafePathError, match="outside"):
        dataset_mounts(datasite.syftbox_root, OWNER, ["customers"], "real")


def test_symlinked_private_data_folder_that_escapes_is_refused(
    datasite: Datasite, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.move(datasite.private / "images", elsewhere)
    os.symlink(elsewhere, datasite.private / "images")
    with pytest.raises(UnsafePathError, match="outside"):
        dataset_mounts(datasite.syftbox_root, OWNER, ["images"], "real")


def test_mock_pointing_into_private_is_refused(datasite: Datasite) -> None:
    # A mock replaced by a link to the private data must not leak it into a mock run.
    mock = datasite.public / "datasets" / "customers" / "customers_mock.csv"
    mock.unlink()
    os.symlink(datasite.private / "customers.csv", mock)
    with pytest.raises(UnsafePathError, match="outside"):
        dataset_mounts(datasite.syftbox_root, OWNER, ["customers"], "mock")


def test_private_data_deleted_after_publishing(datasite: Datasite) -> None:
    (datasite.private / "customers.csv").unlink()
    with pytest.raises(DatasetError, match="does not exist"):
        dataset_mounts(datasite.syftbox_root, OWNER, ["customers"], "real")
    assert len(dataset_mounts(datasite.syftbox_root, OWNER, ["customers"], "mock")) == 2


def test_real_run_without_private_mapping_is_refused(datasite: Datasite) -> None:
    (datasite.private / "datasets" / "customers.yaml").unlink()
    with pytest.raises(DatasetError, match="no private counterpart"):
        dataset_mounts(datasite.syftbox_root, OWNER, ["customers"], "real")


def test_bad_mode_and_owner(datasite: Datasite) -> None:
    with pytest.raises(ValueError, match="run mode"):
        dataset_mounts(datasite.syftbox_root, OWNER, ["customers"], "private")  # type: ignore[arg-type]
    with pytest.raises(InvalidEmailError):
        dataset_mounts(datasite.syftbox_root, "../etc", ["customers"], "real")


def test_job_environment() -> None:
    assert job_environment(OWNER, "mock") == {
        "SYFTBOX_FOLDER": "/syftbox",
        "SYFTBOX_EMAIL": OWNER,
        "SYFT_DATA_DIR": "/data",
        "SYFT_OUTPUT_DIR": "/job/outputs",
        "SYFT_RUN_MODE": "mock",
        "SYFT_IS_IN_JOB": "true",
        "SYFT_DATASITE": OWNER,
    }
    assert job_environment(OWNER, "real")["SYFT_RUN_MODE"] == "real"
    with pytest.raises(InvalidEmailError):
        job_environment("not an email", "real")
