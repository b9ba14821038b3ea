"""The CRI container log format, as containerd writes it and the kubelet / `kubectl logs` read it.

One record per line: `<timestamp> <stream> <tag> <content>\\n`, single spaces. The timestamp is Go
RFC3339Nano in the runtime's local zone; the stream is `stdout` or `stderr`; the tag is `F` for a
full line or `P` for a partial one (an over-long line's chunks, or output that ended without a
newline). Readers join `P` records until an `F`. A container's instance `n` writes `<n>.log`, n being
its restart count (and rotates it, see rotation.py).
"""

from __future__ import annotations

import time
from os import PathLike

TYPE_CHECKING = False  # annotations only
if TYPE_CHECKING:
    import re
    from collections.abc import Iterable, Iterator

STREAMS = ("stdout", "stderr")
FULL = "F"
PARTIAL = "P"
MAX_LINE = 16384  # containerd's max_container_log_line_size: 16 KiB
# Go RFC3339 / RFC3339Nano (bytes pattern: \d is ASCII only). Compiled on the first record read:
# only readers need it, and compiling it at import cost every `sandbox run` ~0.3 ms (-X importtime).
_TIMESTAMP = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)"
_timestamp: re.Pattern[bytes] | None = None


def rfc3339_nano(ts_ns: int) -> str:
    """Go's RFC3339Nano in the local zone: fraction without trailing zeros, `Z` for offset 0."""
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    local = time.localtime(seconds)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", local)
    if nanos:
        text += f".{nanos:09d}".rstrip("0")
    offset = local.tm_gmtoff or 0
    if offset == 0:
        return text + "Z"
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def record_prefix(stream: str, ts_ns: int) -> bytes:
    """`<timestamp> <stream> `: the start of every record of `stream` written at `ts_ns` (a writer
    formats the time once per batch of records, not once per line)."""
    if stream not in STREAMS:
        raise ValueError(f"unknown log stream {stream!r}: expected stdout or stderr")
    return f"{rfc3339_nano(ts_ns)} {stream} ".encode("ascii")


def format_record(stream: str, tag: str, content: bytes, ts_ns: int) -> bytes:
    """One CRI log line for `content` (which must not contain a newline) written at `ts_ns`."""
    if tag not in (FULL, PARTIAL):
        raise ValueError(f"unknown log tag {tag!r}: expected F or P")
    if b"\n" in content:
        raise ValueError("log record content must not contain a newline")
    return record_prefix(stream, ts_ns) + tag.encode("ascii") + b" " + content + b"\n"


