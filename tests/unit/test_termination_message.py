"""Termination messages: the message file the kubelet prepares, the 4096-byte tail, the fallback to
the last 80 lines / 2048 bytes of the log, and the pod-wide 12 KiB cut."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sandbox.logs.cri import format_record
from sandbox.termination import (
    MAX_LOG_BYTES,
    MAX_MESSAGE_BYTES,
    TerminationMessageError,
    limit_for_pod,
    prepare_message_file,
    read_log_tail,
    read_termination_message,
)

TS = 1_795_364_682_000_000_000
FALLBACK = "FallbackToLogsOnError"


def write_log(path: Path, records: list[tuple[str, str, bytes]]) -> Path:
    path.write_bytes(b"".join(format_record(stream, tag, content, TS) for stream, tag, content in records))
    return path


def test_message_file_is_empty_world_writable_and_random(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        first = prepare_message_file(tmp_path, "web")
        second = prepare_message_file(tmp_path, "web")
    finally:
        os.umask(old)
    assert first.parent == tmp_path / "containers" / "web"
    assert first != second
    for path in (first, second):
        assert len(path.name) == 8 and int(path.name, 16) >= 0
        assert stat.S_IMODE(path.stat().st_mode) == 0o666
        assert path.read_bytes() == b""


@pytest.mark.parametrize("name", ["", ".", "..", "a/b"])
def test_message_file_rejects_names_that_are_not_one_path_component(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="invalid container name"):
        prepare_message_file(tmp_path, name)


def test_message_file_errors_name_the_path(tmp_path: Path) -> None:
    (tmp_path / "containers").write_text("not a directory")
    with pytest.raises(TerminationMessageError, match="create directory .*containers/web"):
        prepare_message_file(tmp_path, "web")


def test_the_file_content_is_the_message(tmp_path: Path) -> None:
    path = tmp_path / "msg"
    path.write_text("config missing\n")
    assert read_termination_message(path, "File", 1, None) == "config missing\n"
    assert read_termination_message(path, FALLBACK, 1, None) == "config missing\n"


def test_only_the_last_4096_bytes_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "msg"
    path.write_bytes(b"a" * 100 + b"b" * MAX_MESSAGE_BYTES)
    assert read_termination_message(path, "File", 0, None) == "b" * MAX_MESSAGE_BYTES


def test_a_missing_or_empty_file_with_policy_file_is_no_message(tmp_path: Path) -> None:
    log = write_log(tmp_path / "0.log", [("stderr", "F", b"boom")])
    assert read_termination_message(tmp_path / "gone", "File", 1, log) == ""
    (tmp_path / "empty").write_bytes(b"")
    assert read_termination_message(tmp_path / "empty", "File", 1, log) == ""


def test_fallback_uses_the_log_only_for_an_empty_file_and_a_failure(tmp_path: Path) -> None:
    log = write_log(tmp_path / "0.log", [("stdout", "F", b"starting"), ("stderr", "F", b"panic: boom")])
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert read_termination_message(empty, FALLBACK, 2, log) == "starting\npanic: boom\n"
    assert read_termination_message(tmp_path / "gone", FALLBACK, 2, log) == "starting\npanic: boom\n"
    assert read_termination_message(empty, FALLBACK, 0, log) == ""  # exit 0: no fallback
    assert read_termination_message(empty, FALLBACK, 2, None) == ""  # never ran: no log to read


def test_fallback_tail_is_80_lines_then_2048_bytes(tmp_path: Path) -> None:
    short = write_log(tmp_path / "short.log", [("stdout", "F", f"line {i}".encode()) for i in range(100)])
    assert read_log_tail(short) == "".join(f"line {i}\n" for i in range(20, 100))
    long = write_log(tmp_path / "long.log", [("stdout", "F", b"x" * 99 + str(i % 10).encode()) for i in range(50)])
    tail = read_log_tail(long)
    assert len(tail) == MAX_LOG_BYTES and tail.endswith("x9\n")


def test_fallback_joins_partial_records(tmp_path: Path) -> None:
    log = write_log(tmp_path / "0.log", [("stderr", "P", b"half "), ("stderr", "F", b"line"), ("stdout", "P", b"no newline")])
    assert read_log_tail(log) == "half line\nno newline"


def test_an_unreadable_log_becomes_the_message(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    message = read_termination_message(empty, FALLBACK, 1, tmp_path / "missing.log")
    assert message.startswith("Error on reading termination message from logs: ")


def test_an_unreadable_message_file_becomes_the_message(tmp_path: Path) -> None:
    assert read_termination_message(tmp_path, "File", 1, None).startswith(f"Error on reading termination log {tmp_path}")


def test_invalid_utf8_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "msg"
    path.write_bytes(b"bad \xff byte")
    assert read_termination_message(path, "File", 1, None) == "bad \ufffd byte"


def test_unknown_policy_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="terminationMessagePolicy"):
        read_termination_message(tmp_path / "msg", "Sometimes", 1, None)


def test_pod_wide_limit_splits_12_kib_over_the_containers() -> None:
    assert limit_for_pod("x" * 5000, 2) == "x" * 5000
    assert limit_for_pod("x" * 5000, 3) == "x" * 4096
    assert limit_for_pod("é" * 3000, 3) == "é" * 2048  # 2 bytes each: 4096 bytes
    assert limit_for_pod("é" * 2000, 5)[-1] == "\ufffd"  # 2457 bytes end inside a character
    assert limit_for_pod("short", 0) == "short"
