"""`httpGet` probes and lifecycle hooks as a non-blocking `Check` (see `sandbox.probing.checks`).

Kubelet behaviour reproduced (`pkg/probe/http/{http.go,request.go}`, `pkg/kubelet/lifecycle/
handlers.go`, Go's net/http client as the kubelet configures it):

- HTTP/1.1 `GET scheme://host:port/path`, one connection per request (keep-alives off:
  `Connection: close`), each opened through the caller's socket factory;
- headers `User-Agent: kube-probe/1.35` (hooks: `kube-lifecycle/1.35`) and `Accept: */*` unless
  `httpHeaders` sets them; an explicit empty value removes them; a `Host` header sets the Host;
- status 200..399 is success, 300..399 that was not followed is a `warning` ("Probe terminated
  redirects"), anything else fails with `HTTP probe failed with statuscode: <code>`;
- redirects (301, 302, 303, 307, 308 with a Location) are followed while the hostname stays the
  one first asked (the port may change); another hostname stops there (the 3xx is the answer);
  Go's client makes at most 10 requests, so the 10th redirect in a row fails with
  `stopped after 10 redirects`;
- the body is read up to 10 KiB, no further; a body that breaks off (timeout, short) is a probe
  *error* (discarded by the worker), as in http.go where ReadAtMost's error is returned as err;
- HTTPS: TLS without certificate verification (memory-BIO handshake, see `stream`);
- hook mode: any status is success, only transport errors fail; it finishes once the response
  head has arrived; an HTTPS hook answered in plain HTTP is retried over HTTP (handlers.go).

The HTTP/1.1 framing (request line and headers out; status line, headers, content-length,
chunked or close-delimited bodies in) is h11's, one client `Connection` per TCP connection.

Host names are not resolved (that would block): `host` must be an IP address. A redirect to
another host is never followed, in hook mode either (Go's default client would follow it).
"""

from __future__ import annotations

from urllib.parse import SplitResult, quote, urljoin, urlsplit

from sandbox.probing.checks import KUBE_VERSION, Check, socket_error_outcome
from sandbox.probing.outcome import ERROR, FAILURE, SUCCESS, WARNING, Outcome
from sandbox.probing.stream import PlainHttpReply, Stream, StreamError, host_port

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    import h11

    from sandbox.probing.stream import SocketFactory

MAX_BODY = 10 * 1024  # http.go maxRespBodyLength
MAX_HEAD = 1 << 20  # response status line + headers
MAX_REQUESTS = 10  # Go's default redirect policy: "stop after 10 consecutive requests"
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})  # Go's redirectBehavior for GET
_DEFAULT_PORTS = {"http": 80, "https": 443}
_QUERY_SAFE = "".join(map(chr, range(0x21, 0x7F)))  # printable ASCII: kept as written
_AWAITING_HEADERS = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
_READING_BODY = "context deadline exceeded (Client.Timeout or context cancellation while reading body)"


def canonical_header(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey: `content-type` -> `Content-Type`."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def request_headers(http_headers: Sequence[tuple[str, str]],
                    user_agent: str) -> tuple[str, list[tuple[str, str]]]:
    """The request's headers as the kubelet builds them (request.go newProbeRequest + Go's
    Request.write): returns (Host override or "", [(name, value)] without Host)."""
    given: dict[str, list[str]] = {}
    for name, value in http_headers:
        given.setdefault(canonical_header(name), []).append(value)
    host = given.pop("Host", [""])[0]
    agents = given.pop("User-Agent", [user_agent])
    lines = [("User-Agent", agents[0])] if agents[0] else []  # Go writes only the first, if not empty
    accept = given.pop("Accept", ["*/*"])
    if accept[0]:  # an Accept given with an empty first value is deleted outright
        lines += [("Accept", value) for value in accept]
    lines += [(name, value) for name, values in given.items() for value in values]
    connection = " ".join(given.get("Connection", [])).lower()
    if "close" not in connection:  # DisableKeepAlives: Go adds it unless the caller did
        lines.append(("Connection", "close"))
    return host, lines