class LineSplitter:
    """Cuts one output stream into CRI records the way containerd's redirectLogs does.

    Each complete line becomes `F` (its `\\n`, and a `\\r` just before it, removed). A line longer
    than `max_line` is written as `P` chunks of exactly `max_line` bytes followed by an `F` with
    the rest, so no record exceeds `max_line` and a reader can join them back. At most `max_line`
    bytes of an unfinished line are buffered (plus a trailing `\\r` that may start a `\\r\\n`).
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        if max_line < 1:
            raise ValueError(f"max_line must be at least 1, got {max_line}")
        self.max_line = max_line
        self._tail = b""

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        """The `(tag, content)` records completed by `data`."""
        buf = self._tail + data
        out: list[tuple[str, bytes]] = []
        start = 0
        while (end := buf.find(b"\n", start)) >= 0:
            stop = end - 1 if end > start and buf[end - 1] == 0x0D else end  # drop "\r\n" too
            out.extend(self._chunks(buf[start:stop], final=FULL))
            start = end + 1
        # A lone trailing "\r" is not counted: it may be the first half of a "\r\n".
        limit = len(buf) - buf.endswith(b"\r")
        while limit - start > self.max_line:
            out.append((PARTIAL, buf[start : start + self.max_line]))
            start += self.max_line
        self._tail = buf[start:]
        return out

    def flush(self) -> list[tuple[str, bytes]]:
        """At EOF: output that ended without a newline is written as a partial record."""
        tail, self._tail = self._tail, b""
        return self._chunks(tail, final=PARTIAL) if tail else []

    def _chunks(self, line: bytes, final: str) -> list[tuple[str, bytes]]:
        """`P` chunks of `max_line` bytes, then the rest (1..max_line bytes, or b"") as `final`."""
        size = self.max_line
        count = (len(line) - 1) // size if line else 0
        out = [(PARTIAL, line[i * size : (i + 1) * size]) for i in range(count)]
        out.append((final, line[count * size :]))
        return out


def parse_record(line: bytes) -> tuple[str, str, str, bytes]:
    """Split one CRI record into (timestamp, stream, tag, content), without the trailing newline.

    Like the kubelet's parseCRILog, a tag may carry `:`-separated extras (`P:x`); only the first
    part counts and is returned.
    """
    if line.endswith(b"\n"):
        line = line[:-1]
    parts = line.split(b" ", 3)
    if len(parts) < 4:
        raise ValueError(f"malformed log record {line[:80]!r}: expected '<time> <stream> <tag> <content>'")
    raw_ts, raw_stream, raw_tag, content = parts
    global _timestamp
    if _timestamp is None:
        import re

        _timestamp = re.compile(_TIMESTAMP)
    if _timestamp.fullmatch(raw_ts) is None:
        raise ValueError(f"bad timestamp {raw_ts[:40]!r} in log record")
    ts = raw_ts.decode("ascii")
    stream = raw_stream.decode("ascii", "replace")
    if stream not in STREAMS:
        raise ValueError(f"unexpected stream type {stream!r} in log record")
    tag = raw_tag.split(b":", 1)[0].decode("ascii", "replace")
    if tag not in (FULL, PARTIAL):
        raise ValueError(f"unexpected log tag {tag!r} in log record")
    return ts, stream, tag, content


def iter_log_lines(path: str | PathLike[str]) -> Iterator[tuple[str, bytes]]:
    """Yield `(stream, line)` for each line the container wrote, as `kubectl logs` prints them.

    `P` records are joined (per stream) until their `F`; a full line ends with `\\n`. A run of `P`
    records left at the end of the file (output that ended without a newline, or a writer still
    busy) is yielded without one. Unparseable records, such as a last line cut short while
    being written, are skipped, as the kubelet does.
    """
    with open(path, "rb") as f:
        yield from join_records(f)


def join_records(records: Iterable[bytes]) -> Iterator[tuple[str, bytes]]:
    """`iter_log_lines` over any sequence of raw records, e.g. several files read one after the
    other: a line whose `P` records end in one file and whose `F` starts the next is joined."""
    joiner = RecordJoiner()
    for raw in records:
        line = joiner.feed(raw)
        if line is not None:
            yield line
    yield from joiner.finish()


class RecordJoiner:
    """Joins `P` records per stream until their `F`, one record at a time (for a reader that
    follows a growing log); unparseable records are skipped."""

    def __init__(self) -> None:
        self.pending: dict[str, list[bytes]] = {}

    def feed(self, raw: bytes) -> tuple[str, bytes] | None:
        """The `(stream, line)` that `raw` completes (ending with `\\n`), or None."""
        try:
            _, stream, tag, content = parse_record(raw)
        except ValueError:
            return None
        if tag == PARTIAL:
            self.pending.setdefault(stream, []).append(content)
            return None
        return stream, b"".join(self.pending.pop(stream, [])) + content + b"\n"

    def finish(self) -> list[tuple[str, bytes]]:
        """At the end: each stream's unfinished line, without a newline."""
        out = [(stream, b"".join(chunks)) for stream, chunks in self.pending.items()]
        self.pending = {}
        return out


def log_file_name(restart_count: int) -> str:
    """`<n>.log`: each container instance gets its own file, named by its restart count."""
    if restart_count < 0:
        raise ValueError(f"restart count must not be negative, got {restart_count}")
    return f"{restart_count}.log"
