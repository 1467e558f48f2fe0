"""The review console's HTTP server: the standard library's threading server, Jinja2 pages.

A request is checked (Host, session, and for a POST its origin and CSRF token: see
syft_runner.ui.security) before any job folder is read. The buttons call the same `Job` methods
as the CLI (`approve` with the content hash the page showed, `reject`, `cancel`, `release`), so
every decision lands in the datasite's event log exactly as from the terminal.

Outputs are a job's bytes: a PNG (by its signature) is served as image/png for an <img>, the rest
only as an attachment of type application/octet-stream in a sandbox, never as a page.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from syft_core.client import Client
from syft_core.errors import SyftError
from syft_core.job import Job
from syft_core.preview import png_bytes
from syft_core.safefile import open_regular
from syft_runner.ui.code import code_css, marked_text
from syft_runner.ui.pages import find_output, job_page, job_rows, job_url, logs_page
from syft_runner.ui.security import (
    CSRF_FIELD,
    SECURITY_HEADERS,
    Sessions,
    allowed_hosts,
    csrf_ok,
    same_origin_post,
    session_of,
)

MAX_FORM_BYTES = 64 * 1024
MAX_REASON_CHARS = 2000
LIVE_REFRESH_SECONDS = 2
_COPY_CHUNK = 1024 * 1024
_ACTIONS = ("approve", "reject", "cancel", "release")
_DONE_MESSAGES = {
    "approve": "Approved: the runner will start it.",
    "reject": "Rejected.",
    "cancel": "Cancelled (a running job is stopped by the runner).",
    "release": "Released: the submitter may now read its logs and outputs.",
}
_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    fd: int | None = None  # a file to send as the body (closed once sent)
    length: int = 0


def _shown(value: Any) -> Any:
    """Every value a page prints goes through this: a string not already made HTML here becomes
    escaped HTML with its hidden characters as badges (syft_runner.ui.code)."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return marked_text(value)
    return value


def _templates() -> Environment:
    env = Environment(
        loader=PackageLoader("syft_runner.ui", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        finalize=_shown,
    )
    env.globals["csrf_field"] = CSRF_FIELD
    return env


def _stylesheet() -> bytes:
    own = files("syft_runner.ui").joinpath("static/style.css").read_text(encoding="utf-8")
    return (own + "\n" + code_css() + "\n").encode()


class ReviewConsole:
    """The console's pages and actions, as a function from a request to a Response."""

    def __init__(self, client: Client, host: str, port: int) -> None:
        self.client = client
        self.sessions = Sessions(port)
        self.hosts = allowed_hosts(host, port)
        self.login_url = f"http://{host}:{port}/login?token={self.sessions.login_token}"
        self._env = _templates()
        self._css = _stylesheet()

    # -- entry ------------------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        if headers.get("Host") not in self.hosts:
            return _refused("this console answers only at its own address")
        url = urlsplit(target)
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        if method == "GET" and parts == ["login"]:
            return self._login(parse_qs(url.query).get("token", [""])[0])
        session = session_of(headers.get("Cookie"), self.sessions.cookie_name)
        csrf = self.sessions.csrf_token(session)
        if csrf is None:
            return _refused("not logged in: open the link `syft-runner ui` printed")
        if method == "POST":
            return self._post(parts, headers, body, csrf)
        return self._get(parts, parse_qs(url.query), csrf)

    def _login(self, token: str) -> Response:
        session = self.sessions.login(token)
        if session is None:
            return _refused("this login link is not valid (each link works once)")
        # A page that moves on by itself rather than a redirect: the browser then sends the
        # SameSite=Strict cookie with the next request even when the link came from elsewhere.
        page = self._render("login.html", title="Logged in", refresh="0; url=/")
        page.headers.append(("Set-Cookie", self.sessions.set_cookie(session)))
        return page

    # -- pages ------------------------------------------------------------------------------
    def _get(self, parts: list[str], query: dict[str, list[str]], csrf: str) -> Response:
        if parts == [""]:
            return self._index()
        if parts == ["static", "style.css"]:
            return Response(HTTPStatus.OK, self._css, "text/css; charset=utf-8")
        if len(parts) < 3 or parts[0] != "jobs":
            return self._not_found()
        job = self._job(parts[1], parts[2])
        if job is None:
            return self._not_found()
        rest = parts[3:]
        if not rest:
            done = query.get("done", [""])[0]
            return self._job_page(job, csrf, notice=_DONE_MESSAGES.get(done))
        if rest == ["logs"]:
            page = logs_page(job)
            refresh = LIVE_REFRESH_SECONDS if page.live else None
            return self._render("logs.html", title=job.name, page=page, refresh=refresh)
        if rest[0] in ("outputs", "png") and len(rest) > 1:
            return self._output(job, rest[0], "/".join(rest[1:]))
        return self._not_found()

    def _index(self) -> Response:
        jobs = list(self.client.owner_jobs)
        rows = list(job_rows(jobs))
        inbox = [r for r in rows if r.status == "inbox"]
        history = [r for r in rows if r.status != "inbox"]
        return self._render("index.html", title="Jobs", inbox=inbox, history=history)

    def _job_page(
        self, job: Job, csrf: str, *, notice: str | None = None, error: str | None = None
    ) -> Response:
        page = job_page(self.client, job)
        status = HTTPStatus.CONFLICT if error else HTTPStatus.OK
        response = self._render(
            "job.html", title=job.name, page=page, csrf=csrf, notice=notice, error=error
        )
        response.status = status
        return response

    def _output(self, job: Job, kind: str, relpath: str) -> Response:
        path = find_output(job, relpath)
        if path is None:
            return self._not_found()
        if kind == "png":
            data = png_bytes(path)
            if data is None:
                return self._not_found()
            return Response(HTTPStatus.OK, data, "image/png")
        fd = open_regular(path)
        name = relpath.rsplit("/", 1)[-1]
        disposition = (
            f'attachment; filename="{_SAFE_FILENAME.sub("_", name)}"; '
            f"filename*=UTF-8''{quote(name, safe='')}"
        )
        return Response(
            HTTPStatus.OK,
            content_type="application/octet-stream",
            headers=[
                ("Content-Disposition", disposition),
                ("Content-Security-Policy", "sandbox"),
            ],
            fd=fd,
            length=os.fstat(fd).st_size,
        )

    # -- actions ----------------------------------------------------------------------------
    def _post(
        self, parts: list[str], headers: Mapping[str, str], body: bytes, csrf: str
    ) -> Response:
        if not same_origin_post(headers, self.hosts):
            return _refused("a request from another site")
        form = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=100)
        if not csrf_ok(csrf, form.get(CSRF_FIELD, [""])[0]):
            return _refused("the form's CSRF token is missing or wrong: reload the page")
        if len(parts) != 4 or parts[0] != "jobs" or parts[3] not in _ACTIONS:
            return self._not_found()
        job = self._job(parts[1], parts[2])
        if job is None:
            return self._not_found()
        reason = form.get("reason", [""])[0].strip()[:MAX_REASON_CHARS]
        try:
            self._act(job, parts[3], reason, form)
        except SyftError as exc:
            return self._job_page(job, csrf, error=str(exc))
        return Response(HTTPStatus.SEE_OTHER, headers=[("Location", _after(job, parts[3]))])

    def _act(self, job: Job, action: str, reason: str, form: dict[str, list[str]]) -> None:
        """The CLI's operations, by the same Job methods."""
        if action == "approve":
            # A browser sends no field for unticked boxes: with every box unticked, the form
            # says so by its marker field, and means "none", never "all".
            chosen = form.get("dataset", []) if form.get("datasets_shown") else None
            job.approve(
                reason or None,
                expected_hash=form.get("hash", [""])[0],
                datasets=_narrowed(job, chosen),
            )
        elif action == "reject":
            if not reason:
                raise SyftError("a rejection needs a reason (the submitter is shown it)")
            job.reject(reason)
        elif action == "cancel":
            job.cancel(reason or None)
        else:
            job.release()

    # -- helpers ----------------------------------------------------------------------------
    def _job(self, submitter: str, folder: str) -> Job | None:
        return next(
            (
                j
                for j in self.client.owner_jobs
                if j.submitted_by == submitter and j.folder_name == folder
            ),
            None,
        )

    def _render(self, template: str, **context: Any) -> Response:
        context.setdefault("refresh", None)
        context["owner"] = self.client.email
        text = self._env.get_template(template).render(**context)
        return Response(HTTPStatus.OK, text.encode())

    def _not_found(self) -> Response:
        response = self._render("error.html", title="Not found", message="No such page or job.")
        response.status = HTTPStatus.NOT_FOUND
        return response