def probe_url(scheme: str, host: str, port: int, path: str) -> str:
    """prober.go formatURL: `scheme://host:port` + path (a path without a leading slash gets one)."""
    path = path or "/"
    return f"{scheme.lower()}://{host_port(host, port)}{path if path.startswith('/') else '/' + path}"


class HttpCheck(Check):
    """One `httpGet` probe or hook attempt, following same-host redirects."""

    def __init__(self, open_socket: SocketFactory, *, port: int, host: str = "127.0.0.1",
                 scheme: str = "http", path: str = "/", headers: Sequence[tuple[str, str]] = (),
                 timeout: float = 1, hook: bool = False) -> None:
        super().__init__(timeout)
        self.hook = hook
        agent = f"kube-lifecycle/{KUBE_VERSION}" if hook else f"kube-probe/{KUBE_VERSION}"
        self._host_override, self._headers = request_headers(headers, agent)
        self._open_socket = open_socket
        self._url = probe_url(scheme, host, port, path)
        self._first_hostname = host.lower()
        self._requests = 0
        self._stream: Stream | None = None
        self._response = _Exchange()

    def _begin(self, now: float) -> Outcome | None:
        return self._request(self._url, self._host_override, referer="")

    def interest(self) -> list[tuple[int, int]]:
        if self._stream is None or self._stream.fd < 0:
            return []
        return [(self._stream.fd, self._stream.events())]

    def _ready(self, fd: int, mask: int, now: float) -> Outcome | None:
        if self._stream is None or fd != self._stream.fd:
            return None
        try:
            data = self._stream.on_ready(mask)
            self._response.feed(data)
            if self._stream.eof:
                self._response.feed_eof()
        except PlainHttpReply as exc:
            return self._fall_back_to_http() if self.hook else self._fail(FAILURE, str(exc))
        except (StreamError, _Malformed) as exc:
            # Go: errors before the head come from client.Do (failure); after it, from reading
            # the body (ReadAtMost returns err: a probe error)
            return self._fail(ERROR if self._response.head_done else FAILURE, str(exc))
        return self._advance()

    def _expire(self, now: float) -> Outcome:
        if self._response.head_done and not self.hook:
            return self._fail(ERROR, _READING_BODY)
        return self._fail(FAILURE, _AWAITING_HEADERS)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()

    def _request(self, url: str, host_header: str, referer: str) -> Outcome | None:
        """Open a connection for `url` and queue the GET; an Outcome if that fails at once."""
        self.close()
        self._url, self._requests = url, self._requests + 1
        self._response = _Exchange()
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS:
            return self._fail(FAILURE, f'unsupported protocol scheme "{parts.scheme}"')
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
        try:  # Go's transport checks the headers before it dials
            request = self._response.request(_request_target(parts), self._request_headers(
                host_header or parts.netloc, referer))
        except _BadRequest as exc:
            return self._fail(FAILURE, str(exc))
        self._stream = Stream(self._open_socket, parts.hostname or "", port, tls=parts.scheme == "https")
        try:
            self._stream.open()
        except StreamError as exc:
            return self._fail(FAILURE, str(exc))
        except (OSError, ValueError) as exc:
            self.close()
            return socket_error_outcome(self._stream.address, exc)
        self._stream.send(request)
        return None

    def _request_headers(self, host: str, referer: str) -> list[tuple[str, str]]:
        return [("Host", host), *self._headers, *([("Referer", referer)] if referer else [])]

    def _advance(self) -> Outcome | None:
        """Act on what the response parser has: the head (redirect, hook) or the whole body."""
        response = self._response
        if not response.head_done:
            return None
        if not response.head_handled:
            response.head_handled = True
            decided = self._on_head(response)
            if decided is not None or self._response is not response:  # finished, or redirected
                return decided
        if response.done:
            return self._finish(self._final_outcome(response))
        return None

    def _on_head(self, response: _Exchange) -> Outcome | None:
        """The head of a response is in: follow a same-host redirect, stop, or keep reading."""
        location = response.headers.get("location", "")
        if response.status in REDIRECT_CODES and location:
            try:
                target = urljoin(self._url, location)
                parts = urlsplit(target)
                parts.port  # noqa: B018 (raises ValueError on a bad port, as Go's url.Parse fails)
            except ValueError as exc:
                return self._fail(FAILURE, f'failed to parse Location header "{location}": {exc}')
            if (parts.hostname or "") == self._first_hostname:  # RedirectChecker compares hostnames
                return self._follow(location, target)
        return self._finish(Outcome(SUCCESS)) if self.hook else None

    def _follow(self, location: str, target: str) -> Outcome | None:
        """Request the redirect's target on a new connection, as Go's client does."""
        if self._requests >= MAX_REQUESTS:
            return self._fail(FAILURE, "stopped after 10 redirects", url=location)
        relative = not urlsplit(location).netloc
        host = self._host_override if relative else ""  # Go keeps a custom Host only then
        downgrade = self._url.startswith("https:") and target.startswith("http:")
        referer = "" if downgrade else self._url  # Go sends no Referer from https to http
        return self._request(target, host, referer)

    def _final_outcome(self, response: _Exchange) -> Outcome:
        body = response.body_text()
        if 200 <= response.status < 300:
            return Outcome(SUCCESS, body)
        if 300 <= response.status < 400:
            return Outcome(WARNING, f"Probe terminated redirects, Response body: {body}")
        return Outcome(FAILURE, f"HTTP probe failed with statuscode: {response.status}")

    def _fall_back_to_http(self) -> Outcome | None:
        """handlers.go: an HTTPS hook that got an HTTP answer is retried over plain HTTP,
        without the Authorization header."""
        self._headers = [(n, v) for n, v in self._headers if n != "Authorization"]
        self._requests -= 1  # a separate client.Do in Go, with its own redirect budget
        return self._request("http:" + self._url.split(":", 1)[1], self._host_override, referer="")

    def _fail(self, status: str, text: str, url: str = "") -> Outcome:
        """Go's url.Error text: `Get "<url>": <error>`."""
        return self._finish(Outcome(status, f'Get "{url or self._url}": {text}'))

    def _finish(self, outcome: Outcome) -> Outcome:
        self.close()
        return outcome


