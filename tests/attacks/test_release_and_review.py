"""Nothing leaves before release, and the owner approves exactly what they read (issue 9).

Each test is one class of attack an outside review carried out end to end, through the real
runner, the real sync between two syftboxes and the real CLI:
- a job's outputs acting as a permission file, a marker or a policy;
- private data carried in what the submitter may read before release (output names, sizes);
- a submission swapped between `show` and `approve`;
- a policy deciding on one read of a job and approving another;
- code that runs other than it reads (config-steered re-runs, bytecode, shadowed modules,
  hidden characters in names and scripts);
- output names that are not what the owner sees.
Every test asserts the side effect is absent, not just the job's state.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from typer.testing import CliRunner

from syft_core import get_client
from syft_core.datasets import create_dataset
from syft_core.datasite import PERMISSION_FILE, Datasite
from syft_core.errors import JobError
from syft_core.jobs import ContentChangedError, JobFolder, Outcome, Snapshot, Status
from syft_core.permissions import AccessLevel, SyftPermContext
from syft_core.policies import apply_policies
from syft_core.release import release_job
from syft_runner.cli import _register_all, app
from syft_runner.cli import jobs as jobs_cli
from syft_runner.service import RunnerService
from tests.attacks.conftest import files_under
from tests.fixtures_runner import (
    OWNER,
    SCIENTIST,
    StartRunner,
    approve,
    results_of,
    runner_config,
    wait_done,
    write_job,
)
from tests.fixtures_s3 import OWNER as SYNC_OWNER
from tests.fixtures_sync import SCI, Parties, Shared, folder_shared

pytestmark = pytest.mark.docker

# A job that copies the owner's private table everywhere a result could leave by.
SMUGGLER = """\
import os
rows = open("/data/customers/customers.csv").read().strip().splitlines()[1:]
os.makedirs("outputs/sub", exist_ok=True)
grant = "rules:\\n- pattern: '**'\\n  access: {read: ['*'], write: ['*']}\\n"
for name in ("syft.pub.yaml", "sub/syft.pub.yaml", "SYFT.PUB.YAML", "done", "Released",
             ".syft-policy.yaml"):
    with open(os.path.join("outputs", name), "w") as out:
        out.write(grant)
for row in rows:  # the data as file names: one row per name
    open(os.path.join("outputs", "n-" + row.replace(",", "_")), "w").close()
with open("outputs/table.csv", "w") as out:
    out.write("\\n".join(rows))
