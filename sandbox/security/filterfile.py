"""A compiled seccomp filter as the container's start stored it, read back for every process of
the container (its main process, `sandbox exec`, exec probes and hooks). Apart from seccomp.py,
which compiles filters: the exec path reads one and never imports the compiler (0.36 ms,
-X importtime min of 12 runs of `sandbox exec`)."""

from __future__ import annotations

import os

from sandbox.errors import ContainerStartError


class ProfileError(ContainerStartError):
    """A seccomp profile that cannot be read or compiled: the container is not created
    (containerd fails CreateContainer the same way)."""

    def __init__(self, detail: str, errno_: int, path: str) -> None:
        self.detail = detail
        super().__init__("CreateContainerError", "seccomp profile", errno_, path)

    def describe(self) -> str:
        who = f"container {self.container!r}: " if self.container else ""
        return f"{who}{self.reason}: seccomp profile {self.path!r}: {self.detail}"


def read_filter(path: str | os.PathLike[str]) -> bytes:
    """A compiled filter's bytes; ProfileError when it is gone (a process never runs without the
    filter its container got: `sandbox exec` and probes load the same file)."""
    try:
        with open(path, "rb") as f:
            program = f.read()
    except OSError as e:
        raise ProfileError(f"compiled filter unreadable: {e.strerror}", e.errno or 5, str(path)) from None
    if not program or len(program) % 8:
        raise ProfileError("compiled filter is not a struct sock_filter array", 22, str(path))
    return program
