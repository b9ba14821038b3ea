"""Sockets created inside a pod's network namespace, for probes and hooks that talk to the pod.

The pod has only `lo`, so an HTTP, TCP or gRPC probe of `127.0.0.1:port` must originate inside
its network namespace. The runtime never calls setns on itself (STYLE 2.3): the native helper
creates the socket in the namespace of the process a pidfd names (pause), and the socket keeps
that namespace for its whole life, so `connect()` on it later reaches the pod. The compiled core
is reached through `sandbox.native`, its only importer.
"""

from __future__ import annotations

import os

from sandbox import native
from sandbox.errors import SandboxError

TYPE_CHECKING = False  # typing and socket cost start-up time; annotations need them only for checkers
if TYPE_CHECKING:
    import socket


class NetnsSocketError(SandboxError):
    """No socket could be created in the pod's network namespace (pod gone, no privilege...)."""

    def __init__(self, op: str, errno_: int, pidfd: int) -> None:
        self.op = op
        self.errno = errno_
        self.pidfd = pidfd
        super().__init__(self.describe())

    def describe(self) -> str:
        import errno

        code = errno.errorcode.get(self.errno, str(self.errno))
        return (f"cannot create a socket in the pod's network namespace (pidfd {self.pidfd}): "
                f"{self.op}: {os.strerror(self.errno)} ({code})")


def socket_in_netns(pidfd: int, family: int, type: int) -> socket.socket:
    """A new socket of `family`/`type` (SOCK_NONBLOCK may be or-ed in) that lives in the network
    namespace of the process `pidfd` refers to; close-on-exec. Raises NetnsSocketError."""
    import socket

    if pidfd < 0:
        raise ValueError(f"pidfd must be an open file descriptor, got {pidfd}")
    try:
        fd = native.socket_in_netns(pidfd, family, type)
    except OSError as e:
        raise NetnsSocketError(e.strerror or "", e.errno or 0, pidfd) from None
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        os.close(fd)
        raise
    if type & socket.SOCK_NONBLOCK:
        # socket(fileno=) reads the type back without the flag and would treat a non-blocking
        # fd as blocking; tell the object what the fd already is.
        sock.setblocking(False)
    return sock
