"""`grpc` probes: `grpc.health.v1.Health/Check` as a non-blocking `Check` (see `checks`).

Cleartext HTTP/2 with prior knowledge (h2c, what grpc-go's insecure credentials do) through the
sans-IO `h2` package, imported only when a gRPC probe starts: the rest of the runtime never pays
for it. The two protobuf messages are one field each, so they are encoded by hand:
`HealthCheckRequest{string service = 1}`, `HealthCheckResponse{ServingStatus status = 1}`.

Outputs follow `pkg/probe/grpc/grpc.go`: SERVING is success ("service is serving"); another
status fails with `service unhealthy (responded with "NOT_SERVING")`; an RPC error fails with
`error: health rpc probe failed: rpc error: code = NotFound desc = unknown service`.

One difference: the kubelet dials with grpc.WithBlock, which keeps retrying a refused connection
until the timeout; here a refused connection fails at once, with the dial error in the output.
The result (Failure) is the same, the probe is just over sooner.
"""

from __future__ import annotations

from urllib.parse import unquote

from sandbox.probing.checks import KUBE_VERSION, StreamCheck, socket_error_outcome
from sandbox.probing.outcome import ERROR, FAILURE, SUCCESS, Outcome
from sandbox.probing.stream import StreamError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sandbox.probing.stream import SocketFactory

HEALTH_CHECK_PATH = "/grpc.health.v1.Health/Check"
SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
# grpc-go's codes.Code.String()
GRPC_CODES = ("OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
              "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
              "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated")
UNIMPLEMENTED = 12
# gRPC's HTTP-to-gRPC status mapping (doc/http-grpc-status-mapping.md) for non-200 answers
_HTTP_TO_GRPC = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}


def encode_request(service: str) -> bytes:
    """A length-prefixed gRPC message holding HealthCheckRequest{service}."""
    raw = service.encode()
    message = b"\x0a" + _varint(len(raw)) + raw if raw else b""  # proto3 omits the empty string
    return b"\x00" + len(message).to_bytes(4, "big") + message


def decode_status(body: bytes) -> int:
    """The `status` of the first gRPC message in `body` (0, UNKNOWN, when the field is absent)."""
    if len(body) < 5:
        raise ValueError("response message is missing")
    if body[0] != 0:
        raise ValueError("response message is compressed, but no compression was negotiated")
    length = int.from_bytes(body[1:5], "big")
    message = body[5:5 + length]
    if len(message) < length:
        raise ValueError("response message is truncated")
    status, pos = 0, 0
    while pos < len(message):
        tag, pos = _read_varint(message, pos)
        field, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, pos = _read_varint(message, pos)
            if field == 1:
                status = value
        elif wire_type == 2:
            size, pos = _read_varint(message, pos)
            pos += size
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
    return status


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated protobuf varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def rpc_error(code: str, description: str) -> str:
    """grpc.go's output for a failed RPC, around grpc-go's status error text."""
    return f"error: health rpc probe failed: rpc error: code = {code} desc = {description}"


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("latin-1")


