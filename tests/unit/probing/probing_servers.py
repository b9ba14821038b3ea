"""HTTP test servers for the probing tests: real sockets on 127.0.0.1, threads joined on stop."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Route = Callable[["Handler"], None]


def host_socket(family: int, type_: int) -> socket.socket:
    """The socket factory the tests pass to checks: a plain socket in the host namespace."""
    return socket.socket(family, type_)


class Handler(BaseHTTPRequestHandler):
    server: ProbeServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        multi = self.headers.get_all("X-Multi") or []
        self.server.seen.append((self.path, dict(self.headers.items()), multi))
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


def serve(server: ProbeServer) -> Iterator[ProbeServer]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        thread.join()
        server.server_close()
