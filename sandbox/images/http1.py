"""A small HTTP/1.1 client for the registry client (registry.py): requests on kept-alive
connections, one pool per client, bodies by Content-Length, chunked or to the end of the
connection, TLS through the ssl module (imported only for an https host).

Why not http.client: its import costs 15-20 ms of every pull (email.parser, email.message and
their policies for header parsing, ssl imported at module level even for a plain-HTTP registry),
a third of `sandbox image pull`'s fixed cost against a loopback registry; it also opens a new
connection per request. h11 (locked for sandbox/probing) would keep the parsing out of our code
but its import (re, typing, enum) costs most of what http.client's does. What a registry pull
needs of HTTP is small: GET (and a POST for OAuth2 tokens), a status, a few headers, a body read
in pieces; redirects and authentication are registry.py's.

What is checked: the status line and header lines (at most 64 KiB of them, 100 fields), the
chunk sizes, a body shorter than its Content-Length (IncompleteRead, which a caller resumes with
Range); a request line or header value with a control character is refused before it is sent.
A connection goes back to the pool only when its response was read to its end and neither side
said `Connection: close`; a request on a pooled connection that the server closed meanwhile (no
byte of an answer) is sent again once on a new connection (GET only).
"""

from __future__ import annotations

import _socket  # not socket.py: its import (selectors, select, math, array) costs ~3 ms of a pull

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    Socket = _socket.socket | ssl.SSLSocket

HEAD_LIMIT = 64 << 10  # status line and headers: what http.client allows (_MAXLINE, _MAXHEADERS)
MAX_HEADERS = 100
RECV = 256 << 10  # one recv's size when filling a read: a loopback socket hands over up to ~200 KiB at once
IDLE_PER_HOST = 4  # kept-alive connections per host: one per layer thread (store.LAYER_WORKERS)
_CTL = frozenset(chr(c) for c in (*range(0x20), 0x7F)) - {"\t"}


class HTTPError(Exception):
    """The server's answer is not HTTP/1.x as this client reads it."""


class IncompleteRead(HTTPError):
    """The connection ended before the body did."""

    def __init__(self, got: int, expected: int | None) -> None:
        more = f", {expected} more expected" if expected is not None else ""
        super().__init__(f"connection closed after {got} bytes of the body{more}")


