"""Container output: each stdout/stderr pipe goes to the CRI log file and, prefixed with the
container's name, to the terminal of `sandbox run`.

The pipes are non-blocking and read from the supervisor's selector loop; a flood meets pipe
back-pressure (the container blocks in write), never an unbounded buffer here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from sandbox.logs.cri import LineSplitter, format_record
from sandbox.record import field, record

READ_CHUNK = 65536
PIPE_BUF = 4096  # a pipe write of at most this many bytes is atomic: all or nothing


@record(frozen=False)
class Terminal:
    """Where prefixed lines go. The supervisor must never block on it: a terminal (or pipe) that
    is not being read would otherwise stall every probe and restart of the pod. So a chunk is
    written only when the fd is writable right now, at most PIPE_BUF bytes at a time (a pipe then
    takes it whole); what cannot be written is dropped, counted, and reported once the reader is
    back. The CRI log file always gets everything. After EPIPE it stops writing."""

    stdout_fd: int = 1
    stderr_fd: int = 2
    broken: bool = False
    dropped: int = 0  # lines not shown since the last successful write

    def write(self, stream: str, data: bytes) -> None:
        if self.broken:
            return
        fd = self.stdout_fd if stream == "stdout" else self.stderr_fd
        if self.dropped and self._put(fd, f"[sandbox: {self.dropped} line(s) of output not shown: the "
                                          "terminal was not reading; they are in the logs]\n".encode()):
            self.dropped = 0
        if not self._put(fd, data):
            self.dropped += data.count(b"\n") or 1

    def _put(self, fd: int, data: bytes) -> bool:
        """Write all of `data` without blocking, or as much as fits in whole lines; False if some
        was dropped."""
        import select

        try:
            while data:
                if not select.select([], [fd], [], 0)[1]:
                    return False
                cut = data.rfind(b"\n", 0, PIPE_BUF) + 1 or min(len(data), PIPE_BUF)
                data = data[os.write(fd, data[:cut]) :]
        except BrokenPipeError:
            self.broken = True
            return False
        except BlockingIOError:
            return False
        return True


@record(frozen=False)
class _Stream:
    name: str  # "stdout" | "stderr"
    fd: int
    splitter: LineSplitter = field(default_factory=LineSplitter)


class ContainerLog:
    """The output of one container instance (one restartCount): two pipes, one CRI file."""

    def __init__(self, container: str, path: Path, terminal: Terminal | None) -> None:
        self.container = container
        self.path = path
        self.terminal = terminal
        self.prefix = f"[{container}] ".encode()
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        self.file_fd = os.open(path, flags, 0o640)
        self.streams: dict[int, _Stream] = {}
        self.child_fds: list[int] = []
        for name in ("stdout", "stderr"):
            read_fd, write_fd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            os.set_blocking(write_fd, True)
            self.streams[read_fd] = _Stream(name, read_fd)
            self.child_fds.append(write_fd)

    @property
    def stdio(self) -> tuple[int, int]:
        """The write ends to hand to the container as fds 1 and 2."""
        return self.child_fds[0], self.child_fds[1]

    def close_child_ends(self) -> None:
        """After the spawn: our copies of the write ends must go, or EOF never comes."""
        for fd in self.child_fds:
            os.close(fd)
        self.child_fds = []

    def read_fds(self) -> list[int]:
        return list(self.streams)

    def on_readable(self, fd: int) -> bool:
        """Pump what is there; False once this pipe reached EOF (and was closed)."""
        stream = self.streams[fd]
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return True
        if data:
            self._emit(stream.name, stream.splitter.feed(data))
            return True
        self._emit(stream.name, stream.splitter.flush())
        os.close(fd)
        del self.streams[fd]
        return False

    def _emit(self, stream: str, records: list[tuple[str, bytes]]) -> None:
        if not records:
            return
        now = time.time_ns()
        os.write(self.file_fd, b"".join(format_record(stream, tag, content, now) for tag, content in records))
        if self.terminal is not None:
            self.terminal.write(stream, b"".join(self.prefix + content + b"\n" for _, content in records))

    def close(self) -> None:
        """Drain what the pipes still hold (without waiting for writers), then close all."""
        for fd, stream in list(self.streams.items()):
            while True:
                try:
                    data = os.read(fd, READ_CHUNK)
                except BlockingIOError:
                    break
                if not data:
                    break
                self._emit(stream.name, stream.splitter.feed(data))
            self._emit(stream.name, stream.splitter.flush())
            os.close(fd)
        self.streams.clear()
        self.close_child_ends()
        if self.file_fd >= 0:
            os.close(self.file_fd)
            self.file_fd = -1

    @property
    def finished(self) -> bool:
        return not self.streams

