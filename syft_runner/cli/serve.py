"""`syft-runner serve`: the owner's one long-running process. It runs the approved jobs and, when
a sync transport is configured and there are peers, syncs with them in a thread of the same
process (`--sync/--no-sync`), so that submissions arrive and released results leave without a
second command.

Logs go to stderr: lines for a person when stderr is a terminal, one JSON object per line when
it is not (a service manager, a file, a pipe) or with `--log-format json`. Every failure to
start that a person can fix (no datasite, another runner serving it, a bad runner.yaml, a bad
sync config, the Docker engine unreachable) is one line and exit code 1, never a traceback.
"""

from __future__ import annotations

import enum
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn

import docker
import typer

from syft_core import names
from syft_core.datasite import Datasite
from syft_core.errors import SyftError
from syft_core.sync import SyncClient
from syft_core.sync.live import run_forever
from syft_core.sync.peers import PeerBook
from syft_core.sync.report import SyncReport
from syft_runner.cli.datasite import EmailOption, SyftboxOption
from syft_runner.cli.sync import (
    TransportOption,
    open_transport,
    remembered_transport,
    report_lines,
)
from syft_runner.config import default_config_path, load_runner_config
from syft_runner.executor.backends import make_backend
from syft_runner.sandbox.engine import connect
from syft_runner.service import RunnerService

log = logging.getLogger("syft_runner.serve")

# Attributes every LogRecord has; anything else was passed as `extra=` and is a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}
SYNC_JOIN_SECONDS = 10.0


class LogFormat(enum.StrEnum):
    AUTO = "auto"
    HUMAN = "human"
    JSON = "json"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(_fields(record))
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class HumanFormatter(logging.Formatter):
    """`12:00:01 runner started  owner=alice@example.com concurrency=2`; what peers and
    submitters chose (paths, names, reasons) has its hidden characters made visible."""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        fields = "  ".join(f"{k}={v}" for k, v in _fields(record).items())
        text = f"{self.formatTime(record, '%H:%M:%S')} {level}{record.getMessage()}"
        if fields:
            text += f"  {fields}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return names.visible(text, keep_newlines=True)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time of the record, and drops a record quietly
    when that stream is already closed (a thread logging while the process shuts down), instead
    of printing `--- Logging error --- ... I/O operation on closed file`."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass

    def handleError(self, record: logging.LogRecord) -> None:
        if getattr(sys.stderr, "closed", False):
            return
        _, exc, _ = sys.exc_info()
        if isinstance(exc, BrokenPipeError | ValueError):
            return  # the reader went away, or the stream was closed under us
        super().handleError(record)


def json_logs_wanted(log_format: LogFormat) -> bool:
    """JSON lines when asked, or by default when stderr (where logs go) is not a terminal."""
    if log_format is LogFormat.AUTO:
        return not sys.stderr.isatty()
    return log_format is LogFormat.JSON


