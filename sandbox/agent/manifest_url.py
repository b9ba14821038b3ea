"""The manifest URL (staticPodURL / --manifest-url): a GET with every staticPodURLHeader value, run in
a thread so the agent's loop never waits on the network (it wakes the loop through `fileno`), 10 s
socket timeout as the kubelet's client, the next one httpCheckFrequency after the last ended
(wait.Until). Plain http and https against the system CAs; the URL's user:password becomes basic
authentication as Go's client does; redirects are not followed (a 3xx is reported like any non-200:
following one would send the headers, often a token, to another host). The body is one Pod or a
v1 PodList (http.go tries a single pod first). An unreachable server, a non-200 status, an invalid
body, or one invalid pod of a list change nothing (the last good set stays) and are reported once
per change of the message; a body equal to the last one is not decoded again; an empty 200 body
empties the set, as the kubelet's empty SET does.
"""

from __future__ import annotations

import os

from sandbox.agent.staticpod import URL_TIMEOUT, Reporter, StaticPod, url_pods
from sandbox.errors import SpecError
from sandbox.record import Record

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.agent.kubeletconfig import Headers


# --- the manifest URL -----------------------------------------------------------------------------


class _Fetched(Record):
    status: int = 0
    reason: str = ""
    body: bytes = b""
    error: str = ""  # the request failed before a response (connection, TLS, timeout)


def fetch(url: str, headers: Headers, timeout: float = URL_TIMEOUT) -> _Fetched:
    """One GET of the manifest URL, the body read up to the manifest size cap plus one byte."""
    import base64
    import http.client
    from urllib.parse import unquote, urlsplit

    from sandbox.spec.source import MAX_BYTES

    parts = urlsplit(url)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        import ssl

        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port or 443, timeout=timeout,
                                           context=ssl.create_default_context())
    else:  # the port always given: http.client would read the end of an IPv6 address as one
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    try:
        conn.putrequest("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        names = {name.lower() for name, _ in headers}
        if parts.username is not None and "authorization" not in names:
            user = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            conn.putheader("Authorization", "Basic " + base64.b64encode(user.encode()).decode())
        for name, values in headers:
            for value in values:
                conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return _Fetched(response.status, response.reason, response.read(MAX_BYTES + 1))
    except (OSError, http.client.HTTPException, ValueError) as e:
        return _Fetched(error=str(e) or type(e).__name__)
    finally:
        conn.close()


class _UrlSource:
    """staticPodURL, fetched in a thread; the thread's end is a byte on the wake pipe."""

    def __init__(self, url: str, headers: Headers, node: str, period: float, reporter: Reporter,
                 seen: Callable[[str], str], now: float) -> None:
        import threading

        self.url = url
        self.headers = headers
        self.node = node
        self.period = period
        self.reporter = reporter
        self.seen = seen
        self.pods: dict[str, StaticPod] = {}
        # Read once (a 200: http.go sends a SET only then; a failed fetch leaves the source not
        # ready): `pods` is then the URL's set, not the empty one it starts with.
        self.listed = False
        self.fetch_at: float | None = now
        self._last_body: bytes | None = None
        self._body_error = ""  # what was wrong with _last_body, if anything
        self._failed = False
        self._lock = threading.Lock()
        self._result: _Fetched | None = None
        self._closed = False
        self.wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def next_deadline(self) -> float | None:
        return self.fetch_at  # None while a fetch runs

    def tick(self, now: float) -> None:
        result = self._take_result()
        if result is not None:
            self.fetch_at = now + self.period  # wait.Until: the period runs from the end of a fetch
            self._apply(result)
        if self.fetch_at is not None and now >= self.fetch_at:
            self.fetch_at = None
            self._start()

    def _start(self) -> None:
        import threading

        threading.Thread(target=self._run, name="static-pod-url", daemon=True).start()

    def _run(self) -> None:
        try:
            result = fetch(self.url, self.headers)
        except Exception as e:  # noqa: BLE001 - a thread that dies unseen would end the polling for good
            result = _Fetched(error=f"{type(e).__name__}: {e}")
        with self._lock:
            if self._closed:
                return  # the wake pipe is closed: its number may already name another file
            self._result = result
            os.write(self._wake_w, b"x")

    def _take_result(self) -> _Fetched | None:
        with self._lock:
            result, self._result = self._result, None
            try:
                os.read(self.wake_r, 64)
            except BlockingIOError:
                pass
        return result

    def _apply(self, got: _Fetched) -> None:
        if got.error or got.status != 200:
            self._problem(f"{self.url}: {got.error or f'{got.status} {got.reason}'.rstrip()}")
        elif not got.body:
            self.pods = {}  # http.go: an empty body is an empty SET
            self.listed = True
            self._last_body = got.body
            self.reporter.set(f"{self.url}#notes", None)
            self._problem(f"zero-length data received from {self.url}")
        elif got.body == self._last_body:  # http.go: the same bytes as last time are not decoded again
            if self._body_error:
                self._problem(self._body_error)
            else:
                self._recovered()
        else:
            self._last_body = got.body
            self._body_error = ""
            try:
                self._set(*url_pods(got.body, self.url, self.node, self.seen))
            except SpecError as e:
                self._body_error = f"static pods from {e}"
                self._problem(self._body_error)

    def _set(self, pods: list[StaticPod], notes: list[str]) -> None:
        """The body's pods; a second pod of the same namespace/name is reported and left out."""
        self.pods = {}
        self.listed = True
        duplicates = []
        for pod in pods:
            if pod.key in self.pods:
                duplicates.append(f"{pod.namespace}/{pod.name}")
            else:
                self.pods[pod.key] = pod
        self._recovered()
        if duplicates:
            notes.append(f"{self.url}: duplicate pods ignored: {', '.join(duplicates)}")
        self.reporter.set(f"{self.url}#notes", "\n".join(notes) if notes else None)

    def _recovered(self) -> None:
        if self._failed:
            self.reporter.set(self.url, f"{self.url}: static pods read again")
        self._failed = False
        self.reporter.set(self.url, None)

    def _problem(self, message: str) -> None:
        self._failed = True
        self.reporter.set(self.url, message + ("; the pods read before keep running" if self.pods else ""))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            os.close(self.wake_r)
            os.close(self._wake_w)


