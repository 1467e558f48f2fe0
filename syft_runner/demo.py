"""`make demo`: the seed's owner + scientist story, end to end, on one machine.

Two syftbox folders (the owner's data server and the scientist's laptop) and a shared folder as the
transport; real sync, real permission checks, a real hardened container. Everything it does stays
on disk under ./demo-syftbox/ for you to look at afterwards.
"""

from __future__ import annotations

import csv
import random
import shutil
import sys
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from syft_core import get_client
from syft_core.datasets import create_dataset
from syft_core.datasite import SyftBox
from syft_core.jobs import Snapshot
from syft_core.names import visible
from syft_core.release import release_job
from syft_core.sync import FolderTransport, SyncClient
from syft_runner.config import default_config_path, load_runner_config
from syft_runner.local_run import run_local
from syft_runner.sandbox.engine import connect
from syft_runner.service import RunnerService

OWNER = "alice@example.com"
SCIENTIST = "bob@example.org"
REGIONS = ("north", "south", "east", "west")

ANALYSIS = """\
import csv
import os
from collections import Counter

# The same path on the scientist's laptop (mock data) and the owner's server (private data).
DATA = "/syftbox/alice@example.com/public/datasets/customers/customers.csv"

with open(DATA, newline="") as fh:
    rows = list(csv.DictReader(fh))
by_region = Counter(row["region"] for row in rows)
print(f"run mode: {os.environ['SYFT_RUN_MODE']}, customers: {len(rows)}")
os.makedirs("outputs", exist_ok=True)
with open("outputs/count.csv", "w", newline="") as fh:
    out = csv.writer(fh)
    out.writerow(["region", "count"])
    for region, count in sorted(by_region.items()):
        out.writerow([region, count])
"""

console = Console()


def step(title: str) -> None:
    console.rule(f"[bold]{title}")


def write_private_customers(path: Path, rows: int) -> None:
    rng = random.Random(7)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["customer_id", "region", "age", "spend"])
        for i in range(rows):
            region = rng.choice(REGIONS)
            out.writerow([10_000 + i, region, rng.randint(18, 90), round(rng.uniform(5, 900), 2)])
    path.chmod(0o644)  # every job (its own uid, gid 65532) reads it through a read-only mount


def sync(*clients: SyncClient) -> None:
    for client in clients:
        report = client.sync_once()
        for problem in report.problems:
            console.print(f"  [red]sync problem[/red] {problem}")


def main() -> int:
    base = Path("demo-syftbox").resolve()
    shutil.rmtree(base, ignore_errors=True)
    owner_box, scientist_box, shared = base / "owner", base / "scientist", base / "transport"
    shared.mkdir(parents=True)
    started = time.monotonic()

    step("Owner: a datasite with private data and an automatic mock")
    owner_site = SyftBox(owner_box).datasite(OWNER).init()
    write_private_customers(owner_site.private / "customers.csv", rows=2_500)
    dataset = create_dataset(
        owner_site,
        "customers",
        private=owner_site.private / "customers.csv",
        mock=None,
        automock=True,
        max_rows=200,  # a small mock: its counts differ visibly from the private data's
        description="Customers by region (mock generated automatically)",
    )
    console.print(
        f"  dataset [cyan]{dataset.name}[/cyan]: private rows stay in private/, "
        f"mock published in public/datasets/customers/"
    )

    step("Scientist asks to peer; owner accepts; the mock travels to the scientist")
    SyftBox(scientist_box).datasite(SCIENTIST).init()
    owner_sync = SyncClient(owner_box, OWNER, FolderTransport(shared))
    scientist_sync = SyncClient(scientist_box, SCIENTIST, FolderTransport(shared))
    scientist_sync.request_peer(OWNER, note="regional customer counts")
    owner_sync.accept_peer(SCIENTIST)
    sync(owner_sync, scientist_sync)
    mock_csv = scientist_box / OWNER / "public/datasets/customers/customers.csv"
    console.print(f"  scientist now has the mock: {mock_csv.relative_to(base)}")

    step("Scientist develops against the mock, locally, in the same sandbox")
    code = base / "bob-work" / "count_customers.py"
    code.parent.mkdir(parents=True)
    code.write_text(ANALYSIS)
    local = run_local(code, syftbox=scientist_box, owner=OWNER, datasets=["customers"])
    console.print(f"  local mock run: {local.outcome}, stdout: {local.stdout.strip()!r}")

    step("Scientist submits the same code unchanged; sync carries it to the owner")
    bob = get_client(scientist_box, SCIENTIST)
    bob.submit_python_job(
        user=OWNER, code_path=code, job_name="Count customers", datasets=["customers"]
    )
    sync(scientist_sync, owner_sync)

    step("Owner reviews and approves; the runner runs it on the private data")
    alice = get_client(owner_box, OWNER)
    job = alice.jobs["Count customers"]
    # One read of the submission: what is shown is what the approval binds to (its hash).
    reviewed = Snapshot.take(job.location)
    code_file = reviewed.file("code/count_customers.py")
    console.print(
        Panel(
            Text(visible(code_file.text() or "", keep_newlines=True) if code_file else "?"),
            title=f"{job.submitted_by}: {job.name} ({job.status}), {reviewed.content_hash}",
        )
    )
    job.approve(reason="aggregate counts only", expected_hash=reviewed.content_hash)
    service = RunnerService(
        owner_box, OWNER, load_runner_config(default_config_path(owner_box, OWNER)), connect()
    )
    service.run(threading.Event(), once=True)
    console.print(
        f"  {job.status}: {job.outcome}, exit code {job.exit_code}; "
        f"stdout: {job.stdout.text.strip()!r}"
    )

    step("Owner releases the results; sync carries them back")
    release_job(job.folder, by=OWNER)
    sync(owner_sync, scientist_sync)

    step("Scientist reads the results")
    mine = get_client(scientist_box, SCIENTIST).jobs["Count customers"]
    console.print(f"  status {mine.status}, outcome {mine.outcome}")
    console.print(f"  stdout: {mine.stdout.text.strip()!r}")
    for output in mine.outputs:
        console.print(Panel(Text(output.read_text()), title=f"outputs/{output.name}"))
    owner_sync.close()
    scientist_sync.close()
    ok = mine.outcome == "succeeded" and bool(mine.outputs)
    elapsed = time.monotonic() - started
    console.print(
        f"[bold {'green' if ok else 'red'}]demo {'done' if ok else 'FAILED'}[/] in "
        f"{elapsed:.1f} s; everything is on disk under {base}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
