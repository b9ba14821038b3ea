"""One non-blocking TCP connection, optionally TLS, for the checks: connect, send, receive, all
driven by readiness events from the caller's selector. Never blocks.

The socket comes from the caller's factory `open_socket(family, type)`: the pod has its own
network namespace and the runtime stays outside it, so the runtime passes a factory that creates
the socket inside the pod's netns (through the native helper); tests pass one that makes a plain
host socket. The stream sets it non-blocking itself.

TLS runs over memory BIOs (`ssl.SSLContext.wrap_bio`): the stream moves the raw bytes itself, so
readiness always means the same thing (no data hidden in OpenSSL's buffers), and it can see the
first bytes the server sends: an HTTP answer to a TLS hello is reported as such, as Go does.
Certificates are not verified (the kubelet's probes skip verification).

Errors are `StreamError` with Go-like text (`dial tcp 127.0.0.1:80: connect: connection
refused`), since the kubelet's outputs embed Go's error strings.
"""

from __future__ import annotations

import errno
import os

from sandbox.poller import EVENT_READ, EVENT_WRITE

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    import ssl
    from collections.abc import Callable

    SocketFactory = Callable[[int, int], socket.socket]

_RECV_SIZE = 65536
_RECV_BUDGET = 1 << 20  # bytes read per readiness event, so one chatty peer cannot starve the loop


class StreamError(Exception):
    """A transport failure; `str()` is Go-like text. `dialing`: it happened while connecting."""

    def __init__(self, text: str, *, dialing: bool = False) -> None:
        super().__init__(text)
        self.dialing = dialing


class PlainHttpReply(StreamError):
    """The server answered the TLS hello with plain HTTP (Go: tls.RecordHeaderError)."""


