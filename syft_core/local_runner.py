"""The hook through which `Client.run_local` reaches a sandbox, without syft_core knowing one.

syft_core never imports a runner: a local run needs a container engine and the job images,
which belong to the runner package. A runner provides a `LocalRunner` (a callable) and declares
it under the entry-point group `syft_core.local_runner` in its package metadata (syft-runner
declares `syft_runner.local_run:run_local`); `find_local_runner` loads it on first use. A caller
can also hand a runner to `get_client(..., local_runner=...)` directly (tests, other sandboxes).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from syft_core.errors import SyftError
from syft_core.jobs.markers import Outcome

ENTRY_POINT_GROUP = "syft_core.local_runner"


@dataclass(frozen=True)
class LocalRunResult:
    outcome: Outcome
    exit_code: int | None
    message: str  # the runner's account: how the job ended and what to do about it
    stdout: str
    stderr: str
    result_dir: Path  # logs/, outputs/, done.yaml
    outputs_dir: Path
    outputs: list[Path]  # files under outputs_dir, sorted


class LocalRunner(Protocol):
    """Runs `code_path` against `owner`'s mocks synced into `syftbox`, in the job sandbox; a job
    that fails is a result with its outcome, not an error (see syft_runner.local_run)."""

    def __call__(
        self,
        code_path: Path,
        *,
        syftbox: Path,
        owner: str,
        datasets: list[str] | None,
        entrypoint: str | None,
        output_dir: Path | None,
        email: str | None,
        runtime: str | None,
    ) -> LocalRunResult: ...


def find_local_runner() -> LocalRunner:
    """The local runner an installed package declares; SyftError when none or several do."""
    found = list(entry_points(group=ENTRY_POINT_GROUP))
    if not found:
        raise SyftError(
            "no local runner is installed: a local run needs syft-runner (pip install "
            "syft-runner), which provides the job sandbox"
        )
    if len(found) > 1:
        names = ", ".join(sorted(f"{ep.name} ({ep.value})" for ep in found))
        raise SyftError(
            f"several local runners are installed ({names}): pass the one to use as "
            "get_client(..., local_runner=...)"
        )
    runner = found[0].load()
    if not callable(runner):
        raise SyftError(f"the local runner {found[0].value} is not callable")
    # Typed by the entry point's declaration: the metadata cannot carry a signature.
    return runner  # type: ignore[no-any-return]
