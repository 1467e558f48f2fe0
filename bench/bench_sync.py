"""Benchmark of the peer sync against the tool its users would otherwise run, in one run.

Each transport is compared with its users' alternative, side by side (issue 14, point 4):
  - folder transport vs `rsync -a`: into the shared folder, then out of it (both legs), on disk
    and on a tmpfs;
  - S3 transport vs boto3's high-level transfer (`upload_file` / `download_file` with the default
    TransferConfig: what `aws s3 cp --recursive` runs, every file queued on one transfer manager);
for two workloads: 1,000 small files (0.5-8 KiB) and one 200 MiB file. "Ours" is a scientist's
sync pass that sends a job's code (scan, hash, upload, manifest) plus the owner's pass that
receives it (list, fetch, verify, permission check, atomic apply, event log). Dirty pages are
flushed (sync(2)) and, when allowed (root), the page cache dropped (`echo 3 >
/proc/sys/vm/drop_caches`) before each timed leg; each figure is the median of --repeat runs,
ours and theirs interleaved. What arrived is hashed (sha256) after every run, outside the timing,
and compared with what left: a run whose bytes differ fails the bench.

Then point 5: an owner with 50 accepted peers and 10,000 published files (200 readable by each
peer): one idle pass (nothing changed) of a long-lived owner client (its datasite watched, as
`sync` and `serve --sync` run it) is timed, then a change to a file only one peer may read must
reach that peer, and no other, within one pass. Also printed: one backstop pass (every file
stat'ed) and idle passes of a client without a watcher.

Run: .venv/bin/python bench/bench_sync.py [--small-files N] [--large-mib N] [--repeat N]
                                          [--work-dir DIR] [--skip-s3] [--skip-tmpfs]
                                          [--skip-peers]
(--small-files 0 or --large-mib 0 leaves that workload out.)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

# The S3 server is the test suite's (same binary, ports and identities); the repo root makes
# `tests` importable when this script is run directly.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from boto3.s3.transfer import TransferConfig, create_transfer_manager

from syft_core import filestamp
from syft_core.datasite import Datasite
from syft_core.permissions import SyftPermContext
from syft_core.sync import FolderTransport, SyncClient, Transport
from syft_core.sync.channel import Channel
from tests.fixtures_s3 import OWNER, SCIENTISTS, S3Server, start_weed, stop_process

SCI = SCIENTISTS[0]
MiB = 1 << 20
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


@dataclass
class Row:
    workload: str
    ours: float
    theirs: float
    target: float  # minimum theirs/ours (1.0: at least as fast as theirs)
    unit: str = "s"

    def cells(self) -> list[str]:
        ratio = self.theirs / self.ours
        return [
            self.workload,
            f"{self.ours:.3f} {self.unit}",
            f"{self.theirs:.3f} {self.unit}",
            f"{ratio:.2f}x",
            f">= {self.target:.1f}x",
            "yes" if ratio >= self.target else "NO",
        ]


@dataclass
class Limit:
    """A row with an absolute target (point 5): ours must stay below `limit`."""

    workload: str
    ours: float
    limit: float
    unit: str

    def cells(self) -> list[str]:
        return [
            self.workload,
            f"{self.ours:.1f} {self.unit}",
            "-",
            "-",
            f"< {self.limit:g} {self.unit}",
            "yes" if self.ours < self.limit else "NO",
        ]


HEADER = ["workload", "ours", "theirs", "ratio", "target", "met?"]


def make_small(folder: Path, count: int, rng: random.Random) -> int:
    total = 0
    for i in range(count):
        path = folder / f"d{i % 20:02d}" / f"f{i:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(rng.randint(512, 8192))
        path.write_bytes(data)
        total += len(data)
    return total


def make_large(folder: Path, mib: int) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(mib)
    with (folder / "large.bin").open("wb") as fh:
        for _ in range(mib):
            fh.write(rng.randbytes(MiB))
    return mib * MiB


def can_drop_caches() -> bool:
    try:
        DROP_CACHES.write_text("3\n")
    except OSError:
        return False
    return True


def quiesce(drop: bool) -> None:
    os.sync()
    if drop:
        DROP_CACHES.write_text("3\n")


def timed(fn: Callable[[], object], drop: bool) -> float:
    quiesce(drop)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def digests(folder: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with path.open("rb") as fh:
            out[path.relative_to(folder).as_posix()] = hashlib.file_digest(fh, "sha256").hexdigest()
    return out


def verify(sent: dict[str, str], arrived: Path, what: str) -> None:
    got = digests(arrived)
    if got != sent:
        raise SystemExit(f"{what}: what arrived differs from what left ({len(got)} files)")


# -- theirs --------------------------------------------------------------------------------


def rsync_legs(source: Path, work: Path, drop: bool) -> float:
    share, dest = work / "rsync-share", work / "rsync-dest"
    up = timed(lambda: subprocess.run(["rsync", "-a", f"{source}/", f"{share}/"], check=True), drop)
    down = timed(lambda: subprocess.run(["rsync", "-a", f"{share}/", f"{dest}/"], check=True), drop)
    verify(digests(source), dest, "rsync")
    shutil.rmtree(share)
    shutil.rmtree(dest)
    return up + down


def boto3_legs(source: Path, work: Path, server: S3Server, drop: bool) -> float:
    """`aws s3 cp --recursive` both ways: each file through boto3's managed transfer, with the
    default TransferConfig (8 MiB multipart, 10 threads), all files queued on one manager."""
    t = server.transport("admin")
    files = sorted(p for p in source.rglob("*") if p.is_file())
    keys = [f"raw/{p.relative_to(source).as_posix()}" for p in files]
    dest = work / "boto3-dest"

    def upload() -> None:
        with create_transfer_manager(t.client, TransferConfig()) as manager:
            futures = [
                manager.upload(str(p), t.bucket, k) for p, k in zip(files, keys, strict=True)
            ]
            for f in futures:
                f.result()

    def download() -> None:
        with create_transfer_manager(t.client, TransferConfig()) as manager:
            futures = []
            for path, key in zip(files, keys, strict=True):
                target = dest / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                futures.append(manager.download(t.bucket, key, str(target)))
            for f in futures:
                f.result()

    up = timed(upload, drop)
    down = timed(download, drop)
    verify(digests(source), dest, "boto3")
    t.delete_prefix("raw/")
    shutil.rmtree(dest)
    return up + down


# -- ours ----------------------------------------------------------------------------------


def sync_legs(
    source: Path, work: Path, transports: dict[str, Transport], drop: bool
) -> tuple[float, float, float]:
    """The job's code goes scientist -> owner: the scientist's pass, then the owner's."""
    owner_box, sci_box = work / "owner-box", work / "sci-box"
    Datasite(owner_box, OWNER).init()
    with (
        SyncClient(owner_box, OWNER, transports[OWNER]) as owner,
        SyncClient(sci_box, SCI, transports[SCI]) as sci,
    ):
        sci.request_peer(OWNER)
        owner.accept_peer(SCI)
        owner.sync_once()
        sci.sync_once()
        code = Path(OWNER, "jobs", SCI, "bench", "code")
        shutil.copytree(source, sci_box / code)
        up = timed(sci.sync_once, drop)
        down = timed(owner.sync_once, drop)
    verify(digests(source), owner_box / code, "sync")
    shutil.rmtree(owner_box)
    shutil.rmtree(sci_box)
    return up + down, up, down


