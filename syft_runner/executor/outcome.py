"""How a job's run ended, in words its submitter can act on: the outcome and message of `done`."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Literal

from syft_core.jobs import CancelMarker, Outcome
from syft_runner.config import MiB
from syft_runner.sandbox.container import Limits
from syft_runner.workspace.outputs import CollectedOutputs

OOM_NEAR_LIMIT = 0.9  # exit 137 with peak memory this close to the limit counts as OOM
StopReason = Literal["exited", "timed_out", "cancelled", "disk_full", "engine_stopped"]


@dataclass
class Usage:
    peak_memory_bytes: int | None = None
    cpu_seconds: float | None = None


@dataclass(frozen=True)
class Ending:
    reason: StopReason
    usage: Usage
    stdout_truncated: bool
    stderr_truncated: bool
    cancel: CancelMarker | None = None


def classify(
    ending: Ending, exit_code: int, oom_killed: bool, limits: Limits
) -> tuple[Outcome, str]:
    """The outcome and a message a data scientist can act on."""
    if ending.reason == "cancelled":
        cancel = ending.cancel
        who = f" by {cancel.by}" if cancel else ""
        why = f": {cancel.reason}" if cancel and cancel.reason else ""
        return Outcome.CANCELLED, f"cancelled{who}{why}; the job was stopped"
    if ending.reason == "disk_full":
        return Outcome.ERROR, (
            "stopped: the host disk that holds job outputs fell below its reserve of free space "
            "while this job ran; write less into outputs/"
        )
    if ending.reason == "engine_stopped":
        return Outcome.ERROR, (
            "stopped: the Docker engine on the owner's machine shut down (or its administrator "
            f"stopped the container) while this job ran (exit code {exit_code}); not the job's "
            "fault, it may be resubmitted"
        )
    if ending.reason == "timed_out":
        return Outcome.TIMED_OUT, (
            f"stopped after the time limit of {limits.timeout_seconds} s; ask for more with "
            "timeout_seconds in config.yaml (up to the owner's maximum)"
        )
    peak = ending.usage.peak_memory_bytes
    near_limit = peak is not None and peak >= OOM_NEAR_LIMIT * limits.memory_mb * MiB
    if oom_killed or (exit_code == 137 and near_limit):
        return Outcome.OOM_KILLED, (
            f"ran out of memory: the limit is {limits.memory_mb} MiB; use less, or ask for more "
            "with resources.memory_mb in config.yaml (up to the owner's maximum)"
        )
    if exit_code == 0:
        return Outcome.SUCCEEDED, "exited with code 0"
    return Outcome.FAILED, f"exited with code {exit_code}{_signal_note(exit_code, limits)}; " + (
        "see logs/stderr.txt"
    )


def _signal_note(exit_code: int, limits: Limits) -> str:
    if exit_code <= 128:
        return ""
    try:
        name = signal.Signals(exit_code - 128).name
    except ValueError:
        return ""
    if name == "SIGXFSZ":
        return f" (killed by {name}: a file grew past the limit of {limits.fsize_mb} MiB)"
    return f" (killed by {name})"


def with_outputs_note(message: str, collected: CollectedOutputs) -> str:
    """Counts only (`done` is readable before release); the names are in logs/results.yaml."""
    if collected.refused_count or collected.stopped:
        return f"{message}; {collected.summary()}"
    return message
