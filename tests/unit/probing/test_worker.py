"""ProbeWorker: the kubelet's prober worker rules, driven with plain numbers as the clock."""

from __future__ import annotations

import math

import pytest

from sandbox.probing.outcome import ERROR, FAILURE, SUCCESS, WARNING, Outcome
from sandbox.probing.worker import (
    LIVENESS,
    READINESS,
    RESULT_FAILURE,
    RESULT_SUCCESS,
    RESULT_UNKNOWN,
    STARTUP,
    ProbeTiming,
    ProbeWorker,
    probe_timing,
)

OK, BAD = Outcome(SUCCESS), Outcome(FAILURE, "boom")
WARN, ERR = Outcome(WARNING, "moved"), Outcome(ERROR, "no netns")


def worker(kind: str = READINESS, started: bool = True, **timing: float) -> ProbeWorker:
    timing_record = ProbeTiming(**timing)  # type: ignore[arg-type]
    return ProbeWorker(kind, timing_record, started_at=0.0, now=0.0, started=started)


def probe_times(w: ProbeWorker, count: int, took: float = 0.5) -> list[float]:
    """Run `count` probes at the times the worker asks for (each succeeding after `took` s)."""
    times = []
    for _ in range(count):
        due = w.next_due()
        times.append(due)
        w.begin(due)
        w.record(OK, due + took)
    return times


@pytest.mark.parametrize("kind, initial", [(READINESS, RESULT_FAILURE), (LIVENESS, RESULT_SUCCESS),
                                           (STARTUP, RESULT_UNKNOWN)])
def test_initial_results(kind: str, initial: str) -> None:
    assert worker(kind).result == initial


def test_unknown_probe_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown probe type"):
        worker("sideness")


@pytest.mark.parametrize("given, expected", [
    ((0, 0, 0, 0, 0), ProbeTiming(0, 10, 1, 1, 3)),
    ((5, 3, 2, 2, 7), ProbeTiming(5, 3, 2, 2, 7)),
    ((-1, 0, 0, 0, 0), ProbeTiming(0, 10, 1, 1, 3)),
])
def test_probe_timing_treats_zero_as_the_kubelet_default(
        given: tuple[int, ...], expected: ProbeTiming) -> None:
    assert probe_timing(*given) == expected


@pytest.mark.parametrize("delay, period, expected", [
    (0, 10, [0, 10, 20, 30]),      # probes once at once, then every period
    (20, 10, [20, 30, 40, 50]),    # now - startedAt < 20 skips ticks 0 and 10; 20 is not < 20
    (25, 10, [30, 40, 50, 60]),    # the first tick after the delay
    (5, 30, [30, 60, 90, 120]),    # a period longer than the delay delays further
])
def test_ticks_and_initial_delay(delay: float, period: float, expected: list[float]) -> None:
    assert probe_times(worker(initial_delay=delay, period=period), 4) == expected


def test_a_probe_outlasting_its_period_is_followed_by_one_more_at_once() -> None:
    w = worker(period=10)
    w.begin(0)
    w.record(OK, 25)  # ticks 10 and 20 passed meanwhile; Go's ticker keeps one
    assert w.next_due() == 10
    w.begin(25)
    w.record(OK, 25.5)
    assert w.next_due() == 30


def test_next_due_is_never_while_a_check_is_in_flight() -> None:
    w = worker()
    w.begin(0)
    assert w.next_due() == math.inf


# (outcomes, results after each, changed after each) for readiness, success 2 / failure 3
READINESS_RUNS = [
    ("SS", "FS", "-+"),
    ("SSFFSFFF", "FSSSSSSF", "-+-----+"),
    ("FFFF", "FFFF", "----"),   # already Failure: reaching the threshold changes nothing
    ("SWS", "FSS", "-+-"),       # a warning counts as success
    ("SFS", "FFF", "---"),       # runs must be consecutive
]


@pytest.mark.parametrize("outcomes, results, changed", READINESS_RUNS)
def test_thresholds_flip_the_result_after_consecutive_runs(outcomes: str, results: str, changed: str) -> None:
    w = worker(READINESS, success_threshold=2, failure_threshold=3)
    seen_results, seen_changed = "", ""
    by_letter = {"S": OK, "F": BAD, "W": WARN}
    for step, letter in enumerate(outcomes):
        verdict = w.record(by_letter[letter], step * 10.0)
        seen_results += verdict.result[0]
        seen_changed += "+" if verdict.changed else "-"
    assert (seen_results, seen_changed) == (results, changed)