def _narrowed(job: Job, chosen: list[str] | None) -> list[str] | None:
    """The datasets ticked in the approve form, or None when they are all the job asks for."""
    if chosen is None:
        return None
    asked = job.config.datasets
    return None if set(chosen) == set(asked) else chosen


def _after(job: Job, action: str) -> str:
    return f"{job_url(job)}?done={action}"


def _refused(message: str) -> Response:
    return Response(HTTPStatus.FORBIDDEN, message.encode() + b"\n", "text/plain; charset=utf-8")


class ReviewServer(ThreadingHTTPServer):
    """The console bound to `host:port` (port 0: any free one); its login link names the port."""

    daemon_threads = True

    def __init__(self, client: Client, host: str, port: int) -> None:
        super().__init__((host, port), _Handler)
        self.console = ReviewConsole(client, host, self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    server_version = "syft-runner-review"

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._serve("GET", b"")

    def do_POST(self) -> None:
        declared = self.headers.get("Content-Length") or "0"
        if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
            self.send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return
        self._serve("POST", self.rfile.read(int(declared)))

    def _serve(self, method: str, body: bytes) -> None:
        headers = {k: v for k, v in self.headers.items()}
        try:
            response = self.server.console.handle(method, self.path, headers, body)
        except (SyftError, OSError) as exc:  # a job folder that cannot be read as expected
            message = f"cannot read this: {exc}\n".encode(errors="replace")
            response = Response(
                HTTPStatus.INTERNAL_SERVER_ERROR, message, "text/plain; charset=utf-8"
            )
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        for name, value in response.headers:
            self.send_header(name, value)
        if response.fd is None:
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
            return
        self.send_header("Content-Length", str(response.length))
        self.end_headers()
        _copy(response.fd, response.length, self.wfile.write)

    def end_headers(self) -> None:
        # Every response, errors from http.server itself included, carries the same policy.
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        super().end_headers()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The request line of the login link holds its token: log the path only.
        sys.stderr.write(f"{self.command} {urlsplit(self.path).path} {code}\n")


def _copy(fd: int, length: int, write: Callable[[bytes], object]) -> None:
    try:
        left = length
        while left > 0 and (chunk := os.read(fd, min(_COPY_CHUNK, left))):
            write(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
