"""Static pods run by the node agent, as the kubelet runs them: from a manifest directory (add, edit,
dotfile, broken file, delete of the mirror, remove) and from a manifest URL polled with headers."""

from __future__ import annotations

import http.server
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tests.integration.conftest import Sandbox
from tests.integration.test_agent import kill_agent, stop_agent

pytestmark = pytest.mark.root

NODE = "testnode"


def static_pod(name: str, word: str) -> str:
    return f"""apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c", "echo {word}; exec sleep 600"]
"""


def start_agent(sbx: Sandbox, *extra: str) -> subprocess.Popen[bytes]:
    log = open(sbx.tmp / "agent.log", "ab")
    agent = subprocess.Popen(sbx.cmd("agent", "--network", "none", "--hostname-override", NODE, *extra),
                             stdout=log, stderr=log, start_new_session=True)
    log.close()
    sbx.procs.append(agent)  # waited for (or killed) by the fixture
    sbx.wait_for(lambda: (sbx.root / "run" / "agent.sock").exists(), message="the agent listening")
    return agent


@pytest.fixture
def agent_box(sbx: Sandbox) -> Iterator[Sandbox]:
    try:
        yield sbx
    finally:
        stop_agent(sbx, force=True)


def uid_of(sbx: Sandbox, name: str) -> str | None:
    state = sbx.state(name)
    if not state or state.get("ended"):
        return None
    running = [c for c in state["status"].get("containerStatuses", []) if "running" in c.get("state", {})]
    return str(state["uid"]) if running else None


def test_manifest_directory(agent_box: Sandbox) -> None:
    sbx = agent_box
    manifests = sbx.tmp / "manifests"
    manifests.mkdir()
    (manifests / "web.yaml").write_text(static_pod("web", "one"))
    (manifests / ".hidden.yaml").write_text(static_pod("hidden", "no"))
    start_agent(sbx, "--pod-manifest-path", str(manifests), "--file-check-frequency", "1s")
    name = f"web-{NODE}"
    first = sbx.wait_for(lambda: uid_of(sbx, name), message="the static pod running")
    state = sbx.state(name)
    assert state is not None
    annotations = state["manifest"]["metadata"]["annotations"]
    assert annotations["kubernetes.io/config.source"] == "file"
    assert sbx.state(f"hidden-{NODE}") is None
    sbx.wait_for(lambda: "one" in sbx.run("logs", name).stdout, message="the first pod's output")

    # a broken manifest is reported and the other pod runs on
    (manifests / "broken.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: broken\n")
    sbx.wait_for(lambda: "broken.yaml" in (sbx.tmp / "agent.log").read_text(), message="the broken file reported")
    assert uid_of(sbx, name) == first

    # delete of the mirror: the pod comes back (it never went: the kubelet leaves its containers)
    deleted = sbx.run("delete", "pod", name)
    assert deleted.returncode == 0 and deleted.stdout == f'pod "{name}" deleted\n'
    assert "static pod" in deleted.stderr
    assert uid_of(sbx, name) == first

    # an edit replaces the pod (a new UID) with the new content
    (manifests / "web.yaml").write_text(static_pod("web", "two"))
    second = sbx.wait_for(lambda: (u := uid_of(sbx, name)) and u != first and u, timeout=30,
                          message="the edited pod running")
    sbx.wait_for(lambda: "two" in sbx.run("logs", name).stdout, message="the second pod's output")
    assert second != first

    # removing the file removes the pod, record and logs
    (manifests / "web.yaml").unlink()
    sbx.wait_for(lambda: sbx.state(name) is None, timeout=30, message="the pod removed with its file")


