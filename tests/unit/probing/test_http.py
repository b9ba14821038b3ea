"""httpGet probes and hooks against real HTTP(S) servers on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from probing_servers import Handler, ProbeServer, serve

from sandbox.probing.checks import run_check, run_checks
from sandbox.probing.http import HttpCheck, canonical_header, probe_url, request_headers
from sandbox.probing.outcome import ERROR, FAILURE, SUCCESS, WARNING, Outcome

SocketFactory = Callable[[int, int], socket.socket]


def probe(open_socket: SocketFactory, server: ProbeServer, path: str, **options: object) -> Outcome:
    return run_check(HttpCheck(open_socket, port=server.port, path=path, **options))  # type: ignore[arg-type]


def redirect_chain(server: ProbeServer, length: int) -> None:
    """/hop/0 -> /hop/1 -> ... -> /hop/<length>, which answers 200."""
    def hop(h: Handler) -> None:
        h.reply(301, headers={"Location": f"/hop/{int(h.path.rsplit('/', 1)[1]) + 1}"})

    for i in range(length):
        server.routes[f"/hop/{i}"] = hop
    server.routes[f"/hop/{length}"] = lambda h: h.reply(200, b"end of chain")


def test_200_is_success_with_the_body_as_output(open_socket: SocketFactory, http_server: ProbeServer) -> None:
    http_server.routes["/healthz"] = lambda h: h.reply(200, b"ok")
    assert probe(open_socket, http_server, "/healthz") == Outcome(SUCCESS, "ok")


def test_default_request_headers(open_socket: SocketFactory, http_server: ProbeServer) -> None:
    http_server.routes["/"] = lambda h: h.reply(200)
    probe(open_socket, http_server, "")
    path, headers, _ = http_server.seen[0]
    assert path == "/"
    assert headers == {"Host": f"127.0.0.1:{http_server.port}", "User-Agent": "kube-probe/1.35",
                       "Accept": "*/*", "Connection": "close"}


def test_header_overrides(open_socket: SocketFactory, http_server: ProbeServer) -> None:
    http_server.routes["/h"] = lambda h: h.reply(200)
    probe(open_socket, http_server, "/h?x=1", headers=[
        ("host", "svc.example"), ("user-agent", "mine/2"), ("Accept", ""), ("x-multi", "a"), ("X-Multi", "b"),
    ])
    path, headers, multi = http_server.seen[0]
    assert path == "/h?x=1"
    assert headers["Host"] == "svc.example" and headers["User-Agent"] == "mine/2"
    assert "Accept" not in headers and multi == ["a", "b"]


def test_an_empty_user_agent_removes_it(open_socket: SocketFactory, http_server: ProbeServer) -> None:
    http_server.routes["/"] = lambda h: h.reply(200)
    probe(open_socket, http_server, "/", headers=[("User-Agent", "")])
    assert "User-Agent" not in http_server.seen[0][1]


@pytest.mark.parametrize("given, host, lines", [
    ([], "", [("User-Agent", "ua"), ("Accept", "*/*"), ("Connection", "close")]),
    ([("accept", "text/plain")], "",
     [("User-Agent", "ua"), ("Accept", "text/plain"), ("Connection", "close")]),
    ([("Connection", "Close"), ("HOST", "h")], "h",
     [("User-Agent", "ua"), ("Accept", "*/*"), ("Connection", "Close")]),
])
def test_request_headers_table(given: list[tuple[str, str]], host: str, lines: list[tuple[str, str]]) -> None:
    assert request_headers(given, "ua") == (host, lines)


def test_url_and_header_name_helpers() -> None:
    assert probe_url("HTTP", "::1", 80, "healthz") == "http://[::1]:80/healthz"
    assert probe_url("https", "10.0.0.1", 443, "") == "https://10.0.0.1:443/"
    assert canonical_header("x-forwarded-FOR") == "X-Forwarded-For"


def test_302_on_the_same_host_is_followed(open_socket: SocketFactory, http_server: ProbeServer) -> None:
    http_server.routes["/old"] = lambda h: h.reply(302, headers={"Location": "/new"})
    http_server.routes["/new"] = lambda h: h.reply(200, b"new")
    assert probe(open_socket, http_server, "/old") == Outcome(SUCCESS, "new")
    assert [seen[0] for seen in http_server.seen] == ["/old", "/new"]
    assert http_server.seen[1][1]["Referer"] == f"http://127.0.0.1:{http_server.port}/old"


def test_a_redirect_to_another_port_of_the_same_host_is_followed(
        open_socket: SocketFactory, http_server: ProbeServer, other_http_server: ProbeServer) -> None:
    elsewhere = f"http://127.0.0.1:{other_http_server.port}/x"
    http_server.routes["/"] = lambda h: h.reply(307, headers={"Location": elsewhere})
    other_http_server.routes["/x"] = lambda h: h.reply(503)
    assert probe(open_socket, http_server, "/") == Outcome(FAILURE, "HTTP probe failed with statuscode: 503")


def test_a_redirect_to_another_host_stops_with_a_warning(
        open_socket: SocketFactory, http_server: ProbeServer) -> None:
    # 127.0.0.2 listens on nothing: following it would fail, so a warning proves it was not followed
    http_server.routes["/"] = lambda h: h.reply(302, b"gone", {"Location": "http://127.0.0.2:1/elsewhere"})
    outcome = probe(open_socket, http_server, "/")
    assert outcome == Outcome(WARNING, "Probe terminated redirects, Response body: gone")


def test_a_redirect_loop_fails_after_10_requests(
        open_socket: SocketFactory, http_server: ProbeServer) -> None:
    http_server.routes["/loop"] = lambda h: h.reply(301, headers={"Location": "/loop"})
    outcome = probe(open_socket, http_server, "/loop")
    assert outcome == Outcome(FAILURE, 'Get "/loop": stopped after 10 redirects')
    assert len(http_server.seen) == 10


@pytest.mark.parametrize("length, status", [(9, SUCCESS), (10, FAILURE)])
def test_redirect_limit_boundary(
        open_socket: SocketFactory, http_server: ProbeServer, length: int, status: str) -> None:
    """Go's client makes at most 10 requests: 9 redirects then 200 passes, a 10th redirect fails."""
    redirect_chain(http_server, length)
    assert probe(open_socket, http_server, "/hop/0").status == status