print("smuggled", len(rows))
"""
PRIVATE = "id,name\n1,alice-SECRETROW\n2,bob-SECRETROW\n"


@pytest.fixture
def shared(tmp_path: Path) -> Shared:
    """One transport (a shared folder) is enough here: what leaves is decided before it."""
    return folder_shared(tmp_path)


def _sync_all(parties: Parties) -> None:
    for _ in range(2):
        parties.sci.sync_once()
        parties.owner.sync_once()
    parties.sci.sync_once()


def _publish_customers(parties: Parties) -> None:
    owner = parties.owner_datasite
    (owner.private / "customers.csv").write_text(PRIVATE)
    (owner.public / "customers.csv").write_text("id,name\n9,mock\n")
    create_dataset(
        owner, "customers", private=Path("private/customers.csv"), mock=Path("public/customers.csv")
    )


def _run_once(owner_box: Path, client: docker.DockerClient) -> None:
    RunnerService(owner_box, SYNC_OWNER, runner_config(), client).run(threading.Event(), once=True)


def _everything(root: Path) -> Iterator[tuple[str, bytes]]:
    for path, _ in files_under(root):
        if path.is_file() and not path.is_symlink():
            yield path.relative_to(root).as_posix(), path.read_bytes()


@pytest.mark.usefixtures("job_images")
def test_a_jobs_outputs_never_act_as_permissions_and_nothing_leaves_before_release(
    parties: Parties, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    _publish_customers(parties)
    _sync_all(parties)
    code = tmp_path / "smuggle.py"
    code.write_text(SMUGGLER)
    get_client(parties.sci.box.root, SCI).submit_python_job(
        user=SYNC_OWNER, code_path=code, job_name="Smuggle", datasets=["customers"]
    )
    _sync_all(parties)
    owner_box = parties.owner.box.root
    job = get_client(owner_box, SYNC_OWNER).jobs["Smuggle"]
    job.approve(expected_hash=job.content_hash)
    _run_once(owner_box, docker_client)
    assert job.outcome is Outcome.SUCCEEDED, job.done
    report = results_of(job.folder)
    refused = {r.path for r in report.refused_outputs}
    assert refused >= {"syft.pub.yaml", "sub/syft.pub.yaml", "SYFT.PUB.YAML", "done", "Released"}
    assert ".syft-policy.yaml" in refused
    assert not list(job.folder.outputs_dir.rglob("*.yaml")) and not list(
        job.folder.outputs_dir.rglob("*.YAML")
    )
    # Even a permission file put below outputs/ by other means grants nothing.
    planted = job.folder.outputs_dir / PERMISSION_FILE
    planted.write_text("rules:\n- pattern: '**'\n  access: {read: ['*']}\n")
    perms = SyftPermContext(datasite=parties.owner_datasite.root)
    assert not perms.check(SCI, f"{job.folder.relpath}/outputs/table.csv", AccessLevel.READ)

    _sync_all(parties)  # the owner's ordinary sync, several times
    sci_job = parties.sci.box.root / SYNC_OWNER / job.folder.relpath
    received = dict(_everything(sci_job))
    assert "done" in received  # the status reaches the scientist ...
    for name, data in received.items():  # ... and nothing of the private table does
        assert b"SECRETROW" not in data, f"{name} carries private data before release"
        assert "SECRETROW" not in name
        assert not name.startswith(("outputs", "logs", ".outputs")), name
    done = yaml.safe_load(received["done"])
    assert done["output_count"] == 3 and done["refused_count"] == 6
    assert set(done) <= {
        *("by", "at", "outcome", "message", "exit_code", "started_at", "duration_seconds"),
        *("cpu_seconds", "memory_limit_mb", "timeout_seconds", "image_id", "content_hash"),
        *("output_count", "refused_count"),
    }

    planted.unlink()
    # The table holds a cell of one person: only an override releases it (issue 15's checks).
    release_job(job.folder, by=SYNC_OWNER, override="the test releases everything")
    _sync_all(parties)
    # The release is the door: now the results, names included, reach the scientist.
    assert b"SECRETROW" in (sci_job / "outputs" / "table.csv").read_bytes()
    assert "n-1_alice-SECRETROW" in (sci_job / "logs" / "results.yaml").read_text()


def test_the_default_rules_let_a_submitter_read_only_their_submission_and_the_markers(
    tmp_path: Path,
) -> None:
    ds = Datasite(tmp_path, OWNER).init()
    job = f"jobs/{SCIENTIST}/j"
    ctx = SyftPermContext(datasite=ds.root)
    readable = ["run.sh", "config.yaml", "code/a.py", "done", "approved", "released", "running"]
    hidden = [
        "logs/stdout.txt",
        "logs/results.yaml",
        "outputs/x.csv",
        ".outputs.partial/x.csv",
        "outputs.partial/x.csv",
        "anything-new.yaml",
        "report/x",
    ]
    for rel in readable:
        assert ctx.check(SCIENTIST, f"{job}/{rel}", AccessLevel.READ), rel
    for rel in hidden:
        assert not ctx.check(SCIENTIST, f"{job}/{rel}", AccessLevel.READ), rel
    assert not ctx.check("mallory@example.org", f"{job}/done", AccessLevel.READ)


def test_init_upgrades_the_previous_default_jobs_rules_only(tmp_path: Path) -> None:
    from syft_core import datasite_layout

    ds = Datasite(tmp_path, OWNER)
    (ds.jobs).mkdir(parents=True)
    old = datasite_layout._PREVIOUS_JOBS_RULES
    (ds.jobs / PERMISSION_FILE).write_text(yaml.safe_dump(old))
    ds.init()
    assert yaml.safe_load((ds.jobs / PERMISSION_FILE).read_text()) != old
    ctx = SyftPermContext(datasite=ds.root)
    assert not ctx.check(SCIENTIST, f"jobs/{SCIENTIST}/j/anything-new", AccessLevel.READ)
    edited = {"rules": [{"pattern": "**", "access": {"read": ["*"]}}]}
    (ds.jobs / PERMISSION_FILE).write_text(yaml.safe_dump(edited))
    ds.init()
    assert yaml.safe_load((ds.jobs / PERMISSION_FILE).read_text()) == edited  # the owner's


# -- review then swap ------------------------------------------------------------------------------
def _cli(box: Path, *args: str, stdin: str | None = None) -> Any:
    _register_all()
    return CliRunner().invoke(
        app, [args[0], "--syftbox", str(box), "--email", OWNER, *args[1:]], input=stdin
    )


def _hash_shown(output: str) -> str:
    [line] = [line for line in output.splitlines() if line.startswith("content hash:")]
    return line.split()[-1]


def test_a_swap_between_show_and_approve_is_never_approved(syftbox: Path) -> None:
    job = write_job(syftbox, "swap", "echo harmless\n")
    shown = _cli(syftbox, "show", "swap")
    assert shown.exit_code == 0, shown.output
    reviewed = _hash_shown(shown.stdout)
    assert reviewed == job.content_hash() and "echo harmless" in shown.stdout
    job.run_sh.write_text("cat /data/*/* \n")  # the submitter swaps after the review
    refused = _cli(syftbox, "approve", "swap", "--hash", reviewed)
    assert refused.exit_code == 1 and "not what was reviewed" in refused.stderr
    assert not job.marker_path("approved").exists() and job.state().status is Status.INBOX
    # Without --hash and without a terminal there is no way to approve unread.
    assert _cli(syftbox, "approve", "swap").exit_code == 1
    assert not job.marker_path("approved").exists()
    with pytest.raises(JobError, match="needs the content hash"):
        job.approve(OWNER)
    with pytest.raises(ContentChangedError):
        job.approve(OWNER, expected_hash=reviewed)


def test_an_interactive_approval_shows_what_changed_since_show(
    syftbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = write_job(syftbox, "swap", "echo harmless\n")
    assert _cli(syftbox, "show", "swap").exit_code == 0
    job.run_sh.write_text("echo harmless\ncat /data/*/*\n")
    monkeypatch.setattr(jobs_cli, "_interactive", lambda: True)
    declined = _cli(syftbox, "approve", "swap", stdin="n\n")
    assert declined.exit_code == 1 and not job.marker_path("approved").exists()
    assert "CHANGED since you last ran `show`" in declined.stdout
    assert "changed: run.sh" in declined.stdout and "+cat /data/*/*" in declined.stdout
    accepted = _cli(syftbox, "approve", "swap", stdin="y\n")
    assert accepted.exit_code == 0, accepted.output
    approved = job.state().approved
    assert approved is not None and approved.content_hash == _hash_shown(accepted.stdout)


# -- policies decide and approve on one read ------------------------------------------------------
def _mock_only_policy(datasite: Datasite, **extra: Any) -> None:
    folder = datasite.root / ".syft" / "policies"
    folder.mkdir(parents=True, exist_ok=True)
    policy = {"name": "mocks", "auto_approve": True, "submitters": ["*"], "mode": "mock", **extra}
    (folder / "mocks.yaml").write_text(yaml.safe_dump(policy))


def _with_mode(job: JobFolder, mode: str) -> None:
    config = yaml.safe_load(job.config_path.read_text())
    job.config_path.write_text(yaml.safe_dump({**config, "mode": mode}))


def test_a_policy_never_approves_content_it_did_not_decide_on(
    syftbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datasite = Datasite(syftbox, OWNER)
    _mock_only_policy(datasite)
    job = write_job(syftbox, "flip", "cat /data/*/*\n", config={"mode": "mock"})
    from syft_core import policies

    original = policies.load_policies

    def flip_then_load(ds: Datasite) -> Any:  # the submitter wins the race every time
        _with_mode(job, "real")
        return original(ds)

    monkeypatch.setattr(policies, "load_policies", flip_then_load)
    assert apply_policies(datasite, job, OWNER) is None
    assert not job.marker_path("approved").exists()


def test_a_policy_under_a_flipping_config_approves_only_the_mock_version(syftbox: Path) -> None:
    datasite = Datasite(syftbox, OWNER)
    _mock_only_policy(datasite)
    stop = threading.Event()
    approved_real: list[str] = []
    for round_ in range(30):
        job = write_job(syftbox, f"flip-{round_}", "cat /data/*/*\n", config={"mode": "mock"})
        _with_mode(job, "real")
        real_hash = job.content_hash()
        _with_mode(job, "mock")

        def flipper(job: JobFolder = job) -> None:
            while not stop.is_set():
                for mode in ("real", "mock"):
                    _with_mode(job, mode)

        thread = threading.Thread(target=flipper)
        stop.clear()
        thread.start()
        try:
            for _ in range(20):
                if apply_policies(datasite, job, OWNER):
                    break
        finally:
            stop.set()
            thread.join()
        marker = job.state().approved
        if marker is not None and marker.content_hash == real_hash:
            approved_real.append(job.name)
    assert approved_real == []


def test_same_code_policy_compares_every_config_field_the_job_can_see(syftbox: Path) -> None:
    datasite = Datasite(syftbox, OWNER)
    _mock_only_policy(datasite, same_code_as_approved=True, mode="any")
    script = "python3 main.py\n"
    code = {"main.py": "import yaml\nprint('threshold from config')\n"}
    first = write_job(syftbox, "first", script, code=code, config={"threshold": 10})
    approve(first)
    first.start(OWNER, container="c", image="i", image_id="x", content_hash=first.content_hash())
    from syft_core.jobs import DoneMarker

    first.finish(DoneMarker(by=OWNER, outcome=Outcome.SUCCEEDED, message="ok", content_hash=None))
    steered = write_job(syftbox, "steered", script, code=code, config={"threshold": 0})
    assert apply_policies(datasite, steered, OWNER) is None  # a run field differs
    renamed = write_job(syftbox, "again", script, code=code, config={"threshold": 10})
    yaml_config = yaml.safe_load(renamed.config_path.read_text())
    renamed.config_path.write_text(
        yaml.safe_dump({**yaml_config, "name": "again", "description": "weekly"})
    )
    assert apply_policies(datasite, renamed, OWNER) == "mocks"  # only metadata differs


@pytest.mark.usefixtures("job_images")
def test_a_job_sees_no_config_metadata(syftbox: Path, start_runner: StartRunner) -> None:
    job = approve(
        write_job(
            syftbox,
            "meta",
            "ls -a /job; env | grep -c SYFT_JOB_NAME || true; cat /job/config.yaml || true\n",
            config={"description": "SUBMITTER-CHOSEN"},
        )
    )
    start_runner()
    done = wait_done(job)
    assert done.outcome is Outcome.SUCCEEDED, done.message
    out = job.stdout_path.read_text()
    assert "config.yaml" not in out.split("\n0\n")[0] and "SUBMITTER-CHOSEN" not in out
    assert "\n0\n" in out  # no SYFT_JOB_NAME


# -- what runs is what was shown -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("files", "warning"),
    [
        ({"__pycache__/helper.cpython-311.pyc": b"\x00\x00evil"}, "Python bytecode"),
        ({"helper.pyc": b"\x00\x00evil"}, "Python bytecode"),
        ({"pandas.py": b"import os\n"}, "shadows the module 'pandas'"),
        ({"json/__init__.py": b"x = 1\n"}, "shadows the module 'json'"),
        ({"sitecustomize.py": b"import os\n"}, "startup hook"),
        ({"evil.pth": b"import os\n"}, "startup hook"),
        ({"fast.so": b"\x7fELF\x02"}, "native code"),
        ({"main.py": "print('ok')\u202e#".encode()}, "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ({"main.py": "x = 1  # \U000e0020hidden".encode()}, "U+E0020 TAG SPACE"),
        ({"main.py": "p\u0430ndas = 1\n".encode()}, "words mixing scripts"),
        ({"p\u0430ndas.py": b"x = 1\n"}, "non-ASCII characters"),
    ],
)
def test_code_that_runs_other_than_it_reads_is_flagged_and_never_policy_approved(
    syftbox: Path, files: dict[str, bytes], warning: str
) -> None:
    datasite = Datasite(syftbox, OWNER)
    _mock_only_policy(datasite)
    job = write_job(syftbox, "flagged", "python3 main.py\n", config={"mode": "mock"})
    for rel, data in files.items():
        path = job.code_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    warnings = Snapshot.take(job.path).warnings
    assert any(warning in w for w in warnings), warnings
    assert apply_policies(datasite, job, OWNER) is None
    shown = _cli(syftbox, "show", "flagged")
    assert shown.exit_code == 0 and "WARNINGS" in shown.stdout and warning in shown.stdout


def test_run_sh_is_shown_with_every_hidden_character_escaped(syftbox: Path) -> None:
    script = "echo safe\u202e; cat /data/x #\u2066\n\x00\x1b[2Kecho \U000e0041\u200b\n"
    job = write_job(syftbox, "hidden", script)
    shown = _cli(syftbox, "show", "hidden").stdout
    for escape in ("\\u202e", "\\u2066", "\\x00", "\\x1b[2K", "\\U000e0041", "\\u200b"):
        assert escape in shown, escape
    for raw in ("\u202e", "\u2066", "\x00", "\x1b", "\U000e0041", "\u200b"):
        assert raw not in shown, repr(raw)
    assert job.content_hash() in shown


@pytest.mark.parametrize(
    "name",
    [
        "tag\U000e0020.py",
        "bidi\u202ecod.py",
        "zw\u200bsp.py",
        "nel\u0085.py",
        "sep\u2028.py",
        "c1\u009b.py",
        "nbsp\u00a0.py",
        "bom\ufeff.py",
        "cafe\u0301.py",  # not NFC
    ],
)
def test_a_submission_with_a_hidden_character_in_a_name_cannot_be_approved(
    syftbox: Path, name: str
) -> None:
    job = write_job(syftbox, "names", "python3 main.py\n")
    (job.code_dir / name).write_text("x = 1\n")
    with pytest.raises(JobError, match="refused") as refused:
        job.approve(OWNER, without_review=True)
    assert name not in str(refused.value)  # the message shows it escaped
    shown = _cli(syftbox, "show", "names")
    assert "UNSAFE" in shown.stdout and name not in shown.stdout


# -- output names are what the owner sees ----------------------------------------------------------
HIDDEN_OUTPUT_NAMES = [
    "nel\u0085x",
    "ls\u2028x",
    "ps\u2029x",
    "rlo\u202ex",
    "lri\u2066x",
    "zwj\u200dx",
    "tag\U000e0041x",
    "c1\u009bx",
    "nbsp\u00a0x",
    "e\u0301x",
]


@pytest.mark.usefixtures("job_images")
def test_output_names_recorded_are_the_names_on_disk(
    syftbox: Path, start_runner: StartRunner
) -> None:
    names = [*HIDDEN_OUTPUT_NAMES, "plain.txt", "caf\u00e9.csv", "\u6570\u636e.csv"]
    code = "import os\n" + "".join(
        f"open(os.path.join('outputs', {n!r}), 'w').write('x')\n" for n in names
    )
    job = approve(
        write_job(syftbox, "names", "python3 main.py\n", job_type="python", code={"main.py": code})
    )
    start_runner()
    done = wait_done(job)
    assert done.outcome is Outcome.SUCCEEDED, done.message
    report = results_of(job)
    on_disk = sorted(
        p.relative_to(job.outputs_dir).as_posix() for p, _ in files_under(job.outputs_dir)
    )
    assert (
        sorted(report.outputs)
        == on_disk
        == sorted(["plain.txt", "caf\u00e9.csv", "\u6570\u636e.csv"])
    )
    assert report.refused_count == len(HIDDEN_OUTPUT_NAMES)
    for refused in report.refused_outputs:
        assert (
            refused.path.isprintable() and "hidden" in refused.reason
        ) or "NFC" in refused.reason
    # The done marker never names an output (it is readable before release).
    done_text = job.marker_path("done").read_text()
    assert "plain.txt" not in done_text and "\u6570" not in done_text


def test_the_reserved_output_names_fold_case(tmp_path: Path) -> None:
    from syft_core.jobs.outputs import output_name_problem

    for name in ("syft.pub.yaml", "Syft.Pub.Yaml", "\u017fyft.pub.yaml", "a/DONE", "x/.syft/p"):
        assert output_name_problem(name) is not None, name
    for name in ("results.csv", "done.csv", "syft.pub.yaml.txt", "a/b/c.txt"):
        assert output_name_problem(name) is None, name
    assert os.sep == "/"


@pytest.mark.parametrize("name", ["syft.pub.yaml", "Syft.Pub.YAML", "sub/syft.pub.yaml"])
def test_a_permission_file_in_a_submission_cannot_be_approved(syftbox: Path, name: str) -> None:
    job = write_job(syftbox, "perm", "echo hi\n")
    (job.code_dir / name).parent.mkdir(parents=True, exist_ok=True)
    (job.code_dir / name).write_text("rules: [{pattern: '**', access: {write: ['*']}}]\n")
    with pytest.raises(JobError, match="a permission file in a submission"):
        job.approve(OWNER, without_review=True)
