"""The seccomp profile every job container runs under (`seccomp/job.json`, see its README)."""

from __future__ import annotations

import json
from functools import cache

from syft_core.errors import SyftError
from syft_runner.shipped import shipped_dir

# Inside the installed package, else the repository's top-level seccomp/ (syft_runner.shipped).
PROFILE_PATH = shipped_dir("seccomp") / "job.json"


class SeccompProfileError(SyftError):
    """The shipped seccomp profile is missing or not a valid profile."""


@cache
def load_profile() -> str:
    """The profile as compact JSON text: docker-py's `security_opt` wants the text, not a path."""
    try:
        document = json.loads(PROFILE_PATH.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SeccompProfileError(f"{PROFILE_PATH}: seccomp profile is missing") from exc
    except json.JSONDecodeError as exc:
        raise SeccompProfileError(f"{PROFILE_PATH}: not valid JSON ({exc})") from exc
    _check_shape(document)
    return json.dumps(document, separators=(",", ":"))


def _check_shape(document: object) -> None:
    # A profile that is not deny-by-default would silently weaken every job; refuse it.
    if not isinstance(document, dict):
        raise SeccompProfileError(f"{PROFILE_PATH}: top level must be an object")
    if document.get("defaultAction") != "SCMP_ACT_ERRNO":
        raise SeccompProfileError(f"{PROFILE_PATH}: defaultAction must be SCMP_ACT_ERRNO")
    if not isinstance(document.get("syscalls"), list) or not document["syscalls"]:
        raise SeccompProfileError(f"{PROFILE_PATH}: 'syscalls' must be a non-empty list")


def security_opts() -> list[str]:
    """`security_opt` for a job container: no privilege gain through exec, and our profile."""
    return ["no-new-privileges:true", f"seccomp={load_profile()}"]
