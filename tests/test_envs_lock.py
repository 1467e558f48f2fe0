"""Declared dependencies → code/requirements.lock at submission: the format, the strict parser,
what a job may declare, and the refusals (uv's reason and a hint; nothing written). Resolution
runs uv against a wheelhouse built in the test (no package index)."""

from __future__ import annotations

from pathlib import Path

import pytest

from syft_core import get_client
from syft_core.datasite import Datasite
from syft_core.dependencies import DependencyError
from syft_core.jobs import JobFolder, Snapshot, Status
from syft_core.jobs.lock import (
    LOCK_RELPATH,
    TARGET,
    LockError,
    Pin,
    declared_requirements,
    job_lock,
    parse_lock,
    render_lock,
)
from syft_core.submit import submit_bash_job, submit_python_job
from syft_runner.executor.job import _read_staged
from tests.fixtures_envs import Wheelhouse

OWNER = "owner@example.org"
DS = "ds@example.org"
HASH_A = "a" * 64
HASH_B = "b" * 64


@pytest.fixture
def box(tmp_path: Path) -> Path:
    root = tmp_path / "syftbox"
    Datasite(root, OWNER).init()
    return root


def _code(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "code"
    folder.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        (folder / rel).write_text(text)
    return folder


MAIN = "import syfttinypkg\nprint(syfttinypkg.GREETING)\n"


# -- the lock format -------------------------------------------------------------------------------
def test_a_rendered_lock_parses_back_to_the_same_pins_and_digest() -> None:
    pins = [
        Pin("numpy", "2.0.0", (HASH_A, HASH_B), ("pandas", "scipy"), "numpy.whl", 100),
        Pin("tabulate", "0.9.0", (HASH_A,), ("requested",), "tabulate.whl", 5),
    ]
    lock = parse_lock(render_lock(pins))
    assert lock.pins == tuple(pins)
    assert lock.target == TARGET
    assert lock.download_bytes == 105
    assert [p.name for p in lock.pins if p.requested] == ["tabulate"]
    # Comments are for the reviewer: they do not change what is installed.
    assert parse_lock(render_lock([Pin(p.name, p.version, p.hashes) for p in pins])).digest == (
        lock.digest
    )
    assert "--hash=sha256:" + HASH_A in lock.requirements_txt()
    assert "#" not in lock.requirements_txt()


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (
            "--index-url https://evil.example/simple\ntabulate==0.9 \\\n    --hash=sha256:"
            + "a" * 64,
            "not a pinned package",
        ),
        ("tabulate==0.9\n", "has no --hash"),
        ("tabulate>=0.9 \\\n    --hash=sha256:" + "a" * 64, "not a pinned package"),
        ("-e ./local\n", "not a pinned package"),
        ("tabulate @ https://x/t.whl\n", "not a pinned package"),
        ("tabulate==0.9 \\\n    --hash=md5:abc", "expected `    --hash=sha256"),
        ("tabulate==0.9 \\\n", "continued"),
        (
            "t==1 \\\n    --hash=sha256:" + "a" * 64 + "\nt==2 \\\n    --hash=sha256:" + "a" * 64,
            "pinned twice",
        ),
        ("# only comments\n", "pins no package"),
    ],
)
def test_the_lock_parser_accepts_pins_and_hashes_only(text: str, complaint: str) -> None:
    with pytest.raises(LockError, match=complaint):
        parse_lock(text)


def test_declared_requirements_come_from_config_requirements_txt_and_pyproject() -> None:
    found = declared_requirements(
        ["tabulate>=0.9"],
        "# a comment\nrich==13.0  # inline comment\n\n",
        '[project]\nname = "x"\ndependencies = ["numpy<3"]\n',
    )
    assert [(r.requirement, r.source) for r in found] == [
        ("tabulate>=0.9", "config.yaml"),
        ("rich==13.0", "code/requirements.txt"),
        ("numpy<3", "code/pyproject.toml"),
    ]
    assert declared_requirements([], None, "[tool.ruff]\nline-length = 100\n") == []


