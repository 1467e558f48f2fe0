"""Who may use the review console, and what the browser is told not to do with its pages.

The console acts as the datasite owner, so a request that reaches it must come from the owner's
browser, on purpose:

- a one-time login link (a random token printed by `syft-runner ui`) opens a session: an HttpOnly,
  SameSite=Strict cookie, named after the port so two consoles do not share it; every other
  request without a session is refused (403);
- the Host header must name the console itself, so a web page whose DNS name is rebound to
  127.0.0.1 is refused;
- state changes are POST only and carry the session's CSRF token in the form, and the browser must
  say the request comes from the console's own origin (Origin, or Sec-Fetch-Site: same-origin when
  the referrer policy makes the browser send `Origin: null`);
- every response forbids scripts, framing, plugins, foreign forms and referrers (the CSP below),
  and MIME sniffing, so a submitter's text that slipped past escaping still could not run.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

CSP = (
    "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)
CSRF_FIELD = "csrf"


@dataclass
class Sessions:
    """The login token (valid once) and the sessions it opened, each with its CSRF token."""

    port: int
    login_token: str | None = field(default_factory=lambda: secrets.token_urlsafe(32))
    _csrf: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cookie_name(self) -> str:
        return f"syft_review_{self.port}"

    def login(self, token: str) -> str | None:
        """A new session id for the right token, which is then spent; None otherwise."""
        with self._lock:
            expected = self.login_token
            if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
                return None
            self.login_token = None
            session = secrets.token_urlsafe(32)
            self._csrf[session] = secrets.token_urlsafe(32)
            return session

    def csrf_token(self, session: str | None) -> str | None:
        """The CSRF token of a session; None when `session` is not one."""
        if not session:
            return None
        with self._lock:
            return self._csrf.get(session)

    def set_cookie(self, session: str) -> str:
        return f"{self.cookie_name}={session}; HttpOnly; SameSite=Strict; Path=/"


def session_of(cookie_header: str | None, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header (the first, if repeated)."""
    for part in (cookie_header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The Host header values that name this console."""
    names = {host, "127.0.0.1", "localhost"} if host == "127.0.0.1" else {host}
    return frozenset(f"{name}:{port}" for name in names)


def same_origin_post(headers: Mapping[str, str], hosts: frozenset[str]) -> bool:
    """Whether the browser says this POST comes from one of the console's own pages. With
    `Referrer-Policy: no-referrer` a browser may send `Origin: null` on its own forms; it then
    still says `Sec-Fetch-Site: same-origin`. Any foreign origin or site refuses it."""
    origin = headers.get("Origin")
    fetch_site = headers.get("Sec-Fetch-Site")
    origins = {f"http://{h}" for h in hosts}
    if origin not in (None, "null") and origin not in origins:
        return False
    if fetch_site not in (None, "same-origin"):
        return False
    return origin in origins or fetch_site == "same-origin"


def csrf_ok(expected: str | None, sent: str | None) -> bool:
    if not expected or not sent:
        return False
    return hmac.compare_digest(expected.encode(), sent.encode())