def configure_logging(level: int = logging.INFO, *, json_lines: bool = True) -> None:
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if json_lines else HumanFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # docker-py/urllib3/watchfiles chatter is not the runner's story.
    for noisy in ("urllib3", "docker", "watchfiles"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _cannot_start(message: str, json_lines: bool) -> NoReturn:
    """One line on stderr and exit 1: a JSON record in JSON mode, else a sentence."""
    if json_lines:
        log.error("cannot start the runner", extra={"error": message})
    else:
        typer.echo(names.visible(f"syft-runner serve: cannot start: {message}"), err=True)
    raise typer.Exit(1)


# -- sync -----------------------------------------------------------------------------------------
def _sync_client(
    syftbox: Path, email: str, wanted: bool | None, url: str | None
) -> tuple[SyncClient | None, str]:
    """The sync client serve runs (None: no sync) and why. `wanted`: --sync (True), --no-sync
    (False) or neither (None: sync when a transport is configured and there are peers).
    SyftError for a configuration that cannot work."""
    if wanted is False:
        return None, "sync off (--no-sync)"
    remembered = remembered_transport(syftbox)
    chosen = url or remembered
    peers = PeerBook(Datasite(syftbox, email)).load()
    if chosen is None:
        if wanted:
            raise SyftError(
                "--sync needs a transport: pass --transport folder:PATH (or s3://...) once; "
                "it is remembered for this syftbox"
            )
        why = "no transport configured" + (
            "" if not (peers.accepted or peers.following) else " (pass --transport once)"
        )
        return None, f"sync off: {why}"
    if wanted is None and not (peers.accepted or peers.following):
        return None, "sync off: no peers yet (syft-runner peers accept EMAIL)"
    transport = open_transport(syftbox, chosen, remember=url is not None)
    return SyncClient(syftbox, email, transport), f"syncing over {transport.describe()}"


def log_sync_report(report: SyncReport) -> None:
    for label, text, style in report_lines(report):
        level = logging.WARNING if style in ("red", "yellow") else logging.INFO
        log.log(level, f"sync {label.strip() or 'sent'}: {text}")


def _sync_failed(exc: Exception) -> None:
    log.warning("sync failed, will retry", extra={"error": str(exc)})


def _sync_pass(client: SyncClient) -> None:
    try:
        log_sync_report(client.sync_once())
    except (SyftError, OSError) as exc:
        _sync_failed(exc)


def _sync_thread(client: SyncClient, interval: float, stop: threading.Event) -> threading.Thread:
    def work() -> None:
        try:
            run_forever(
                client,
                interval=interval,
                on_report=log_sync_report,
                on_error=_sync_failed,
                stop=stop,
            )
        except Exception:  # the runner keeps running jobs; the owner learns sync stopped
            log.exception("sync stopped after an unexpected error; jobs are still served")

    thread = threading.Thread(target=work, name="sync", daemon=True)
    thread.start()
    return thread


# -- the command ----------------------------------------------------------------------------------
def serve(
    syftbox: SyftboxOption,
    email: EmailOption,
    once: Annotated[
        bool,
        typer.Option(
            "--once", help="Run what is approved now (one sync pass before and after), then exit."
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Runner config (default <syftbox>/<email>/.syft/runner.yaml)."
        ),
    ] = None,
    sync: Annotated[
        bool | None,
        typer.Option(
            "--sync/--no-sync",
            help="Also sync with your peers, in this process. Default: on when a transport is "
            "configured (`peers accept`, `sync` or --transport remember it) and you have peers.",
            show_default=False,
        ),
    ] = None,
    transport: TransportOption = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.5, help="Seconds between sync passes when idle.")
    ] = 5.0,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            help="human lines, or json (one object per line); auto: human on a terminal.",
        ),
    ] = LogFormat.AUTO,
    verbose: Annotated[bool, typer.Option("--verbose", help="Also log debug messages.")] = False,
) -> None:
    """Run approved jobs in hardened containers and write their results back; with peers, also
    sync with them. Leave it running (Ctrl-C stops it; running jobs are re-attached next time)."""
    json_lines = json_logs_wanted(log_format)
    configure_logging(logging.DEBUG if verbose else logging.INFO, json_lines=json_lines)
    if not Datasite(syftbox, email).jobs.is_dir():
        _cannot_start(
            f"no datasite for {email} in {syftbox}; create it with: "
            f"syft-runner init --syftbox {syftbox} --email {email}",
            json_lines,
        )
    syncer: SyncClient | None = None
    engine: docker.DockerClient | None = None
    try:
        settings = load_runner_config(config or default_config_path(syftbox, email))
        syncer, sync_state = _sync_client(syftbox, email, sync, transport)
        engine = connect(concurrency=settings.concurrency)
        backend = make_backend(settings, engine)
        service = RunnerService(syftbox, email, settings, engine, backend=backend)
        service.claim()  # another runner serving this datasite: say so before anything starts
    except (SyftError, OSError) as exc:
        if syncer is not None:
            syncer.close()
        if engine is not None:
            engine.close()
        _cannot_start(str(exc), json_lines)
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info(sync_state)
    thread: threading.Thread | None = None
    try:
        if syncer is not None:
            if once:
                _sync_pass(syncer)  # what peers sent, before running what is approved
            else:
                thread = _sync_thread(syncer, interval, stop)
        service.run(stop, once=once)
        if syncer is not None and once:
            _sync_pass(syncer)  # how the jobs ended, and released results, to the peers
    except SyftError as exc:
        log.error("the runner stopped", extra={"error": str(exc)})
        raise typer.Exit(1) from None
    finally:
        stop.set()
        if thread is not None:
            started = time.monotonic()
            thread.join(SYNC_JOIN_SECONDS)
            if thread.is_alive():
                log.warning(
                    "sync pass still running at exit",
                    extra={"waited_seconds": round(time.monotonic() - started, 1)},
                )
        if syncer is not None and (thread is None or not thread.is_alive()):
            syncer.close()
        engine.close()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