@pytest.mark.parametrize(
    "line",
    [
        "--extra-index-url https://evil.example/simple",
        "-r other.txt",
        "-e .",
        "pkg @ https://x/p.whl",
        "./local/path",
        "not a requirement!",
    ],
)
def test_options_urls_and_paths_are_not_requirements(line: str) -> None:
    with pytest.raises(LockError):
        declared_requirements([], line + "\n")


def test_dependencies_declared_without_a_lock_are_refused_for_the_runner() -> None:
    files = {"code/requirements.txt": "tabulate\n"}

    def read(relpath: str) -> str | None:
        return files.get(relpath)

    def nothing(relpath: str) -> str | None:
        return None

    with pytest.raises(LockError, match=r"no code/requirements\.lock"):
        job_lock([], read)
    with pytest.raises(LockError, match=r"config\.yaml"):
        job_lock(["tabulate"], nothing)
    assert job_lock([], nothing) is None


# -- submission ------------------------------------------------------------------------------------
def test_submission_locks_the_declared_dependencies_into_the_hashed_code(
    box: Path, tmp_path: Path, wheelhouse: Wheelhouse
) -> None:
    code = _code(tmp_path, {"main.py": MAIN})
    folder = submit_python_job(
        box,
        DS,
        OWNER,
        code_path=code,
        job_name="tiny",
        dependencies=["syfttinypkg"],
        package_index=wheelhouse.index,
    )
    assert JobFolder(folder).config().dependencies == ["syfttinypkg"]  # the request, recorded
    lock = parse_lock((folder / LOCK_RELPATH).read_text())
    assert [(p.name, p.version, p.via) for p in lock.pins] == [
        ("syfttinydep", "1.0", ("syfttinypkg",)),
        ("syfttinypkg", "1.0", ("requested",)),
    ]
    for pin in lock.pins:
        wheel = next(wheelhouse.path.glob(f"{pin.name}-*.whl"))
        assert pin.wheel == wheel.name  # a folder of wheels gives no sizes

        assert len(pin.hashes) == 1
    # The lock is part of what the owner approves: change it and the approval no longer holds.
    job = JobFolder(folder)
    assert LOCK_RELPATH in {f.relpath for f in Snapshot.take(folder).files}
    job.approve(OWNER, expected_hash=job.content_hash())
    (folder / LOCK_RELPATH).write_text((folder / LOCK_RELPATH).read_text().replace("1.0", "1.1"))
    state = job.state()
    assert state.status is Status.INBOX and "approved again" in (state.reason or "")


def test_requirements_txt_and_pyproject_in_the_code_folder_are_locked(
    box: Path, tmp_path: Path, wheelhouse: Wheelhouse
) -> None:
    for name, files in (
        ("from-txt", {"main.py": MAIN, "requirements.txt": "syfttinypkg==1.0\n"}),
        (
            "from-toml",
            {
                "main.py": MAIN,
                "pyproject.toml": (
                    '[project]\nname = "a"\nversion = "1"\ndependencies = ["syfttinypkg"]\n'
                ),
            },
        ),
    ):
        code = _code(tmp_path / name, files)
        folder = submit_python_job(
            box, DS, OWNER, code_path=code, job_name=name, package_index=wheelhouse.index
        )
        assert {p.name for p in parse_lock((folder / LOCK_RELPATH).read_text()).pins} == {
            "syfttinypkg",
            "syfttinydep",
        }
    # Bash jobs too, through the client.
    folder = get_client(box, DS).submit_bash_job(
        OWNER,
        "python3 x.py",
        "bash-deps",
        dependencies=["syfttinydep"],
        package_index=wheelhouse.index,
    )
    assert parse_lock((folder / LOCK_RELPATH).read_text()).pins[0].name == "syfttinydep"


def test_a_job_without_dependencies_gets_no_lock(box: Path, tmp_path: Path) -> None:
    folder = submit_python_job(
        box, DS, OWNER, code_path=_code(tmp_path, {"main.py": "1"}), job_name="plain"
    )
    assert not (folder / LOCK_RELPATH).exists()