@pytest.mark.parametrize("code, status, output", [
    (500, FAILURE, "HTTP probe failed with statuscode: 500"),
    (404, FAILURE, "HTTP probe failed with statuscode: 404"),
    (399, WARNING, "Probe terminated redirects, Response body: body"),
    (302, WARNING, "Probe terminated redirects, Response body: body"),  # no Location: not followed
    (204, SUCCESS, ""),
    (299, SUCCESS, "body"),
])
def test_status_codes(
        open_socket: SocketFactory, http_server: ProbeServer, code: int, status: str, output: str) -> None:
    http_server.routes["/s"] = lambda h: h.reply(code, b"" if code == 204 else b"body")
    assert probe(open_socket, http_server, "/s") == Outcome(status, output)


def test_refused(open_socket: SocketFactory, closed_port: int) -> None:
    outcome = run_check(HttpCheck(open_socket, port=closed_port, path="/hz"))
    assert outcome == Outcome(FAILURE, f'Get "http://127.0.0.1:{closed_port}/hz": dial tcp '
                                       f"127.0.0.1:{closed_port}: connect: connection refused")


def test_timeout_awaiting_headers_is_a_failure(open_socket: SocketFactory, http_server: ProbeServer) -> None:
    http_server.routes["/stall"] = lambda h: http_server.stall()
    began = time.monotonic()
    outcome = probe(open_socket, http_server, "/stall", timeout=0.3)
    assert outcome.status == FAILURE
    assert outcome.output.endswith("(Client.Timeout exceeded while awaiting headers)")
    assert 0.3 <= time.monotonic() - began < 0.8


def slow_body(h: Handler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "100")
    h.end_headers()
    h.wfile.write(b"first ten.")
    h.wfile.flush()
    h.server.stall()


def test_a_body_that_never_ends_is_a_probe_error(
        open_socket: SocketFactory, http_server: ProbeServer) -> None:
    """http.go returns the body read error as err: the prober retries and then discards it."""
    http_server.routes["/slow"] = slow_body
    outcome = probe(open_socket, http_server, "/slow", timeout=0.3)
    assert outcome.status == ERROR and "while reading body" in outcome.output


def test_body_is_read_up_to_10_kib_only(open_socket: SocketFactory, http_server: ProbeServer) -> None:
    http_server.routes["/big"] = lambda h: h.reply(200, b"x" * 50_000)
    assert probe(open_socket, http_server, "/big") == Outcome(SUCCESS, "x" * 10240)


