"""sandbox.netns.socket_in_netns against a real network namespace: the socket lives in the pod's
namespace (it reaches a listener on the pod's 127.0.0.1 that the host cannot), while the test
process, and every thread of it, stays where it was."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from sandbox.netns import NetnsSocketError, socket_in_netns

pytestmark = pytest.mark.root

SIOCGSKNS = 0x894C  # linux/sockios.h: an fd for the network namespace a socket belongs to

# One connection, answered with "pong:" + what it sent; prints the port it listens on first.
LISTENER = """
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
c.sendall(b"pong:" + c.recv(100))
c.close()
"""


def net_ns(path: str) -> int:
    return os.stat(path).st_ino


def socket_ns(sock: socket.socket) -> int:
    ns_fd = fcntl.ioctl(sock.fileno(), SIOCGSKNS)
    try:
        return os.fstat(ns_fd).st_ino
    finally:
        os.close(ns_fd)


def own_task_namespaces() -> set[str]:
    """The network namespace of every thread of the test process."""
    return {os.readlink(f"/proc/self/task/{tid}/ns/net") for tid in os.listdir("/proc/self/task")}


def child_pids() -> set[int]:
    found: set[int] = set()
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as f:
            found |= {int(p) for p in f.read().split()}
    return found


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)


@pytest.fixture
def pod_netns() -> Iterator[tuple[int, int]]:
    """(pid, pidfd) of a process alone in a new network namespace with `lo` up."""
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        path = f"/proc/{holder.pid}/ns/net"
        deadline = time.monotonic() + 10
        while net_ns(path) == net_ns("/proc/self/ns/net"):  # until unshare(2) has run
            assert time.monotonic() < deadline, "unshare --net did not create a namespace"
            time.sleep(0.005)
        subprocess.run(["nsenter", "-t", str(holder.pid), "-n", "ip", "link", "set", "lo", "up"], check=True)
        pidfd = os.pidfd_open(holder.pid)
        try:
            yield holder.pid, pidfd
        finally:
            os.close(pidfd)
    finally:
        stop(holder)


@pytest.fixture
def pod_listener(pod_netns: tuple[int, int]) -> Iterator[tuple[int, int, int]]:
    """(pid, pidfd, port): a one-shot TCP listener on 127.0.0.1 inside the namespace."""
    pid, pidfd = pod_netns
    listener = subprocess.Popen(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", LISTENER],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout is not None
        port = int(listener.stdout.readline())
        yield pid, pidfd, port
    finally:
        stop(listener)


def test_socket_connects_inside_the_pod_and_the_caller_stays_home(pod_listener: tuple[int, int, int]) -> None:
    pid, pidfd, port = pod_listener
    before = own_task_namespaces()
    with socket.socket() as host_sock, pytest.raises(ConnectionRefusedError):
        host_sock.settimeout(5)
        host_sock.connect(("127.0.0.1", port))  # the host's lo has no such listener
    with socket_in_netns(pidfd, socket.AF_INET, socket.SOCK_STREAM) as sock:
        assert socket_ns(sock) == net_ns(f"/proc/{pid}/ns/net") != net_ns("/proc/self/ns/net")
        assert os.get_inheritable(sock.fileno()) is False
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"ping")
        assert sock.recv(100) == b"pong:ping"
    assert own_task_namespaces() == before


def test_nonblocking_and_datagram_sockets(pod_netns: tuple[int, int]) -> None:
    pid, pidfd = pod_netns
    with socket_in_netns(pidfd, socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK) as sock:
        assert sock.gettimeout() == 0.0
        assert os.get_blocking(sock.fileno()) is False
    with socket_in_netns(pidfd, socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        assert (sock.family, sock.type) == (socket.AF_INET6, socket.SOCK_DGRAM)
        assert socket_ns(sock) == net_ns(f"/proc/{pid}/ns/net")


def test_no_fd_thread_or_child_left_behind(pod_netns: tuple[int, int]) -> None:
    _, pidfd = pod_netns
    fds, tasks, children = set(os.listdir("/proc/self/fd")), set(os.listdir("/proc/self/task")), child_pids()
    for _ in range(200):
        socket_in_netns(pidfd, socket.AF_INET, socket.SOCK_STREAM).close()
    assert set(os.listdir("/proc/self/fd")) == fds
    assert set(os.listdir("/proc/self/task")) == tasks
    assert child_pids() == children  # every helper was reaped


def test_concurrent_callers_from_threads(pod_netns: tuple[int, int]) -> None:
    """CLONE_VFORK suspends only the calling thread: helpers from many threads must not mix up
    their stacks or results."""
    pid, pidfd = pod_netns
    want = net_ns(f"/proc/{pid}/ns/net")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                with socket_in_netns(pidfd, socket.AF_INET, socket.SOCK_STREAM) as sock:
                    assert socket_ns(sock) == want
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(own_task_namespaces()) == 1


def test_dead_pod_raises_a_clear_error(pod_netns: tuple[int, int]) -> None:
    pid, pidfd = pod_netns
    os.kill(pid, signal.SIGKILL)
    os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOWAIT)  # dead, reaped by the fixture
    with pytest.raises(NetnsSocketError, match=r"setns into pod network namespace: .*ESRCH"):
        socket_in_netns(pidfd, socket.AF_INET, socket.SOCK_STREAM)


def test_a_file_descriptor_that_is_no_pidfd_is_rejected() -> None:
    with open("/proc/self/stat") as f, pytest.raises(NetnsSocketError, match="EINVAL"):
        socket_in_netns(f.fileno(), socket.AF_INET, socket.SOCK_STREAM)


def test_cost_per_call(pod_netns: tuple[int, int], capsys: pytest.CaptureFixture[str]) -> None:
    """Reported, not benchmarked: a CLONE_VM helper costs tens of microseconds, not a fork."""
    _, pidfd = pod_netns
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        socket_in_netns(pidfd, socket.AF_INET, socket.SOCK_STREAM).close()
    in_pod = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for _ in range(n):
        socket.socket().close()
    plain = (time.perf_counter() - start) / n * 1e6
    with capsys.disabled():
        print(f"\nsocket_in_netns: {in_pod:.1f} us per call (plain socket(): {plain:.1f} us)")
    assert in_pod < 5000
