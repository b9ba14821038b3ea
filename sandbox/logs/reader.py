"""Reading one container instance's log as `kubectl logs` does, across rotation: its rotated files
in order, then the current one; once (a consistent snapshot) or following it (`-f`) while the
runtime keeps writing and rotating.

The runtime rotates by renaming the current file and opening a new one, and removes the oldest
rotated file; an open file stays readable whatever happens to its name. So a reader opens every
file first and checks that no rotation came in between, and a follower keeps the file it reads
open and, at its end, moves on to the file that comes after it once one exists (nothing more is
ever written to a file that has a successor).
"""

from __future__ import annotations

import os

from sandbox.logs.cri import PARTIAL, join_records, parse_record
from sandbox.logs.rotation import COMPRESS_SUFFIX, instance_files, instances
from sandbox.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import BinaryIO

SNAPSHOT_ATTEMPTS = 20
FOLLOW_INTERVAL = 0.1  # a reader's pace: the runtime itself never polls


def container_instances(directory: str | os.PathLike[str]) -> list[int]:
    """The instances (restart counts) a container's log directory has files for, ascending."""
    try:
        return instances(os.listdir(directory))
    except FileNotFoundError:
        return []


def _open(directory: str | os.PathLike[str], name: str) -> BinaryIO:
    path = os.path.join(directory, name)
    if name.endswith(COMPRESS_SUFFIX):  # a kubelet-style manager's; this runtime never compresses
        import gzip

        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _names(directory: str | os.PathLike[str], instance: int) -> list[str]:
    try:
        return instance_files(os.listdir(directory), instance)
    except FileNotFoundError:
        return []


def open_instance(directory: str | os.PathLike[str], instance: int) -> list[BinaryIO]:
    """Every file of the instance, opened, in read order. A rotation between listing and opening
    would lose or repeat a file: the listing is taken again until it did not change meanwhile."""
    for attempt in range(SNAPSHOT_ATTEMPTS):
        last = attempt == SNAPSHOT_ATTEMPTS - 1  # a writer rotating that fast: take what is there
        names = _names(directory, instance)
        opened: list[BinaryIO] = []
        complete = True
        for name in names:
            try:
                opened.append(_open(directory, name))
            except FileNotFoundError:
                complete = False
                if not last:
                    break
        if last or (complete and _names(directory, instance) == names):
            return opened
        for f in opened:
            f.close()
    return []


def _split(buf: bytes) -> tuple[list[bytes], bytes]:
    """The whole records in `buf` (without their newlines) and the unfinished rest."""
    *records, rest = buf.split(b"\n")
    return records, rest


def _records(files: Iterable[BinaryIO]) -> Iterator[bytes]:
    """Whole records only: a last line without its newline is being written."""
    for f in files:
        with f:
            for raw in f:
                if raw.endswith(b"\n"):
                    yield raw


def read_instance(directory: str | os.PathLike[str], instance: int) -> Iterator[tuple[str, bytes]]:
    """`(stream, line)` for each line of the instance's log, oldest first (see `join_records`)."""
    yield from join_records(_records(open_instance(directory, instance)))


class LogLine(Record):
    """One line as `kubectl logs` prints it, with what its options need."""

    timestamp: str  # the time of its first record, as the runtime wrote it (RFC 3339, local zone)
    stream: str  # stdout | stderr
    content: bytes  # ends with a newline, unless the output ended (so far) without one


class TimedJoiner:
    """Joins `P` records per stream until their `F` (as cri.RecordJoiner does), keeping the time of
    each line's first record: the kubelet's `--timestamps` and `--since` look at record times."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[str, list[bytes]]] = {}

    def feed(self, raw: bytes) -> LogLine | None:
        try:
            ts, stream, tag, content = parse_record(raw)
        except ValueError:  # a record cut short or garbage: skipped, as the kubelet does
            return None
        first, chunks = self.pending.pop(stream, (ts, []))
        chunks.append(content)
        if tag == PARTIAL:
            self.pending[stream] = (first, chunks)
            return None
        return LogLine(first, stream, b"".join(chunks) + b"\n")

    def finish(self) -> list[LogLine]:
        """At the end: each stream's unfinished line, without a newline."""
        out = [LogLine(ts, stream, b"".join(chunks)) for stream, (ts, chunks) in self.pending.items()]
        self.pending = {}
        return out


