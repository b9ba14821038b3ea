"""CRI log lines: splitting like containerd, timestamps like Go, reading back like kubectl logs."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.logs.cri import (
    LineSplitter,
    format_record,
    iter_log_lines,
    log_file_name,
    parse_record,
    rfc3339_nano,
)

NS = 1_000_000_000
T0 = 1795364682  # 2026-11-22T16:24:42Z


def _set_tz(zone: str | None) -> None:
    if zone is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = zone
    time.tzset()


@pytest.fixture
def restore_tz() -> Iterator[None]:
    """Let a test change the local zone; put the original back afterwards."""
    saved = os.environ.get("TZ")
    yield
    _set_tz(saved)


@pytest.fixture
def utc(restore_tz: None) -> None:
    _set_tz("UTC")


# --- timestamps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts_ns", "text"),
    [
        (T0 * NS, "2026-11-22T16:24:42Z"),  # whole second: no fraction at all
        (T0 * NS + 669794202, "2026-11-22T16:24:42.669794202Z"),
        (T0 * NS + 500000000, "2026-11-22T16:24:42.5Z"),
        (T0 * NS + 120000000, "2026-11-22T16:24:42.12Z"),
        (T0 * NS + 1000, "2026-11-22T16:24:42.000001Z"),
        (T0 * NS + 1, "2026-11-22T16:24:42.000000001Z"),
        (0, "1970-01-01T00:00:00Z"),
    ],
)
def test_rfc3339_nano_utc(utc: None, ts_ns: int, text: str) -> None:
    assert rfc3339_nano(ts_ns) == text


@pytest.mark.parametrize(
    ("tz", "ts_ns", "text"),
    [
        ("Europe/Paris", T0 * NS + 250000000, "2026-11-22T17:24:42.25+01:00"),
        ("Europe/Paris", 1782136800 * NS, "2026-06-22T16:00:00+02:00"),  # summer time
        ("America/New_York", T0 * NS, "2026-11-22T11:24:42-05:00"),
        ("Asia/Kolkata", T0 * NS, "2026-11-22T21:54:42+05:30"),
        ("Etc/GMT+0", T0 * NS, "2026-11-22T16:24:42Z"),  # offset 0 is Z whatever the zone's name
        ("Europe/London", T0 * NS, "2026-11-22T16:24:42Z"),
    ],
)
def test_rfc3339_nano_uses_local_offset(restore_tz: None, tz: str, ts_ns: int, text: str) -> None:
    if not Path("/usr/share/zoneinfo", tz).exists():
        pytest.skip(f"no tzdata for {tz}")
    _set_tz(tz)
    assert rfc3339_nano(ts_ns) == text


def test_format_record(utc: None) -> None:
    assert format_record("stdout", "F", b"hello world", T0 * NS + 669794202) == (
        b"2026-11-22T16:24:42.669794202Z stdout F hello world\n"
    )
    assert format_record("stderr", "P", b"", T0 * NS) == b"2026-11-22T16:24:42Z stderr P \n"


@pytest.mark.parametrize(
    ("stream", "tag", "content", "message"),
    [
        ("stdin", "F", b"x", "unknown log stream"),
        ("stdout", "X", b"x", "unknown log tag"),
        ("stdout", "F", b"a\nb", "newline"),
    ],
)
def test_format_record_rejects_bad_input(stream: str, tag: str, content: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        format_record(stream, tag, content, 0)


# --- splitting ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "expected", "flushed"),
    [
        ([b"hello\n"], [("F", b"hello")], []),
        ([b"a\nb\n"], [("F", b"a"), ("F", b"b")], []),
        ([b"\n"], [("F", b"")], []),  # empty line: empty full record
        ([b"crlf\r\n"], [("F", b"crlf")], []),
        ([b"crlf\r", b"\nnext\n"], [("F", b"crlf"), ("F", b"next")], []),  # \r\n split across reads
        ([b"a\rb\n"], [("F", b"a\rb")], []),  # a lone \r inside a line is content
        ([b"two\r\r\n"], [("F", b"two\r")], []),  # only one \r belongs to the line ending
        ([b"hel", b"lo\nwor", b"ld\n"], [("F", b"hello"), ("F", b"world")], []),
        ([b"no newline"], [], [("P", b"no newline")]),
        ([b"ends\r"], [], [("P", b"ends\r")]),  # at EOF a \r is not a line ending
        ([b"x\n", b"tail"], [("F", b"x")], [("P", b"tail")]),
        ([], [], []),
    ],
)
def test_line_splitter(
    chunks: list[bytes], expected: list[tuple[str, bytes]], flushed: list[tuple[str, bytes]]
) -> None:
    splitter = LineSplitter()
    got = [record for chunk in chunks for record in splitter.feed(chunk)]
    assert got == expected
    assert splitter.flush() == flushed
    assert splitter.flush() == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"abcd\n", [("F", b"abcd")]),  # exactly max: one full record
        (b"abcde\n", [("P", b"abcd"), ("F", b"e")]),
        (b"abcdefgh\n", [("P", b"abcd"), ("F", b"efgh")]),
        (b"abcdefghi\n", [("P", b"abcd"), ("P", b"efgh"), ("F", b"i")]),
        (b"abcd\r\n", [("F", b"abcd")]),  # the \r\n does not count towards the limit
    ],
)
def test_long_lines_become_partial_chunks(data: bytes, expected: list[tuple[str, bytes]]) -> None:
    assert LineSplitter(max_line=4).feed(data) == expected


def test_long_unfinished_line_is_not_buffered_beyond_max() -> None:
    splitter = LineSplitter(max_line=4)
    assert splitter.feed(b"abcdefghij") == [("P", b"abcd"), ("P", b"efgh")]
    assert splitter.feed(b"k") == []
    assert splitter.feed(b"lm") == [("P", b"ijkl")]
    assert splitter.feed(b"\n") == [("F", b"m")]


def test_trailing_cr_waits_for_its_newline() -> None:
    splitter = LineSplitter(max_line=4)
    assert splitter.feed(b"abcd\r") == []  # 4 bytes of content plus a possible "\r\n"
    assert splitter.feed(b"\n") == [("F", b"abcd")]


def test_default_max_is_containerd_16k() -> None:
    records = LineSplitter().feed(b"x" * 40000 + b"\n")
    assert [(tag, len(content)) for tag, content in records] == [("P", 16384), ("P", 16384), ("F", 7232)]


def test_max_line_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_line"):
        LineSplitter(max_line=0)


def _split_all(data: bytes, cuts: list[int], max_line: int) -> list[tuple[str, bytes]]:
    splitter = LineSplitter(max_line)
    out, prev = [], 0
    for cut in sorted(set(cuts)) + [len(data)]:
        out += splitter.feed(data[prev:cut])
        prev = cut
    return out + splitter.flush()


@given(
    st.binary(max_size=200).map(lambda b: b.replace(b"0", b"\n").replace(b"1", b"\r")),
    st.lists(st.integers(min_value=0, max_value=200), max_size=10),
    st.integers(min_value=1, max_value=9),
)
def test_splitting_does_not_depend_on_read_boundaries(data: bytes, cuts: list[int], max_line: int) -> None:
    cuts = [c for c in cuts if c <= len(data)]
    records = _split_all(data, cuts, max_line)
    assert records == _split_all(data, [], max_line)
    assert all(len(content) <= max_line for _, content in records)
    # Joining P chunks and ending each F with a newline gives the output back, line endings normalised.
    rebuilt = b"".join(content + (b"\n" if tag == "F" else b"") for tag, content in records)
    normalised = data.replace(b"\r\n", b"\n")
    assert rebuilt == normalised


# --- parsing and reading back -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            b"2026-11-22T16:24:42.669794202Z stdout F hello\n",
            ("2026-11-22T16:24:42.669794202Z", "stdout", "F", b"hello"),
        ),
        (b"2026-11-22T17:24:42+01:00 stderr P part", ("2026-11-22T17:24:42+01:00", "stderr", "P", b"part")),
        (b"2026-11-22T16:24:42Z stdout F \n", ("2026-11-22T16:24:42Z", "stdout", "F", b"")),
        (
            b"2026-11-22T16:24:42Z stdout F  two  spaces \n",
            ("2026-11-22T16:24:42Z", "stdout", "F", b" two  spaces "),
        ),
        (b"2026-11-22T16:24:42Z stdout P:extra x\n", ("2026-11-22T16:24:42Z", "stdout", "P", b"x")),
    ],
)
def test_parse_record(line: bytes, expected: tuple[str, str, str, bytes]) -> None:
    assert parse_record(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"", "malformed"),
        (b"garbage\n", "malformed"),
        (b"2026-11-22T16:24:42Z stdout F\n", "malformed"),  # no space after the tag
        (b"yesterday stdout F x\n", "bad timestamp"),
        (b"2026-11-22 16:24:42Z stdout F x\n", "bad timestamp"),
        (b"2026-11-22T16:24:42 stdout F x\n", "bad timestamp"),  # no zone
        (b"2026-11-22T16:24:42.1234567890Z stdout F x\n", "bad timestamp"),
        (b"2026-11-22T16:24:42Z stdin F x\n", "unexpected stream"),
        (b"2026-11-22T16:24:42Z stdout X x\n", "unexpected log tag"),
    ],
)
def test_parse_record_rejects_garbage(line: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_record(line)


def _write_log(path: Path, output: list[tuple[str, bytes]], max_line: int = 16384) -> None:
    """Write `(stream, data)` output pieces as a runtime would, one splitter per stream."""
    splitters = {"stdout": LineSplitter(max_line), "stderr": LineSplitter(max_line)}
    ts = T0 * NS
    with path.open("wb") as f:
        for stream, data in output + [("stdout", b""), ("stderr", b"")]:
            records = splitters[stream].feed(data) if data else splitters[stream].flush()
            for tag, content in records:
                ts += 1
                f.write(format_record(stream, tag, content, ts))


def test_round_trip_format_parse_join(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    _write_log(
        log,
        [
            ("stdout", b"first line\nsecond "),
            ("stderr", b"warning: " + b"w" * 10 + b"\r\n"),
            ("stdout", b"half\n"),
            ("stdout", b"no newline at exit"),
        ],
        max_line=4,
    )
    assert list(iter_log_lines(log)) == [
        ("stdout", b"first line\n"),
        ("stderr", b"warning: wwwwwwwwww\n"),
        ("stdout", b"second half\n"),
        ("stdout", b"no newline at exit"),
    ]


def test_round_trip_of_the_records_themselves(utc: None) -> None:
    for tag, content in LineSplitter(max_line=3).feed(b"abcdefg\n") + [("P", b"")]:
        line = format_record("stdout", tag, content, T0 * NS + 10)
        assert parse_record(line) == ("2026-11-22T16:24:42.00000001Z", "stdout", tag, content)


@given(st.lists(st.tuples(st.sampled_from(["stdout", "stderr"]), st.binary(min_size=1, max_size=40))))
def test_reading_back_gives_each_stream_its_bytes(
    tmp_path_factory: pytest.TempPathFactory, output: list[tuple[str, bytes]]
) -> None:
    log = tmp_path_factory.mktemp("logs") / "0.log"
    _write_log(log, output, max_line=5)
    for stream in ("stdout", "stderr"):
        sent = b"".join(data for s, data in output if s == stream).replace(b"\r\n", b"\n")
        got = b"".join(line for s, line in iter_log_lines(log) if s == stream)
        assert got == sent


def test_reader_skips_garbage_and_a_truncated_last_record(tmp_path: Path) -> None:
    log = tmp_path / "1.log"
    log.write_bytes(
        b"2026-11-22T16:24:42Z stdout F one\n"
        b"not a record\n"
        b"2026-11-22T16:24:42Z stdout P tw\n"
        b"2026-11-22T16:24:42Z stdout F o\n"
        b"2026-11-22T16:24:4"  # the writer was cut off inside the header
    )
    assert list(iter_log_lines(log)) == [("stdout", b"one\n"), ("stdout", b"two\n")]


def test_reader_keeps_content_of_a_record_cut_short(tmp_path: Path) -> None:
    log = tmp_path / "1.log"
    log.write_bytes(b"2026-11-22T16:24:42Z stdout P par\n2026-11-22T16:24:42Z stderr F cut sh")
    assert list(iter_log_lines(log)) == [("stderr", b"cut sh\n"), ("stdout", b"par")]


def test_empty_log(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    log.write_bytes(b"")
    assert list(iter_log_lines(log)) == []


@pytest.mark.parametrize(("count", "name"), [(0, "0.log"), (1, "1.log"), (12, "12.log")])
def test_log_file_name(count: int, name: str) -> None:
    assert log_file_name(count) == name


def test_log_file_name_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        log_file_name(-1)