class GrpcCheck(StreamCheck):
    """One gRPC health check of `service` ("" = the whole server) on host:port."""

    def __init__(self, open_socket: SocketFactory, *, port: int, host: str = "127.0.0.1",
                 service: str = "", timeout: float = 1) -> None:
        super().__init__(open_socket, host, port, timeout)
        self.service = service
        self._h2: Any = None  # h2.connection.H2Connection once TCP is up
        self._stream_id = 0
        self._headers: dict[str, str] = {}  # response headers, then trailers on top
        self._body = bytearray()

    def _begin(self, now: float) -> Outcome | None:
        try:
            self._stream.open()
        except StreamError as exc:
            return self._connect_failed(exc)
        except (OSError, ValueError) as exc:
            self.close()
            return socket_error_outcome(self._stream.address, exc)
        return self._start_rpc() if self._stream.connected else None

    def _ready(self, fd: int, mask: int, now: float) -> Outcome | None:
        if fd != self._stream.fd:
            return None
        try:
            data = self._stream.on_ready(mask)
        except StreamError as exc:
            return self._connect_failed(exc) if exc.dialing else self._rpc_failed("Unavailable", str(exc))
        outcome = self._start_rpc() if self._h2 is None else None
        if outcome is None and data:
            outcome = self._receive(data)
        if outcome is None and self._stream.eof:
            outcome = self._rpc_failed("Unavailable", "connection closed before the response was complete")
        return outcome

    def _expire(self, now: float) -> Outcome:
        from sandbox.supervisor.backoff import format_duration

        limit = format_duration(self.timeout)
        if self._h2 is None:
            text = (f'timeout: failed to connect service "{self._stream.address}" within {limit}: '
                    "context deadline exceeded")
        else:
            text = f"timeout: health rpc did not complete within {limit}"
        return self._finish(Outcome(FAILURE, text))

    def _start_rpc(self) -> Outcome | None:
        """TCP is up: HTTP/2 preface and settings, then the one request, all queued at once."""
        try:
            from h2.config import H2Configuration
            from h2.connection import H2Connection
        except ImportError:  # a missing dependency must not take the supervisor loop down
            return self._finish(Outcome(ERROR, "gRPC probes need the h2 package (h2>=4.1): not installed"))

        self._h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self._h2.initiate_connection()
        self._stream_id = self._h2.get_next_available_stream_id()
        self._h2.send_headers(self._stream_id, [
            (":method", "POST"), (":scheme", "http"), (":path", HEALTH_CHECK_PATH),
            (":authority", self._stream.address), ("content-type", "application/grpc"),
            ("te", "trailers"), ("user-agent", f"kube-probe/{KUBE_VERSION}"),
            ("grpc-timeout", f"{max(int(self.timeout * 1000), 1)}m"),
        ])
        self._h2.send_data(self._stream_id, encode_request(self.service), end_stream=True)
        self._flush()
        return None

    def _receive(self, data: bytes) -> Outcome | None:
        import h2.events
        import h2.exceptions

        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            return self._rpc_failed("Internal", f"HTTP/2 protocol error: {exc}")
        for event in events:
            if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                self._headers.update((_text(name), _text(value)) for name, value in event.headers)
            elif isinstance(event, h2.events.DataReceived):
                self._body += event.data
                self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == self._stream_id:
                return self._finish(self._answer())
            elif isinstance(event, h2.events.StreamReset) and event.stream_id == self._stream_id:
                return self._rpc_failed("Internal", f"stream terminated by RST_STREAM with error code: "
                                                    f"{event.error_code}")
            elif isinstance(event, h2.events.ConnectionTerminated):
                return self._rpc_failed("Unavailable", f"the connection is closing (GOAWAY, error code "
                                                       f"{event.error_code})")
        self._flush()
        return None

    def _answer(self) -> Outcome:
        """The response is complete: its gRPC status, then the health status in the message."""
        code, message = self._grpc_status()
        if code == UNIMPLEMENTED:
            return Outcome(FAILURE, "error: this server does not implement the grpc health protocol "
                                    f"(grpc.health.v1.Health): {message}")
        if code != 0:
            name = GRPC_CODES[code] if code < len(GRPC_CODES) else f"Code({code})"
            return Outcome(FAILURE, rpc_error(name, message))
        try:
            status = decode_status(bytes(self._body))
        except ValueError as exc:
            return Outcome(FAILURE, rpc_error("Internal", str(exc)))
        if status != 1:
            name = SERVING_STATUS.get(status, str(status))
            return Outcome(FAILURE, f'service unhealthy (responded with "{name}")')
        return Outcome(SUCCESS, "service is serving")

    def _grpc_status(self) -> tuple[int, str]:
        http_status = self._headers.get(":status", "")
        if "grpc-status" in self._headers:
            try:
                return int(self._headers["grpc-status"]), unquote(self._headers.get("grpc-message", ""))
            except ValueError:
                return 2, f"malformed grpc-status {self._headers['grpc-status']!r}"
        if http_status != "200":
            code = _HTTP_TO_GRPC.get(int(http_status or 0), 2)
            return code, f"unexpected HTTP status code received from server: {http_status}"
        return 13, "server closed the stream without sending trailers"

    def _flush(self) -> None:
        pending = self._h2.data_to_send()
        if pending:
            try:
                self._stream.send(pending)
            except StreamError:
                pass  # the read side reports the broken connection

    def _connect_failed(self, exc: Exception) -> Outcome:
        text = f'error: failed to connect service at "{self._stream.address}": {exc}'
        return self._finish(Outcome(FAILURE, text))

    def _rpc_failed(self, code: str, text: str) -> Outcome:
        return self._finish(Outcome(FAILURE, rpc_error(code, text)))

    def _finish(self, outcome: Outcome) -> Outcome:
        self.close()
        return outcome
