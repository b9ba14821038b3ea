"""Static pods from a manifest URL (sandbox/agent/static.py), as the kubelet's HTTP source: a real
HTTP server on 127.0.0.1 in a thread that checks the header; the fetch runs in the source's own
thread and wakes the caller through its fd; polling periods come from an injected clock."""

from __future__ import annotations

import base64
import json
import select
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from sandbox.agent.kubeletconfig import AgentConfig
from sandbox.agent.static import CONFIG_SOURCE, Changes, StaticPods

TOKEN = "Bearer s3cret"


def pod(name: str, image: str = "busybox") -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": image}]}}


class Server:
    """Serves `body` to requests with the right Authorization header, 403 to the others."""

    def __init__(self, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.body = b""
        self.status = 200
        self.extra_headers: dict[str, str] = {}
        self.seen_headers: list[dict[str, str]] = []
        self.extra_values: list[list[str]] = []  # every X-Extra value of each request, in order
        self.release = threading.Event()  # cleared: requests wait for it (a slow server)
        self.release.set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                owner.seen_headers.append(dict(self.headers))
                owner.extra_values.append(self.headers.get_all("X-Extra") or [])
                owner.release.wait(10)
                if self.headers.get("Authorization") != TOKEN:
                    self.send_response(403)
                    self.end_headers()
                    return
                self.send_response(owner.status)
                for name, value in owner.extra_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = HTTPServer(("127.0.0.1", port), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.port = self.httpd.server_port
        # a short poll interval: shutdown() waits for it
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()
        self.stopped = False

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/static-pods"

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


class Source:
    def __init__(self, url: str, header: tuple[tuple[str, tuple[str, ...]], ...] = (("Authorization", (TOKEN,)),)):
        self.now = 0.0
        self.reports: list[str] = []
        self.pods = StaticPods(AgentConfig(manifest_url=url, manifest_url_header=header), "node1",
                               self.reports.append, clock=lambda: self.now)

    def fetch(self) -> Changes | None:
        """Run the poll that is due (it starts a fetch), wait for the fetch's end, take it."""
        deadline = self.pods.next_deadline()
        assert deadline is not None, "a fetch is already running"
        self.now = max(self.now, deadline)
        assert self.pods.poll() is None  # starting a fetch changes nothing yet
        assert self.pods.next_deadline() is None  # no deadline while the fetch runs
        ready, _, _ = select.select([self.pods.fileno()], [], [], 15.0)
        assert ready, "the fetch never finished"
        return self.pods.poll()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def source(server: Server) -> Iterator[Source]:
    s = Source(server.url)
    yield s
    s.pods.close()


def test_one_pod(server: Server, source: Source) -> None:
    server.body = json.dumps(pod("web")).encode()
    changes = source.fetch()
    key = f"{server.url}#default/web-node1"
    assert changes is not None and changes.added == (key,)
    static = changes.desired[key]
    assert (static.name, static.source) == ("web-node1", "http")
    assert static.manifest["metadata"]["annotations"][CONFIG_SOURCE] == "http"
    assert "tolerations" not in static.manifest["spec"]  # the NoExecute toleration is for file pods only
    assert source.pods.next_deadline() == source.now + 20.0  # the next poll: a period after this one ended
    assert server.seen_headers[-1]["Authorization"] == TOKEN


def test_a_pod_list_replaces_the_set(server: Server, source: Source) -> None:
    server.body = json.dumps(pod("web")).encode()
    source.fetch()
    server.body = json.dumps({"apiVersion": "v1", "kind": "PodList",
                              "items": [pod("a"), {"metadata": {"name": "b"}, "spec": pod("b")["spec"]}]}).encode()
    changes = source.fetch()
    assert changes is not None
    assert changes.added == (f"{server.url}#default/a-node1", f"{server.url}#default/b-node1")
    assert changes.removed == (f"{server.url}#default/web-node1",)
    assert source.reports == []


def test_the_same_body_changes_nothing_and_an_edit_replaces_the_pod(server: Server, source: Source) -> None:
    server.body = json.dumps(pod("web")).encode()
    first = source.fetch()
    assert first is not None
    assert source.fetch() is None
    server.body = json.dumps(pod("web", image="busybox:2")).encode()
    edited = source.fetch()
    key = f"{server.url}#default/web-node1"
    assert edited is not None and edited.updated == (key,)
    assert edited.desired[key].uid != first.desired[key].uid


def test_a_missing_header_is_a_403_reported_once(server: Server) -> None:
    s = Source(server.url, header=())
    try:
        assert s.fetch() is None
        assert s.fetch() is None
        assert s.reports == [f"{server.url}: 403 Forbidden"]
    finally:
        s.pods.close()


def test_the_source_is_ready_only_after_a_200(server: Server) -> None:
    """A failed fetch leaves the URL source not ready (http.go sends no SET): the agent must not
    take its empty set for the URL's and remove the static pods it re-adopted."""
    s = Source(server.url, header=())
    try:
        assert not s.pods.ready()
        assert s.fetch() is None and not s.pods.ready()  # 403
        server.body = b""
        s.pods.close()
        s = Source(server.url)
        assert s.fetch() is None and s.pods.ready()  # an empty body is an empty SET
    finally:
        s.pods.close()


def test_a_stopped_server_keeps_the_set_and_a_restarted_one_brings_it_back(server: Server,
                                                                            source: Source) -> None:
    server.body = json.dumps(pod("web")).encode()
    assert source.fetch() is not None
    server.stop()
    assert source.fetch() is None  # the last good set stays
    assert source.fetch() is None
    assert len(source.reports) == 1
    assert "Connection refused" in source.reports[0] and "the pods read before keep running" in source.reports[0]
    again = Server(server.port)
    try:
        again.body = server.body
        assert source.fetch() is None  # the same pods: nothing to do
        assert source.reports[1:] == [f"{server.url}: static pods read again"]
        assert source.pods.problems() == {}
    finally:
        again.stop()


@pytest.mark.parametrize("body", [b"not: [yaml", b"just a string", json.dumps({"kind": "Service"}).encode(),
                                  json.dumps({"apiVersion": "v1", "kind": "PodList",
                                              "items": [pod("a"), pod("b", image="")]}).encode()])
def test_garbage_changes_nothing_and_is_reported(server: Server, source: Source, body: bytes) -> None:
    server.body = json.dumps(pod("web")).encode()
    assert source.fetch() is not None
    server.body = body
    assert source.fetch() is None
    assert source.fetch() is None  # the same garbage: reported once
    assert len(source.reports) == 1 and source.reports[0].startswith(f"static pods from {server.url}: ")
    assert list(source.pods.problems()) == [server.url]


def test_one_bad_pod_of_a_list_names_its_item(server: Server, source: Source) -> None:
    server.body = json.dumps({"apiVersion": "v1", "kind": "PodList", "items": [pod("a"), pod("b", image="")]}).encode()
    assert source.fetch() is None
    assert f"{server.url}: items[1].spec.containers[0].image: Required value" in source.reports[0]


def test_an_empty_body_empties_the_set(server: Server, source: Source) -> None:
    server.body = json.dumps(pod("web")).encode()
    assert source.fetch() is not None
    server.body = b""
    changes = source.fetch()  # http.go sends an empty SET for a zero-length body
    assert changes is not None and changes.desired == {} and len(changes.removed) == 1
    assert source.reports == [f"zero-length data received from {server.url}"]


def test_a_non_200_status_changes_nothing(server: Server, source: Source) -> None:
    server.body = json.dumps(pod("web")).encode()
    assert source.fetch() is not None
    server.status = 500
    assert source.fetch() is None
    assert source.reports == [f"{server.url}: 500 Internal Server Error; the pods read before keep running"]


def test_a_redirect_is_not_followed(server: Server) -> None:
    server.status = 302
    server.extra_headers = {"Location": "http://127.0.0.1:1/elsewhere"}
    s = Source(server.url)
    try:
        assert s.fetch() is None
        assert s.reports == [f"{server.url}: 302 Found"]
    finally:
        s.pods.close()


def test_url_credentials_are_basic_authentication(server: Server) -> None:
    server.body = json.dumps(pod("web")).encode()
    s = Source(server.url.replace("http://", "http://user:p%40ss@"), header=(("X-Extra", ("1", "2")),))
    try:
        s.fetch()
        sent = server.seen_headers[-1]
        assert sent["Authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
        assert server.extra_values[-1] == ["1", "2"]  # every value of a header, in order
    finally:
        s.pods.close()


def test_two_pods_of_one_name_in_a_list(server: Server, source: Source) -> None:
    server.body = json.dumps({"apiVersion": "v1", "kind": "PodList",
                              "items": [pod("a"), pod("a", image="busybox:2")]}).encode()
    changes = source.fetch()
    assert changes is not None and len(changes.desired) == 1
    assert source.reports == [f"{server.url}: duplicate pods ignored: default/a-node1"]


def test_only_the_first_document_is_read_and_that_is_said(server: Server, source: Source) -> None:
    # YAML documents (each a flow mapping, JSON-shaped): the text starts with `---`, not `{`
    server.body = ("---\n" + json.dumps(pod("first")) + "\n---\n" + json.dumps(pod("second"))).encode()
    changes = source.fetch()
    assert changes is not None and list(changes.desired) == [f"{server.url}#default/first-node1"]
    assert source.reports == [f"{server.url}: only the first of 2 YAML documents is read, as the kubelet reads "
                              "a static pod manifest"]


def test_json_then_a_yaml_separator_is_refused(server: Server, source: Source) -> None:
    # a text that starts with `{` is JSON (kubectl, and the kubelet's utilyaml.ToJSON): after the
    # first object a `---` is a JSON syntax error, not a second document
    server.body = (json.dumps(pod("first")) + "\n---\n" + json.dumps(pod("second"))).encode()
    assert source.fetch() is None
    (report,) = source.reports
    assert f"{server.url}: line 2, column 1: Invalid value: JSON syntax error: " in report


def test_a_slow_server_never_holds_the_caller(server: Server, source: Source) -> None:
    server.body = json.dumps(pod("web")).encode()
    server.release.clear()  # the server holds every request until released
    assert source.pods.poll() is None  # the fetch starts in its thread; poll returns at once
    assert select.select([source.pods.fileno()], [], [], 0.05)[0] == []  # nothing to take yet
    assert source.pods.poll() is None  # polling again neither blocks nor starts a second fetch
    server.release.set()
    assert select.select([source.pods.fileno()], [], [], 15.0)[0]
    changes = source.pods.poll()
    assert changes is not None and len(changes.desired) == 1 and len(server.seen_headers) == 1


def test_close_while_a_fetch_runs(server: Server) -> None:
    server.body = json.dumps(pod("web")).encode()
    s = Source(server.url)
    s.pods.poll()  # the fetch starts in its thread
    s.pods.close()  # and its end must not write to a closed (or reused) fd


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_https_against_the_system_cas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = Server(tls=context)
    server.body = json.dumps(pod("web")).encode()
    s = Source(server.url)
    try:
        assert s.fetch() is None  # a certificate no system CA signed
        assert "CERTIFICATE_VERIFY_FAILED" in s.reports[0]
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now it is one of "the system's" CAs
        changes = s.fetch()
        assert changes is not None and list(changes.desired) == [f"{server.url}#default/web-node1"]
    finally:
        s.pods.close()
        server.stop()
