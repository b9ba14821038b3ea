"""`sandbox port-forward` against a real pod without a pod network (`--network none`): a local
port reaches a server listening on the pod's own localhost, by number or by the containerPort's
name; a refused connection is reported and the forwarding goes on; the pod's end ends it."""

from __future__ import annotations

import re
import signal
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


def forwarded_ports(forward: subprocess.Popen[str], count: int) -> dict[int, int]:
    """REMOTE -> LOCAL of the first `count` "Forwarding from 127.0.0.1:LOCAL -> REMOTE" lines."""
    assert forward.stdout is not None
    ports: dict[int, int] = {}
    while len(ports) < count:
        line = forward.stdout.readline()
        assert line, forward.stderr.read() if forward.stderr else ""
        found = re.fullmatch(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)\n", line)
        if found:
            ports[int(found[2])] = int(found[1])
    return ports


def test_port_forward_into_a_pod_without_a_network(sbx: Sandbox) -> None:
    pod = sbx.start(sbx.manifest(POD), "--network", "none")
    forward = None
    try:
        sbx.wait_running("web")
        forward = subprocess.Popen(sbx.cmd("port-forward", "pod/web", ":http", "0:8001"),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert forward.stdout is not None and forward.stderr is not None
        ports = forwarded_ports(forward, 2)
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


def test_a_port_that_cannot_listen_is_reported_and_the_others_go_on(sbx: Sandbox) -> None:
    pod = sbx.start(sbx.manifest(POD), "--network", "none")
    busy = socket.socket()
    forwards: list[subprocess.Popen[str]] = []
    try:
        sbx.wait_running("web")
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]

        def forward(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
            proc = subprocess.Popen(sbx.cmd("port-forward", *args), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            forwards.append(proc)
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            return proc, [line]

        # an address given by IP must listen: that port is reported, the other one forwards
        proc, lines = forward("--address", "127.0.0.1", "web", f"{taken}:8000", "0:8000")
        found = re.fullmatch(r"Forwarding from 127\.0\.0\.1:(\d+) -> 8000\n", lines[0])
        assert found, lines
        assert fetch(int(found[1])).endswith(b"hello-from-pod\n")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert (f"Unable to listen on port {taken}: Listeners failed to create with the following errors: "
                f"[unable to create listener: Error listen tcp4 127.0.0.1:{taken}: bind: address already in use]"
                in err), err

        # localhost needs one of its pair: 127.0.0.1 taken, ::1 forwards
        proc, lines = forward("web", f"{taken}:8000")
        assert lines == [f"Forwarding from [::1]:{taken} -> 8000\n"]
        with socket.create_connection(("::1", taken), timeout=10) as conn:
            conn.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
            assert b"hello-from-pod" in conn.makefile("rb").read()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0 and err == "", err

        # no port at all: kubectl's error
        none = sbx.run("port-forward", "--address", "127.0.0.1", "web", f"{taken}:8000", timeout=20)
        assert none.returncode == 1
        assert f"error: unable to listen on any of the requested ports: [{{{taken} 8000}}]" in none.stderr
        bad = sbx.run("port-forward", "--address", "localhost,web.local", "web", "8000", timeout=20)
        assert bad.returncode == 2 and "web.local is not a valid IP" in bad.stderr, bad.stderr
    finally:
        busy.close()
        for proc in forwards:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        sbx.stop(pod)


V6_POD = """
apiVersion: v1
kind: Pod
metadata: {name: web6}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-over-v6 > /www/index.html && exec httpd -f -p '[::1]:8000' -h /www"]
"""


def test_a_server_on_the_pods_ipv6_loopback_alone_is_reached(sbx: Sandbox) -> None:
    """containerd dials localhost by tcp4, then by tcp6: a server bound to ::1 only (what
    `localhost` resolves to first for some servers) is forwarded to."""
    pod = sbx.start(sbx.manifest(V6_POD), "--network", "none")
    forward = None
    try:
        sbx.wait_running("web6")
        forward = subprocess.Popen(sbx.cmd("port-forward", "web6", ":8000", "0:8001"), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        ports = forwarded_ports(forward, 2)
        assert fetch(ports[8000]).endswith(b"hello-over-v6\n")
        assert fetch(ports[8001]) == b""  # neither family answers: reported, both tries named
        forward.send_signal(signal.SIGINT)
        _, err = forward.communicate(timeout=15)
        assert forward.returncode == 0
        assert "failed to connect to localhost:8001 inside the pod's network namespace: IPv4: " in err, err
        assert " IPv6: " in err and "Traceback" not in err
    finally:
        if forward is not None and forward.poll() is None:
            forward.kill()
            forward.communicate()
        sbx.stop(pod)


def test_a_pod_slow_to_answer_one_connection_holds_up_no_other(sbx: Sandbox) -> None:
    """A listener in the pod whose accept queue is full drops the SYN, so a dial to it hangs (5 s
    per family); the other connections are served meanwhile, as kubectl's are (a goroutine each)."""
    import os
    import time

    from sandbox.netns import socket_in_netns

    pod = sbx.start(sbx.manifest(POD), "--network", "none")
    forward = None
    stuck_clients: list[socket.socket] = []
    pidfd = -1
    stuck = None
    try:
        sbx.wait_running("web")
        pidfd = os.pidfd_open(sbx.pause_pid("web"))
        stuck = socket_in_netns(pidfd, socket.AF_INET, socket.SOCK_STREAM)
        stuck.bind(("127.0.0.1", 8009))
        stuck.listen(0)  # never accepted: one connection queued, the next SYNs dropped
        forward = subprocess.Popen(sbx.cmd("port-forward", "web", ":8000", ":8009"), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        ports = forwarded_ports(forward, 2)
        for _ in range(3):
            stuck_clients.append(socket.create_connection(("127.0.0.1", ports[8009]), timeout=10))
            time.sleep(0.1)
        started = time.monotonic()
        assert fetch(ports[8000]).endswith(b"hello-from-pod\n")
        assert time.monotonic() - started < 3
    finally:
        for conn in stuck_clients:
            conn.close()
        if stuck is not None:
            stuck.close()
        if pidfd >= 0:
            os.close(pidfd)
        if forward is not None:
            if forward.poll() is None:
                forward.send_signal(signal.SIGINT)
            forward.communicate(timeout=15)
        sbx.stop(pod)
