"""The job runtime images: content, hardening, the build cache and image resolution."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from syft_runner.sandbox.images import (
    BUILD_LOCK,
    IMAGES_DIR,
    LABEL_BUILD_HASH,
    LABEL_RUNTIME,
    ImageBuildError,
    ImageMissingError,
    PackageListing,
    build_images,
    context_hash,
    image_packages,
    image_statuses,
    image_tag,
    resolve_image,
    runtime_names,
)


def _run_as(client: docker.DockerClient, image: str, command: list[str], user: str = "") -> str:
    output: bytes = client.containers.run(
        image, command, user=user or None, network_mode="none", remove=True, stderr=True
    )
    return output.decode()


# --- Unit ------------------------------------------------------------------------------------


def test_runtime_names_are_the_dockerfile_folders(tmp_path: Path) -> None:
    assert runtime_names() == ["minimal", "scientific"]
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "notes").mkdir()
    assert runtime_names(tmp_path) == ["r1"]
    with pytest.raises(ImageBuildError, match="images folder not found"):
        runtime_names(tmp_path / "absent")


def test_context_hash_follows_content_names_and_base(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    first = context_hash(tmp_path, "sha256:base1")
    assert context_hash(tmp_path, "sha256:base1") == first
    assert context_hash(tmp_path, "sha256:base2") != first
    (tmp_path / "Dockerfile").write_text("FROM y\n")
    changed = context_hash(tmp_path, "sha256:base1")
    assert changed != first
    (tmp_path / "Dockerfile").rename(tmp_path / "Other")
    assert context_hash(tmp_path, "sha256:base1") != changed


def test_images_dir_is_the_repo_images_folder() -> None:
    assert (IMAGES_DIR / "scientific" / "Dockerfile").is_file()


@pytest.mark.parametrize("name", ["../scientific", "Minimal", "", "scientific:latest", "a/b"])
def test_resolve_rejects_malformed_runtime_names(name: str) -> None:
    with pytest.raises(ImageMissingError, match="not a valid runtime name"):
        resolve_image(docker.DockerClient(base_url="unix:///nonexistent", version="1.41"), name)


# --- Real images ---------------------------------------------------------------------------


@pytest.mark.docker
def test_images_are_built_tagged_and_labelled(
    docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    assert set(job_images) == {"scientific", "minimal"}
    for name, image_id in job_images.items():
        image = docker_client.images.get(image_tag(name))
        assert image.id == image_id == resolve_image(docker_client, name)
        assert image.labels[LABEL_RUNTIME] == name
        assert len(image.labels[LABEL_BUILD_HASH]) == 64
        assert image.attrs["Config"]["User"] == "65532:65532"
    assert "pandas" in docker_client.images.get(image_tag("scientific")).labels["org.syft.provides"]


@pytest.mark.docker
@pytest.mark.parametrize("runtime", ["scientific", "minimal"])
def test_image_runs_as_job_user_without_setuid_binaries(
    docker_client: docker.DockerClient, job_images: dict[str, str], runtime: str
) -> None:
    assert _run_as(docker_client, job_images[runtime], ["id", "-u"]).strip() == "65532"
    # As root, so that no directory is skipped for lack of permission.
    found = _run_as(
        docker_client, job_images[runtime], ["find", "/", "-xdev", "-perm", "/6000"], user="0"
    )
    assert found == ""


@pytest.mark.docker
def test_minimal_image_has_bash_and_the_text_tools_but_no_python(
    docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    script = (
        "command -v python3 python || echo none; bash --version | head -n 1; "
        "for t in grep sed awk find sort tar gzip; do command -v $t >/dev/null || echo no-$t; done"
    )
    output = _run_as(docker_client, job_images["minimal"], ["bash", "-c", script])
    assert output.splitlines()[0] == "none"
    assert output.splitlines()[1].startswith("GNU bash")
    assert "no-" not in output
    assert image_packages(docker_client, job_images["minimal"]) == PackageListing()


@pytest.mark.docker
def test_second_build_is_a_cache_hit(
    docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    started = time.monotonic()
    again = build_images(docker_client)
    elapsed = time.monotonic() - started
    assert again == job_images
    assert elapsed < 5, f"cached build took {elapsed:.1f} s"
    assert {s.name: s.state for s in image_statuses(docker_client)} == {
        "minimal": "current",
        "scientific": "current",
    }


@pytest.fixture
def scratch_images_dir(
    docker_client: docker.DockerClient, job_images: dict[str, str], tmp_path: Path
) -> Iterator[tuple[Path, str]]:
    """A copy of the minimal runtime under a unique name, so cache tests never touch the real
    tags."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    shutil.copytree(IMAGES_DIR / "minimal", tmp_path / name)
    try:
        yield tmp_path, name
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(image_tag(name), force=True)


@pytest.mark.docker
def test_changed_dockerfile_rebuilds_and_force_rebuilds(
    docker_client: docker.DockerClient,
    job_images: dict[str, str],
    scratch_images_dir: tuple[Path, str],
) -> None:
    images_dir, name = scratch_images_dir
    progress: list[str] = []
    first = build_images(docker_client, images_dir=images_dir, progress=progress.append)[name]
    assert any("building" in line for line in progress)

    progress.clear()
    assert (
        build_images(docker_client, images_dir=images_dir, progress=progress.append)[name] == first
    )
    assert any("up to date" in line for line in progress)

    with (images_dir / name / "Dockerfile").open("a") as dockerfile:
        dockerfile.write('LABEL org.syft.test="changed"\n')
    assert image_statuses(docker_client, images_dir)[0].state == "stale"
    changed = build_images(docker_client, images_dir=images_dir)[name]
    assert changed != first
    # The scratch copy of minimal built to the very image of syft-runner/minimal (same content,
    # same base): replacing the scratch build must not delete an image another tag still names.
    assert docker_client.images.get(image_tag("minimal")).id == job_images["minimal"]

    forced = build_images(docker_client, images_dir=images_dir, force=True)[name]
    assert forced != changed
    assert docker_client.images.get(image_tag(name)).id == forced
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(changed)  # a replaced build that nothing names is removed


@pytest.mark.docker
def test_broken_dockerfile_names_the_file(
    docker_client: docker.DockerClient, scratch_images_dir: tuple[Path, str]
) -> None:
    images_dir, name = scratch_images_dir
    with (images_dir / name / "Dockerfile").open("a") as dockerfile:
        dockerfile.write("RUN echo about-to-fail && exit 3\n")
    with pytest.raises(ImageBuildError, match=r"Dockerfile: build failed(.|\n)*about-to-fail"):
        build_images(docker_client, images_dir=images_dir)


@pytest.mark.docker
def test_concurrent_builds_wait_for_each_other(
    docker_client: docker.DockerClient, job_images: dict[str, str]
) -> None:
    finished = threading.Event()

    def build() -> None:
        build_images(docker_client)
        finished.set()

    with BUILD_LOCK.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process building right now
        worker = threading.Thread(target=build)
        worker.start()
        assert not finished.wait(1.0)
        fcntl.flock(held, fcntl.LOCK_UN)
    worker.join(timeout=30)
    assert finished.is_set()


@pytest.mark.docker
def test_resolve_missing_image_names_the_fix(docker_client: docker.DockerClient) -> None:
    with pytest.raises(ImageMissingError, match=r"syft-runner/absent-h3:latest.*make images"):
        resolve_image(docker_client, "absent-h3")