@pytest.mark.parametrize(
    ("dependencies", "reason", "hint"),
    [
        (["syfttinypkg==99.0"], "there is no version of syfttinypkg==99.0", "loosen the pin"),
        (
            ["nosuchpackage-zz"],
            "not found in the provided package locations",
            "check the package's name",
        ),
        (["syfttinypkg==1.0", "syfttinydep<1.0"], "unsatisfiable", "conflict"),
    ],
)
def test_an_unresolvable_list_is_refused_with_uvs_reason_and_nothing_is_written(
    box: Path,
    tmp_path: Path,
    wheelhouse: Wheelhouse,
    dependencies: list[str],
    reason: str,
    hint: str,
) -> None:
    code = _code(tmp_path, {"main.py": MAIN})
    with pytest.raises(DependencyError) as refused:
        submit_python_job(
            box,
            DS,
            OWNER,
            code_path=code,
            job_name="bad",
            dependencies=dependencies,
            package_index=wheelhouse.index,
        )
    message = " ".join(str(refused.value).split())  # uv wraps long lines
    assert reason in message and "hint:" in message and hint in message, message
    assert not (box / OWNER / "jobs" / DS).exists() or not any(
        (box / OWNER / "jobs" / DS).iterdir()
    )


def test_a_package_without_a_wheel_is_refused_wheels_only(
    box: Path, tmp_path: Path, wheelhouse: Wheelhouse
) -> None:
    (wheelhouse.path / "syftsdistonly-1.0.tar.gz").write_bytes(b"not really an sdist")
    with pytest.raises(DependencyError, match="no usable wheels") as refused:
        submit_python_job(
            box,
            DS,
            OWNER,
            code_path=_code(tmp_path, {"main.py": "1"}),
            job_name="sdist",
            dependencies=["syftsdistonly"],
            package_index=wheelhouse.index,
        )
    assert "wheels only" in str(refused.value)


def test_a_code_folder_may_not_bring_a_lock_beside_declared_dependencies(
    box: Path, tmp_path: Path, wheelhouse: Wheelhouse
) -> None:
    lock = render_lock([Pin("syfttinydep", "1.0", (HASH_A,))])
    code = _code(tmp_path, {"main.py": MAIN, "requirements.lock": lock})
    with pytest.raises(LockError, match="written at submission"):
        submit_python_job(
            box,
            DS,
            OWNER,
            code_path=code,
            job_name="own",
            dependencies=["syfttinypkg"],
            package_index=wheelhouse.index,
        )
    # Alone, a valid lock is kept as it is (e.g. copied from an earlier submission) ...
    folder = submit_python_job(box, DS, OWNER, code_path=code, job_name="own-lock")
    assert (folder / LOCK_RELPATH).read_text() == lock
    # ... and an invalid one is refused.
    (code / "requirements.lock").write_text("--index-url https://evil.example\n")
    with pytest.raises(LockError):
        submit_python_job(box, DS, OWNER, code_path=code, job_name="bad-lock")


def test_an_option_in_requirements_txt_is_refused_at_submission(box: Path, tmp_path: Path) -> None:
    code = _code(
        tmp_path,
        {"main.py": "1", "requirements.txt": "--index-url https://evil.example/simple\ntabulate\n"},
    )
    with pytest.raises(LockError, match="options are not accepted"):
        submit_bash_job(box, DS, OWNER, script="true", job_name="opt", code_path=code)


def test_a_lock_that_is_not_utf8_text_is_refused_not_read_leniently(tmp_path: Path) -> None:
    # The review shows a file that is not UTF-8 as binary: no lock at all. Read leniently (bad
    # bytes replaced), it would install packages the owner was never shown.
    staged = tmp_path / "staged"
    (staged / "code").mkdir(parents=True)
    text = render_lock([Pin("tabulate", "0.9.0", (HASH_A,), ("requested",), "tabulate.whl", 5)])
    (staged / LOCK_RELPATH).write_bytes(b"# \xff\n" + text.encode())
    with pytest.raises(LockError, match="not UTF-8"):
        job_lock(["tabulate"], lambda rel: _read_staged(staged, rel))
