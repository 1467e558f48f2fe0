"""Keep syncing: a pass whenever a file under the syftbox changes (watchfiles), and at least every
`interval` seconds (what peers send arrives on the transport, which cannot be watched).

watchfiles only makes a pass start sooner; what a pass sends is decided by the rescan against
the manifests, so a missed or coalesced event loses nothing. The owner's scan of my datasite also
keeps inotify watches here (`SyncClient.watch_datasite`, scope.Scanner), so that an idle pass
stats only the folders with events, and every file at least every scope.FULL_SCAN_SECONDS.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import watchfiles

from syft_core.sync.client import SyncClient
from syft_core.sync.errors import SyncError
from syft_core.sync.report import SyncReport


def _not_hidden(root: Path) -> Callable[[watchfiles.Change, str], bool]:
    """Ignore the sync's own state, event logs and temporary files (all dot-named)."""

    def accept(_change: watchfiles.Change, path: str) -> bool:
        try:
            parts = Path(path).relative_to(root).parts
        except ValueError:
            return False
        return not any(part.startswith(".") for part in parts)

    return accept


def run_forever(
    client: SyncClient,
    *,
    interval: float,
    on_report: Callable[[SyncReport], None],
    on_error: Callable[[Exception], None],
    stop: threading.Event | None = None,
) -> None:
    """Sync until `stop` is set. A failed pass (transport down, another sync running, a local
    I/O error) is reported through `on_error` and retried on the next pass."""
    stop = stop or threading.Event()
    client.watch_datasite()  # pass after pass: an idle one need not stat every file
    root = client.box.root
    root.mkdir(parents=True, exist_ok=True)

    def one_pass() -> None:
        try:
            on_report(client.sync_once())
        except (SyncError, OSError) as exc:  # e.g. transport down, disk full: retried next pass
            on_error(exc)

    one_pass()
    for _changes in watchfiles.watch(
        root,
        watch_filter=_not_hidden(root),
        debounce=300,
        rust_timeout=max(1, int(interval * 1000)),
        yield_on_timeout=True,
        stop_event=stop,
    ):
        if stop.is_set():
            return
        one_pass()
