"""Benchmark of the syft.pub.yaml engine against the reference (syft-permissions 0.1.15).

Builds a datasite with 200 permission files holding 1,000 rules (plus plain data folders), asks
both engines the same random questions, and prints checks/s side by side, then the cost of
loading and of reloading after one file changed. Run: .venv/bin/python bench/bench_permissions.py
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from syft_permissions import AccessLevel as RefLevel
from syft_permissions import ACLRequest, ACLService, User

from syft_core.permissions import AccessLevel, SyftPermContext

OWNER = "do@example.org"
FILES = 200
RULES = 1000
DATA_DIRS = 300
QUERIES = 20_000
REFERENCE_QUERIES = 4_000
USERS = [f"user{i}@{'x' if i % 2 else 'y'}.org" for i in range(40)] + [OWNER]
NAMES = ["data", "reports", "2024", "q1", "raw", "clean", "models", "api", "shared", "tmp"]
FILE_NAMES = ["a.csv", "b.txt", "log_2024_1.txt", "model.pkl", ".env", "notes.md", "x.json"]
PATTERNS = [
    "**",
    "*.csv",
    "**/*.txt",
    "{{.UserEmail}}/**",
    "{{.UserEmail}}/*/run.sh",
    "raw/*",
    "clean/**",
    "log_20[0-9][0-9]_?.txt",
    "a.csv",
    "models/*.pkl",
    "*/q1/**",
    "**/notes.md",
]


def grantees(rng: random.Random) -> list[str]:
    pool = [*rng.sample(USERS, 2), "*", "*@x.org", "USER"]
    return rng.sample(pool, rng.randint(0, 2))


def build(root: Path, rng: random.Random) -> Path:
    datasite = root / OWNER
    folders = {""}
    while len(folders) < FILES:
        depth = rng.randint(1, 4)
        folders.add("/".join(rng.choice(NAMES) for _ in range(depth)))
    ordered = sorted(folders)
    per_file = [1] * FILES
    for _ in range(RULES - FILES):
        per_file[rng.randrange(FILES)] += 1
    for folder, count in zip(ordered, per_file, strict=True):
        rules = [
            {
                "pattern": rng.choice(PATTERNS),
                "access": {lvl: grantees(rng) for lvl in ("admin", "write", "read")},
            }
            for _ in range(count)
        ]
        target = datasite / folder / "syft.pub.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump({"terminal": rng.random() < 0.05, "rules": rules}))
    for i in range(DATA_DIRS):
        data_dir = datasite / rng.choice(ordered) / f"dataset{i}"
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "part.csv").write_text("x\n")
    return datasite


def queries(rng: random.Random, datasite: Path, n: int) -> list[tuple[str, str, AccessLevel]]:
    folders = sorted(p.parent.relative_to(datasite).as_posix() for p in datasite.rglob("*.yaml"))
    levels = list(AccessLevel)
    out = []
    for _ in range(n):
        user = rng.choice(USERS)
        parts = [rng.choice(folders).strip(".")]
        parts += [rng.choice([*NAMES, user]) for _ in range(rng.randint(0, 2))]
        parts.append(rng.choice([*FILE_NAMES, ""]))
        path = "/".join(p for p in parts if p)
        path = path + "/" if parts[-1] == "" else path
        out.append((user, path.lstrip("/"), rng.choice(levels)))
    return out


def rate(fn: Callable[[], Any], n: int) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return n / (time.perf_counter() - start), result


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> int:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        datasite = build(Path(tmp), rng)
        load_ms = timed(lambda: SyftPermContext(datasite))
        ctx = SyftPermContext(datasite)
        ref = ACLService(owner=OWNER)
        ref_load_ms = timed(lambda: ref.load_permissions_from_filesystem(datasite))
        qs = queries(rng, datasite, QUERIES)
        ref_qs = [
            (ACLRequest(p + "__any__" if p.endswith("/") else p, RefLevel(int(lvl)), User(u)))
            for u, p, lvl in qs[:REFERENCE_QUERIES]
        ]

        ours_rate, ours = rate(lambda: [ctx.check(u, p, lvl) for u, p, lvl in qs], len(qs))
        ref_rate, theirs = rate(lambda: [ref.can_access(r) for r in ref_qs], len(ref_qs))
        disagree = sum(a != b for a, b in zip(ours, theirs, strict=False))

        time.sleep(2.1)  # let every file leave the "racy" window: measure the steady state
        first = ctx.reload()
        idle_ms = timed(ctx.reload)
        fresh_rate, _ = rate(
            lambda: [ctx.open(p).has_read_access(u) for u, p, _ in qs[:REFERENCE_QUERIES]],
            REFERENCE_QUERIES,
        )
        changed = datasite / "syft.pub.yaml"
        changed.write_text(yaml.safe_dump({"rules": [{"pattern": "**", "access": {}}]}))
        start = time.perf_counter()
        report = ctx.reload()
        change_ms = (time.perf_counter() - start) * 1000
        dirs = sum(1 for p in datasite.rglob("*") if p.is_dir()) + 1

    row = "{:46}{:>12}{:>12}{:>8}"
    print(f"tree: {FILES} permission files, {RULES} rules, {dirs} folders; {len(qs)} questions")
    print(row.format("", "ours", "reference", "ratio"))
    print(
        row.format(
            "checks/s, ctx.check (hot path)",
            f"{ours_rate:,.0f}",
            f"{ref_rate:,.0f}",
            f"{ours_rate / ref_rate:.1f}x",
        )
    )
    print(
        row.format(
            "checks/s, open(p).has_read_access (re-stats)",
            f"{fresh_rate:,.0f}",
            "",
            f"{fresh_rate / ref_rate:.1f}x",
        )
    )
    print(row.format("load all files (ms)", f"{load_ms:.1f}", f"{ref_load_ms:.1f}", ""))
    print(row.format("reload, nothing changed (ms)", f"{idle_ms:.2f}", "n/a", ""))
    print(
        row.format(
            "reload after one file changed (ms)", f"{change_ms:.2f}", f"{ref_load_ms:.1f}", ""
        )
    )
    print(f"first reload after the racy window: {first}")
    print(f"reload after the change: {report}")
    print(
        f"allowed {sum(ours)} of {len(qs)}; disagreements with the reference on "
        f"{len(ref_qs)} shared questions: {disagree}"
    )
    return 1 if disagree else 0


if __name__ == "__main__":
    sys.exit(main())
