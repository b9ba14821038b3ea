"""Fixtures for the probing tests: real servers on 127.0.0.1 (host network namespace), each
stopped and joined at teardown so no thread or socket outlives its test."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

import pytest

Route = Callable[["Handler"], None]


def host_socket(family: int, type_: int) -> socket.socket:
    """The socket factory the tests pass to checks: a plain socket in the host namespace."""
    return socket.socket(family, type_)


class Handler(BaseHTTPRequestHandler):
    server: "ProbeServer"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.seen.append((self.path, dict(self.headers.items()), self.headers.get_all("X-Multi") or []))
        route = self.server.routes.get(self.path.split("?")[0])
        if route is None:
            self.reply(404, b"not found")
        else:
            route(self)

    def reply(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


class ProbeServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread
    request_queue_size = 128  # 20 concurrent probes must not overflow the accept queue

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Route] = {}
        self.seen: list[tuple[str, dict[str, str], list[str]]] = []
        self.release = threading.Event()  # stalled handlers wait on this, set at teardown

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def stall(self, seconds: float = 10.0) -> None:
        """Block a handler thread (the server side) until teardown or `seconds`."""
        self.release.wait(seconds)


def _serve(server: ProbeServer) -> Iterator[ProbeServer]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def http_server() -> Iterator[ProbeServer]:
    yield from _serve(ProbeServer())


@pytest.fixture
def other_http_server() -> Iterator[ProbeServer]:
    yield from _serve(ProbeServer())


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound then closed: connect is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections but never answers anything."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@pytest.fixture
def full_backlog_port() -> Iterator[int]:
    """A listener whose accept queue is full and never drained: Linux drops further SYNs, so a
    connect neither succeeds nor is refused until it times out (all on loopback)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        fillers = []
        try:
            for _ in range(2):
                filler = socket.socket()
                fillers.append(filler)
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            time.sleep(0.05)  # let the handshakes of the fillers land in the queue
            yield port
        finally:
            for filler in fillers:
                filler.close()
