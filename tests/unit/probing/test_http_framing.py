"""Response framing through h11: the shapes Go's reader accepts (trailers, bodies split across
reads, close-delimited bodies) and the errors it reports, against a scripted server on
127.0.0.1 and, for every split point, against the parser alone."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from sandbox.probing.checks import run_check
from sandbox.probing.http import MAX_BODY, MAX_HEAD, HttpCheck, _Exchange, _Malformed
from sandbox.probing.outcome import ERROR, FAILURE, SUCCESS, Outcome

SocketFactory = Callable[[int, int], socket.socket]

CHUNKED_WITH_TRAILERS = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
                         b"5\r\nhello\r\n7\r\n, world\r\n0\r\nX-Sum: 12\r\n\r\n")
CLOSE_DELIMITED = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"


class ScriptedServer:
    """Answers one connection with `parts`, each sent as its own write (TCP_NODELAY), then
    closes; records the request it read."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.request = b""
        self.thread = threading.Thread(target=self.serve)

    def serve(self) -> None:
        self.listener.settimeout(5)
        try:
            conn, _ = self.listener.accept()
        except TimeoutError:
            return
        with conn:
            conn.settimeout(5)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while b"\r\n\r\n" not in self.request:
                data = conn.recv(65536)
                if not data:
                    return
                self.request += data
            for part in self.parts:
                conn.sendall(part)


@pytest.fixture
def scripted() -> Iterator[Callable[[list[bytes]], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(parts: list[bytes]) -> ScriptedServer:
        server = ScriptedServer(parts)
        servers.append(server)
        server.thread.start()
        return server

    yield start
    for server in servers:
        server.thread.join()
        server.listener.close()


def probe(open_socket: SocketFactory, server: ScriptedServer, **options: object) -> Outcome:
    return run_check(HttpCheck(open_socket, port=server.port, **options))  # type: ignore[arg-type]


@pytest.mark.parametrize("parts, body", [
    ([CHUNKED_WITH_TRAILERS], "hello, world"),
    ([CLOSE_DELIMITED], "until the end"),
    ([b"HTTP/1.0 200 OK\r\n\r\nold server"], "old server"),
    ([b"HTTP/1.1 200 OK\r\nContent-Len", b"gth: 10\r\n\r\n01234", b"56789"], "0123456789"),
    ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r", b"\nhel", b"lo\r\n0\r\n\r\n"], "hello"),
])
def test_response_shapes(open_socket: SocketFactory, scripted: Callable[[list[bytes]], ScriptedServer],
                         parts: list[bytes], body: str) -> None:
    assert probe(open_socket, scripted(parts)) == Outcome(SUCCESS, body)


def test_a_long_chunked_body_is_read_up_to_10_kib(
        open_socket: SocketFactory, scripted: Callable[[list[bytes]], ScriptedServer]) -> None:
    chunk = b"1000\r\n" + b"y" * 0x1000 + b"\r\n"
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert probe(open_socket, scripted([head, chunk * 5])) == Outcome(SUCCESS, "y" * MAX_BODY)


@pytest.mark.parametrize("parts, status, text", [
    ([], FAILURE, "EOF"),
    ([b"HTTP/1.1 200 OK\r\nContent-"], FAILURE, "unexpected EOF"),
    ([b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"], ERROR, "unexpected EOF"),
    ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"], ERROR, "unexpected EOF"),
    ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"], ERROR, "invalid byte in chunk length"),
    ([b"HTTP/2.0 200 OK\r\n\r\n"], FAILURE, 'malformed HTTP response "HTTP/2.0 200 OK"'),
    ([b"HTTP/1.1 100 Continue\r\n\r\nSSH-2.0\r\n\r\n"], FAILURE, 'malformed HTTP response "SSH-2.0"'),
    ([b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"], FAILURE, "malformed MIME header line: no colon here"),
    ([b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n"], FAILURE, "bad Content-Length 'ten'"),
])
def test_errors_keep_go_texts(open_socket: SocketFactory, scripted: Callable[[list[bytes]], ScriptedServer],
                              parts: list[bytes], status: str, text: str) -> None:
    server = scripted(parts)
    assert probe(open_socket, server) == Outcome(status, f'Get "http://127.0.0.1:{server.port}/": {text}')


def test_a_head_over_the_limit_fails(
        open_socket: SocketFactory, scripted: Callable[[list[bytes]], ScriptedServer]) -> None:
    filler = b"X-Fill: " + b"f" * 1000 + b"\r\n"
    outcome = probe(open_socket, scripted([b"HTTP/1.1 200 OK\r\n" + filler * (MAX_HEAD // 1000 + 1)]))
    assert outcome.status == FAILURE
    assert outcome.output.endswith(f"server response headers exceeded {MAX_HEAD} bytes; aborted")


def test_a_header_value_with_a_line_break_fails_before_dialing(open_socket: SocketFactory, closed_port: int) -> None:
    """Go's transport refuses it before it dials (no header injection into the request)."""
    check = HttpCheck(open_socket, port=closed_port, headers=[("X-Bad", "a\r\nInjected: 1")])
    assert run_check(check) == Outcome(
        FAILURE, f'Get "http://127.0.0.1:{closed_port}/": net/http: invalid header field value for "X-Bad"')


def test_request_bytes(open_socket: SocketFactory, scripted: Callable[[list[bytes]], ScriptedServer]) -> None:
    server = scripted([b"HTTP/1.1 204 No Content\r\n\r\n"])
    outcome = probe(open_socket, server, path="/p?a b&c=%41", headers=[("X-Name", " caf\u00e9 ")])
    assert outcome == Outcome(SUCCESS)
    assert server.request == (f"GET /p?a%20b&c=%41 HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                              "User-Agent: kube-probe/1.35\r\nAccept: */*\r\nX-Name: caf\u00e9\r\n"
                              "Connection: close\r\n\r\n").encode()


# The parser alone, every split point ----------------------------------------------------------


def exchange() -> _Exchange:
    response = _Exchange()
    response.request("/", [("Host", "h"), ("Connection", "close")])
    return response


@pytest.mark.parametrize("raw, body", [
    (CHUNKED_WITH_TRAILERS, "hello, world"),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody", "body"),
])
def test_every_split_point(raw: bytes, body: str) -> None:
    for split in range(1, len(raw)):
        response = exchange()
        response.feed(raw[:split])
        assert not response.done
        response.feed(raw[split:])
        assert response.done and response.status == 200 and response.body_text() == body, split


def test_a_close_delimited_body_ends_at_eof_only() -> None:
    response = exchange()
    response.feed(CLOSE_DELIMITED)
    assert response.head_done and not response.done
    response.feed_eof()
    assert response.done and response.body_text() == "until the end"


def test_eof_inside_a_content_length_body() -> None:
    response = exchange()
    response.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort")
    with pytest.raises(_Malformed, match="^unexpected EOF$"):
        response.feed_eof()


@pytest.mark.parametrize("hook, outcome", [
    (False, Outcome(FAILURE, "HTTP probe failed with statuscode: 101")),
    (True, Outcome(SUCCESS)),
])
def test_an_unasked_101_is_the_final_response(
        open_socket: SocketFactory, scripted: Callable[[list[bytes]], ScriptedServer],
        hook: bool, outcome: Outcome) -> None:
    """h11 refuses a 101 nobody proposed; Go's transport takes it as the response."""
    server = scripted([b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"])
    assert probe(open_socket, server, hook=hook) == outcome
