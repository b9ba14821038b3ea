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

    from sandbox.probing.stream import SocketFactory

MAX_BODY = 10 * 1024  # http.go maxRespBodyLength
MAX_HEAD = 1 << 20  # response status line + headers
MAX_REQUESTS = 10  # Go's default redirect policy: "stop after 10 consecutive requests"
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})  # Go's redirectBehavior for GET
_DEFAULT_PORTS = {"http": 80, "https": 443}
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
        self._response = _Response()

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
        self._response = _Response()
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS:
            return self._fail(FAILURE, f'unsupported protocol scheme "{parts.scheme}"')
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
        self._stream = Stream(self._open_socket, parts.hostname or "", port, tls=parts.scheme == "https")
        try:
            self._stream.open()
        except StreamError as exc:
            return self._fail(FAILURE, str(exc))
        except (OSError, ValueError) as exc:
            self.close()
            return socket_error_outcome(self._stream.address, exc)
        self._stream.send(self._request_bytes(parts, host_header or parts.netloc, referer))
        return None

    def _request_bytes(self, parts: SplitResult, host: str, referer: str) -> bytes:
        target = quote(parts.path or "/", safe="/:@!$&'()*+,;=-._~%")
        if parts.query:
            target += f"?{parts.query}"
        lines = [f"GET {target} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in self._headers]
        if referer:
            lines.append(f"Referer: {referer}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")

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

    def _on_head(self, response: _Response) -> Outcome | None:
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

    def _final_outcome(self, response: _Response) -> Outcome:
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


class _Response:
    """An incremental HTTP/1.x response reader: head, then the body up to MAX_BODY."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}  # lower-case name -> first value
        self.head_done = False
        self.head_handled = False  # HttpCheck has acted on the head (redirect, hook success)
        self.done = False
        self._raw = bytearray()  # head bytes, then (chunked) body bytes as received
        self._body = bytearray()
        self._framing = "eof"  # "none" | "length" | "chunked" | "eof"
        self._length = 0

    def feed(self, data: bytes) -> None:
        if self.done or not data:
            return
        self._raw += data
        while not self.head_done and self._parse_head():
            pass
        if self.head_done and not self.done:
            self._read_body()

    def feed_eof(self) -> None:
        if self.done:
            return
        if not self.head_done:
            raise _Malformed("EOF" if not self._raw else "unexpected EOF")
        if self._framing != "eof":
            raise _Malformed("unexpected EOF")
        self.done = True

    def body_text(self) -> str:
        return bytes(self._body[:MAX_BODY]).decode("utf-8", "replace")

    def _parse_head(self) -> bool:
        """Parse one head if complete; True when an interim (1xx) head was skipped."""
        end = self._raw.find(b"\r\n\r\n")
        if end < 0:
            if len(self._raw) > MAX_HEAD:
                raise _Malformed(f"server response headers exceeded {MAX_HEAD} bytes; aborted")
            return False
        head, self._raw = bytes(self._raw[:end]).decode("latin-1"), self._raw[end + 4:]
        status_line, *header_lines = head.split("\r\n")
        self.status = _status_code(status_line)
        self.headers = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise _Malformed(f"malformed MIME header line: {line}")
            self.headers.setdefault(name.strip().lower(), value.strip())
        if 100 <= self.status < 200 and self.status != 101:  # Go skips interim responses
            return True
        self.head_done = True
        self._choose_framing()
        return False

    def _choose_framing(self) -> None:
        if self.status in (204, 304) or 100 <= self.status < 200:
            self._framing, self.done = "none", True
        elif "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._framing = "chunked"
        elif "content-length" in self.headers:
            try:
                self._length = int(self.headers["content-length"])
            except ValueError:
                raise _Malformed(f"bad Content-Length {self.headers['content-length']!r}") from None
            self._framing = "length"

    def _read_body(self) -> None:
        if self._framing == "chunked":
            self._body, complete = _dechunk(self._raw)
        else:
            self._body += self._raw
            self._raw.clear()
            complete = self._framing == "length" and len(self._body) >= self._length
        if complete or len(self._body) >= MAX_BODY:  # ReadAtMost stops at the cap: not an error
            self.done = True


def _status_code(line: str) -> int:
    version, _, rest = line.partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit() or len(code) != 3:
        raise _Malformed(f'malformed HTTP response "{line}"')
    return int(code)


def _dechunk(raw: bytearray) -> tuple[bytearray, bool]:
    """Decode a chunked body received so far: (data, complete). Re-parsed on every call, which
    is fine for at most MAX_BODY bytes of data."""
    body, pos = bytearray(), 0
    while len(body) < MAX_BODY:
        line_end = raw.find(b"\r\n", pos)
        if line_end < 0:
            return body, False
        size_text = bytes(raw[pos:line_end]).split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _Malformed(f"invalid chunk length {size_text!r}") from None
        if size == 0:
            return body, True  # trailers are not needed: we close the connection
        start = line_end + 2
        body += raw[start:start + size]
        if len(raw) < start + size + 2:
            return body, False
        pos = start + size + 2
    return body, True
