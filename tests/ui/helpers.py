"""Jobs in the states the review console shows, written as the runner would leave them, and
the outputs the previews are tested with."""

from __future__ import annotations

import struct
import zlib

from syft_core.jobs import DoneMarker, JobFolder, Outcome
from syft_core.preview import PNG_SIGNATURE


def tiny_png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def start(job: JobFolder, stdout: str = "", stderr: str = "") -> None:
    """What the executor does when an approved job starts, with its first log lines."""
    approved = job.state().approved
    assert approved is not None, job.state()
    job.start(
        job.owner, container="c", image="i", image_id="sha256:0", content_hash=approved.content_hash
    )
    job.logs_dir.mkdir(exist_ok=True)
    job.stdout_path.write_text(stdout)
    job.stderr_path.write_text(stderr)


def finish(job: JobFolder, outputs: dict[str, bytes] | None = None, exit_code: int = 0) -> None:
    """What the executor leaves when the job ends: outputs/ and the done marker."""
    job.outputs_dir.mkdir(exist_ok=True)
    for relpath, data in (outputs or {}).items():
        path = job.outputs_dir / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    outcome = Outcome.SUCCEEDED if exit_code == 0 else Outcome.FAILED
    job.finish(
        DoneMarker(by=job.owner, outcome=outcome, message=outcome.value, exit_code=exit_code)
    )
