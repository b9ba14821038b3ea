"""Crash-loop back-off (kubelet doBackOff) and Go duration parsing/formatting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.supervisor.backoff import (
    BackoffConfig,
    CrashLoopBackOff,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("0s", 0.0),
        ("100ms", 0.1),
        ("2s", 2.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("1m30s", 90.0),
        ("300s", 300.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1h2m3s", 3723.0),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        ("250ns", 250e-9),
        (" 5s ", 5.0),
    ],
)
def test_parse_duration_accepts_go_syntax(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-5s", "negative"),
        ("10", "missing unit"),
        ("1m30", "missing unit after '30'"),
        ("5d", "unknown unit 'd'"),
        ("5 s", "unknown unit ' s'"),
        ("s", "expected a number"),
        ("+5s", "expected a number"),
        ("1.5.5s", "missing unit"),
    ],
)
def test_parse_duration_rejects_bad_input(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="invalid duration") as info:
        parse_duration(text)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (10, "10s"),
        (20, "20s"),
        (80, "1m20s"),
        (160, "2m40s"),
        (300, "5m0s"),
        (3600, "1h0m0s"),
        (3723.5, "1h2m3.5s"),
        (1.5, "1.5s"),
        (0.5, "500ms"),
        (0.0015, "1.5ms"),
        (0.0005, "500µs"),
        (250e-9, "250ns"),
        (-2, "-2s"),
    ],
)
def test_format_duration_matches_go(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10**15))
def test_format_then_parse_round_trips(ns: int) -> None:
    seconds = ns / 1e9
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=1e-9, abs=1e-9)


class _Container:
    """A fake-clock container: each instance runs for a given time, then waits its back-off."""

    def __init__(self, backoff: CrashLoopBackOff, key: str = "c") -> None:
        self.backoff, self.key, self.now = backoff, key, 1000.0

    def run(self, run_times: list[float]) -> list[float]:
        """Let instances run `run_times[i]` seconds each; return the wait after each exit."""
        delays = []
        for ran in run_times:
            finished = self.now + ran
            self.now = self.backoff.restart_at(self.key, finished)
            delays.append(self.now - finished)
        return delays


def _delays(backoff: CrashLoopBackOff, run_times: list[float], key: str = "c") -> list[float]:
    return _Container(backoff, key).run(run_times)


def test_kubelet_sequence_first_restart_immediate_then_doubling_to_cap() -> None:
    assert _delays(CrashLoopBackOff(), [1.0] * 9) == [0, 10, 20, 40, 80, 160, 300, 300, 300]


def test_first_exit_restarts_at_finish_time() -> None:
    assert CrashLoopBackOff().restart_at("c", 42.5) == 42.5


def test_reset_after_a_run_longer_than_ten_minutes() -> None:
    container = _Container(CrashLoopBackOff())
    assert container.run([1.0, 1.0, 1.0, 1.0]) == [0, 10, 20, 40]
    # finished_at - last restart = 601 s > 600 s: the entry expired, restart now, back to 10 s.
    assert container.run([601.0, 1.0, 1.0]) == [0, 10, 20]


def test_exactly_reset_after_does_not_reset() -> None:
    # The kubelet's expiry test is strictly greater than 600 s.
    backoff = CrashLoopBackOff()
    assert _delays(backoff, [1.0, 1.0, 600.0]) == [0, 10, 20]


def test_reset_measures_from_restart_not_from_exit() -> None:
    # Waiting in back-off is not running time: lastUpdate is the restart instant.
    container = _Container(CrashLoopBackOff(BackoffConfig(initial=10, cap=300, reset_after=50)))
    assert container.run([1.0, 1.0, 1.0, 1.0]) == [0, 10, 20, 40]
    # 49 s after the last restart but 89 s after the last exit: no reset. Then 51 s: reset.
    assert container.run([49.0, 51.0]) == [80, 0]


def test_custom_initial_and_cap() -> None:
    backoff = CrashLoopBackOff(BackoffConfig(initial=0.1, cap=0.4, reset_after=5.0))
    assert _delays(backoff, [0.01] * 6) == pytest.approx([0, 0.1, 0.2, 0.4, 0.4, 0.4])


def test_initial_above_cap_is_lowered_to_cap() -> None:
    backoff = CrashLoopBackOff(BackoffConfig(initial=10, cap=3))
    assert _delays(backoff, [1.0] * 4) == [0, 3, 3, 3]


def test_keys_are_independent() -> None:
    backoff = CrashLoopBackOff()
    a, b = _Container(backoff, "a"), _Container(backoff, "b")
    assert a.run([1.0, 1.0, 1.0]) == [0, 10, 20]
    assert b.run([1.0, 1.0]) == [0, 10]
    assert a.run([1.0]) == [40]


def test_forget_starts_over() -> None:
    backoff = CrashLoopBackOff()
    container = _Container(backoff)
    assert container.run([1.0, 1.0, 1.0]) == [0, 10, 20]
    backoff.forget("c")
    backoff.forget("never-seen")
    assert container.run([1.0, 1.0]) == [0, 10]


def test_delay_reports_the_wait_for_the_message() -> None:
    backoff = CrashLoopBackOff()
    container = _Container(backoff)
    assert backoff.delay("c") == 0.0
    assert [(container.run([1.0]), backoff.delay("c")) for _ in range(3)] == [
        ([0], 0.0),
        ([10], 10.0),
        ([20], 20.0),
    ]


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 0}, {"initial": -1}, {"cap": 0}, {"reset_after": -1}, {"initial": float("nan")}],
)
def test_config_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="back-off"):
        BackoffConfig(**kwargs)


def test_default_config_is_the_kubelet_constants() -> None:
    assert BackoffConfig() == BackoffConfig(initial=10.0, cap=300.0, reset_after=600.0)