def host_port(host: str, port: int) -> str:
    """Go's net.JoinHostPort: IPv6 literals get brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def address_family(host: str) -> int:
    """AF_INET or AF_INET6 for an IP literal. Names are refused: resolving one would block the
    loop (getaddrinfo), and inside the pod's netns it would need the pod's resolv.conf."""
    import socket  # lazily: ~1.6 ms of start-up for pods without probes

    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    raise ValueError(f"host {host!r} is not an IP address (host names are not resolved for probes)")


def go_errno_text(code: int) -> str:
    """Go prints errno strings in lower case ("connection refused")."""
    text = os.strerror(code)
    return text[:1].lower() + text[1:]


class Stream:
    """A connection to host:port, opened by `open()` and advanced by `on_ready(mask)`."""

    def __init__(self, open_socket: SocketFactory, host: str, port: int, *, tls: bool = False) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.address = host_port(host, port)
        self.eof = False  # the peer closed (after all its data was returned)
        self.connected = False  # TCP connected (TLS may still be handshaking)
        self._open_socket = open_socket
        self._sock: socket.socket | None = None
        self._raw_out = bytearray()  # bytes for the wire
        self._app_out = bytearray()  # plaintext held until the TLS handshake is done
        self._app_in = bytearray()
        self._tls_obj: ssl.SSLObject | None = None
        self._bio_in: ssl.MemoryBIO | None = None
        self._bio_out: ssl.MemoryBIO | None = None
        self._secure = not tls
        self._seen_bytes = False

    @property
    def fd(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    def open(self) -> None:
        """Create the socket through the factory and start a non-blocking connect. Raises
        ValueError (bad host), OSError (the factory failed) or StreamError (refused at once)."""
        import socket  # lazily: ~1.6 ms of start-up for pods without probes

        family = address_family(self.host)
        sock = self._open_socket(family, socket.SOCK_STREAM)
        self._sock = sock
        sock.setblocking(False)
        code = sock.connect_ex((self.host, self.port))
        if code == 0:
            self._on_connected()
        elif code not in (errno.EINPROGRESS, errno.EAGAIN):
            raise StreamError(f"dial tcp {self.address}: connect: {go_errno_text(code)}", dialing=True)

    def events(self) -> int:
        """The selector events to wait for now."""
        if not self.connected:
            return EVENT_WRITE
        return EVENT_READ | EVENT_WRITE if self._raw_out else EVENT_READ

    def send(self, data: bytes) -> None:
        """Queue `data` (plaintext); it goes out as the socket becomes writable."""
        if self._tls_obj is not None and self._secure:
            self._tls_obj.write(data)
            self._pull_tls_output()
        elif self.tls:
            self._app_out += data
        else:
            self._raw_out += data
        if self.connected:
            self._flush()

    def on_ready(self, mask: int) -> bytes:
        """Advance on a readiness event; returns the plaintext received (maybe b"")."""
        if not self.connected:
            self._finish_connect()
        if mask & EVENT_READ:
            self._receive()
        if self._raw_out:
            self._flush()
        data = bytes(self._app_in)
        self._app_in.clear()
        return data

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _finish_connect(self) -> None:
        import socket  # lazily: ~1.6 ms of start-up for pods without probes

        assert self._sock is not None
        code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise StreamError(f"dial tcp {self.address}: connect: {go_errno_text(code)}", dialing=True)
        self._on_connected()

    def _on_connected(self) -> None:
        self.connected = True
        if self.tls:
            self._start_tls()

    def _start_tls(self) -> None:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False  # the kubelet sets InsecureSkipVerify for probes
        context.verify_mode = ssl.CERT_NONE
        self._bio_in, self._bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls_obj = context.wrap_bio(self._bio_in, self._bio_out, server_hostname=None)
        self._handshake()

    def _handshake(self) -> None:
        import ssl

        assert self._tls_obj is not None
        try:
            self._tls_obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            raise StreamError(f"remote error: tls: {exc.reason or exc}") from None
        else:
            self._secure = True
            if self._app_out:
                self._tls_obj.write(bytes(self._app_out))
                self._app_out.clear()
        self._pull_tls_output()

    def _pull_tls_output(self) -> None:
        assert self._bio_out is not None
        self._raw_out += self._bio_out.read()

    def _receive(self) -> None:
        assert self._sock is not None
        budget = _RECV_BUDGET
        while budget > 0 and not self.eof:
            try:
                chunk = self._sock.recv(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                raise StreamError(f"read tcp {self.address}: read: {go_errno_text(exc.errno or 0)}") from None
            budget -= len(chunk)
            if self.tls:
                self._receive_tls(chunk)
            else:
                self._app_in += chunk
            if not chunk:  # the peer closed: nothing more will come, whatever TLS says
                self.eof = True

    def _receive_tls(self, chunk: bytes) -> None:
        assert self._bio_in is not None
        if not self._seen_bytes and chunk:
            self._seen_bytes = True
            if chunk.startswith(b"HTTP/"):
                raise PlainHttpReply("http: server gave HTTP response to HTTPS client")
        if chunk:
            self._bio_in.write(chunk)
        else:
            self._bio_in.write_eof()
        if not self._secure:
            if not chunk:
                raise StreamError("remote error: tls: connection closed during handshake")
            self._handshake()
        if self._secure:
            self._read_plaintext()

    def _read_plaintext(self) -> None:
        import ssl

        assert self._tls_obj is not None
        while True:
            try:
                data = self._tls_obj.read(_RECV_SIZE)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                data = b""
            except ssl.SSLError as exc:
                raise StreamError(f"local error: tls: {exc.reason or exc}") from None
            if not data:  # close_notify, or a TCP close without one (many HTTP servers do that)
                self.eof = True
                break
            self._app_in += data
        self._pull_tls_output()

    def _flush(self) -> None:
        assert self._sock is not None
        try:
            sent = self._sock.send(self._raw_out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            raise StreamError(f"write tcp {self.address}: write: {go_errno_text(exc.errno or 0)}") from None
        del self._raw_out[:sent]
