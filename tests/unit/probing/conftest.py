"""Fixtures for the probing tests: real servers on 127.0.0.1 (host network namespace), each
stopped and joined at teardown so no thread or socket outlives its test."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from probing_servers import ProbeServer, host_socket, serve


@pytest.fixture
def open_socket() -> Callable[[int, int], socket.socket]:
    """The factory checks get (the runtime's makes sockets inside the pod's netns instead)."""
    return host_socket


@pytest.fixture
def http_server() -> Iterator[ProbeServer]:
    yield from serve(ProbeServer())


@pytest.fixture
def other_http_server() -> Iterator[ProbeServer]:
    yield from serve(ProbeServer())


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound then closed: connect is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections but never answers anything."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@pytest.fixture
def full_backlog_port() -> Iterator[int]:
    """A listener whose accept queue is full and never drained: Linux drops further SYNs, so a
    connect neither succeeds nor is refused until it times out (all on loopback)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        fillers = []
        try:
            for _ in range(2):
                filler = socket.socket()
                fillers.append(filler)
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            time.sleep(0.05)  # let the handshakes of the fillers land in the queue
            yield port
        finally:
            for filler in fillers:
                filler.close()


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Every test leaves the fds and threads it found: checks close their sockets, servers join
    their threads."""
    fds = set(os.listdir("/proc/self/fd"))
    threads = set(threading.enumerate())
    yield
    assert set(threading.enumerate()) == threads
    leaked = set(os.listdir("/proc/self/fd")) - fds
    assert not leaked, {fd: _describe_fd(fd) for fd in leaked}


def _describe_fd(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"