def compare(
    name: str,
    work: Path,
    workloads: dict[str, Callable[[Path], int]],
    theirs: Callable[[Path, Path], float],
    ours: Callable[[Path, Path], tuple[float, float, float]],
    target: float,
    repeat: int,
) -> list[Row]:
    rows = []
    for workload, fill in workloads.items():
        source = work / "source"
        fill(source)
        their_times, our_times = [], []
        for _ in range(repeat):
            their_times.append(theirs(source, work))
            total, up, down = ours(source, work)
            our_times.append(total)
            print(
                f"  {name} {workload}: ours {total:.3f}s (up {up:.3f} down {down:.3f}), "
                f"theirs {their_times[-1]:.3f}s",
                flush=True,
            )
        shutil.rmtree(source)
        ours_s, theirs_s = statistics.median(our_times), statistics.median(their_times)
        rows.append(Row(f"{name}: {workload}", ours_s, theirs_s, target))
    return rows


# -- many peers (point 5) ------------------------------------------------------------------


def many_peers(work: Path, peers: int, files: int) -> list[Limit]:
    share = work / "peers-share"
    share.mkdir()
    owner_box = work / "peers-owner"
    owner_site = Datasite(owner_box, OWNER).init()
    emails = [f"peer{i:02d}@example.org" for i in range(peers)]
    perms = SyftPermContext(owner_site.root)
    rng = random.Random(5)
    per_peer = files // peers
    for email in emails:
        folder = owner_site.root / "shared" / email.split("@")[0]
        for j in range(per_peer):
            path = folder / f"d{j % 10}" / f"f{j:04d}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rng.randbytes(64))
        perms.open(f"shared/{email.split('@')[0]}/").grant_read_access(email)
    # Files older than the hash cache's racy window, as an owner's published files would be
    # (waited out: dating them back with utime would move their ctime, which counts too).
    time.sleep(filestamp.RACY_NS / 1e9 + 0.2)
    chosen, other = emails[7], emails[8]
    followers = {e: SyncClient(work / f"peers-{e}", e, FolderTransport(share)) for e in emails}
    # The owner as `sync` and `serve --sync` run it: long-lived, its datasite watched (inotify).
    owner = SyncClient(owner_box, OWNER, FolderTransport(share), watch=True)
    try:
        for email, client in followers.items():
            client.request_peer(OWNER)
            owner.accept_peer(email)
        start = time.perf_counter()
        owner.sync_once()
        print(
            f"  many peers: first publish of {files:,} files took "
            f"{time.perf_counter() - start:.1f}s",
            flush=True,
        )
        followers[chosen].sync_once()
        followers[other].sync_once()
        owner.sync_once()  # settles the hash cache
        idle = []
        for _ in range(5):
            start = time.perf_counter()
            report = owner.sync_once()
            idle.append(time.perf_counter() - start)
            assert not report.published, report.published
        idle_ms = statistics.median(idle) * 1000
        scanner = owner._owner_memory.scanner
        assert scanner is not None and scanner.watching, "inotify is not available here"
        full = []
        for _ in range(3):
            scanner.scan_in_full()  # what the backstop costs (every scope.FULL_SCAN_SECONDS)
            start = time.perf_counter()
            owner.sync_once()
            full.append(time.perf_counter() - start)
        with SyncClient(owner_box, OWNER, FolderTransport(share)) as unwatched:
            unwatched.sync_once()  # a client without watches: every pass stats every file
            stat_idle = []
            for _ in range(5):
                start = time.perf_counter()
                assert not unwatched.sync_once().published
                stat_idle.append(time.perf_counter() - start)

        def pending() -> dict[str, int]:
            return {
                e: len(Channel(owner.transport, OWNER, "outbox", e, pool=owner._pool).pending())
                for e in emails
            }

        before = pending()
        rel = f"shared/{chosen.split('@')[0]}/d3/f0003.txt"
        (owner_site.root / rel).write_bytes(b"changed for one peer\n")
        start = time.perf_counter()
        report = owner.sync_once()
        change_ms = (time.perf_counter() - start) * 1000
        after = pending()
        grown = [e for e in emails if after[e] != before[e]]
        if grown != [chosen] or report.published != {chosen: 1}:
            raise SystemExit(f"many peers: the change went to {grown}, not only {chosen}")
        followers[chosen].sync_once()
        followers[other].sync_once()
        mirror = work / f"peers-{chosen}" / OWNER / rel
        if mirror.read_bytes() != b"changed for one peer\n":
            raise SystemExit("many peers: the change did not reach its peer in one pass")
        print(
            f"  many peers: idle passes {[round(t * 1000, 1) for t in idle]} ms; a change "
            f"reached {chosen} only, owner's pass {change_ms:.1f} ms; backstop passes (every "
            f"file stat'ed) {[round(t * 1000, 1) for t in full]} ms; idle passes without a watcher "
            f"{[round(t * 1000, 1) for t in stat_idle]} ms",
            flush=True,
        )
    finally:
        owner.close()
        for client in followers.values():
            client.close()
    return [
        Limit(f"{peers} peers, {files:,} files: idle pass", idle_ms, 50, "ms"),
        Limit(f"{peers} peers: pass publishing one change", change_ms, 50, "ms"),
    ]


