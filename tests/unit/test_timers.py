"""The supervisor's timer heap: deadline order, cancellation, and cancelled entries dropped so a
long-running pod's heap stays the size of its live timers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sandbox.supervisor.timers import COMPACT_MIN, Timers


def test_fires_due_timers_in_deadline_order_and_skips_cancelled() -> None:
    timers, fired = Timers(), []
    timers.add(3.0, lambda: fired.append("c"))
    timers.add(1.0, lambda: fired.append("a"))
    dropped = timers.add(2.0, lambda: fired.append("x"))
    timers.add(2.0, lambda: fired.append("b"))
    timers.cancel(dropped)
    assert timers.next_deadline() == 1.0
    timers.fire_due(2.5)
    assert fired == ["a", "b"] and len(timers) == 1 and timers.next_deadline() == 3.0
    timers.fire_due(10.0)
    assert fired == ["a", "b", "c"] and len(timers) == 0 and timers.next_deadline() is None


def test_cancel_is_idempotent_and_ignores_fired_or_unknown_handles() -> None:
    timers, fired = Timers(), []
    handle = timers.add(1.0, lambda: fired.append(1))
    timers.fire_due(1.0)
    for h in (handle, handle, None, 12345):  # a check's timeout cancelled after it fired, etc.
        timers.cancel(h)
    kept = timers.add(5.0, lambda: fired.append(5))
    timers.cancel(kept)
    timers.cancel(kept)
    assert timers.next_deadline() is None and timers.held == 0 and len(timers) == 0
    assert fired == [1]


def test_a_thousand_probe_runs_leave_no_dead_entries_behind() -> None:
    """Every exec-probe run adds a check timeout and cancels it when the check answers in time;
    the probe's period tick is rescheduled (cancel + add) each time too. The heap must stay the
    size of what is live, not grow by one closure per run."""
    timers = Timers()
    sidecar_grace = timers.add(1e9, lambda: None)  # a long-lived timer that never fires here
    tick = timers.add(1.0, lambda: None)
    peak = 0
    for run in range(1000):
        now = float(run)
        timeout = timers.add(now + 0.5, lambda: None)
        timers.cancel(timeout)  # the check finished first
        timers.cancel(tick)
        tick = timers.add(now + 1.0, lambda: None)
        peak = max(peak, timers.held)
    assert len(timers) == 2
    assert peak <= COMPACT_MIN + 2, peak
    timers.cancel(sidecar_grace)
    timers.cancel(tick)
    assert timers.next_deadline() is None and timers.held == 0


def test_cancelled_far_future_entries_are_dropped_without_reaching_the_top() -> None:
    """Lazy deletion alone drops an entry only when it comes due: a cancelled
    grace deadline far in the future would sit there for good without compaction."""
    timers = Timers()
    timers.add(0.0, lambda: None)  # stays at the top, so nothing below it is ever popped
    for i in range(5000):
        timers.cancel(timers.add(1000.0 + i, lambda: None))
    assert timers.held <= COMPACT_MIN
    assert len(timers) == 1 and timers.next_deadline() == 0.0


ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.floats(0, 100, allow_nan=False)),
    st.tuples(st.just("cancel"), st.integers(0, 300)),
    st.tuples(st.just("fire"), st.floats(0, 100, allow_nan=False)),
), max_size=300)


@given(ops)
def test_matches_a_plain_model(steps: list[tuple[str, float]]) -> None:
    """Against a list-based model: the same callbacks fire, in the same order, whatever is cancelled."""
    timers, fired, handles = Timers(), [], []
    model: dict[int, float] = {}  # index in handles -> deadline, for live timers
    expected: list[int] = []
    for op, arg in steps:
        if op == "add":
            index = len(handles)
            handles.append(timers.add(arg, lambda index=index: fired.append(index)))
            model[index] = arg
        elif op == "cancel" and handles:
            index = int(arg) % len(handles)
            timers.cancel(handles[index])
            model.pop(index, None)
        elif op == "fire":
            due = sorted((d, i) for i, d in model.items() if d <= arg)
            expected += [i for _, i in due]
            for _, i in due:
                del model[i]
            timers.fire_due(arg)
        assert fired == expected
        assert len(timers) == len(model)
        assert timers.held <= max(COMPACT_MIN, 2 * len(model) + 1)
        assert timers.next_deadline() == (min(model.values()) if model else None)


def test_firing_the_live_timers_does_not_strand_the_dead_ones() -> None:
    """Dead entries at half the heap are within bounds until the live ones fire; then the heap
    must shrink too, not keep a hundred cancelled closures for four live timers."""
    timers = Timers()
    for i in range(100):
        timers.add(float(i), lambda: None)
    for i in range(100):
        timers.cancel(timers.add(1000.0 + i, lambda: None))
    timers.fire_due(95.0)
    assert len(timers) == 4
    assert timers.held <= COMPACT_MIN
