"""Print every Python distribution this image provides, one `name==version` a line (pip freeze
format), sorted by name, after a `# python X.Y.Z` header. Run once at build time; the output is
/usr/share/syft-runtime/python-packages.txt, which `syft-runner images list` shows.

A few Debian packages record version 0.0.0 in their metadata (kiwisolver, mpmath, pure-eval): for
those the module's own `__version__` is used, when it has a real one."""

import importlib
import importlib.metadata
import platform
import re


def version_of(dist: importlib.metadata.Distribution) -> str:
    if dist.version != "0.0.0":
        return dist.version
    tops = (dist.read_text("top_level.txt") or "").split() or [dist.metadata["Name"]]
    for top in tops:
        try:
            found = getattr(importlib.import_module(top.replace("-", "_")), "__version__", None)
        except Exception:  # noqa: BLE001, S112 - any import failure: keep the recorded version
            continue
        if isinstance(found, str) and re.fullmatch(r"\d[\w.+!-]*", found):
            return found
    return dist.version


found: dict[str, tuple[str, str]] = {}
for dist in importlib.metadata.distributions():
    name = dist.metadata["Name"]
    if name:
        found.setdefault(re.sub(r"[-_.]+", "-", name).lower(), (name, version_of(dist)))
print(f"# python {platform.python_version()}")
for key in sorted(found):
    name, version = found[key]
    print(f"{name}=={version}")
