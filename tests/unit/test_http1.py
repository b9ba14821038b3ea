"""The registry's HTTP/1.1 client (sandbox/images/http1.py) against a scripted server on loopback:
each test's server answers each accepted connection's requests with the given raw bytes, so the
framing (Content-Length, chunked, to the end of the connection), keep-alive, the retry of a stale
kept-alive connection and the refusals are checked on real sockets."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from sandbox.images.http1 import HTTPError, IncompleteRead, Pool, split_netloc

Script = Callable[[socket.socket, int], None]  # (the accepted socket, its index)


@contextmanager
def server(script: Script) -> Iterator[tuple[str, list[bytes]]]:
    """A listener on 127.0.0.1 running `script` for each connection on a thread; yields the netloc
    and the list of every request head received."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    heads: list[bytes] = []
    threads: list[threading.Thread] = []

    def accept() -> None:
        index = 0
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=serve, args=(conn, index), daemon=True)
            thread.start()
            threads.append(thread)
            index += 1

    def serve(conn: socket.socket, index: int) -> None:
        with conn:
            script(conn, index)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}", heads
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        acceptor.join(5)
        for thread in threads:
            thread.join(5)


def read_head(conn: socket.socket, heads: list[bytes] | None = None) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(4096)
        if not piece:
            return b""
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    if heads is not None:
        heads.append(head)
    return rest


def answers(*replies: bytes, heads: list[bytes] | None = None) -> Script:
    """Each connection answers requests with `replies` in turn, then closes."""
    def script(conn: socket.socket, index: int) -> None:
        for reply in replies:
            if not read_head(conn, heads) and not reply:
                return
            conn.sendall(reply)
    return script


@pytest.fixture
def pool() -> Iterator[Pool]:
    made = Pool(5)
    yield made
    made.close()


def test_content_length_body_and_keep_alive(pool: Pool) -> None:
    seen: list[bytes] = []
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Two: a\r\nX-Two: b\r\n\r\nhello"
    with server(answers(reply, reply, heads=seen)) as (netloc, _):
        for _ in range(2):
            response = pool.request("http", netloc, "GET", "/v2/", {"Accept": "x"})
            assert (response.status, response.reason, response.getheader("x-two")) == (200, "OK", "a, b")
            assert response.read_up_to(100) == b"hello"
            assert response.read(10) == b""
            response.close()
    assert len(seen) == 2, "both requests on one connection"
    assert seen[0].startswith(b"GET /v2/ HTTP/1.1\r\nHost: " + netloc.encode() + b"\r\nAccept: x")


def test_chunked_body_with_extensions_and_trailers(pool: Pool) -> None:
    reply = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: 1\r\n\r\n")
    with server(answers(reply, reply)) as (netloc, _):
        for _ in range(2):  # the second on the kept-alive connection: the trailers were read
            response = pool.request("http", netloc, "GET", "/", {})
            assert response.read() == b"abc0123456789abcdef"
            response.close()


def test_body_to_the_end_of_the_connection_is_not_kept(pool: Pool) -> None:
    with server(answers(b"HTTP/1.1 200 OK\r\n\r\nall of it")) as (netloc, _):
        response = pool.request("http", netloc, "GET", "/", {})
        assert response.length is None
        assert response.read() == b"all of it"
        response.close()
        assert not pool._idle.get(("http", netloc))


def test_a_short_body_raises_incomplete_read(pool: Pool) -> None:
    with server(answers(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")) as (netloc, _):
        response = pool.request("http", netloc, "GET", "/", {})
        assert response.read(100) == b"only this"
        with pytest.raises(IncompleteRead):
            response.read(100)
        response.close()


def test_a_stale_kept_alive_connection_is_replaced_once(pool: Pool) -> None:
    """The first connection answers once and closes (a server's idle timeout): the second GET
    goes on a new connection; a POST is never sent on a kept one."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def script(conn: socket.socket, index: int) -> None:
        read_head(conn)
        conn.sendall(ok)
        if index == 0:
            read_head(conn)  # the second request arrives, and the connection just closes

    with server(script) as (netloc, _):
        for _ in range(2):
            response = pool.request("http", netloc, "GET", "/", {})
            assert response.read() == b"ok"
            response.close()


def test_informational_answers_are_skipped_and_unread_bodies_close(pool: Pool) -> None:
    reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"
    with server(answers(reply)) as (netloc, _):
        response = pool.request("http", netloc, "GET", "/", {})
        assert response.status == 404
        response.close()  # body not read: the connection is not kept
        assert not pool._idle.get(("http", netloc))


@pytest.mark.parametrize("reply", [
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n",
    b"HTTP/1.1 200 OK\r\nX: " + b"y" * (65 << 10),
    b"",
])
def test_bad_answers_are_refused(reply: bytes, pool: Pool) -> None:
    with server(answers(reply)) as (netloc, _), pytest.raises(HTTPError):
        pool.request("http", netloc, "GET", "/", {})


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
])
def test_bad_chunks_are_refused(reply: bytes, pool: Pool) -> None:
    with server(answers(reply)) as (netloc, _):
        response = pool.request("http", netloc, "GET", "/", {})
        with pytest.raises(HTTPError):
            response.read()
        response.close()


@pytest.mark.parametrize(("path", "headers"), [
    ("/a\r\nX: injected", {}), ("/a b", {}), ("relative", {}), ("/", {"X": "a\r\nY: b"}), ("/", {"X": "\u20ac"}),
])
def test_requests_with_control_characters_are_not_sent(path: str, headers: dict[str, str], pool: Pool) -> None:
    with server(answers(b"")) as (netloc, seen), pytest.raises(HTTPError):
        pool.request("http", netloc, "GET", path, headers)
    assert not seen


@pytest.mark.parametrize(("netloc", "host", "port"), [
    ("h", "h", 80), ("h:5000", "h", 5000), ("[::1]:5000", "::1", 5000), ("[::1]", "::1", 80), ("::1", "::1", 80),
])
def test_netloc_split(netloc: str, host: str, port: int) -> None:
    assert split_netloc(netloc, 80) == (host, port)


def test_bad_port_refused() -> None:
    with pytest.raises(HTTPError):
        split_netloc("h:99999", 80)