class _Malformed(Exception):
    """The response is not HTTP/1.x as Go's reader accepts it."""


class _BadRequest(Exception):
    """A header the request cannot carry (Go refuses it before dialing: client.Do's error)."""


class _Exchange:
    """One GET and its response through an h11 client connection (one per TCP connection:
    keep-alives are off): the request's bytes, then the response fed in as it arrives, up to the
    head (redirects, hooks) and the body up to MAX_BODY."""

    def __init__(self) -> None:
        import h11  # lazily: only pods with an httpGet check pay for it

        self._h11 = h11
        self._conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self.status = 0
        self.headers: dict[str, str] = {}  # lower-case name -> first value
        self.head_done = False
        self.head_handled = False  # HttpCheck has acted on the head (redirect, hook success)
        self.done = False
        self._head = bytearray()  # what came before the head was parsed: for Go-like error texts
        self._body = bytearray()
        self._eof = False

    def request(self, target: str, headers: Sequence[tuple[str, str]]) -> bytes:
        """The request's bytes; `headers` starts with Host. Raises _BadRequest."""
        h11 = self._h11
        # Go's Header.write trims the values; it sends them as the UTF-8 bytes they are
        fields = [(name.encode(), value.strip(" \t").encode()) for name, value in headers]
        try:
            return (self._conn.send(h11.Request(method="GET", target=target.encode(), headers=fields))
                    or b"") + (self._conn.send(h11.EndOfMessage()) or b"")
        except (h11.LocalProtocolError, UnicodeEncodeError):
            raise _BadRequest(self._invalid_field(headers)) from None

    def feed(self, data: bytes) -> None:
        if self.done or not data:
            return
        if not self.head_done:
            self._head += data
        self._conn.receive_data(data)
        self._next_events()

    def feed_eof(self) -> None:
        if self.done:
            return
        self._eof = True
        self._conn.receive_data(b"")
        self._next_events()
        if not self.done:
            raise _Malformed(self._eof_text())

    def body_text(self) -> str:
        return bytes(self._body[:MAX_BODY]).decode("utf-8", "replace")

    def _next_events(self) -> None:
        h11 = self._h11
        while not self.done:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                if self._switching_protocols():
                    return
                raise _Malformed(self._error_text(exc)) from None
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Response):
                self._on_head(event)
            elif isinstance(event, h11.InformationalResponse):  # skipped, as Go does
                del self._head[:self._head.index(b"\r\n\r\n") + 4]
            elif isinstance(event, h11.Data):
                self._body += event.data
                self.done = len(self._body) >= MAX_BODY  # ReadAtMost stops at the cap: no error
            elif isinstance(event, h11.EndOfMessage):
                self.done = True
            elif isinstance(event, h11.ConnectionClosed):  # closed before a response began
                raise _Malformed(self._eof_text())

    def _on_head(self, event: h11.Response) -> None:
        if not event.http_version.startswith(b"1."):
            raise _Malformed(f'malformed HTTP response "{self._head_lines()[0]}"')
        self.status = event.status_code
        for name, value in event.headers:
            self.headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        self.head_done = True
        self._head.clear()

    def _error_text(self, exc: Exception) -> str:
        """Go's text for what h11 refused (Go's net/http reader and textproto)."""
        if self._eof:
            return self._eof_text()
        if self.head_done:  # only chunk framing can be malformed in a body
            return "invalid byte in chunk length"
        if getattr(exc, "error_status_hint", 0) == 431:
            return f"server response headers exceeded {MAX_HEAD} bytes; aborted"
        status_line, *lines = self._head_lines()
        if not _is_status_line(status_line):
            return f'malformed HTTP response "{status_line}"'
        for line in lines:
            name, sep, value = line.partition(":")
            if not sep:
                return f"malformed MIME header line: {line}"
            if name.strip().lower() == "content-length" and not value.strip().isdigit():
                return f"bad Content-Length {value.strip()!r}"
        return str(exc)

    def _eof_text(self) -> str:
        return "unexpected EOF" if self._head or self.head_done else "EOF"

    def _switching_protocols(self) -> bool:
        """A 101 to a request that asked for no upgrade: h11 refuses it, Go's transport takes it
        as the final response (no body), so the probe fails with its status and a hook passes."""
        if self.head_done or b"\r\n\r\n" not in self._head:
            return False
        status_line = self._head_lines()[0]
        if not _is_status_line(status_line) or status_line.partition(" ")[2][:3] != "101":
            return False
        self.status, self.head_done, self.done = 101, True, True
        return True

    def _head_lines(self) -> list[str]:
        head = bytes(self._head).split(b"\r\n\r\n", 1)[0].decode("latin-1")
        return head.split("\r\n")

    def _invalid_field(self, headers: Sequence[tuple[str, str]]) -> str:
        """Go's error for the first header h11 refused (transport.go checks names, then values)."""
        for name, value in headers:
            if not self._acceptable(name, "v"):
                return f'net/http: invalid header field name "{name}"'
            if not self._acceptable(name, value.strip(" \t")):
                return "http: invalid Host header" if name == "Host" else \
                    f'net/http: invalid header field value for "{name}"'
        return "net/http: invalid request"

    def _acceptable(self, name: str, value: str) -> bool:
        h11 = self._h11
        fields = [(name.encode(), value.encode())]
        try:
            h11.Request(method="GET", target="/", headers=fields if name == "Host" else [("Host", "h"), *fields])
        except (h11.LocalProtocolError, UnicodeEncodeError):
            return False
        return True


def _request_target(parts: SplitResult) -> str:
    """Go's RequestURI: the escaped path, then the raw query (only what a request line cannot
    carry, spaces, control and non-ASCII bytes, is percent-encoded there)."""
    target = quote(parts.path or "/", safe="/:@!$&'()*+,;=-._~%")
    if parts.query:
        target += "?" + quote(parts.query, safe=_QUERY_SAFE)
    return target


def _is_status_line(line: str) -> bool:
    version, _, rest = line.partition(" ")
    code = rest[:3]
    return version.startswith("HTTP/1.") and code.isdigit() and len(code) == 3
