"""Files the runner ships beside its code: the seccomp profile (`seccomp/`) and the job image
definitions (`images/`).

In the repository they are top-level folders. A wheel carries them inside the package, as
`syft_runner/_data/seccomp/` and `syft_runner/_data/images/` (setup.py copies them there at
build time), so that `pip install .` or `pipx install` works without the source tree. The
packaged copy is used when present, the source tree's otherwise (a checkout, an editable
install).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DATA_PACKAGE_DIR = "_data"
SHIPPED = ("images", "seccomp")  # the top-level folders a wheel carries (see setup.py)


def shipped_dir(name: str) -> Path:
    """The folder `name` (one of SHIPPED): inside the installed package, else in the source
    tree. The path may not exist; callers say what is missing."""
    if name not in SHIPPED:
        raise ValueError(f"{name!r} is not shipped with syft_runner (only {', '.join(SHIPPED)})")
    packaged = Path(str(files("syft_runner").joinpath(DATA_PACKAGE_DIR, name)))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[1] / name