def test_a_body_cut_short_is_a_probe_error(open_socket: SocketFactory, http_server: ProbeServer) -> None:
    def short(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100")
        h.end_headers()
        h.wfile.write(b"only this")
        h.close_connection = True

    http_server.routes["/short"] = short
    assert probe(open_socket, http_server, "/short").status == ERROR


def test_chunked_and_interim_responses(open_socket: SocketFactory, http_server: ProbeServer) -> None:
    def chunked(h: Handler) -> None:
        h.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n")
        h.close_connection = True

    http_server.routes["/chunked"] = chunked
    assert probe(open_socket, http_server, "/chunked") == Outcome(SUCCESS, "hello, world")


def test_garbage_is_a_failure(open_socket: SocketFactory, http_server: ProbeServer) -> None:
    def garbage(h: Handler) -> None:
        h.wfile.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        h.close_connection = True

    http_server.routes["/g"] = garbage
    outcome = probe(open_socket, http_server, "/g")
    assert outcome.status == FAILURE and "malformed HTTP response" in outcome.output


def test_hook_mode_counts_any_status_as_success(open_socket: SocketFactory, http_server: ProbeServer) -> None:
    http_server.routes["/hook"] = lambda h: h.reply(500, b"broken")
    assert probe(open_socket, http_server, "/hook", hook=True) == Outcome(SUCCESS)
    assert http_server.seen[0][1]["User-Agent"] == "kube-lifecycle/1.35"


def test_hook_mode_fails_on_transport_errors(open_socket: SocketFactory, closed_port: int) -> None:
    assert run_check(HttpCheck(open_socket, port=closed_port, hook=True)).status == FAILURE


def test_twenty_checks_in_one_loop_run_concurrently(
        open_socket: SocketFactory, http_server: ProbeServer) -> None:
    """Nothing blocks: 20 probes against a server that answers after 200 ms take ~200 ms, not 4 s."""
    def late(h: Handler) -> None:
        time.sleep(0.2)  # the server's handler thread, not the loop under test
        h.reply(200, b"late")

    http_server.routes["/late"] = late
    checks = [HttpCheck(open_socket, port=http_server.port, path="/late", timeout=2) for _ in range(20)]
    began = time.monotonic()
    outcomes = run_checks(checks)
    elapsed = time.monotonic() - began
    assert outcomes == [Outcome(SUCCESS, "late")] * 20
    # in turn they would take 4 s; at most two overlapping at a time, 2 s: a loaded 2-CPU machine
    # has measured 0.37 s, so the bound leaves room for the server's 20 threads to be scheduled
    assert elapsed < 1.0, elapsed


# HTTPS ---------------------------------------------------------------------------------------


class TlsProbeServer(ProbeServer):
    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__()
        self.context = context

    def finish_request(  # type: ignore[override]
            self, request: socket.socket, client_address: object) -> None:
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with tls:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=probe.test", "-keyout", str(key),
                    "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def https_server(certificate: tuple[Path, Path]) -> Iterator[ProbeServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    yield from serve(TlsProbeServer(context))


def test_https_skips_certificate_verification(open_socket: SocketFactory, https_server: ProbeServer) -> None:
    https_server.routes["/tls"] = lambda h: h.reply(200, b"secure")
    assert probe(open_socket, https_server, "/tls", scheme="HTTPS") == Outcome(SUCCESS, "secure")


def test_https_redirect_and_failure(open_socket: SocketFactory, https_server: ProbeServer) -> None:
    https_server.routes["/a"] = lambda h: h.reply(302, headers={"Location": "/b"})
    https_server.routes["/b"] = lambda h: h.reply(503)
    outcome = probe(open_socket, https_server, "/a", scheme="https")
    assert outcome.output == "HTTP probe failed with statuscode: 503"


class PlainAnswerServer:
    """Answers anything that is not an HTTP request (a TLS hello) with an HTTP 400, as nginx and
    Go servers do, and GETs with 200; records the requests it understood."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = int(self.listener.getsockname()[1])
        self.requests: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve)

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                self.answer(conn)

    def answer(self, conn: socket.socket) -> None:
        data = conn.recv(65536)
        if not data.startswith(b"GET "):
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        self.requests.append(data)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


@pytest.fixture
def plain_answer_server() -> Iterator[PlainAnswerServer]:
    server = PlainAnswerServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.thread.join()
        server.listener.close()


def test_https_probe_answered_in_plain_http_fails(
        open_socket: SocketFactory, plain_answer_server: PlainAnswerServer) -> None:
    outcome = run_check(HttpCheck(open_socket, port=plain_answer_server.port, scheme="https"))
    assert outcome == Outcome(FAILURE, f'Get "https://127.0.0.1:{plain_answer_server.port}/": '
                                       "http: server gave HTTP response to HTTPS client")


def test_https_hook_answered_in_plain_http_is_retried_over_http(
        open_socket: SocketFactory, plain_answer_server: PlainAnswerServer) -> None:
    check = HttpCheck(open_socket, port=plain_answer_server.port, path="/hook", scheme="https", hook=True,
                      headers=[("Authorization", "Bearer x"), ("X-Kept", "1")])
    assert run_check(check) == Outcome(SUCCESS)
    [request] = plain_answer_server.requests
    assert request.startswith(b"GET /hook HTTP/1.1") and b"X-Kept: 1" in request
    assert b"Authorization" not in request


def test_a_bad_location_is_a_failure(open_socket: SocketFactory, http_server: ProbeServer) -> None:
    http_server.routes["/"] = lambda h: h.reply(302, headers={"Location": "http://127.0.0.1:port/"})
    outcome = probe(open_socket, http_server, "/")
    assert outcome.status == FAILURE
    assert 'failed to parse Location header "http://127.0.0.1:port/"' in outcome.output


def test_a_bug_in_a_check_becomes_an_error_outcome(
        open_socket: SocketFactory, http_server: ProbeServer) -> None:
    class Broken(HttpCheck):
        def _ready(self, fd: int, mask: int, now: float) -> Outcome | None:
            raise RuntimeError("oops")

    http_server.routes["/"] = lambda h: h.reply(200)
    outcome = run_check(Broken(open_socket, port=http_server.port))
    assert outcome == Outcome(ERROR, "internal error in Broken: RuntimeError: oops")
