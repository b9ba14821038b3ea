"""Writing a whole buffer to a file descriptor: os.write may take only part of it (a pipe, a
socket, a signal arriving mid-write)."""

from __future__ import annotations

import os


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
