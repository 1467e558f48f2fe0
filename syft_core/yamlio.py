"""Reading YAML that someone else wrote (a submitter's config.yaml, a synced marker or dataset).

`yaml.safe_load` is safe from code execution but not from resource bombs: aliases expand without
bound (a 600-byte file can stand for 10^9 nodes) and deep nesting raises RecursionError out of
the parser. Files written by peers are small and plain, so aliases are refused outright and any
parser failure becomes one ValueError with the reason.

JSON is YAML too, and this project writes its own markers as JSON (`dump_yaml_json`): a text
that is a JSON object is read by the json module (50-100x faster than PyYAML's pure-Python
loader, no aliases to expand, nesting bounded by RecursionError); anything else, or a text JSON
would read differently from YAML, goes to the YAML loader.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from syft_core.safefile import NotRegularFileError, open_regular, read_fd_capped


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed here", mark
            )
        return super().compose_node(parent, index)


def load_untrusted_yaml(data: bytes) -> Any:
    """Parse `data`; ValueError (with the reason) for invalid text, aliases or deep nesting."""
    as_json = _json_object(data)
    if as_json is not None:
        return as_json
    try:
        return yaml.load(data.decode("utf-8"), Loader=_NoAliasLoader)
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid YAML: not UTF-8 text: {exc}") from None
    except RecursionError:
        raise ValueError("not valid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from None


def _json_object(data: bytes) -> dict[str, Any] | None:
    """`data` as a JSON object, or None to let the YAML loader decide (not JSON, not an object,
    or JSON's own extensions that YAML reads differently: NaN and Infinity)."""
    if not data.lstrip().startswith(b"{"):
        return None
    try:
        value = json.loads(data, parse_constant=_not_yaml)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _not_yaml(constant: str) -> Any:
    raise ValueError(f"{constant} is JSON's, not YAML's")


def dump_yaml_json(data: Any) -> str:
    """`data` as YAML that is also JSON (one key per line, readable, and read back fast)."""
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def read_untrusted_yaml(path: Path, *, max_bytes: int) -> Any:
    """Read and parse a small YAML file someone else wrote.

    Opened without following a symlink and without blocking on a fifo, checked to be a regular
    file, read to at most `max_bytes`. FileNotFoundError when absent; ValueError with the reason
    for anything else (not a regular file, too large, invalid YAML, aliases, deep nesting).
    """
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        raise
    except NotRegularFileError as exc:
        raise ValueError(str(exc).removeprefix(f"{path}: ")) from None
    except OSError as exc:
        raise ValueError(f"cannot be opened: {exc.strerror}") from None
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise ValueError(f"is {size} bytes, over the limit of {max_bytes}")
        data = read_fd_capped(fd, max_bytes + 1)  # it may have grown since
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ValueError(f"is over the limit of {max_bytes} bytes")
    return load_untrusted_yaml(data)
