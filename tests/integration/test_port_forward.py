"""`sandbox port-forward` against a real pod without a pod network (`--network none`): a local
port reaches a server listening on the pod's own localhost, by number or by the containerPort's
name; a refused connection is reported and the forwarding goes on; the pod's end ends it."""

from __future__ import annotations

import re
import socket
import subprocess

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 127.0.0.1:8000 -h /www"]
    ports: [{name: http, containerPort: 8000}]
"""


def fetch(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
        data = b""
        try:
            while chunk := conn.recv(4096):
                data += chunk
        except ConnectionResetError:  # closed with our request unread: no answer either
            assert not data
    return data


def test_port_forward_into_a_pod_without_a_network(sbx: Sandbox) -> None:
    pod = sbx.start(sbx.manifest(POD), "--network", "none")
    forward = None
    try:
        sbx.wait_running("web")
        forward = subprocess.Popen(sbx.cmd("port-forward", "pod/web", ":http", "0:8001"),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert forward.stdout is not None and forward.stderr is not None
        ports: dict[int, int] = {}
        while len(ports) < 2:
            line = forward.stdout.readline()
            assert line, forward.stderr.read()
            found = re.fullmatch(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)\n", line)
            if found:
                ports[int(found[2])] = int(found[1])
        assert fetch(ports[8000]).endswith(b"hello-from-pod\n")  # httpd listens on the pod's 127.0.0.1 only
        # nothing listens on 8001 in the pod: this connection is closed, the forwarding goes on
        assert fetch(ports[8001]) == b""
        assert fetch(ports[8000]).endswith(b"hello-from-pod\n")
        sbx.stop(pod)
        assert forward.wait(timeout=15) == 1
        err = forward.stderr.read()
        assert f"an error occurred forwarding {ports[8001]} -> 8001" in err and "lost connection to pod" in err
        assert "Traceback" not in err
        done = sbx.run("port-forward", "web", "8000")  # ended: refused at once
        assert done.returncode == 1 and "unable to forward port because pod is not running" in done.stderr
    finally:
        if forward is not None:
            if forward.poll() is None:
                forward.kill()
                forward.wait()
            for pipe in (forward.stdout, forward.stderr):
                if pipe is not None:
                    pipe.close()
        if pod.poll() is None:
            sbx.stop(pod)


def test_bad_ports_are_refused_by_kubectls_rules(sbx: Sandbox) -> None:
    pod = sbx.start(sbx.manifest(POD), "--network", "none")
    try:
        sbx.wait_running("web")
        for spec, words in (("8080:nope", "Pod does not have a named port 'nope'"),
                            ("8080:70000", "Error parsing remote port '70000'"),
                            ("x:80", "Error parsing local port 'x'")):
            result = sbx.run("port-forward", "web", spec, timeout=20)
            assert result.returncode == 2 and words in result.stderr, result.stderr
    finally:
        sbx.stop(pod)
