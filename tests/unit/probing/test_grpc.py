"""gRPC health probes against a real grpcio health server (a subprocess on 127.0.0.1)."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.probing.checks import run_check
from sandbox.probing.grpc import GrpcCheck, decode_status, encode_request
from sandbox.probing.outcome import ERROR, FAILURE, SUCCESS, Outcome

SocketFactory = Callable[[int, int], socket.socket]
SERVER = Path(__file__).with_name("grpc_health_server.py")


@pytest.fixture(scope="module")
def grpc_port() -> Iterator[int]:
    """The port of grpc_health_server.py, run in a subprocess so grpcio's threads stay out of pytest."""
    if importlib.util.find_spec("h2") is None:
        pytest.fail("h2 is a runtime dependency of gRPC probes (h2>=4.1) and is not installed")
    if importlib.util.find_spec("grpc_health") is None:
        pytest.skip("grpcio-health-checking is not installed (test dependency)")
    server = subprocess.Popen([sys.executable, str(SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert server.stdin is not None and server.stdout is not None
    try:
        yield int(server.stdout.readline())
    finally:
        server.stdin.close()
        server.wait(10)
        server.stdout.close()


@pytest.mark.parametrize("service, outcome", [
    ("", Outcome(SUCCESS, "service is serving")),
    ("ok", Outcome(SUCCESS, "service is serving")),
    ("down", Outcome(FAILURE, 'service unhealthy (responded with "NOT_SERVING")')),
    ("nope", Outcome(FAILURE, "error: health rpc probe failed: rpc error: code = NotFound desc = ")),
])
def test_health_check(open_socket: SocketFactory, grpc_port: int, service: str, outcome: Outcome) -> None:
    assert run_check(GrpcCheck(open_socket, port=grpc_port, service=service)) == outcome


def test_refused(open_socket: SocketFactory, closed_port: int) -> None:
    outcome = run_check(GrpcCheck(open_socket, port=closed_port))
    assert outcome == Outcome(FAILURE, f'error: failed to connect service at "127.0.0.1:{closed_port}": '
                                       f"dial tcp 127.0.0.1:{closed_port}: connect: connection refused")


def test_a_server_that_never_answers_times_out(open_socket: SocketFactory, silent_listener: int) -> None:
    outcome = run_check(GrpcCheck(open_socket, port=silent_listener, timeout=0.2))
    assert outcome == Outcome(FAILURE, "timeout: health rpc did not complete within 200ms")


def test_connect_timeout(open_socket: SocketFactory, full_backlog_port: int) -> None:
    outcome = run_check(GrpcCheck(open_socket, port=full_backlog_port, timeout=0.2))
    assert outcome == Outcome(FAILURE, f'timeout: failed to connect service "127.0.0.1:{full_backlog_port}" '
                                       "within 200ms: context deadline exceeded")


def test_an_http1_server_is_a_failure(open_socket: SocketFactory, http_server: object) -> None:
    port = http_server.port  # type: ignore[attr-defined]
    outcome = run_check(GrpcCheck(open_socket, port=port, timeout=1))
    assert outcome.status == FAILURE and outcome.output.startswith("error: health rpc probe failed")


def test_without_h2_a_grpc_probe_is_an_error_not_a_crash(
        open_socket: SocketFactory, silent_listener: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "h2.config", None)  # makes `import h2.config` raise ImportError
    outcome = run_check(GrpcCheck(open_socket, port=silent_listener))
    assert outcome.status == ERROR and "h2" in outcome.output


@pytest.mark.parametrize("service, wire", [
    ("", b"\x00\x00\x00\x00\x00"),
    ("ok", b"\x00\x00\x00\x00\x04\x0a\x02ok"),
    ("s" * 200, b"\x00\x00\x00\x00\xcb\x0a\xc8\x01" + b"s" * 200),
])
def test_encode_request(service: str, wire: bytes) -> None:
    assert encode_request(service) == wire


@pytest.mark.parametrize("wire, status", [
    (b"\x00\x00\x00\x00\x02\x08\x01", 1),
    (b"\x00\x00\x00\x00\x00", 0),  # proto3: UNKNOWN is the absent field
    (b"\x00\x00\x00\x00\x06\x12\x02hi\x08\x02", 2),  # unknown fields are skipped
])
def test_decode_status(wire: bytes, status: int) -> None:
    assert decode_status(wire) == status


@pytest.mark.parametrize("wire, error", [
    (b"\x00\x00", "missing"),
    (b"\x01\x00\x00\x00\x02\x08\x01", "compressed"),
    (b"\x00\x00\x00\x00\x09\x08\x01", "truncated"),
    (b"\x00\x00\x00\x00\x01\x08", "varint"),
])
def test_decode_status_rejects_bad_messages(wire: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        decode_status(wire)