def test_a_manifest_removed_while_no_agent_ran(agent_box: Sandbox) -> None:
    """The next agent re-adopts the pod, finds no manifest for it in the (now empty) directory and
    stops it, as the kubelet's cleanup kills a pod no source wants once the sources are ready."""
    sbx = agent_box
    manifests = sbx.tmp / "manifests"
    manifests.mkdir()
    (manifests / "web.yaml").write_text(static_pod("web", "one"))
    start_agent(sbx, "--pod-manifest-path", str(manifests), "--file-check-frequency", "1s")
    name = f"web-{NODE}"
    sbx.wait_for(lambda: uid_of(sbx, name), message="the static pod running")
    kill_agent(sbx)
    (manifests / "web.yaml").unlink()
    (sbx.root / "run" / "agent.sock").unlink(missing_ok=True)  # the killed agent's, so the wait is for the new one
    start_agent(sbx, "--pod-manifest-path", str(manifests), "--file-check-frequency", "1s")
    sbx.wait_for(lambda: sbx.state(name) is None, timeout=30, message="the pod of the removed manifest gone")


def test_a_completed_static_pod_stays_completed_across_agent_restarts(agent_box: Sandbox) -> None:
    """restartPolicy Never: the pod runs once. The next agent finds its ended record for the same
    manifest and does not run it again (the kubelet creates no sandbox for a terminal pod); the
    manifest's removal then deletes the record, as the kubelet deletes the mirror pod."""
    sbx = agent_box
    manifests = sbx.tmp / "manifests"
    manifests.mkdir()
    (manifests / "once.yaml").write_text(static_pod("once", "ran").replace(
        'command: ["sh", "-c", "echo ran; exec sleep 600"]', 'command: ["sh", "-c", "echo ran"]').replace(
        "  terminationGracePeriodSeconds: 2\n", "  terminationGracePeriodSeconds: 2\n  restartPolicy: Never\n"))
    name = f"once-{NODE}"
    start_agent(sbx, "--pod-manifest-path", str(manifests), "--file-check-frequency", "1s")
    ended = sbx.wait_for(lambda: (s := sbx.state(name)) and s.get("ended") and s, timeout=30,
                         message="the static pod completed")
    assert ended["status"]["phase"] == "Succeeded"
    stop_agent(sbx)
    (sbx.root / "run" / "agent.sock").unlink(missing_ok=True)
    start_agent(sbx, "--pod-manifest-path", str(manifests), "--file-check-frequency", "1s")
    time.sleep(3)  # the first poll and two re-lists of the directory (--file-check-frequency 1s)
    again = sbx.state(name)
    assert again is not None and again.get("ended") and again["createdAt"] == ended["createdAt"], again
    (manifests / "once.yaml").unlink()
    sbx.wait_for(lambda: sbx.state(name) is None, timeout=30, message="the ended pod's record removed with its file")


class _Server(http.server.ThreadingHTTPServer):
    body = b""
    hits = 0


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.server.hits += 1
        if self.headers.get("X-Token") != "s3cret":
            self.send_response(403)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, *args: object) -> None:
        pass


def serve(port: int, body: bytes) -> _Server:
    server = _Server(("127.0.0.1", port), _Handler)
    server.body = body
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_manifest_url_with_header_survives_the_server_going_away(agent_box: Sandbox) -> None:
    sbx = agent_box
    server = serve(0, static_pod("fromurl", "served").encode())
    port = server.server_address[1]
    try:
        start_agent(sbx, "--manifest-url", f"http://127.0.0.1:{port}/pod.yaml",
                    "--manifest-url-header", "X-Token:s3cret", "--http-check-frequency", "1s")
        name = f"fromurl-{NODE}"
        uid = sbx.wait_for(lambda: uid_of(sbx, name), message="the URL's pod running")
        assert sbx.state(name)["manifest"]["metadata"]["annotations"]["kubernetes.io/config.source"] == "http"
    finally:
        server.shutdown()
        server.server_close()
    hits = server.hits
    # the server is down: the pod keeps running and the failure is reported
    sbx.wait_for(lambda: "127.0.0.1" in (sbx.tmp / "agent.log").read_text(), timeout=30,
                 message="the unreachable URL reported")
    assert uid_of(sbx, name) == uid
    # back, with garbage: nothing changes either
    server = serve(port, b"{not yaml: [")
    try:
        sbx.wait_for(lambda: server.hits > 0, timeout=30, message="the URL polled again")
        sbx.wait_for(lambda: server.hits > 1, timeout=30, message="the URL polled twice")
        assert uid_of(sbx, name) == uid
        assert hits >= 1
    finally:
        server.shutdown()
        server.server_close()