# -- main ----------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs() -> Iterator[Path]:
    """A tmpfs mounted for the bench under /tmp (root), else /dev/shm."""
    mount = Path(tempfile.mkdtemp(prefix="bench-sync-tmpfs-"))
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2g", "tmpfs", str(mount)], capture_output=True
        ).returncode
        == 0
    )
    try:
        if mounted:
            yield mount
        else:
            with tempfile.TemporaryDirectory(prefix="bench-sync-", dir="/dev/shm") as shm:
                yield Path(shm)
    finally:
        if mounted:
            subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


def filesystem_of(path: Path) -> str:
    best, kind = "", "?"
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        mount = fields[1]
        if (path.as_posix() + "/").startswith(mount.rstrip("/") + "/") and len(mount) > len(best):
            best, kind = mount, fields[2]
    return kind


def print_table(rows: list[Row | Limit]) -> None:
    table = [HEADER, *(r.cells() for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    for i, line in enumerate(table):
        cells = [
            c.ljust(w) if j == 0 else c.rjust(w)
            for j, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def folder_rows(
    work: Path, label: str, workloads: dict[str, Callable[[Path], int]], repeat: int, drop: bool
) -> list[Row]:
    share = work / "share"
    share.mkdir()
    rows = compare(
        f"folder vs rsync -a ({label})",
        work,
        workloads,
        lambda source, w: rsync_legs(source, w, drop),
        lambda source, w: sync_legs(
            source, w, {OWNER: FolderTransport(share), SCI: FolderTransport(share)}, drop
        ),
        1.0,
        repeat,
    )
    shutil.rmtree(share)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small-files", type=int, default=1000)
    parser.add_argument("--large-mib", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peers", type=int, default=50)
    parser.add_argument("--published", type=int, default=10_000)
    parser.add_argument("--work-dir", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--skip-tmpfs", action="store_true")
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()
    if shutil.which("rsync") is None:
        raise SystemExit("rsync is needed (apt-get install -y rsync, or make setup)")
    workloads: dict[str, Callable[[Path], int]] = {}
    if args.small_files > 0:  # 0: only the large file
        workloads[f"{args.small_files:,} small files"] = lambda d: make_small(
            d, args.small_files, random.Random(7)
        )
    if args.large_mib > 0:  # 0: only the small files
        workloads[f"1 x {args.large_mib} MiB"] = lambda d: make_large(d, args.large_mib)
    drop = can_drop_caches()
    began = time.perf_counter()
    rows: list[Row | Limit] = []
    with tempfile.TemporaryDirectory(prefix="bench-sync-", dir=args.work_dir) as tmp:
        work = Path(tmp).resolve()
        print(
            f"cpus: {os.cpu_count()}, load: {os.getloadavg()[0]:.2f}, disk: {work} "
            f"({filesystem_of(work)}), median of {args.repeat}, before each timed leg: sync(2)"
            + (" and drop_caches=3" if drop else " (page cache not dropped: not root)"),
            flush=True,
        )
        rows += folder_rows(work, "disk", workloads, args.repeat, drop)
        if not args.skip_tmpfs:
            with tmpfs() as mem:
                print(f"  tmpfs: {mem} ({filesystem_of(mem)})", flush=True)
                rows += folder_rows(mem, "tmpfs", workloads, args.repeat, drop)
        if not args.skip_s3:
            server, proc = start_weed(work / "weed")
            try:
                admin = server.transport("admin")

                def ours_s3(source: Path, w: Path) -> tuple[float, float, float]:
                    result = sync_legs(
                        source,
                        w,
                        {OWNER: server.transport(OWNER), SCI: server.transport(SCI)},
                        drop,
                    )
                    admin.delete_prefix("")
                    return result

                rows += compare(
                    "S3 vs boto3 transfer",
                    work,
                    workloads,
                    lambda source, w: boto3_legs(source, w, server, drop),
                    ours_s3,
                    0.9,
                    args.repeat,
                )
            finally:
                stop_process(proc)
        if not args.skip_peers:
            rows += many_peers(work, args.peers, args.published)
    print()
    print(f"load after: {os.getloadavg()[0]:.2f}; bench took {time.perf_counter() - began:.0f}s")
    print("ratio = theirs / ours (time): above 1 means the sync is faster")
    print_table(rows)


if __name__ == "__main__":
    main()
