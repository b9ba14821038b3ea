"""process.launch.parse_signal: stop signals by name or number, read without signal.py's enums."""

from __future__ import annotations

import signal

import pytest

from sandbox.process.launch import parse_signal


@pytest.mark.parametrize("member", list(signal.Signals))
def test_every_signal_name_reads_as_its_number(member: signal.Signals) -> None:
    assert parse_signal(member.name) == member.value
    assert parse_signal(member.name.removeprefix("SIG").lower()) == member.value


@pytest.mark.parametrize("text, number", [("SIGIOT", signal.SIGABRT), ("SIGCLD", signal.SIGCHLD), ("15", 15),
                                          (" SIGTERM ", 15), ("SIGRTMIN+3", signal.SIGRTMIN + 3),
                                          ("RTMAX-1", signal.SIGRTMAX - 1)])
def test_aliases_numbers_and_real_time_offsets(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["SIG_DFL", "SIG_IGN", "_DFL", "SIG_BLOCK", "SIGFOO", "", "SIG", "0", "9", "19",
                                  "65", "SIGRTMIN+x", "TERM15", "SIG TERM"])
def test_what_is_no_signal_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="unknown signal"):
        parse_signal(text)