class _Connection:
    """One socket and the bytes read from it but not handed out yet."""

    __slots__ = ("buffer", "key", "sock")

    def __init__(self, sock: Socket, key: tuple[str, str]) -> None:
        self.sock = sock
        self.key = key
        self.buffer = b""

    def fill(self, limit: int) -> bool:
        """Read more into the buffer (at most `limit` bytes); False at the connection's end."""
        data = self.sock.recv(limit)
        if not data:
            return False
        self.buffer = self.buffer + data if self.buffer else data
        return True

    def line(self, what: str) -> bytes:
        """The next CRLF- (or LF-) ended line, without its end."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line, self.buffer = self.buffer[:end], self.buffer[end + 1:]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self.buffer) > HEAD_LIMIT:
                raise HTTPError(f"{what} longer than {HEAD_LIMIT} bytes")
            if not self.fill(RECV):
                raise HTTPError(f"connection closed in the {what}")

    def take(self, want: int) -> bytes:
        """Up to `want` bytes of what is buffered (the caller filled it)."""
        data = self.buffer
        if len(data) > want:
            data, self.buffer = data[:want], data[want:]
        else:
            self.buffer = b""
        return data

    def close(self) -> None:
        self.sock.close()


class Response:
    """A status, headers and a body read in pieces with read(n); close() always (it gives the
    connection back to the pool when the body was read to its end)."""

    def __init__(self, connection: _Connection, pool: Pool | None, status: int, reason: str,
                 headers: dict[str, str], method: str) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self._connection: _Connection | None = connection
        self._pool = pool
        self._got = 0
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self._chunk_left = 0  # bytes left of the current chunk (chunked bodies)
        self.length: int | None = None  # body bytes still expected, when the server said how many
        self._keep = headers.get("connection", "").lower() != "close"
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self.length = 0
        elif not self.chunked:
            declared = headers.get("content-length")
            if declared is not None:
                if not declared.strip().isdigit():
                    raise HTTPError(f"bad Content-Length {declared!r}")
                self.length = int(declared)
            else:
                self._keep = False  # the body ends with the connection
        self._done = self.length == 0

    def getheader(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def read(self, amt: int = -1) -> bytes:
        """Up to `amt` bytes of the body (all of it with a negative `amt`), b"" at its end;
        IncompleteRead when the connection ends first."""
        if self._done or self._connection is None:
            return b""
        if amt < 0:
            parts = []
            while piece := self.read(1 << 20):
                parts.append(piece)
            return b"".join(parts)
        if self.chunked:
            return self._read_chunked(amt)
        return self._read_plain(amt)

    def read_up_to(self, limit: int) -> bytes:
        """The body's first `limit` bytes (all of a shorter body): read() gives what one recv
        brought, this reads on until `limit` or the end."""
        parts, got = [], 0
        while got < limit and (piece := self.read(limit - got)):
            parts.append(piece)
            got += len(piece)
        return b"".join(parts)

    def _read_plain(self, amt: int) -> bytes:
        connection = self._connection
        assert connection is not None
        want = amt if self.length is None else min(amt, self.length)
        if not connection.buffer and not connection.fill(want):
            if self.length is not None:
                raise IncompleteRead(self._got, self.length)
            self._end()
            return b""
        data = connection.take(want)
        self._got += len(data)
        if self.length is not None:
            self.length -= len(data)
            if self.length == 0:
                self._end()
        return data

    def _read_chunked(self, amt: int) -> bytes:
        connection = self._connection
        assert connection is not None
        if self._chunk_left == 0:
            size_line = connection.line("chunk size").partition(b";")[0].strip()
            try:
                self._chunk_left = int(size_line, 16)
            except ValueError:
                raise HTTPError(f"bad chunk size {size_line[:20]!r}") from None
            if self._chunk_left < 0:
                raise HTTPError(f"bad chunk size {size_line[:20]!r}")
            if self._chunk_left == 0:
                while connection.line("trailer"):  # trailers end with an empty line
                    pass
                self._end()
                return b""
        want = min(amt, self._chunk_left)
        if not connection.buffer and not connection.fill(want):
            raise IncompleteRead(self._got, None)
        data = connection.take(want)
        self._got += len(data)
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            if connection.line("chunk end"):
                raise HTTPError("chunk not followed by CRLF")
        return data

    def _end(self) -> None:
        self._done = True
        self.length = 0 if self.length is not None else None

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._done and self._keep and self._pool is not None and not connection.buffer:
            self._pool.give_back(connection)
        else:
            connection.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Pool:
    """Kept-alive connections by (scheme, netloc), shared by a client's threads."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._idle: dict[tuple[str, str], list[_Connection]] = {}
        from sandbox.images.threads import Lock

        self._lock = Lock()

    def request(self, scheme: str, netloc: str, method: str, path: str, headers: dict[str, str],
                body: bytes | None = None, context: Callable[[], ssl.SSLContext] | None = None) -> Response:
        """Send one request to `scheme://netloc` and read its answer's status and headers.
        `context` gives the SSL context for https (called only when a connection is made)."""
        head = _head(method, path, netloc, scheme, headers, body)
        key = (scheme, netloc)
        reused = self._take(key) if method == "GET" else None
        if reused is not None:
            try:
                return self._exchange(reused, head, body, method)
            except (OSError, _Stale):
                reused.close()  # closed by the server while idle: once more on a new connection
            except BaseException:
                reused.close()
                raise
        connection = self._connect(scheme, netloc, context)
        try:
            return self._exchange(connection, head, body, method)
        except _Stale:
            connection.close()
            raise HTTPError("connection closed without an answer") from None
        except BaseException:
            connection.close()
            raise

    def _exchange(self, connection: _Connection, head: bytes, body: bytes | None, method: str) -> Response:
        connection.sock.sendall(head + body if body else head)
        if not connection.buffer and not connection.fill(RECV):
            raise _Stale
        while True:
            status, reason, headers = _read_head(connection)
            if status >= 200 or status == 101:
                return Response(connection, self, status, reason, headers, method)
            # 1xx (100 Continue, 103 Early Hints): another head follows

    def _take(self, key: tuple[str, str]) -> _Connection | None:
        with self._lock:
            idle = self._idle.get(key)
            return idle.pop() if idle else None

    def give_back(self, connection: _Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(connection.key, [])
            if len(idle) < IDLE_PER_HOST:
                idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    # A client dropped without close() (a short-lived RegistryClient) closes its idle sockets
    # itself instead of leaving them to the socket's finalizer and its ResourceWarning.
    __del__ = close

    def _connect(self, scheme: str, netloc: str, context: Callable[[], ssl.SSLContext] | None) -> _Connection:
        host, port = split_netloc(netloc, 443 if scheme == "https" else 80)
        raw = connect(host, port, self.timeout)
        if scheme != "https":
            return _Connection(raw, (scheme, netloc))
        try:
            if context is None:
                raise HTTPError(f"no TLS context for {netloc}")
            tls_context = context()
            import socket  # ssl wants socket.socket objects (ssl imports socket anyway)

            sock = socket.socket(fileno=raw.detach())
        except BaseException:
            raw.close()
            raise
        try:
            sock.settimeout(self.timeout)
            return _Connection(tls_context.wrap_socket(sock, server_hostname=host), (scheme, netloc))
        except BaseException:
            sock.close()
            raise


class _Stale(Exception):
    """A connection that ended before any byte of the answer."""


def connect(host: str, port: int, timeout: float) -> _socket.socket:
    """A TCP connection to the first address of `host` that answers (socket.create_connection's
    rule, on _socket). The host name goes to getaddrinfo as bytes: a str goes through the "idna"
    codec first, whose import (encodings.idna, stringprep) costs ~2 ms of every pull."""
    address: str | bytes = host.encode("ascii") if host.isascii() else host
    error: OSError | None = None
    for family, kind, proto, _, where in _socket.getaddrinfo(address, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(where)
        except OSError as e:
            sock.close()
            error = e
            continue
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)  # a request is one write: no Nagle wait
        return sock
    raise error if error is not None else OSError(f"getaddrinfo found no address for {host}")


def split_netloc(netloc: str, default_port: int) -> tuple[str, int]:
    """`host:port`, `[v6]:port`, `host`: the host (brackets off) and the port."""
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        port = rest.removeprefix(":")
    elif netloc.count(":") == 1:
        host, _, port = netloc.partition(":")
    else:
        host, port = netloc, ""
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise HTTPError(f"bad port in {netloc!r}")
    return host, int(port)


def _head(method: str, path: str, netloc: str, scheme: str, headers: dict[str, str], body: bytes | None) -> bytes:
    host = netloc.removesuffix(":443" if scheme == "https" else ":80")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    if " " in path or not path.startswith("/") or any(not _CTL.isdisjoint(line) for line in lines):
        raise HTTPError(f"refused to send a request line or header with a control character or a bad path: {path!r}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise HTTPError(f"refused to send a header that is not Latin-1: {path!r}") from None


def _read_head(connection: _Connection) -> tuple[int, str, dict[str, str]]:
    start = connection.line("status line")
    version, _, rest = start.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise HTTPError(f"not an HTTP/1.x answer: {start[:40]!r}")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = connection.line("headers")
        if not line:
            if version == b"HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
                headers["connection"] = "close"
            return int(code), reason.decode("latin-1").strip(), headers
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise HTTPError(f"bad header line {line[:40]!r}")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").strip()
        # repeated fields joined as RFC 9110 allows (WWW-Authenticate: one challenge list)
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    raise HTTPError(f"more than {MAX_HEADERS} header fields")
