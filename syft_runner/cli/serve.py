"""`syft-runner serve`: run the owner's approved jobs, logging one JSON object per line."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from syft_core.errors import SyftError
from syft_runner.config import default_config_path, load_runner_config
from syft_runner.engine import connect
from syft_runner.service import RunnerService

# Attributes every LogRecord has; anything else was passed as `extra=` and is a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # docker-py/urllib3 chatter is not the runner's story.
    for noisy in ("urllib3", "docker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def serve(
    syftbox: Annotated[
        Path, typer.Option("--syftbox", help="The syftbox folder holding the datasites.")
    ],
    email: Annotated[str, typer.Option("--email", help="The owner whose jobs/ gateway to serve.")],
    once: Annotated[
        bool, typer.Option("--once", help="Run what is approved now, then exit.")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Runner config (default <syftbox>/<email>/.syft/runner.yaml)."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Also log debug messages.")] = False,
) -> None:
    """Run approved jobs in hardened containers and write their results back."""
    configure_logging(logging.DEBUG if verbose else logging.INFO)
    log = logging.getLogger("syft_runner.serve")
    try:
        settings = load_runner_config(config or default_config_path(syftbox, email))
        client = connect(concurrency=settings.concurrency)
        service = RunnerService(syftbox, email, settings, client)
    except SyftError as exc:
        log.error("cannot start the runner", extra={"error": str(exc)})
        raise typer.Exit(1) from None
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    service.run(stop, once=once)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
