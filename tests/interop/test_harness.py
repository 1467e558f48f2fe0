"""The harness itself, with no runner of ours: the real clients submit, approve and reject,
this file plays the runner by hand (syft-interop.md section 4), and the real scientist's
client must read the results. Both protocols, over one shared root and over the mock Drive.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.interop.clients import MockDrivePair, SharedRootPair, SyftStack, ensure_venv

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DO, DS = "do@example.org", "ds@example.org"
BASH_OK = "echo hello from bash\necho 42 > code/outputs/bash_result.txt\n"
BASH_FAIL = "echo partial > code/outputs/partial.txt\necho boom >&2\nexit 3\n"
MAIN_PY = """\
import json
from pathlib import Path

import {module} as sy

params = json.loads(Path("params.json").read_text())
path = sy.resolve_dataset_file_path("ages")
ages = [int(line) for line in path.read_text().split()[1:]]
mean = sum(ages) / len(ages)
print("mean", mean)
Path("outputs/result.json").write_text(json.dumps({{"mean": mean * params["scale"]}}))
"""


# ---------------------------------------------------------------- the runner, by hand


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _write_state(path: Path, state: dict[str, Any]) -> None:
    """state.yaml as syft-job writes it: every key kept, sorted."""
    path.write_text(yaml.safe_dump(state, sort_keys=True))


def _outputs_rule(review: Path, readers: list[str]) -> None:
    """Sets the `[v1/]JOB/outputs/**` rule of review/DS/syft.pub.yaml to `readers`."""
    ds_dir = next(p for p in review.parents if p.parent.name == "review")
    pub = ds_dir / "syft.pub.yaml"
    doc = yaml.safe_load(pub.read_text()) if pub.exists() else None
    rules = (doc or {}).get("rules", [])
    pattern = f"{review.relative_to(ds_dir)}/outputs/**"
    rules = [r for r in rules if r.get("pattern") != pattern]
    rules.append({"pattern": pattern, "access": {"admin": [], "read": readers, "write": []}})
    pub.write_text(yaml.safe_dump({"rules": rules}, sort_keys=False))


def _collect_outputs(inbox: Path, review: Path) -> None:
    """Top-level items of inbox code/outputs/ into review outputs/; the inbox copy goes."""
    source = inbox / "code" / "outputs"
    for item in source.iterdir():
        copy = shutil.copytree if item.is_dir() else shutil.copy2
        copy(item, review / "outputs" / item.name)
    shutil.rmtree(source)


def play_runner(
    root: Path,
    inbox: Path,
    review: Path,
    command: list[str],
    cwd: Path,
    on_running: Callable[[], None] = lambda: None,
) -> int:
    """What SyftJobRunner does to one approved job, in plain Python (our runner's contract).
    `command` stands in for `bash run.sh`; `on_running` runs while the state says running."""
    state_path = review / "state.yaml"
    state = yaml.safe_load(state_path.read_text())
    assert state["status"] == "approved"
    (inbox / "code" / "outputs").mkdir(parents=True, exist_ok=True)
    shutil.rmtree(review / "outputs", ignore_errors=True)
    (review / "outputs").mkdir()
    _outputs_rule(review, [DO])
    _write_state(state_path, {**state, "status": "running"})
    on_running()
    env = {**os.environ, "SYFTBOX_FOLDER": str(root.resolve()), "SYFTBOX_EMAIL": DO}
    env |= {"SYFT_IS_IN_JOB": "true", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    (review / "stdout.txt").write_text(proc.stdout)
    (review / "stderr.txt").write_text(proc.stderr)
    _collect_outputs(inbox, review)
    (review / "returncode.txt").write_text(str(proc.returncode))
    done = {"status": "done" if proc.returncode == 0 else "failed", "completed_at": _now()}
    _write_state(state_path, {**state, **done, "return_code": proc.returncode})
    _outputs_rule(review, [DO, DS])
    return proc.returncode


def run_bash(root: Path, inbox: Path, review: Path, **kw: Any) -> int:
    """A bash job exactly as the runner runs it: `bash run.sh` in the inbox job folder."""
    return play_runner(root, inbox, review, ["bash", str(inbox / "run.sh")], inbox, **kw)


def run_python(stack_python: Path, root: Path, inbox: Path, review: Path) -> int:
    """A python job's entrypoint, run with the client venv's Python in code/ (run.sh would
    `uv pip install` from PyPI under Python 3.12 first, which is the runner's business)."""
    command = [str(stack_python), "main.py"]
    return play_runner(root, inbox, review, command, inbox / "code")


# ---------------------------------------------------------------- inputs


def _inputs(tmp: Path, module: str) -> tuple[Path, Path, Path]:
    """(python job folder, mock csv, private csv): the private mean is 40, the mock 2."""
    code = tmp / "src_pyjob"
    code.mkdir()
    (code / "main.py").write_text(MAIN_PY.format(module=module))
    (code / "params.json").write_text(json.dumps({"scale": 1}))
    (tmp / "mock.csv").write_text("age\n1\n3\n")
    (tmp / "private.csv").write_text("age\n30\n50\n")
    return code, tmp / "mock.csv", tmp / "private.csv"


def _assert_submitted(stack: SyftStack, inbox: Path) -> None:
    """The client put its own install source first, then the declared dependency."""
    config = yaml.safe_load((inbox / "config.yaml").read_text())
    assert config["dependencies"] == [stack.spec.install_source, "tabulate==0.9.0"]
    assert f'"{stack.spec.install_source}" "tabulate==0.9.0"' in (inbox / "run.sh").read_text()


def _assert_results(views: dict[str, dict[str, Any] | None]) -> None:
    """What the real scientist's client shows for the four jobs."""
    hello, py, fail, rej = (views[n] for n in ("bash-hello", "py-job", "bash-fail", "bash-reject"))
    assert hello is not None and py is not None and fail is not None and rej is not None
    assert (hello["status"], hello["return_code"]) == ("done", 0)
    assert hello["stdout"] == "hello from bash\n"
    assert hello["outputs"] == {"bash_result.txt": "42\n"}
    assert (py["status"], py["return_code"]) == ("done", 0)
    assert py["stdout"] == "mean 40.0\n"
    assert json.loads(py["outputs"]["result.json"]) == {"mean": 40.0}
    assert (fail["status"], fail["return_code"]) == ("failed", 3)
    assert fail["stderr"] == "boom\n"
    assert fail["stdout"] == "No stdout available - job not completed yet"
    assert fail["outputs"] == {"partial.txt": "partial\n"}
    assert (rej["status"], rej["review_reason"]) == ("rejected", "not today")
    assert rej["outputs"] == {}


# ---------------------------------------------------------------- tests


def test_venvs_are_cached(syft_stack: SyftStack) -> None:
    """A second `ensure_venv` is a stamp read, and the venv holds the pinned stack."""
    venv = ensure_venv(syft_stack.spec)
    stamp = json.loads((venv / "syft-runner-interop.json").read_text())
    assert stamp["pins"] == list(syft_stack.spec.pins)
    versions = syft_stack.info()["versions"]
    for pin in syft_stack.spec.pins:
        name, version = pin.split("==")
        assert versions[name] == version


Pair = MockDrivePair | SharedRootPair


def _submit_all(pair: Pair, code: Path) -> None:
    """The scientist sends the four jobs; the owner's client lists them pending."""
    pair.submit_bash("bash-hello", BASH_OK)
    pair.submit_python("py-job", code, "main.py", ["tabulate==0.9.0"])
    pair.submit_bash("bash-fail", BASH_FAIL)
    pair.submit_bash("bash-reject", "echo never\n")
    pair.sync_do()
    assert {j["status"] for j in pair.list_jobs(as_owner=True)} == {"pending"}


def _review_all(pair: Pair) -> None:
    """The owner approves three jobs and rejects one with a reason."""
    for name in ("bash-hello", "py-job", "bash-fail"):
        assert pair.approve(name, reason="interop test") == "approved"
    assert pair.reject("bash-reject", reason="not today") == "rejected"


def _running_check(pair: Pair) -> Callable[[], None]:
    """While state.yaml says running, the scientist sees `running` and nothing else yet."""

    def check() -> None:
        pair.sync_do()
        pair.sync_ds()
        view = pair.read("bash-hello")
        assert view is not None and view["status"] == "running" and view["outputs"] == {}
        assert view["stdout"] == "No stdout available - job not completed yet"

    return check


def _round_trip(stack: SyftStack, pair: Pair, tmp_path: Path) -> None:
    """Dataset, submissions, review, the runner by hand in the owner's root, then reads."""
    code, mock, private = _inputs(tmp_path, stack.spec.resolve_module)
    pair.add_peer()
    pair.create_dataset("ages", mock, private, summary="ages", users=[DS])
    _submit_all(pair, code)
    _assert_submitted(stack, pair.job_dirs("py-job")[0])
    _review_all(pair)
    root, python = pair.do_root, ensure_venv(stack.spec) / "bin" / "python"
    hello = pair.job_dirs("bash-hello")
    assert run_bash(root, *hello, on_running=_running_check(pair)) == 0
    assert run_python(python, root, *pair.job_dirs("py-job")) == 0
    assert run_bash(root, *pair.job_dirs("bash-fail")) == 3
    pair.sync_do()
    pair.sync_ds()
    names = ("bash-hello", "py-job", "bash-fail", "bash-reject")
    _assert_results({name: pair.read(name) for name in names})


def test_shared_root_round_trip(syft_stack: SyftStack, tmp_path: Path) -> None:
    """Scientist and owner on one root, as OpenMined's standalone syft-job examples."""
    _round_trip(syft_stack, syft_stack.shared_pair(DO, DS, tmp_path / "root"), tmp_path)


def test_mock_drive_round_trip(syft_stack: SyftStack, tmp_path: Path) -> None:
    """The same over the clients' mock Drive; the runner works in the owner's root only,
    and the scientist gets results by sync (never the syft.pub.yaml files)."""
    pair = syft_stack.mock_pair(DO, DS, tmp_path / "do" / "root", tmp_path / "ds" / "root")
    try:
        _round_trip(syft_stack, pair, tmp_path)
        pattern = "review/**/syft.pub.yaml"
        assert list(pair.do_root.rglob(pattern)) and not list(pair.ds_root.rglob(pattern))
    finally:
        pair.close()


def test_dataset_path_in_job(syft_stack: SyftStack, tmp_path: Path) -> None:
    """`resolve_dataset_file_path` reads only the env and the two dataset folders: private
    data in a job, mock data outside one."""
    _, mock, private = _inputs(tmp_path, syft_stack.spec.resolve_module)
    root = tmp_path / "root"
    root.mkdir()
    syft_stack.create_dataset(root, DO, "ages", mock, private)
    assert (root / DO / "public/syft_datasets/ages/dataset.yaml").is_file()
    inside = syft_stack.resolve_dataset(root, DO, "ages")
    assert inside["paths"] == [str(root / DO / "private/syft_datasets/ages/private.csv")]
    outside = syft_stack.resolve_dataset(root, DO, "ages", in_job=False)
    assert outside["path"] == str(root / DO / "public/syft_datasets/ages/mock.csv")
