"""Differential test: our engine against the reference syft-permissions 0.1.15 on random trees.

Each seed builds random trees of `syft.pub.yaml` files on disk (random folders, terminal flags,
patterns and access lists drawn from vocabularies that exercise every feature), asks both engines
the same random (user, path, level) questions, then mutates the tree (rewrite, delete, add),
reloads incrementally on our side and from scratch on the reference side, and asks again.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from syft_permissions import AccessLevel as RefLevel
from syft_permissions import ACLRequest, ACLService, User

from syft_core.permissions import AccessLevel, SyftPermContext

OWNER = "do@example.org"
FOLDERS = [
    "",
    "a",
    "a/b",
    "a/b/c",
    "sub",
    "sub/deeper",
    ".hidden",
    "a/.dot",
    "bob@x.org",
    "jobs",
    "jobs/bob@x.org",
    "jobs/bob@x.org/j1",
]
PATTERNS = [
    "**",
    "*",
    "*.csv",
    "**/*.csv",
    "?.txt",
    "log_20[0-9][0-9]_?.txt",
    "a.txt",
    "a",
    ".env",
    "**/.env",
    ".hidden/**",
    "b/**",
    "c/*",
    "b/*/",
    "*/c/**",
    "a/b/c",
    "a/b/*.txt",
    "**/x",
    "sub/*.csv",
    "deeper/**",
    "[ab]*",
    "a*",
    "*a*",
    "*.txt",
    "x{1}.txt",
    "syft.pub.yaml",
    "**/syft.pub.yaml",
    "{{.UserEmail}}/**",
    "{{.UserEmail}}/*.txt",
    "{{.UserEmail}}",
    "{{.UserEmail}}/*/run.sh",
    "j1/{{.UserEmail}}*",
    "",
]
GRANTEES = [
    "bob@x.org",
    "Bob@X.org",
    "carol@y.org",
    "*",
    "*@x.org",
    "*@X.org",
    "USER",
    "b?b@x.org",
    "public",
    OWNER,
    "[bc]ob@x.org",
]
USERS = ["bob@x.org", "bob@x.org", "Bob@X.org", "carol@y.org", "dave@x.org", "eve@z.com", OWNER]
SEGMENTS = [
    "a",
    "b",
    "c",
    "x",
    "sub",
    "deeper",
    "j1",
    "bob@x.org",
    "carol@y.org",
    ".hidden",
    ".dot",
    ".env",
    "a.txt",
    "1.txt",
    "x.csv",
    "x{1}.txt",
    "log_2024_a.txt",
    "log_20x4_a.txt",
    "run.sh",
    "syft.pub.yaml",
    "jobs",
]
LEVELS = [AccessLevel.READ, AccessLevel.WRITE, AccessLevel.ADMIN]
SEEDS = range(8)
TREES_PER_SEED = 12
QUERIES_PER_TREE = 30  # x2 (before and after a mutation): 5,760 questions in all


def random_file(rng: random.Random) -> dict[str, Any]:
    rules = []
    for _ in range(rng.randint(0, 5)):
        access = {
            level: rng.sample(GRANTEES, rng.randint(0, 3))
            for level in ("admin", "write", "read")
            if rng.random() < 0.7
        }
        rules.append({"pattern": rng.choice(PATTERNS), "access": access})
    return {"terminal": rng.random() < 0.25, "rules": rules}


def random_path(rng: random.Random, tree: dict[str, Any], user: str) -> str:
    """Half the time a path built to (nearly) match some rule, else a folder plus random parts."""
    folders = sorted(tree)
    rules = [(f, r["pattern"]) for f in folders for r in tree[f]["rules"]]
    roll = rng.random()
    if rules and roll < 0.5:
        folder, pattern = rng.choice(rules)
        parts = [folder, *path_like(rng, pattern, user)]
    else:
        start = [rng.choice(folders)] if folders and roll < 0.8 else []
        parts = [*start, *(rng.choice(SEGMENTS) for _ in range(rng.randint(0, 3)))]
    path = "/".join(p for p in parts if p)
    return path + "/" if path and rng.random() < 0.15 else path


def path_like(rng: random.Random, pattern: str, user: str) -> list[str]:
    """Segments that a pattern might match: each wildcard replaced by a random filler."""
    parts: list[str] = []
    for segment in pattern.split("/"):
        if segment == "**":
            parts += [rng.choice(SEGMENTS) for _ in range(rng.randint(0, 2))]
            continue
        email = user if rng.random() < 0.7 else rng.choice(USERS)
        text = segment.replace("{{.UserEmail}}", email)
        text = re.sub(r"\[([^\]]*)\]", lambda m: rng.choice(m.group(1).replace("-", "")), text)
        text = re.sub(r"\*", lambda _: rng.choice(["", "x", "a", ".e", "v.csv"]), text)
        text = re.sub(r"\?", lambda _: rng.choice(["a", "1", "."]), text)
        parts.append(text)
    return parts


def write_file(datasite: Path, folder: str, content: dict[str, Any]) -> None:
    target = datasite / folder / "syft.pub.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(content))


@dataclass
class Mismatch:
    user: str
    path: str
    level: AccessLevel
    ours: bool
    reference: bool
    tree: dict[str, Any]


def reference_service(datasite: Path) -> ACLService:
    service = ACLService(owner=OWNER)
    service.load_permissions_from_filesystem(datasite)
    return service


def reference_answer(service: ACLService, user: str, path: str, level: AccessLevel) -> bool:
    # The reference has no folder convention: a folder check is a check of `<folder>/__any__`.
    ref_path = path + "__any__" if path.endswith("/") else path
    request = ACLRequest(path=ref_path, level=RefLevel(int(level)), user=User(id=user))
    return bool(service.can_access(request))


def compare(
    rng: random.Random, datasite: Path, ctx: SyftPermContext, tree: dict[str, Any]
) -> tuple[int, list[Mismatch]]:
    """Returns how many non-owner requests the reference allowed, and the disagreements."""
    service = reference_service(datasite)
    allowed = 0
    mismatches = []
    for _ in range(QUERIES_PER_TREE):
        user, level = rng.choice(USERS), rng.choice(LEVELS)
        path = random_path(rng, tree, user)
        ours = ctx.check(user, path, level)
        theirs = reference_answer(service, user, path, level)
        allowed += theirs and user != OWNER
        if ours != theirs:
            mismatches.append(Mismatch(user, path, level, ours, theirs, dict(tree)))
    return allowed, mismatches


def mutate(rng: random.Random, datasite: Path, tree: dict[str, Any]) -> None:
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["rewrite", "delete", "add"])
        if op in ("rewrite", "delete") and tree:
            folder = rng.choice(sorted(tree))
            if op == "delete":
                (datasite / folder / "syft.pub.yaml").unlink()
                del tree[folder]
                continue
        else:
            folder = rng.choice(FOLDERS)
        tree[folder] = random_file(rng)
        write_file(datasite, folder, tree[folder])


@pytest.mark.parametrize("seed", SEEDS)
def test_same_answers_as_reference(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    allowed = 0
    mismatches: list[Mismatch] = []
    for n in range(TREES_PER_SEED):
        datasite = tmp_path / f"t{n}" / OWNER
        datasite.mkdir(parents=True)
        folders = rng.sample(FOLDERS[1:], rng.randint(0, 5))
        folders += [""] if rng.random() < 0.7 else []
        tree = {f: random_file(rng) for f in folders}
        for folder, content in tree.items():
            write_file(datasite, folder, content)
        ctx = SyftPermContext(datasite)
        allowed_before, found = compare(rng, datasite, ctx, tree)
        mutate(rng, datasite, tree)
        ctx.reload()
        allowed_after, found_after = compare(rng, datasite, ctx, tree)
        allowed += allowed_before + allowed_after
        mismatches += found + found_after
    # The questions must exercise the rules, not just the owner and the deny-by-default paths.
    assert allowed >= 40
    assert not mismatches, "\n\n".join(str(m) for m in mismatches[:3])
