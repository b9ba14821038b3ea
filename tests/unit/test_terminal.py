"""The terminal never blocks the supervisor: a full pipe drops whole lines, counts them, and says
so once the reader is back."""

from __future__ import annotations

import os

from sandbox.logs.stream import Terminal


def test_full_pipe_drops_lines_and_reports_them_later() -> None:
    r, w = os.pipe()
    try:
        term = Terminal(stdout_fd=w, stderr_fd=w)
        line = b"[c] " + b"x" * 95 + b"\n"  # 100 bytes
        for _ in range(2000):  # 200 KB into a 64 KiB pipe: must not block
            term.write("stdout", line)
        assert term.dropped > 0
        received = b""
        while len(received) < 60000:
            received += os.read(r, 65536)
        assert all(chunk == line[:-1] for chunk in received.split(b"\n")[:-1])  # only whole lines
        term.write("stdout", b"[c] after\n")
        tail = os.read(r, 65536)
        assert b"line(s) of output not shown" in tail and tail.endswith(b"[c] after\n")
        assert term.dropped == 0
    finally:
        os.close(r)
        os.close(w)


def test_a_closed_reader_stops_output() -> None:
    r, w = os.pipe()
    os.close(r)
    term = Terminal(stdout_fd=w, stderr_fd=w)
    term.write("stdout", b"[c] hello\n")
    assert term.broken
    term.write("stdout", b"[c] more\n")
    os.close(w)
