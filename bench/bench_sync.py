"""Benchmark of the peer sync against raw copies, over both transports, in one run.

Two workloads, each sent both ways (scientist -> owner: a job's code; owner -> scientist: public
files), over the folder transport and a real S3 server (SeaweedFS on loopback, started here):
  - 1,000 small files (0.5-8 KiB)
  - one 200 MiB file
Each leg is timed separately: "up" is the sender's sync pass (scan, sha256, upload, manifest),
"down" the receiver's (list, fetch, verify, permission check, atomic apply, event log). The raw
figures move the same bytes the plainest way: shutil copies into and out of a folder; boto3
upload_file / download_file, one file after another. Ratio = sync throughput / raw throughput.

Every figure is the median of --repeat runs, raw and sync interleaved, and dirty pages are
flushed (sync(2)) before each timed leg so one leg's writeback is not billed to the next: on a
virtual disk the same plain copy otherwise varies tenfold from one run to the next. The work
folder (--work-dir, default the system's temporary folder) holds both syftboxes, the shared
folder and the S3 server's data; its filesystem is printed.

Run: .venv/bin/python bench/bench_sync.py [--small-files N] [--large-mib N] [--repeat N]
                                          [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# The S3 server is the test suite's (same binary, ports and identities); the repo root makes
# `tests` importable when this script is run directly.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from syft_core.datasite import Datasite
from syft_core.sync import FolderTransport, S3Transport, SyncClient, Transport
from tests.fixtures_s3 import OWNER, SCIENTISTS, S3Server, start_weed, stop_process

SCI = SCIENTISTS[0]
MiB = 1 << 20


@dataclass
class Row:
    transport: str
    workload: str
    direction: str
    nbytes: int
    sync_up: float
    sync_down: float
    raw_up: float
    raw_down: float

    def cells(self) -> list[str]:
        def rate(seconds: float) -> str:
            return f"{self.nbytes / MiB / seconds:8.1f}"

        def ratio(raw: float, ours: float) -> str:
            return f"{raw / ours * 100:5.0f}%"

        return [
            self.transport,
            self.workload,
            self.direction,
            rate(self.sync_up),
            rate(self.raw_up),
            ratio(self.raw_up, self.sync_up),
            rate(self.sync_down),
            rate(self.raw_down),
            ratio(self.raw_down, self.sync_down),
            ratio(self.raw_up + self.raw_down, self.sync_up + self.sync_down),
        ]


HEADER = [
    "transport",
    "workload",
    "direction",
    "up MiB/s",
    "raw up",
    "ratio",
    "down MiB/s",
    "raw down",
    "ratio",
    "end-to-end",
]


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
    with (folder / "large.bin").open("wb") as fh:
        for i in range(mib):
            fh.write(hashlib.sha256(str(i).encode()).digest() * (MiB // 32))
    return mib * MiB


def timed(fn: Callable[[], object]) -> float:
    os.sync()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


# -- raw baselines -------------------------------------------------------------------------


def raw_folder(source: Path, work: Path) -> tuple[float, float]:
    share, dest = work / "raw-share", work / "raw-dest"

    def copy_tree(src: Path, dst: Path) -> None:
        for path in files_under(src):
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)

    up = timed(lambda: copy_tree(source, share))
    down = timed(lambda: copy_tree(share, dest))
    shutil.rmtree(share)
    shutil.rmtree(dest)
    return up, down


def raw_s3(source: Path, work: Path, server: S3Server) -> tuple[float, float]:
    t = server.transport("admin")
    files = files_under(source)
    keys = [f"raw/{p.relative_to(source).as_posix()}" for p in files]
    dest = work / "raw-dest"

    def upload() -> None:
        for path, key in zip(files, keys, strict=True):
            t.client.upload_file(str(path), t.bucket, key)

    def download() -> None:
        for path, key in zip(files, keys, strict=True):
            target = dest / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            t.client.download_file(t.bucket, key, str(target))

    up = timed(upload)
    down = timed(download)
    t.delete_prefix("raw/")
    shutil.rmtree(dest)
    return up, down


# -- the sync ------------------------------------------------------------------------------


def run_sync(
    work: Path, transports: dict[str, Transport], fill: Callable[[Path], int], direction: str
) -> tuple[int, float, float]:
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
        if direction == "sci->owner":
            nbytes = fill(sci_box / OWNER / "jobs" / SCI / "bench" / "code")
            sender, receiver = sci, owner
        else:
            nbytes = fill(owner_box / OWNER / "public" / "bench")
            sender, receiver = owner, sci
        up = timed(sender.sync_once)
        down = timed(receiver.sync_once)
    shutil.rmtree(owner_box)
    shutil.rmtree(sci_box)
    return nbytes, up, down


DIRECTIONS = ("sci->owner", "owner->sci")


def bench_transport(
    name: str,
    work: Path,
    transports: Callable[[], dict[str, Transport]],
    raw: Callable[[Path, Path], tuple[float, float]],
    workloads: dict[str, Callable[[Path], int]],
    cleanup: Callable[[], None],
    repeat: int,
) -> list[Row]:
    rows = []
    for workload, fill in workloads.items():
        raws: list[tuple[float, float]] = []
        syncs: dict[str, list[tuple[float, float]]] = {d: [] for d in DIRECTIONS}
        nbytes = 0
        for _ in range(repeat):
            source = work / "source"
            fill(source)
            raws.append(raw(source, work))
            shutil.rmtree(source)
            for direction in DIRECTIONS:
                nbytes, up, down = run_sync(work, transports(), fill, direction)
                cleanup()
                syncs[direction].append((up, down))
                print(f"  {name} {workload} {direction}: up {up:.2f}s down {down:.2f}s", flush=True)
        raw_up, raw_down = _medians(raws)
        for direction in DIRECTIONS:
            up, down = _medians(syncs[direction])
            rows.append(Row(name, workload, direction, nbytes, up, down, raw_up, raw_down))
    return rows


def _medians(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding `path` (from /proc/self/mounts: longest prefix)."""
    best, kind = "", "?"
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        mount = fields[1]
        if (path.as_posix() + "/").startswith(mount.rstrip("/") + "/") and len(mount) > len(best):
            best, kind = mount, fields[2]
    return kind


