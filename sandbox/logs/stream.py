"""Container output: each stdout/stderr pipe goes to the CRI log file and, prefixed with the
container's name, to the terminal of `sandbox run`.

The pipes are non-blocking and read from the supervisor's selector loop; a flood meets pipe
back-pressure (the container blocks in write), never an unbounded buffer here. The log file is
rotated by size between whole records, and a new instance's start removes the files of the
instances before the previous one (rotation.py has the rules).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from sandbox.log import get_logger
from sandbox.logs.cri import FULL, PARTIAL, LineSplitter, record_prefix
from sandbox.logs.rotation import RotationPolicy, excess_rotated, rotated_files, rotated_name, stale_files
from sandbox.record import Record, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

log = get_logger(__name__)

READ_CHUNK = 65536
PIPE_BUF = 4096  # a pipe write of at most this many bytes is atomic: all or nothing


class Terminal(Record, frozen=False):
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


class _Stream(Record, frozen=False):
    name: str  # "stdout" | "stderr"
    fd: int
    splitter: LineSplitter = field(default_factory=LineSplitter)


class LogFile:
    """The current CRI file of one container instance, rotated by size between whole records: a
    batch of records that would take the file past `policy.max_size` is cut before the record
    that would cross it, the file is renamed to `<n>.log.<YYYYMMDD-hhmmss>`, the oldest rotated
    files beyond `policy.max_files` are removed, and a new `<n>.log` takes the rest. A file holds
    more than `max_size` only when a single record does (at most 16 KiB of content)."""

    FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW

    def __init__(self, path: Path, policy: RotationPolicy | None = None, wall: Callable[[], float] = time.time) -> None:
        self.path = path
        self.policy = policy if policy is not None else RotationPolicy()
        self.wall = wall
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.fd = os.open(path, self.FLAGS, 0o640)
        self.size = os.fstat(self.fd).st_size  # appending to a file a previous run left
        self.rotations = 0
        self.broken_rotation = False  # rotation failed once: keep writing, say it once

    def write(self, records: list[bytes]) -> None:
        """Append whole records (each ending with a newline), rotating between them as needed."""
        limit = self.policy.max_size
        total = sum(map(len, records))
        if limit <= 0 or self.size + total <= limit or self.broken_rotation:
            self._write(b"".join(records), total)
            return
        batch: list[bytes] = []
        batch_size = 0
        for rec in records:
            if self.size + batch_size + len(rec) > limit and self.size + batch_size > 0:
                if batch:
                    self._write(b"".join(batch), batch_size)
                    batch, batch_size = [], 0
                self.rotate()
            batch.append(rec)
            batch_size += len(rec)
        if batch:
            self._write(b"".join(batch), batch_size)

    def _write(self, data: bytes, size: int) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.size += size

    def rotate(self) -> None:
        """Rename the current file to its rotated name and open a new one (the kubelet's order:
        leftovers and excess rotated files first, so that the limit holds at every moment)."""
        if self.broken_rotation:
            return
        try:
            rotate_file(self.path, self.policy, self.wall())
            fd = os.open(self.path, self.FLAGS, 0o640)
        except OSError as e:
            self.broken_rotation = True
            log.warning("cannot rotate container log %s (%s): it grows without rotation from now on", self.path, e)
            return
        os.close(self.fd)
        self.fd, self.size = fd, 0
        self.rotations += 1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def rotate_file(path: Path, policy: RotationPolicy, now: float) -> None:
    """Rename `path` to its rotated name (the kubelet's order: leftovers and excess rotated files
    removed first, so the limit holds at every moment); the writer then opens `path` anew (its
    own LogFile, or the pod's shim through ReopenContainerLog). OSError if it cannot."""
    directory, current = path.parent, path.name
    rotated, unused = rotated_files(current, os.listdir(directory))
    excess = excess_rotated(rotated, policy.max_files)
    for name in unused + excess:
        try:
            os.unlink(directory / name)
        except FileNotFoundError:
            pass
    kept = [n for n in rotated if n not in excess]
    os.rename(path, directory / rotated_name(current, kept, now))


def prune_instances(directory: Path, starting: int) -> list[str]:
    """As instance `starting` of a container starts: remove the log files of every instance but it
    and the previous one (the kubelet keeps one dead container per container). Returns the names
    removed."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    removed = []
    for name in stale_files(names, starting):
        try:
            os.unlink(directory / name)
            removed.append(name)
        except FileNotFoundError:
            pass
    return removed


_TAGS = {FULL: b"F ", PARTIAL: b"P "}


class ContainerLog:
    """The output of one container instance (one restartCount): two pipes, one CRI file."""

    def __init__(self, container: str, path: Path, terminal: Terminal | None,
                 policy: RotationPolicy | None = None) -> None:
        self.container = container
        self.path = path
        self.terminal = terminal
        self.prefix = f"[{container}] ".encode()
        self.file = LogFile(path, policy)
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
        head = record_prefix(stream, time.time_ns())
        self.file.write([head + _TAGS[tag] + content + b"\n" for tag, content in records])
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
        self.file.close()

    @property
    def finished(self) -> bool:
        return not self.streams
