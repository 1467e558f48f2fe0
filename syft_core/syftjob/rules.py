"""The rules of `review/<ds>/syft.pub.yaml`, written the way their clients and runner write them.

Their client gives the scientist `read` on `**` of `review/<ds>/`; their runner then adds, per
job, a rule `[v1/]JOB/outputs/**` whose readers decide who gets outputs/. The most specific rule
wins, so with no outputs rule the scientist reads outputs/ through `**`: a runner that keeps
outputs from the scientist must write that rule with the owner alone. The file is the owner's,
but it is read as untrusted (capped, no link followed) and never rewritten when it is malformed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from syft_core.atomic import atomic_write_text
from syft_core.datasite import PERMISSION_FILE
from syft_core.errors import JobError
from syft_core.permissions.ruleset import MAX_FILE_BYTES
from syft_core.syftjob.layout import SyftJobRef, review_dir
from syft_core.yamlio import read_untrusted_yaml


def read_rule(pattern: str, readers: list[str]) -> dict[str, Any]:
    """One rule giving `readers` read, as their clients write it: all three lists present."""
    return {"access": {"admin": [], "read": readers, "write": []}, "pattern": pattern}


def _permission_file(ref: SyftJobRef) -> Path:
    """The file, after checking `review/<ds>/[v1/]JOB/` is a real folder (created if absent)."""
    review_dir(ref, create=True)
    return ref.review_root / PERMISSION_FILE


def _read_rules(path: Path) -> dict[str, Any] | None:
    """The file's content, None when absent; JobError naming it and the reason when malformed."""
    try:
        data = read_untrusted_yaml(path, max_bytes=MAX_FILE_BYTES)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise JobError(f"{path}: {PERMISSION_FILE} {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("rules") or [], list):
        raise JobError(f"{path}: not a permission file (a mapping with a list of rules)")
    return data


def _default_rules(ref: SyftJobRef) -> dict[str, Any]:
    return {"rules": [read_rule("**", [ref.submitter])], "terminal": False}


def _write_rules(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, yaml.dump(data, sort_keys=True))


def ensure_review_rules(ref: SyftJobRef) -> None:
    """Write `review/<ds>/syft.pub.yaml` with the scientist's read rule if it is absent."""
    path = _permission_file(ref)
    if _read_rules(path) is None:
        _write_rules(path, _default_rules(ref))


def set_outputs_rule(ref: SyftJobRef, readers: list[str]) -> None:
    """The rule `[v1/]JOB/outputs/**` read by `readers`, in `review/<ds>/syft.pub.yaml`: it takes
    the place of an earlier rule with that pattern (appended when there is none), every other
    rule kept; the scientist's read rule is written first when the file is absent."""
    path = _permission_file(ref)
    data = _read_rules(path)
    if data is None:
        data = _default_rules(ref)
    pattern = ref.outputs_pattern
    rules: list[object] = list(data.get("rules") or [])
    at = next((i for i, r in enumerate(rules) if _has_pattern(r, pattern)), len(rules))
    rules.insert(at, read_rule(pattern, list(dict.fromkeys(readers))))
    data["rules"] = [r for i, r in enumerate(rules) if i == at or not _has_pattern(r, pattern)]
    _write_rules(path, data)


def _has_pattern(entry: object, pattern: str) -> bool:
    return isinstance(entry, dict) and entry.get("pattern") == pattern
