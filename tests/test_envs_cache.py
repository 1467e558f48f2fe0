"""The environment cache without Docker: LRU eviction under the cap that keeps what queued and
running jobs need, and the key that binds a lock to an image."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from syft_core.jobs.lock import parse_lock
from syft_runner.sandbox.envs import ENV_SUBDIR, MANIFEST, EnvCache, EnvSettings, Protected, env_key


def _fake_entry(cache: EnvCache, key: str, size: int, used: float, digest: str) -> None:
    entry = cache.root / key
    (entry / ENV_SUBDIR).mkdir(parents=True)
    manifest = {
        "key": key,
        "lock_digest": digest,
        "target": "t",
        "image_id": "sha256:x",
        "python": "3.11.2",
        "packages": [],
        "bytes": size,
        "files": 1,
        "built_at": "2026-01-01T00:00:00Z",
        "build": {
            "container": "c",
            "image_id": "sha256:x",
            "network_mode": "none",
            "mounts": [],
            "user": "1:1",
            "index": [],
            "seconds": 1.0,
        },
    }
    (entry / MANIFEST).write_text(json.dumps(manifest))
    (entry / "last-used").touch()
    os.utime(entry / "last-used", (used, used))


def test_eviction_removes_least_recently_used_and_keeps_what_jobs_need(tmp_path: Path) -> None:
    cache = EnvCache(EnvSettings(tmp_path / "cache", 1 << 40))
    now = time.time()
    for i, key in enumerate(["old", "queued", "running", "newer", "fresh"]):
        _fake_entry(cache, key, 100, now - 10_000 + i * 1000, f"sha256:{key}")
    os.utime(cache.root / "fresh" / "last-used")  # used just now: within the grace period
    protected = Protected(keys=frozenset({"running"}), lock_digests=frozenset({"sha256:queued"}))
    removed = cache.evict(150, protected)
    assert removed == ["old", "newer"]  # oldest first, skipping the protected ones
    assert sorted(e.key for e in cache.entries()) == ["fresh", "queued", "running"]
    # Under the cap: nothing more goes.
    assert cache.evict(1000, Protected()) == []


def test_the_key_binds_the_lock_and_the_image() -> None:
    lock_a = parse_lock("a==1 \\\n    --hash=sha256:" + "a" * 64 + "\n")
    lock_b = parse_lock("a==1 \\\n    --hash=sha256:" + "b" * 64 + "\n")
    assert env_key(lock_a, "sha256:1") != env_key(lock_b, "sha256:1")
    assert env_key(lock_a, "sha256:1") != env_key(lock_a, "sha256:2")
    assert env_key(lock_a, "sha256:1") == env_key(parse_lock(lock_a.text + "# c\n"), "sha256:1")