def print_table(rows: list[Row]) -> None:
    table = [HEADER, *(r.cells() for r in rows)]
    widths = [max(len(line[i].strip()) for line in table) for i in range(len(HEADER))]
    for i, line in enumerate(table):
        print("  ".join(cell.strip().rjust(w) for cell, w in zip(line, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small-files", type=int, default=1000)
    parser.add_argument("--large-mib", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()
    workloads = {
        f"{args.small_files} small": lambda d: make_small(d, args.small_files, random.Random(7)),
        f"1 x {args.large_mib} MiB": lambda d: make_large(d, args.large_mib),
    }
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-sync-", dir=args.work_dir) as tmp:
        work = Path(tmp).resolve()
        share = work / "share"
        share.mkdir()
        print(
            f"cpus: {os.cpu_count()}, work dir: {work} ({filesystem_of(work)}), "
            f"median of {args.repeat}",
            flush=True,
        )
        rows += bench_transport(
            "folder",
            work,
            lambda: {OWNER: FolderTransport(share), SCI: FolderTransport(share)},
            raw_folder,
            workloads,
            lambda: None,
            args.repeat,
        )
        server, proc = start_weed(work / "weed")
        try:
            admin: S3Transport = server.transport("admin")
            rows += bench_transport(
                "s3",
                work,
                lambda: {OWNER: server.transport(OWNER), SCI: server.transport(SCI)},
                lambda source, w: raw_s3(source, w, server),
                workloads,
                lambda: admin.delete_prefix(""),
                args.repeat,
            )
        finally:
            stop_process(proc)
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