def read_lines(directory: str | os.PathLike[str], instance: int) -> Iterator[LogLine]:
    """The instance's lines with their times, oldest first (a consistent snapshot)."""
    joiner = TimedJoiner()
    for raw in _records(open_instance(directory, instance)):
        line = joiner.feed(raw)
        if line is not None:
            yield line
    yield from joiner.finish()


def follow(directory: str | os.PathLike[str], instance: int, alive: Callable[[], bool],
           write: Callable[[bytes], None], *, interval: float = FOLLOW_INTERVAL,
           sleep: Callable[[float], None] | None = None) -> None:
    """Write the instance's lines, then those appended to it, across rotations, until `alive()`
    says the writer is gone and everything has been read."""

    def emit(line: LogLine) -> None:
        write(line.content if line.content.endswith(b"\n") else line.content + b"\n")

    follow_lines(directory, instance, alive, emit, interval=interval, sleep=sleep)


def follow_lines(directory: str | os.PathLike[str], instance: int, alive: Callable[[], bool],
                 emit: Callable[[LogLine], None], *, interval: float = FOLLOW_INTERVAL,
                 sleep: Callable[[float], None] | None = None) -> None:
    """`follow` with each line's time and stream: `emit` gets the lines there are, then those
    appended, until `alive()` is false and all is read (a last unfinished line without newline)."""
    if sleep is None:
        import time

        sleep = time.sleep
    joiner = TimedJoiner()

    def feed(raw_records: Iterable[bytes]) -> None:
        for raw in raw_records:
            line = joiner.feed(raw)
            if line is not None:
                emit(line)

    files = open_instance(directory, instance)
    for f in files[:-1]:
        feed(_records([f]))
    current: BinaryIO | None = files[-1] if files else None
    tail = b""  # a record being written: kept until its newline arrives
    while True:
        live = alive()
        data = current.read() if current is not None else b""
        if data:
            records, tail = _split(tail + data)
            feed(records)
            continue
        successor = _successor(directory, instance, current)
        if successor is not None:
            if current is not None:  # written up to the rename: read what came since the last read
                feed(_split(tail + current.read())[0])
                current.close()
            current, tail = successor, b""
            continue
        if not live:
            break
        sleep(interval)
    if current is not None:
        current.close()
    for line in joiner.finish():
        emit(line)


def fixed_nano(timestamp: str) -> str:
    """A record's time as `--timestamps` prints it: the kubelet's RFC3339NanoFixed (nine fraction
    digits, the zone as written), from the runtime's RFC3339Nano (trailing zeros trimmed)."""
    cut = next((i for i in range(19, len(timestamp)) if timestamp[i] in "Z+-"), len(timestamp))
    fraction = timestamp[20:cut] if cut > 19 and timestamp[19:20] == "." else ""
    return f"{timestamp[:19]}.{fraction.ljust(9, '0')}{timestamp[cut:]}"


def _successor(directory: str | os.PathLike[str], instance: int, current: BinaryIO | None) -> BinaryIO | None:
    """The file that comes after `current` in the instance's order, opened; None while `current`
    is the newest. A `current` whose name is gone was removed as the oldest rotated file: every
    file left is newer. Names are looked up, stat'ed and opened while the writer may rotate: the
    answer counts only if the listing was the same afterwards (a rotation always adds a name)."""
    ours = os.fstat(current.fileno()) if current is not None else None
    for _ in range(SNAPSHOT_ATTEMPTS):
        names = _names(directory, instance)
        start = 0
        if ours is not None:
            for i, name in enumerate(names):
                try:
                    st = os.stat(os.path.join(directory, name))
                except FileNotFoundError:
                    continue
                if (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino):
                    start = i + 1
                    break
        opened = None
        for name in names[start:]:
            try:
                opened = _open(directory, name)
                break
            except FileNotFoundError:
                continue
        if _names(directory, instance) == names:
            return opened
        if opened is not None:
            opened.close()
    return None  # rotating faster than we can look: the next poll tries again
