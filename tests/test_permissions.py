"""The syft.pub.yaml engine: the spec's worked cases, the seed's examples, grants and revokes,
explanations, reloading, malformed files and the jobs gateway defaults."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from syft_permissions import AccessLevel as RefLevel
from syft_permissions import ACLRequest, ACLService, User

from syft_core import filestamp
from syft_core.datasite import Datasite
from syft_core.errors import InvalidEmailError, PermissionFileError, SyftError, UnsafePathError
from syft_core.permissions import AccessLevel, Outcome, SyftPermContext

OWNER = "do@example.org"
BOB = "bob@x.org"
CAROL = "carol@x.org"
R, W, A = AccessLevel.READ, AccessLevel.WRITE, AccessLevel.ADMIN


def rule(pattern: str, **access: list[str]) -> dict[str, Any]:
    return {"pattern": pattern, "access": access}


def perm(*rules: dict[str, Any], terminal: bool = False) -> dict[str, Any]:
    return {"terminal": terminal, "rules": list(rules)}


def make_datasite(root: Path, files: Mapping[str, Any]) -> Path:
    datasite = root / OWNER
    datasite.mkdir(parents=True, exist_ok=True)
    for folder, content in files.items():
        target = datasite / folder / "syft.pub.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return datasite


def reference(datasite: Path, user: str, path: str, level: AccessLevel) -> bool:
    service = ACLService(owner=OWNER)
    service.load_permissions_from_filesystem(datasite)
    ref_path = path + "__any__" if path.endswith("/") else path
    return bool(service.can_access(ACLRequest(ref_path, RefLevel(int(level)), User(user))))


def perm_text(datasite: Path, folder: str = "") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((datasite / folder / "syft.pub.yaml").read_text())
    return data


# -- the worked cases of permissions.md ----------------------------------------------------------

ROOT_READ_ALL = {"": perm(rule("**", read=["*"]))}
CASE_8 = {"": perm(rule("**", read=["*"])), "sub": perm(rule("*.csv", read=[CAROL]))}
CASE_21 = {"": perm(rule("{{.UserEmail}}/**", read=["USER"], write=["USER"]))}
WORKED_CASES: list[tuple[int, dict[str, Any], str, str, AccessLevel, bool]] = [
    (1, {}, BOB, "data/a.csv", R, False),
    (2, {}, OWNER, "data/a.csv", W, True),
    (3, ROOT_READ_ALL, BOB, "data/a.csv", R, True),
    (4, ROOT_READ_ALL, BOB, "data/a.csv", W, False),
    (5, {"": perm(rule("**", write=[BOB]))}, BOB, "a.txt", R, True),
    (7, {"": perm(rule("**", read=[BOB]))}, BOB, "a.txt", W, False),
    (8, CASE_8, BOB, "sub/notes.txt", R, False),
    (9, CASE_8, CAROL, "sub/t.csv", R, True),
    (
        11,
        {"": perm(rule("**", read=[]), terminal=True), "sub": perm(rule("**", read=["*"]))},
        BOB,
        "sub/x.txt",
        R,
        False,
    ),
    (
        12,
        {"sub": perm(rule("**", read=["*"]), terminal=True), "sub/deeper": perm(rule("**"))},
        BOB,
        "sub/deeper/x.txt",
        R,
        True,
    ),
    (13, {"": perm(rule("*.csv", read=["*"]))}, BOB, "data/a.csv", R, False),
    (14, {"": perm(rule("**/*.csv", read=["*"]))}, BOB, "a.csv", R, True),
    (15, ROOT_READ_ALL, BOB, ".env", R, False),
    (
        17,
        {"": perm(rule("**", read=["*"]), rule("secret.txt", read=[]))},
        BOB,
        "secret.txt",
        R,
        False,
    ),
    (18, {"": perm(rule("**", read=["*@x.org"]))}, BOB, "a.txt", R, True),
    (20, {"": perm(rule("**", read=["public"]))}, BOB, "a.txt", R, False),
    (21, CASE_21, BOB, "bob@x.org/f.txt", W, True),
    (22, CASE_21, BOB, "carol@x.org/f.txt", R, False),
    (23, {"": perm(rule("**", read=["USER"]))}, BOB, "a.txt", R, True),
    (24, {"": perm(rule("**", read=["Bob@X.org"]))}, BOB, "a.txt", R, False),
    (25, {"": perm(rule("**", write=[BOB]))}, BOB, "syft.pub.yaml", R, False),
    (30, ROOT_READ_ALL, BOB, "public/", R, True),
    (31, {"": perm(rule("data/**", read=["*"]))}, BOB, "data", R, False),
    (32, {"": perm(rule("log_20[0-9][0-9]_?.txt", read=["*"]))}, BOB, "log_2024_a.txt", R, True),
]


@pytest.mark.parametrize(
    ("case", "files", "user", "path", "level", "expected"),
    WORKED_CASES,
    ids=[f"case{c[0]}" for c in WORKED_CASES],
)
def test_worked_cases(
    tmp_path: Path,
    case: int,
    files: dict[str, Any],
    user: str,
    path: str,
    level: AccessLevel,
    expected: bool,
) -> None:
    datasite = make_datasite(tmp_path, files)
    ctx = SyftPermContext(datasite)
    assert ctx.check(user, path, level) is expected
    assert reference(datasite, user, path, level) is expected


def test_rules_compete_by_specificity_not_file_order(tmp_path: Path) -> None:
    datasite = make_datasite(
        tmp_path, {"": perm(rule("secret.txt", read=[]), rule("**", read=["*"]))}
    )
    ctx = SyftPermContext(datasite)
    assert not ctx.check(BOB, "secret.txt", R)
    assert ctx.check(BOB, "other.txt", R)


def test_levels_nest(tmp_path: Path) -> None:
    datasite = make_datasite(tmp_path, {"": perm(rule("**", admin=[BOB], read=[CAROL]))})
    ctx = SyftPermContext(datasite)
    assert [ctx.check(BOB, "f", lvl) for lvl in (R, W, A)] == [True, True, True]
    assert [ctx.check(CAROL, "f", lvl) for lvl in (R, W, A)] == [True, False, False]


def test_admin_may_touch_permission_files(tmp_path: Path) -> None:
    datasite = make_datasite(tmp_path, {"": perm(rule("**", admin=[BOB], write=[CAROL]))})
    ctx = SyftPermContext(datasite)
    assert ctx.check(BOB, "syft.pub.yaml", W)
    assert ctx.check(BOB, "sub/syft.pub.yaml", R)
    assert not ctx.check(CAROL, "sub/syft.pub.yaml", R)
    assert ctx.check(CAROL, "sub/data.csv", W)


def test_paths_are_normalized_and_unsafe_paths_denied(tmp_path: Path) -> None:
    datasite = make_datasite(tmp_path, ROOT_READ_ALL)
    ctx = SyftPermContext(datasite)
    assert ctx.check(BOB, "./data//a.csv", R)
    for unsafe in ("../other@x.org/a", "/etc/passwd", "a/../../b", "a\\b", "a\x00b"):
        assert not ctx.check(BOB, unsafe, R)
        assert not ctx.check(OWNER, unsafe, R), "an unsafe path is refused even to the owner"
        assert ctx.explain(BOB, unsafe).outcome is Outcome.UNSAFE_PATH
    with pytest.raises(UnsafePathError):
        ctx.open("../x")


def test_template_rules_only_substitute_real_emails(tmp_path: Path) -> None:
    # `*` substituted into `{{.UserEmail}}/**` would cover every user's folder.
    datasite = make_datasite(tmp_path, CASE_21)
    ctx = SyftPermContext(datasite)
    assert ctx.check(BOB, "bob@x.org/f.txt", W)
    assert not ctx.check("*", "bob@x.org/f.txt", W)
    assert not ctx.check("bob@x.org/..", "bob@x.org/f.txt", R)


def test_owner_comes_from_the_folder_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidEmailError):
        SyftPermContext(tmp_path / "not-an-email")
    assert SyftPermContext(make_datasite(tmp_path, {})).owner == OWNER


# -- the seed's examples and granting ------------------------------------------------------------


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, SyftPermContext]:
    datasite = Datasite(tmp_path, OWNER).init().root
    return datasite, SyftPermContext(datasite)


def test_seed_examples(seeded: tuple[Path, SyftPermContext]) -> None:
    datasite, ctx = seeded
    ctx.open("public/").grant_read_access("*")
    ctx.open("private/").grant_read_access(OWNER)
    api = ctx.open("api_data/")
    api.grant_read_access(BOB)
    api.grant_write_access(BOB)

    assert ctx.check(CAROL, "public/mock.csv", R)
    assert not ctx.check(CAROL, "public/mock.csv", W)
    assert not ctx.check(BOB, "private/sensitive.csv", R)
    assert ctx.check(OWNER, "private/sensitive.csv", W)
    assert ctx.open("api_data/results.json").has_write_access(BOB)
    assert ctx.open("api_data/results.json").has_read_access(BOB)
    assert not ctx.open("api_data/results.json").has_read_access(CAROL)
    # public already granted read to everyone: the rule was reused, not duplicated.
    assert perm_text(datasite, "public")["rules"] == [
        {"pattern": "**", "access": {"admin": [], "write": [], "read": ["*"]}}
    ]
    assert perm_text(datasite, "api_data")["rules"] == [
        {"pattern": "**", "access": {"admin": [], "write": [BOB], "read": [BOB]}}
    ]
    # every answer agrees with the reference reading the files we wrote
    for user, path, level in [
        (CAROL, "public/x", R),
        (BOB, "api_data/r.json", W),
        (BOB, "api_data/r.json", A),
    ]:
        assert ctx.check(user, path, level) is reference(datasite, user, path, level)


def test_grant_edits_the_governing_file_relative_to_its_folder(tmp_path: Path) -> None:
    datasite = make_datasite(tmp_path, {"": perm(rule("**", read=[CAROL]))})
    ctx = SyftPermContext(datasite)
    ctx.open("reports/q1/").grant_write_access(BOB)
    ctx.open("reports/summary.csv").grant_read_access(BOB)
    patterns = [r["pattern"] for r in perm_text(datasite)["rules"]]
    assert patterns == ["**", "reports/q1/**", "reports/summary.csv"]
    assert not (datasite / "reports").exists(), "no new file when one governs"
    assert ctx.check(BOB, "reports/q1/a/b.csv", W)
    assert ctx.check(BOB, "reports/summary.csv", R)
    assert not ctx.check(BOB, "reports/other.csv", R)


def test_grant_creates_a_file_where_none_governs(tmp_path: Path) -> None:
    datasite = make_datasite(tmp_path, {})
    ctx = SyftPermContext(datasite)
    ctx.open("shared/").grant_read_access("*@x.org")
    ctx.open("notes/todo.txt").grant_write_access(BOB)
    assert perm_text(datasite, "shared")["rules"][0]["pattern"] == "**"
    assert perm_text(datasite, "notes")["rules"][0]["pattern"] == "todo.txt"
    assert ctx.check(CAROL, "shared/deep/f", R)
    assert ctx.check(BOB, "notes/todo.txt", W)
    assert not ctx.check(BOB, "notes/other.txt", R)


def test_existing_folder_opened_without_slash_is_a_folder(tmp_path: Path) -> None:
    datasite = make_datasite(tmp_path, {})
    (datasite / "data").mkdir()
    ctx = SyftPermContext(datasite)
    ctx.open("data").grant_read_access(BOB)
    assert ctx.check(BOB, "data/a.csv", R)
    assert ctx.open("data").has_read_access(BOB)


def test_glob_characters_in_a_granted_name_are_literal(tmp_path: Path) -> None:
    datasite = make_datasite(tmp_path, {"": perm()})
    ctx = SyftPermContext(datasite)
    ctx.open("data[1].csv").grant_read_access(BOB)
    assert ctx.check(BOB, "data[1].csv", R)
    assert not ctx.check(BOB, "data1.csv", R)
    assert reference(datasite, BOB, "data[1].csv", R)


def test_grant_then_revoke_round_trips(tmp_path: Path) -> None:
    datasite = make_datasite(tmp_path, {"": perm()})
    ctx = SyftPermContext(datasite)
    handle = ctx.open("api/")
    handle.grant_admin_access(BOB)
    assert handle.has_admin_access(BOB)
    handle.revoke_write_access(BOB)  # write and above go; nothing was granted at read
    assert not handle.has_write_access(BOB)
    assert not handle.has_read_access(BOB)

    handle.grant_write_access(BOB)
    handle.grant_read_access(BOB)
    handle.revoke_write_access(BOB)
    assert handle.has_read_access(BOB)
    assert not handle.has_write_access(BOB)
    handle.revoke_read_access(BOB)
    assert not handle.has_read_access(BOB)
    assert perm_text(datasite)["rules"] == [
        {"pattern": "api/**", "access": {"admin": [], "write": [], "read": []}}
    ]
    assert reference(datasite, BOB, "api/x", R) is False


def test_revoke_that_cannot_take_effect_is_refused(tmp_path: Path) -> None:
    datasite = make_datasite(tmp_path, ROOT_READ_ALL)
    ctx = SyftPermContext(datasite)
    before = (datasite / "syft.pub.yaml").read_bytes()
    with pytest.raises(PermissionFileError, match=r"rule '\*\*' still grants"):
        ctx.open("a.txt").revoke_read_access(BOB)
    with pytest.raises(SyftError, match="owns this datasite"):
        ctx.open("a.txt").revoke_read_access(OWNER)
    assert (datasite / "syft.pub.yaml").read_bytes() == before


def test_revoke_where_nothing_is_granted_is_a_no_op(tmp_path: Path) -> None:
    ctx = SyftPermContext(make_datasite(tmp_path, {}))
    ctx.open("nothing/").revoke_read_access("*")
    assert not (tmp_path / OWNER / "nothing").exists()


def test_grant_shadowed_by_a_more_specific_rule_is_refused(tmp_path: Path) -> None:
    # `a/*` (a wildcard segment) outranks `a/**`, so it would still decide for a/__any__.
    datasite = make_datasite(tmp_path, {"": perm(rule("a/*", read=[]))})
    ctx = SyftPermContext(datasite)
    before = (datasite / "syft.pub.yaml").read_bytes()
    with pytest.raises(PermissionFileError, match="more specific rule 'a/\\*'"):
        ctx.open("a/").grant_read_access(BOB)
    assert (datasite / "syft.pub.yaml").read_bytes() == before


def test_grant_read_on_a_permission_file_is_refused(tmp_path: Path) -> None:
    datasite = make_datasite(tmp_path, {"": perm()})
    ctx = SyftPermContext(datasite)
    with pytest.raises(PermissionFileError, match="needs admin"):
        ctx.open("syft.pub.yaml").grant_read_access(BOB)


def test_grantees_are_validated(tmp_path: Path) -> None:
    ctx = SyftPermContext(make_datasite(tmp_path, {}))
    for bad in ("bob", "USER", "a/b@x.org", "", "bob@x.org "):
        with pytest.raises(InvalidEmailError):
            ctx.open("f/").grant_read_access(bad)


def test_grant_never_overwrites_a_malformed_file(tmp_path: Path) -> None:
    datasite = make_datasite(tmp_path, {"": "rules: [oops"})
    ctx = SyftPermContext(datasite)
    with pytest.raises(PermissionFileError, match=r"syft\.pub\.yaml is malformed"):
        ctx.open("a/").grant_read_access(BOB)
    with pytest.raises(PermissionFileError, match="malformed"):
        ctx.open("a/").revoke_read_access(BOB)
    assert (datasite / "syft.pub.yaml").read_text() == "rules: [oops"


# -- explain -------------------------------------------------------------------------------------


def test_explain_names_file_rule_or_reason(tmp_path: Path) -> None:
    datasite = make_datasite(tmp_path, {**CASE_8, "broken": "terminal: [", "x": perm()})
    ctx = SyftPermContext(datasite)
    granted = ctx.open("sub/t.csv").explain(CAROL)
    assert (granted.allowed, granted.outcome, granted.rule) == (True, Outcome.GRANTED, "*.csv")
    assert granted.governing_file == "sub/syft.pub.yaml"
    assert "grants read to carol@x.org" in str(granted)
    assert ctx.open("sub/t.csv").explain(OWNER).outcome is Outcome.OWNER
    assert ctx.open("sub/notes.txt").explain(BOB).outcome is Outcome.NO_RULE
    denied = ctx.explain(BOB, "sub/t.csv", W)
    assert (denied.allowed, denied.outcome) == (False, Outcome.NOT_GRANTED)
    malformed = ctx.explain(BOB, "broken/f")
    assert malformed.outcome is Outcome.MALFORMED and "invalid YAML" in malformed.detail
    assert "needs admin" in str(ctx.explain(BOB, "syft.pub.yaml"))
    assert ctx.explain(BOB, "x/f").outcome is Outcome.NO_RULE
    empty = SyftPermContext(make_datasite(tmp_path / "other", {}))
    assert empty.explain(BOB, "f").outcome is Outcome.NO_FILE


# -- reloading -----------------------------------------------------------------------------------


def test_reload_picks_up_changes_additions_and_removals(tmp_path: Path) -> None:
    datasite = make_datasite(tmp_path, ROOT_READ_ALL)
    ctx = SyftPermContext(datasite)
    assert ctx.check(BOB, "a/b/c.txt", R)

    make_datasite(tmp_path, {"a/b": perm(rule("*.csv", read=[BOB]))})
    assert ctx.check(BOB, "a/b/c.txt", R), "check() alone is as fresh as the last reload"
    report = ctx.reload()
    assert report.files_loaded == 1
    assert not ctx.check(BOB, "a/b/c.txt", R)
    assert ctx.check(BOB, "a/b/c.csv", R)

    make_datasite(tmp_path, {"": perm(rule("**", read=[CAROL]))})
    ctx.reload()
    assert not ctx.check(BOB, "a.txt", R) and ctx.check(CAROL, "a.txt", R)

    (datasite / "a" / "b" / "syft.pub.yaml").unlink()
    assert ctx.reload().files_removed == 1
    assert ctx.check(CAROL, "a/b/c.txt", R)

    (datasite / "a" / "b").rename(datasite / "moved")
    make_datasite(tmp_path, {"moved": perm(rule("**", write=[BOB]))})
    ctx.reload()
    assert ctx.check(BOB, "moved/x", W)


def test_reload_reads_nothing_when_nothing_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filestamp, "RACY_NS", 0)
    datasite = make_datasite(tmp_path, {f"d{i}": perm(rule("**", read=[BOB])) for i in range(5)})
    ctx = SyftPermContext(datasite)
    report = ctx.reload()
    assert (report.files_loaded, report.files_removed, report.dirs_listed) == (0, 0, 0)


def test_same_size_rewrite_with_old_mtime_is_still_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filestamp, "RACY_NS", 0)
    datasite = make_datasite(tmp_path, {"": perm(rule("**", read=[BOB]))})
    ctx = SyftPermContext(datasite)
    file = datasite / "syft.pub.yaml"
    before = file.stat()
    file.write_text(file.read_text().replace(BOB, "bxb@x.org"))  # in place, same size
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert ctx.reload().files_loaded == 1  # the ctime moved
    assert not ctx.check(BOB, "a", R)


def test_handles_see_changes_without_reload(tmp_path: Path) -> None:
    datasite = make_datasite(tmp_path, ROOT_READ_ALL)
    ctx = SyftPermContext(datasite)
    handle = ctx.open("x/y.txt")
    assert handle.has_read_access(BOB)
    make_datasite(tmp_path, {"x": perm(terminal=True)})
    assert not handle.has_read_access(BOB)
    (datasite / "x" / "syft.pub.yaml").unlink()
    assert handle.has_read_access(BOB)


def test_refresh_updates_the_hot_path_for_one_path(tmp_path: Path) -> None:
    datasite = make_datasite(tmp_path, ROOT_READ_ALL)
    ctx = SyftPermContext(datasite)
    make_datasite(tmp_path, {"a": perm(terminal=True)})
    ctx.refresh("a/b/c.txt")
    assert not ctx.check(BOB, "a/b/c.txt", R)
    explanation = ctx.open("a/").explain(BOB)
    assert explanation.path == "a/"
    assert str(explanation) == "denied: no rule in a/syft.pub.yaml matches this path"


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    outside = make_datasite(tmp_path / "elsewhere", {"": perm(rule("**", read=["*"]))})
    datasite = make_datasite(tmp_path, {"": perm(rule("**", read=[CAROL])), "real": perm()})
    (datasite / "linked").symlink_to(outside, target_is_directory=True)
    (datasite / "real" / "syft.pub.yaml").unlink()
    (datasite / "real" / "syft.pub.yaml").symlink_to(outside / "syft.pub.yaml")
    ctx = SyftPermContext(datasite)
    # A symlinked folder is not scanned (as the reference's rglob): the root file governs.
    assert not ctx.check(BOB, "linked/f", R)
    assert ctx.check(BOB, "linked/f", R) is reference(datasite, BOB, "linked/f", R)
    assert ctx.open("linked/f").has_read_access(CAROL)
    # A symlinked permission file is broken: grants nothing, fail closed.
    assert not ctx.check(CAROL, "real/f", R)
    assert any("symbolic link" in e.reason for e in ctx.errors)


def test_grant_never_writes_through_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    datasite = make_datasite(tmp_path, {})
    (datasite / "linked").symlink_to(outside, target_is_directory=True)
    ctx = SyftPermContext(datasite)
    with pytest.raises(UnsafePathError):
        ctx.open("linked/").grant_read_access(BOB)
    assert list(outside.iterdir()) == []


# -- malformed files -----------------------------------------------------------------------------

MALFORMED: dict[str, tuple[str | bytes, str]] = {
    "invalid yaml": ("rules: [\n", "invalid YAML"),
    "rules not a list": ("rules: everything\n", "rules"),
    "pattern not a string": (yaml.safe_dump(perm(rule(5, read=["*"]))), "pattern"),  # type: ignore[arg-type]
    "access missing": ("rules:\n- pattern: '**'\n", "access"),
    "top level list": ("- pattern: '**'\n", "schema"),
    "unsupported template": (yaml.safe_dump(perm(rule("{{.Year}}/**", read=["*"]))), "{{.Year}}"),
    "unknown template": (yaml.safe_dump(perm(rule("{{.Foo}}", read=["*"]))), "{{.Foo}}"),
    "not utf-8": (b"rules: []\n# \xff\xfe\n", "UTF-8"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_file_grants_nothing_and_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    content, reason = MALFORMED[name]
    datasite = make_datasite(
        tmp_path,
        {"": perm(rule("**", read=["*"])), "d": content, "d/deeper": perm(rule("**", read=["*"]))},
    )
    with caplog.at_level(logging.WARNING, logger="syft_core.permissions"):
        ctx = SyftPermContext(datasite)
    file = datasite / "d" / "syft.pub.yaml"
    assert any(str(file) in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    assert [(e.file, reason in e.reason) for e in ctx.errors] == [(file, True)]
    for path in ("d/x.csv", "d/", "d/deeper/x.csv"):
        assert not ctx.check(BOB, path, R), "neither the parent nor a deeper file opens it"
        assert ctx.check(OWNER, path, A)
    assert ctx.check(BOB, "other.txt", R)
    caplog.clear()
    ctx.reload()
    assert not caplog.records, "an unchanged broken file is reported once"


def test_oversized_file_is_refused_before_validation(tmp_path: Path) -> None:
    # YAML aliases make a tiny file expand to a huge rule list.
    aliases = ", ".join(["*r"] * 10_001)
    text = f"x: &r {{pattern: '**', access: {{read: ['*']}}}}\nrules: [{aliases}]\n"
    ctx = SyftPermContext(make_datasite(tmp_path, {"": text}))
    assert [e.reason for e in ctx.errors] == ["more than 10000 rules"]
    assert not ctx.check(BOB, "a", R)


def test_fixing_a_malformed_file_clears_the_error(tmp_path: Path) -> None:
    datasite = make_datasite(tmp_path, {"": "rules: ["})
    ctx = SyftPermContext(datasite)
    assert len(ctx.errors) == 1
    make_datasite(tmp_path, ROOT_READ_ALL)
    ctx.reload()
    assert ctx.errors == []
    assert ctx.check(BOB, "a", R)


# -- the jobs gateway defaults -------------------------------------------------------------------

JOB = "jobs/bob@x.org/j1"


@pytest.mark.parametrize(
    ("path", "level", "expected"),
    [
        (f"{JOB}/run.sh", W, True),
        (f"{JOB}/config.yaml", W, True),
        (f"{JOB}/code/main.py", W, True),
        (f"{JOB}/code/pkg/util.py", W, True),
        (f"{JOB}/run.sh", R, True),
        (f"{JOB}/approved", R, True),
        (f"{JOB}/approved", W, False),
        (f"{JOB}/rejected", W, False),
        (f"{JOB}/running", W, False),
        (f"{JOB}/done", W, False),
        (f"{JOB}/logs/stdout.txt", W, False),
        (f"{JOB}/outputs/result.csv", W, False),
        (f"{JOB}/outputs/", W, False),
        (f"{JOB}/other.sh", W, False),
        ("jobs/bob@x.org/run.sh", W, False),
        ("jobs/carol@x.org/j1/run.sh", W, False),
        ("jobs/carol@x.org/j1/run.sh", R, False),
        ("jobs/syft.pub.yaml", W, False),
        (f"{JOB}/syft.pub.yaml", W, False),
        (f"{JOB}/syft.pub.yaml", R, False),
        (f"{JOB}/code/syft.pub.yaml", W, False),
        ("public/syft.pub.yaml", W, False),
        ("private/data.csv", R, False),
        ("public/mock.csv", R, True),
    ],
)
def test_jobs_gateway_defaults(
    seeded: tuple[Path, SyftPermContext], path: str, level: AccessLevel, expected: bool
) -> None:
    datasite, ctx = seeded
    assert ctx.check(BOB, path, level) is expected
    assert reference(datasite, BOB, path, level) is expected


def test_jobs_gateway_is_per_exact_submitter(seeded: tuple[Path, SyftPermContext]) -> None:
    _, ctx = seeded
    for impostor in ("Bob@X.org", "*", "bob@x.org.evil.org", CAROL):
        assert not ctx.check(impostor, f"{JOB}/run.sh", W), impostor


def test_private_is_terminal_even_against_a_deeper_file(
    seeded: tuple[Path, SyftPermContext],
) -> None:
    datasite, ctx = seeded
    make_datasite(datasite.parent, {"private/leak": perm(rule("**", read=["*"]))})
    ctx.reload()
    assert not ctx.check(BOB, "private/leak/data.csv", R)
