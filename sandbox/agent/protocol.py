"""The agent's socket protocol (docs/agent-protocol.md): length-prefixed JSON over a root-only
Unix stream socket.

Each message is a 4-byte big-endian length and that many bytes of one UTF-8 JSON object. A
request is {"op": NAME, ...}; its answer is {"ok": true, ...} or {"ok": false, "error": TEXT,
"code": N}, N being the exit code the CLI gives (1 a runtime failure, 2 bad input). A connection
may carry any number of requests, answered in order.
"""

from __future__ import annotations

import _socket  # the C module: `socket` wraps it in enums (~1.5 ms of every `run -d`); a client needs none
import os

from sandbox import fastjson  # json without `import json` (its re/enum: ~5 ms of every `run -d`)
from sandbox.errors import SandboxError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sandbox.paths import RootLayout

VERSION = 1
MAX_MESSAGE = 64 << 20  # a pod manifest is at most a few MiB (spec/limits.py); the rest is slack
HEADER_SIZE = 4  # big-endian unsigned length


class AgentUnavailable(SandboxError):
    """No agent answers on the socket."""


class AgentError(SandboxError):
    """The agent refused or failed a request; `code` is the exit code the CLI gives."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


SOCKET = "agent.sock"  # in the run directory (RootLayout.run)


def socket_path(layout: RootLayout) -> str:
    return os.path.join(layout.run, SOCKET)


def socket_path_of(root: str | None) -> str:
    """socket_path(RootLayout.from_root(root)) without pathlib (a `run -d` needs only this path)."""
    from sandbox.paths import run_dir

    return os.path.join(run_dir(root), SOCKET)


def encode(message: dict[str, Any]) -> bytes:
    data = fastjson.dumps(message).encode()
    return len(data).to_bytes(HEADER_SIZE, "big") + data


class Decoder:
    """Frames out of a byte stream that arrives in pieces."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self.buffer += data
        messages = []
        while len(self.buffer) >= HEADER_SIZE:
            size = int.from_bytes(self.buffer[:HEADER_SIZE], "big")
            if size > MAX_MESSAGE:
                raise ValueError(f"message of {size} bytes is over the {MAX_MESSAGE} limit")
            if len(self.buffer) < HEADER_SIZE + size:
                break
            body = bytes(self.buffer[HEADER_SIZE : HEADER_SIZE + size])
            del self.buffer[: HEADER_SIZE + size]
            message = fastjson.loads(body)
            if not isinstance(message, dict):
                raise ValueError("a message must be a JSON object")
            messages.append(message)
        return messages


class Client:
    """One connection to the agent (blocking)."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.decoder = Decoder()
        self.pending: list[dict[str, Any]] = []

    @classmethod
    def connect(cls, path: str) -> Client:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            sock.connect(path)
        except OSError as e:
            sock.close()
            raise AgentUnavailable(f"no node agent answers on {path}: {os.strerror(e.errno or 0)}") from None
        return cls(sock)

    def call(self, op: str, on_trace: Any = None, **params: Any) -> dict[str, Any]:
        """Send one request and wait for its answer; AgentError if it is a refusal. Messages
        `{"trace": event}` before the answer (a RunPod with "trace") go to `on_trace`."""
        self.sock.sendall(encode({"op": op, **params}))
        answer = self.receive()
        while "trace" in answer and "ok" not in answer:
            if on_trace is not None:
                on_trace(answer["trace"])
            answer = self.receive()
        if not answer.get("ok"):
            raise AgentError(str(answer.get("error") or "the agent failed the request"), int(answer.get("code", 1)))
        return answer

    def receive(self) -> dict[str, Any]:
        while not self.pending:
            data = self.sock.recv(1 << 16)
            if not data:
                raise AgentUnavailable("the node agent closed the connection")
            self.pending += self.decoder.feed(data)
        return self.pending.pop(0)

    def close(self) -> None:
        self.sock.close()
