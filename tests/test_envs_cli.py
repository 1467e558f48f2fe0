"""Reviewing and managing environments from the owner's CLI: `show` (requested versus resolved,
who pulled what in, totals, what this datasite never approved, the cache), the warnings that
stop policies, and `envs list|prune|fetch` (a wheelhouse for air-gapped runners)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner, Result

from syft_core.datasite import Datasite
from syft_core.jobs import JobFolder, Snapshot
from syft_core.jobs.lock import LOCK_RELPATH, parse_lock
from syft_core.submit import submit_python_job
from syft_runner.cli import _register_all
from syft_runner.cli import app as full_app
from syft_runner.cli import envs as envs_cli
from syft_runner.cli import jobs as jobs_cli
from syft_runner.sandbox.envs import ENV_SUBDIR, MANIFEST
from tests.fixtures_envs import Wheelhouse
from tests.fixtures_runner import approve

DO = "alice@example.org"
DS = "bob@example.org"


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    jobs_cli.register(app)
    envs_cli.register(app)
    return app


@pytest.fixture
def box(tmp_path: Path) -> Path:
    root = tmp_path / "syftbox"
    Datasite(root, DO).init()
    return root


def run(app: typer.Typer, box: Path, *args: str) -> Result:
    env = {"SYFTBOX_FOLDER": str(box), "SYFTBOX_EMAIL": DO, "COLUMNS": "200"}
    return CliRunner().invoke(app, list(args), env=env)


def submit(box: Path, tmp_path: Path, wheelhouse: Wheelhouse, name: str) -> JobFolder:
    code = tmp_path / f"code-{name}"
    code.mkdir()
    (code / "main.py").write_text("import syfttinypkg\n")
    folder = submit_python_job(
        box,
        DS,
        DO,
        code_path=code,
        job_name=name,
        dependencies=["syfttinypkg>=1.0"],
        package_index=wheelhouse.index,
    )
    return JobFolder(folder)


def _rows(output: str) -> dict[str, list[str]]:
    return {
        line.split()[0]: line.split() for line in output.splitlines() if line.startswith("  syft")
    }


def test_show_lists_requested_and_resolved_packages_and_what_is_new(
    app: typer.Typer, box: Path, tmp_path: Path, wheelhouse: Wheelhouse
) -> None:
    first = submit(box, tmp_path, wheelhouse, "first")
    result = run(app, box, "show", "first")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "requested:\n  syfttinypkg>=1.0   (config.yaml)" in out
    assert "code/requirements.lock: 2 packages for cp311 x86_64-manylinux_2_36" in out
    rows = _rows(out)
    assert rows["syfttinydep"][1:] == ["1.0", "?", "syfttinypkg", "NEW"]
    assert rows["syfttinypkg"][1:] == ["1.0", "?", "requested", "NEW"]
    assert "total: 2 packages" in out
    assert "not approved before in this datasite: syfttinydep 1.0, syfttinypkg 1.0" in out
    assert "cache: not built yet" in out
    # The lock itself is printed like every file, and the hash covers it.
    assert "--- code/requirements.lock" in out and "WARNINGS" not in out

    approve(first)
    second = submit(box, tmp_path, wheelhouse, "second")
    assert "every package was approved before" in run(app, box, "show", "second").output
    assert _rows(run(app, box, "show", "second").output)["syfttinypkg"][-1] == "yes"
    # The same version with another file (an index may add files to a release): not vouched for.
    third = submit(box, tmp_path, wheelhouse, "third")
    third_lock = third.path / LOCK_RELPATH
    approved_hash = parse_lock(third_lock.read_text()).pins[1].hashes[0]
    third_lock.write_text(third_lock.read_text().replace(approved_hash, "b" * 64))
    rows = _rows(run(app, box, "show", "third").output)
    assert rows[parse_lock(third_lock.read_text()).pins[1].name][-2:] == ["NEW", "FILES"]
    # The lock's "via" comments are the submitter's: one the lock does not back is marked.
    third_lock.write_text(third_lock.read_text().replace("via syfttinypkg", "via pandas"))
    rows = _rows(run(app, box, "show", "third").output)
    assert rows["syfttinydep"][3:5] == ["pandas", "(UNBACKED)"]

    # An approved job whose folder changed since does not vouch for anything.
    lock = first.path / LOCK_RELPATH
    lock.write_text(lock.read_text() + "# edited\n")
    out = run(app, box, "show", "second").output
    assert "not approved before in this datasite: syfttinydep 1.0, syfttinypkg 1.0" in out
    assert second.path.exists()


def test_show_says_when_the_environment_is_cached(
    app: typer.Typer, box: Path, tmp_path: Path, wheelhouse: Wheelhouse
) -> None:
    job = submit(box, tmp_path, wheelhouse, "cached")
    cache = tmp_path / "env-cache"
    runner_yaml = box / DO / ".syft" / "runner.yaml"
    runner_yaml.write_text(yaml.safe_dump({"env_cache_dir": str(cache)}))
    lock = parse_lock((job.path / LOCK_RELPATH).read_text())
    _fake_entry(cache, "k1", 3_000_000, time.time(), lock.digest)
    out = run(app, box, "show", "cached").output
    assert "cache: built for image sha256:xxxxxxxxxxxx, 3.0 MB installed" in out


def test_declared_dependencies_without_a_usable_lock_are_warnings(
    box: Path, tmp_path: Path, wheelhouse: Wheelhouse
) -> None:
    job = submit(box, tmp_path, wheelhouse, "warned")
    assert Snapshot.take(job.path).warnings == []
    lock = job.path / LOCK_RELPATH
    text = lock.read_text()
    lock.write_text("\n".join(line for line in text.splitlines() if "syfttinypkg==" not in line))
    [warning] = Snapshot.take(job.path).warnings
    assert "environment:" in warning
    # A well-formed lock that does not pin what is requested.
    lock.write_text(text.split("syfttinypkg==")[0])
    [warning] = Snapshot.take(job.path).warnings
    assert "does not pin what the job requests: syfttinypkg" in warning
    lock.unlink()
    [warning] = Snapshot.take(job.path).warnings
    assert "no code/requirements.lock" in warning


def test_fetch_makes_a_wheelhouse_checked_against_the_lock(
    app: typer.Typer, box: Path, tmp_path: Path, wheelhouse: Wheelhouse
) -> None:
    job = submit(box, tmp_path, wheelhouse, "fetched")
    dest = tmp_path / "carry-over"
    result = run(
        app, box, "envs", "fetch", "fetched", "--dest", str(dest),
        "--find-links", str(wheelhouse.path), "--no-index",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lock = parse_lock((job.path / LOCK_RELPATH).read_text())
    fetched = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in dest.glob("*.whl")}
    assert len(fetched) == 2
    for pin in lock.pins:
        [digest] = [d for name, d in fetched.items() if name.startswith(f"{pin.name}-")]
        assert digest in pin.hashes
    # From a lock file too; a wheelhouse serving other bytes is refused.
    lock_copy = tmp_path / "job.lock"
    lock_copy.write_text((job.path / LOCK_RELPATH).read_text())
    wheelhouse.tamper()
    result = run(
        app, box, "envs", "fetch", str(lock_copy), "--dest", str(tmp_path / "bad"),
        "--find-links", str(wheelhouse.path), "--no-index",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "hash" in result.output.lower()


@pytest.mark.docker
def test_list_and_prune_keep_what_queued_jobs_need(
    app: typer.Typer, box: Path, tmp_path: Path, wheelhouse: Wheelhouse
) -> None:
    queued = approve(submit(box, tmp_path, wheelhouse, "queued"))
    lock = parse_lock((queued.path / LOCK_RELPATH).read_text())
    cache = tmp_path / "env-cache"
    (box / DO / ".syft" / "runner.yaml").write_text(
        yaml.safe_dump({"env_cache_dir": str(cache), "env_cache_max_mb": 1})
    )
    old = time.time() - 3600
    _fake_entry(cache, "needed", 1000, old, lock.digest)
    _fake_entry(cache, "unused", 1000, old, "sha256:other")
    out = run(app, box, "envs", "list").output
    assert "needed" in out and "unused" in out and "2 environment(s)" in out
    result = run(app, box, "envs", "prune", "--all")
    assert result.exit_code == 0, result.output
    assert "removed unused" in result.output
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == ["needed"]


def test_the_envs_commands_are_registered() -> None:
    _register_all()
    result = CliRunner().invoke(full_app, ["envs", "--help"])
    assert result.exit_code == 0
    for command in ("list", "prune", "fetch"):
        assert command in result.output


def _fake_entry(cache: Path, key: str, size: int, used: float, digest: str) -> None:
    entry = cache / key
    (entry / ENV_SUBDIR).mkdir(parents=True)
    build = {
        "container": "c",
        "image_id": "sha256:" + "x" * 64,
        "network_mode": "none",
        "mounts": [],
        "user": "1:1",
        "index": [],
        "seconds": 1.0,
    }
    manifest = {
        "key": key,
        "lock_digest": digest,
        "target": "t",
        "image_id": "sha256:" + "x" * 64,
        "python": "3.11.2",
        "packages": [],
        "bytes": size,
        "files": 1,
        "built_at": "2026-01-01T00:00:00Z",
        "build": build,
    }
    (entry / MANIFEST).write_text(json.dumps(manifest))
    (entry / "last-used").touch()
    os.utime(entry / "last-used", (used, used))