def test_every_failed_attempt_makes_an_event_even_below_the_threshold() -> None:
    verdict = worker(LIVENESS).record(BAD, 0)
    assert not verdict.changed
    assert (verdict.event_reason, verdict.event) == ("Unhealthy", "Liveness probe failed: boom")
    warning = worker(READINESS).record(WARN, 0)
    assert (warning.event_reason, warning.event) == ("ProbeWarning", "Readiness probe warning: moved")
    assert worker(READINESS).record(OK, 0).event == ""


def test_liveness_failure_kills_then_holds_until_a_new_container() -> None:
    w = worker(LIVENESS, failure_threshold=2)
    assert not w.record(BAD, 0).kill
    verdict = w.record(BAD, 10)
    assert verdict.kill and verdict.changed and verdict.result == RESULT_FAILURE
    assert w.next_due() == math.inf
    assert not w.record(OK, 20).changed  # late results of the held worker count for nothing
    assert w.result == RESULT_FAILURE


def test_readiness_failure_never_kills_and_probing_goes_on() -> None:
    w = worker(READINESS, failure_threshold=1)
    w.record(OK, 0)
    verdict = w.record(BAD, 10)
    assert verdict.changed and not verdict.kill and verdict.result == RESULT_FAILURE
    assert w.next_due() == 20


def test_errors_are_retried_three_times_in_the_tick_then_discarded() -> None:
    w = worker(LIVENESS, failure_threshold=1)
    w.begin(0)
    first = w.record(ERR, 0.2)
    assert first.retry and w.next_due() == 0.2 and first.event == ""
    w.begin(0.2)
    assert w.record(ERR, 0.4).retry
    w.begin(0.4)
    last = w.record(ERR, 0.6)
    assert not last.retry and not last.changed and last.result == RESULT_SUCCESS
    assert (last.event_reason, last.event) == ("Unhealthy", "Liveness probe errored: no netns")
    assert w.next_due() == 10  # the next tick of the one the first attempt ran in


def test_an_error_does_not_break_a_run_of_failures() -> None:
    w = worker(LIVENESS, failure_threshold=2)
    w.record(BAD, 0)
    for _ in range(3):
        w.record(ERR, 10)
    assert w.record(BAD, 20).kill


def test_startup_gates_the_other_probes() -> None:
    startup = worker(STARTUP, started=False, failure_threshold=3)
    readiness = worker(READINESS, started=False)
    assert readiness.next_due() == math.inf
    assert startup.next_due() == 0
    first = startup.record(BAD, 0)
    assert not first.changed and startup.result == RESULT_UNKNOWN
    verdict = startup.record(OK, 10)
    assert verdict.started and verdict.result == RESULT_SUCCESS
    assert startup.next_due() == math.inf  # the startup probe stops once started
    readiness.mark_started(12)
    assert readiness.next_due() == 20  # the next tick of its own ticker
    readiness.trigger(12)
    assert readiness.next_due() == 12  # manual trigger: at once


def test_startup_failure_kills() -> None:
    w = worker(STARTUP, started=False, failure_threshold=1)
    verdict = w.record(BAD, 0)
    assert verdict.kill and verdict.result == RESULT_FAILURE and not verdict.started


def test_mark_started_respects_the_initial_delay() -> None:
    w = worker(LIVENESS, started=False, initial_delay=30)
    w.mark_started(5)
    assert w.next_due() == 30


@pytest.mark.parametrize("kind, before, changed", [(LIVENESS, RESULT_SUCCESS, False),
                                                   (STARTUP, RESULT_UNKNOWN, True)])
def test_deletion_forces_liveness_and_startup_to_success(kind: str, before: str, changed: bool) -> None:
    w = worker(kind, failure_threshold=2)
    w.record(BAD, 0)  # one failure on the way to a kill
    w.begin(10)
    assert w.result == before
    verdict = w.pod_deleting(10.5)
    assert (verdict.result, verdict.changed, verdict.kill) == (RESULT_SUCCESS, changed, False)
    assert w.next_due() == math.inf
    late = w.record(BAD, 11)  # the check that was in flight: ignored
    assert not late.kill and w.result == RESULT_SUCCESS


def test_deletion_leaves_readiness_probing() -> None:
    w = worker(READINESS)
    verdict = w.pod_deleting(0)
    assert not verdict.changed and w.result == RESULT_FAILURE and w.next_due() == 0


def test_deletion_does_not_undo_a_liveness_failure_already_acted_on() -> None:
    w = worker(LIVENESS, failure_threshold=1)
    w.record(BAD, 0)
    assert not w.pod_deleting(1).changed and w.result == RESULT_FAILURE
