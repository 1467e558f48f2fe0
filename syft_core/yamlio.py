"""Reading YAML that someone else wrote (a submitter's config.yaml, a synced marker or dataset).

`yaml.safe_load` is safe from code execution but not from resource bombs: aliases expand without
bound (a 600-byte file can stand for 10^9 nodes) and deep nesting raises RecursionError out of
the parser. Files written by peers are small and plain, so aliases are refused outright and any
parser failure becomes one ValueError with the reason.
"""

from __future__ import annotations

from typing import Any

import yaml


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
    try:
        return yaml.load(data.decode("utf-8"), Loader=_NoAliasLoader)
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid YAML: not UTF-8 text: {exc}") from None
    except RecursionError:
        raise ValueError("not valid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from None
