"""Emails and path containment: what a peer names can never lead outside a datasite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syft_core.datasite import Datasite
from syft_core.errors import InvalidEmailError, UnsafePathError
from syft_core.identity import is_valid_email, validate_email
from syft_core.paths import contained_path, normalize_relpath


@pytest.mark.parametrize(
    "email",
    ["alice@example.org", "bob.smith+jobs@sub.example.co", "a_b-c%d@x-y.io", "X@Y.ORG"],
)
def test_valid_emails_are_returned_unchanged(email: str) -> None:
    assert validate_email(email) == email
    assert is_valid_email(email)


@pytest.mark.parametrize(
    "email",
    [
        "",
        "alice",
        "alice@localhost",  # no dot in the domain
        "alice@@example.org",
        "al ice@example.org",
        "a/b@example.org",
        "../x@example.org",
        ".alice@example.org",
        "alice.@example.org",
        "*@example.org",
        "a?c@example.org",
        "{{.UserEmail}}@example.org",
        "alice@example.org\n",
        "alice@-example.org",
        "аlice@example.org",  # Cyrillic 'а': a look-alike of ASCII 'a'
        "a" * 250 + "@x.org",
    ],
)
def test_invalid_emails_are_refused_with_the_value(email: str) -> None:
    assert not is_valid_email(email)
    with pytest.raises(InvalidEmailError) as err:
        validate_email(email)
    assert repr(email) in str(err.value)


def test_non_string_email_is_refused() -> None:
    with pytest.raises(InvalidEmailError):
        validate_email(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("", ""),
        (".", ""),
        ("./", ""),
        ("a/b.csv", "a/b.csv"),
        ("./a//b/", "a/b"),
        ("a/./b", "a/b"),
        ("café/x", "café/x"),  # NFC form is fine
        (Path("data/x.csv"), "data/x.csv"),
    ],
)
def test_normalize_relpath_accepts_relative_paths(rel: str | Path, expected: str) -> None:
    assert normalize_relpath(rel) == expected


@pytest.mark.parametrize(
    ("rel", "why"),
    [
        ("..", "'..'"),
        ("../other@example.org/private", "'..'"),
        ("data/../../x", "'..'"),
        ("/etc/passwd", "absolute"),
        ("//etc/passwd", "absolute"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        ("a\x1b[2Jb", "control"),
        ("a\x7fb", "control"),
        ("a\\..\\b", "backslash"),
        ("cafe\u0301/x", "NFC"),  # NFD spelling of "café": a look-alike of another name
    ],
)
def test_normalize_relpath_refuses_unsafe_paths(rel: str, why: str) -> None:
    with pytest.raises(UnsafePathError) as err:
        normalize_relpath(rel, what="dataset path")
    assert why in str(err.value)
    assert "dataset path" in str(err.value)


@given(st.text(max_size=40))
def test_any_accepted_path_stays_relative_and_inside(text: str) -> None:
    try:
        clean = normalize_relpath(text)
    except UnsafePathError:
        return
    parts = clean.split("/") if clean else []
    assert ".." not in parts
    assert "" not in parts
    assert not clean.startswith("/")
    assert os.path.normpath("/root/" + clean).startswith("/root")


def test_contained_path_follows_symlinks_and_refuses_escapes(tmp_path: Path) -> None:
    root = tmp_path / "alice@example.org"
    (root / "public").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    (root / "public" / "out").symlink_to(outside)
    (root / "public" / "in").symlink_to(root / "public")

    with pytest.raises(UnsafePathError, match="resolves outside"):
        contained_path(root, "public/out/x.csv")
    with pytest.raises(UnsafePathError, match="resolves outside"):
        contained_path(root, "public/out")
    assert contained_path(root, "public/in/x.csv") == root / "public/in/x.csv"
    assert contained_path(root, "not/yet/there.txt") == root / "not/yet/there.txt"
    assert contained_path(root, "") == root


def test_datasite_path_refuses_escapes(tmp_path: Path) -> None:
    ds = Datasite(tmp_path, "alice@example.org")
    ds.root.mkdir()
    assert ds.path("public/a.csv") == ds.root / "public/a.csv"
    for bad in ("../bob@example.org/private", "/etc/passwd", "x\x00y"):
        with pytest.raises(UnsafePathError, match=r"alice@example\.org's datasite"):
            ds.path(bad)


def test_datasite_refuses_an_invalid_email(tmp_path: Path) -> None:
    with pytest.raises(InvalidEmailError):
        Datasite(tmp_path, "../../etc")
